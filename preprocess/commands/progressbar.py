"""A tqdm progress callback for the CLI: one bar per stage, with rate and ETA.

Use as a context manager and pass it as ``progress=`` to any core function::

    with TqdmProgress() as bar:
        build(..., progress=bar)
"""

from __future__ import annotations

import sys
from typing import Any


class TqdmProgress:
    """``progress(stage, done, total, message)`` drawn as tqdm bars (a new bar whenever the stage changes)."""

    def __init__(self, *, file: Any = None, disable: bool | None = None) -> None:
        self.file = file or sys.stderr
        self.disable = disable
        self._bar: Any = None
        self._stage: str | None = None

    def __call__(self, stage: str, done: int, total: int, message: str = "") -> None:
        from tqdm import tqdm

        if stage != self._stage:
            self.close()
            self._stage = stage
            tty = hasattr(self.file, "isatty") and self.file.isatty()
            self._bar = tqdm(
                total=total or None,
                desc=f"{stage:>14}",
                unit="",
                file=self.file,
                disable=bool(self.disable),
                dynamic_ncols=tty,
                mininterval=0.2 if tty else 10.0,  # a log file gets a line every 10 s, not a flood
                leave=True,
            )
        bar = self._bar
        if total and bar.total != total:
            bar.total = total
        if message:
            bar.set_postfix_str(message[-40:], refresh=False)
        bar.update(done - bar.n)  # throttled by mininterval; close() draws the final state

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> TqdmProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
