"""The core's layers, read from the source (AST): a lower layer never imports a higher one, no import
cycle in ``preprocess/``, and the core neither imports Flask or the server, nor reads the environment,
nor prints.

Layers, lowest first (a module may import its own layer and lower ones)::

    foundation  errors, progress, config, atomic writes, the process pool, input metadata parsing
    signal      decoding, spectrograms, clip finding, sprites
    analysis    clustering, the label store, exports of labels
    store       the collection format (schema) and its one owner (collection)
    build       discover -> worker -> assemble -> features -> reduce, and what serves or grows a collection
    edge        the CLI (``cli``, ``__main__``, ``commands.*``): may print and read the environment

A new module must be given a layer here (prefix rules cover the feature extractors and commands).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "preprocess"

LAYER_NAMES = ("foundation", "signal", "analysis", "store", "build", "edge")

#: module (relative to ``preprocess``; "" is the package itself) -> layer. Prefix rules end with ".".
LAYERS: dict[str, str] = {
    "": "foundation",
    "errors": "foundation",
    "progress": "foundation",
    "config": "foundation",
    "atomic": "foundation",
    "npy_append": "foundation",
    "pool": "foundation",
    "distributed": "foundation",
    "metadata": "foundation",
    "file_tags": "foundation",
    "audio": "signal",
    "spectrogram": "signal",
    "clips": "signal",
    "events_stream": "signal",
    "sprites": "signal",
    "cluster": "analysis",
    "cluster_defaults": "analysis",
    "cluster_knn": "analysis",
    "labels": "analysis",
    "export": "analysis",
    "import_tables": "analysis",
    "schema": "store",
    "collection": "store",
    "testing": "build",
    "discover": "build",
    "worker": "build",
    "assemble": "build",
    "pipeline": "build",
    "features": "build",
    "features.": "build",
    "features.on_cluster": "build",
    "reduce": "build",
    "reduce_sample": "analysis",
    "evaluate": "build",
    "recording_view": "build",
    "uploads": "build",
    "ingest": "build",
    "ingest_rollback": "build",
    "small_map": "build",
    "similar": "build",
    "learn": "build",
    "species": "build",
    "predictions_export": "build",
    "learn.": "build",
    "refine": "build",
    "refine.": "build",
    "refine_saec": "build",
    "cli": "edge",
    "__main__": "edge",
    "commands": "edge",
    "commands.": "edge",
}

FORBIDDEN_PACKAGES = ("flask", "flask_socketio", "werkzeug", "server", "socketio", "engineio")


def layer_of(module: str) -> str | None:
    if module in LAYERS:
        return LAYERS[module]
    for key, layer in LAYERS.items():
        if key.endswith(".") and module.startswith(key):
            return layer
    head = module.split(".")[0]
    if head.startswith(("learn", "refine", "similar")):  # learn_*.py, refine_*.py of the other issues
        return "build"
    return None


def _modules() -> dict[str, Path]:
    out = {}
    for p in sorted(PKG.rglob("*.py")):
        parts = p.relative_to(PKG).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def _imports(module: str, path: Path) -> tuple[set[str], set[str], ast.Module]:
    """(modules of ``preprocess`` it imports, anywhere in the file; other top-level packages; the tree)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_pkg = path.name == "__init__.py"
    package = module.split(".") if is_pkg else module.split(".")[:-1]
    package = [p for p in package if p]
    internal, external = set(), set()
    known = _modules()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name == "preprocess" or a.name.startswith("preprocess."):
                    internal.add(a.name.removeprefix("preprocess").lstrip("."))
                else:
                    external.add(a.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                target = ".".join([*base, *([node.module] if node.module else [])])
            elif node.module == "preprocess" or (node.module or "").startswith("preprocess."):
                target = node.module.removeprefix("preprocess").lstrip(".")
            else:
                external.add((node.module or "").split(".")[0])
                continue
            for a in node.names:  # ``from . import x`` imports the module x when there is one
                sub = f"{target}.{a.name}" if target else a.name
                internal.add(sub if sub in known else target)
    return internal, external, tree


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    return {m: {d for d in _imports(m, p)[0] if d != m} for m, p in mods.items()}


def test_every_module_has_a_layer() -> None:
    missing = [m or "preprocess" for m in _modules() if layer_of(m) is None]
    assert not missing, f"give these modules a layer in tests/test_layers.py LAYERS: {missing}"


def test_no_lower_layer_imports_a_higher_one() -> None:
    bad = []
    for m, deps in _graph().items():
        lm = layer_of(m)
        if lm is None:
            continue
        for d in deps:
            ld = layer_of(d)
            if ld is not None and LAYER_NAMES.index(ld) > LAYER_NAMES.index(lm):
                bad.append(f"{m or 'preprocess'} ({lm}) imports {d} ({ld})")
    assert not bad, "imports against the layers:\n" + "\n".join(sorted(bad))


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (as a path that starts and ends at the same module), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for d in sorted(graph.get(n, ())):
            if state.get(d) == 1:
                return [*stack[stack.index(d) :], d]
            if d not in state and (c := visit(d)) is not None:
                return c
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (c := visit(n)) is not None:
            return c
    return None


def test_no_import_cycle() -> None:
    cycle = find_cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(c or "preprocess" for c in cycle)


def test_cycle_finder_can_fail() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def _env_and_prints(tree: ast.Module) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "putenv", "unsetenv"):
            if isinstance(node.value, ast.Name) and node.value.id == "os":
                found.append(f"line {node.lineno}: os.{node.attr}")
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            found += [f"line {node.lineno}: from os import {a.name}" for a in node.names if "env" in a.name]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
            found.append(f"line {node.lineno}: print()")
    return found


@pytest.mark.parametrize("module", sorted(_modules()))
def test_the_core_has_no_flask_no_environment_no_print(module: str) -> None:
    path = _modules()[module]
    _internal, external, tree = _imports(module, path)
    assert not external & set(FORBIDDEN_PACKAGES), f"{path.name} imports {sorted(external & set(FORBIDDEN_PACKAGES))}"
    if layer_of(module) == "edge":
        return
    found = _env_and_prints(tree)
    assert not found, f"preprocess/{path.relative_to(PKG)} (core) reads the environment or prints: {found}"


def test_the_checks_see_what_they_look_for() -> None:
    tree = ast.parse("import os\nx = os.environ.get('A')\nprint(x)\nfrom os import getenv\n")
    assert len(_env_and_prints(tree)) == 3


_EDGE_ADVICE = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]+|python -m (preprocess|server)|SONOMAP_[A-Z_]+")


def _edge_advice(tree: ast.Module) -> list[str]:
    """Raised messages of the core that name a CLI flag, a CLI command or a server variable (the edges add that)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and node.exc is not None:
            for sub in ast.walk(node.exc):
                if isinstance(sub, ast.Constant) and isinstance(sub.value, str) and _EDGE_ADVICE.search(sub.value):
                    found.append(f"line {sub.lineno}: {sub.value.strip()[:60]!r}")
    return found


@pytest.mark.parametrize("module", sorted(_modules()))
def test_core_messages_name_no_cli_flag_or_server_variable(module: str) -> None:
    if layer_of(module) == "edge":
        return
    _internal, _external, tree = _imports(module, _modules()[module])
    found = _edge_advice(tree)
    assert not found, f"preprocess/{_modules()[module].relative_to(PKG)} names CLI flags in its messages: {found}"


def test_the_advice_check_can_fail() -> None:
    tree = ast.parse(
        "raise ValueError(f'bad {x}: pass --labels CSV')\nraise ValueError('run python -m preprocess build')"
    )
    assert len(_edge_advice(tree)) == 2
    assert not _edge_advice(ast.parse("raise ValueError('fmax must be below the Nyquist frequency')"))
