"""The projection head of :mod:`preprocess.refine`, its training, and the label-free validity index.

Plain torch, imported lazily. The head maps L2-normalised features [n, d] to [n, dim_out]; it is trained
with a cosine-softmax cross-entropy against class prototypes (pseudo-labels from clusters plus the user's
classes), on CUDA in bfloat16 mixed precision when there is a GPU, else on the CPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import CollectionError, MissingDependencyError, ParameterError
from .progress import CancelCheck, check_cancel

#: DBCV is quadratic in the points of a cluster: above this many clips it is computed on a seeded sample.
VALIDITY_MAX_CLIPS = 3000


@dataclass(frozen=True)
class HeadConfig:
    """The projection head and its training: ``dim_in -> hidden -> dim_out``, cosine softmax with scale."""

    dim_out: int = 128
    hidden: int = 512
    epochs: int = 30
    max_steps: int = 3000
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    scale: float = 16.0
    label_smoothing: float = 0.1
    dropout: float = 0.2

    def __post_init__(self) -> None:
        for key in ("dim_out", "hidden", "epochs", "max_steps", "batch_size"):
            if int(getattr(self, key)) < 1:
                raise ParameterError(f"refine head: {key} must be >= 1")
        if not (self.lr > 0 and self.scale > 0 and 0 <= self.label_smoothing < 1 and 0 <= self.dropout < 1):
            raise ParameterError("refine head: lr and scale > 0, label_smoothing and dropout in [0, 1)")


def l2_normalise(X: np.ndarray) -> np.ndarray:
    """Rows of float [n, d] scaled to unit length (zero rows stay zero); float32."""
    X = np.asarray(X, dtype=np.float32)
    norm = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.maximum(norm, 1e-12)


def validity(X: np.ndarray, labels: np.ndarray, *, random_state: int = 0) -> float:
    """DBCV (density-based clustering validation, hdbscan's ``validity_index``) of ``labels`` (-1 noise)
    on float [n, d] points, in [-1, 1], higher is better; noise counts against it. NaN with fewer than
    two clusters. Above :data:`VALIDITY_MAX_CLIPS` points a seeded random sample is scored."""
    try:
        from hdbscan.validity import validity_index
    except ImportError:
        raise MissingDependencyError("the validity index needs the package 'hdbscan': pip install hdbscan") from None
    labels = np.asarray(labels)
    if len(labels) > VALIDITY_MAX_CLIPS:
        keep = np.sort(np.random.default_rng(random_state).choice(len(labels), VALIDITY_MAX_CLIPS, replace=False))
        X, labels = X[keep], labels[keep]
    ids, counts = np.unique(labels[labels >= 0], return_counts=True)
    small = ids[counts < 2]  # a 1-point cluster has no internal edges
    labels = np.where(np.isin(labels, small), -1, labels)
    if len(np.unique(labels[labels >= 0])) < 2:
        return float("nan")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        v = validity_index(np.asarray(X, dtype=np.float64), labels.astype(np.intp), metric="euclidean")
    return float(v) if np.isfinite(v) else float("nan")


# ---------------------------------------------------------------------------------------------
# the head


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        raise MissingDependencyError("refine needs torch: pip install torch") from None
    return torch


def build_head(dim_in: int, n_classes: int, cfg: HeadConfig) -> Any:
    """``(projection, prototypes)``: projection [n, dim_in] -> [n, dim_out]; prototypes [n_classes, dim_out]."""
    torch = _torch()
    nn = torch.nn
    proj = nn.Sequential(
        nn.Dropout(cfg.dropout), nn.Linear(dim_in, cfg.hidden), nn.GELU(), nn.Linear(cfg.hidden, cfg.dim_out)
    )
    protos = nn.Parameter(torch.randn(max(n_classes, 1), cfg.dim_out) * 0.01)
    return proj, protos


def train_head(
    X: np.ndarray,
    y: np.ndarray,
    *,
    cfg: HeadConfig,
    device: str = "cpu",
    random_state: int = 0,
    should_cancel: CancelCheck | None = None,
) -> tuple[Any, dict[str, float]]:
    """Train the projection on rows ``X`` float32 [n, d] with class ids ``y`` int [n] (>= 0; -1 rows are
    left out) by a cosine-softmax cross-entropy. CUDA runs in bfloat16 mixed precision. Returns the
    projection (eval mode, on CPU) and ``{"loss", "accuracy", "steps"}`` of the last epoch."""
    torch = _torch()
    torch.manual_seed(random_state)
    F = torch.nn.functional
    keep = y >= 0
    Xt = torch.from_numpy(np.ascontiguousarray(X[keep], dtype=np.float32)).to(device)
    classes, yt_np = np.unique(y[keep], return_inverse=True)
    yt = torch.from_numpy(yt_np.astype(np.int64)).to(device)
    if len(classes) < 2:
        raise CollectionError("refine needs at least 2 clusters or classes to learn from; got fewer")
    proj, protos = build_head(X.shape[1], len(classes), cfg)
    proj.to(device)
    protos = torch.nn.Parameter(protos.detach().to(device))
    opt = torch.optim.AdamW([*proj.parameters(), protos], lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator(device="cpu").manual_seed(random_state)
    n = len(Xt)
    steps_per_epoch = max(1, int(np.ceil(n / cfg.batch_size)))
    epochs = max(1, min(cfg.epochs, cfg.max_steps // steps_per_epoch))
    cuda = device == "cuda"
    steps, loss_sum, correct = 0, 0.0, 0
    proj.train()
    for _epoch in range(epochs):
        check_cancel(should_cancel)
        order = torch.randperm(n, generator=gen).to(device)
        loss_sum, correct = 0.0, 0
        for i in range(0, n, cfg.batch_size):
            idx = order[i : i + cfg.batch_size]
            with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=cuda):
                z = F.normalize(proj(Xt[idx]).float(), dim=1)
                logits = cfg.scale * z @ F.normalize(protos, dim=1).T
                loss = F.cross_entropy(logits, yt[idx], label_smoothing=cfg.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            steps += 1
            loss_sum += float(loss.detach()) * len(idx)
            correct += int((logits.argmax(1) == yt[idx]).sum())
    proj.eval().cpu()
    return proj, {"loss": loss_sum / n, "accuracy": correct / n, "steps": steps, "epochs": epochs}


def embed(proj: Any, X: np.ndarray, *, batch: int = 8192) -> np.ndarray:
    """L2-normalised head outputs float32 [n, dim_out] of L2-normalised rows of ``X`` float [n, d]."""
    torch = _torch()
    Xn = l2_normalise(X)
    out = []
    with torch.inference_mode():
        for i in range(0, len(Xn), batch):
            out.append(proj(torch.from_numpy(Xn[i : i + batch])).float().numpy())
    Z = np.concatenate(out) if out else np.zeros((0, proj[-1].out_features), np.float32)
    return l2_normalise(Z)
