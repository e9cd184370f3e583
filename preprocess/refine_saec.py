"""Refine for ``features=saec``: fine-tune the autoencoder's encoder itself on cluster pseudo-labels (MEC).

Where :mod:`preprocess.refine_head` trains a head on frozen features, this trains the backbone: the saec
autoencoder of ``features/saec/model.pt`` (copied, never written) is loaded, and each round continues to
train it on the round's pseudo-labels with

    loss = cross-entropy(scale · cos(z, prototypes))  +  recon_weight · MSE(decoder(encoder(x~)), x)

where ``x`` is a clip's spectrogram (uint8 -> [0, 1], pooled and padded as saec does), ``x~`` its denoising
corruption (the saec augmentation), ``z`` the L2-normalised pooled latent (saec's embedding) and the
prototypes one learnable unit vector per class, started at the class means. The reconstruction term keeps
the encoder from collapsing onto the pseudo-labels. CUDA trains in float16 autocast with a gradient scaler;
the CPU runs a bounded number of steps (:data:`CPU_STEPS` per round) so a refine stays affordable there.

The fine-tuned autoencoder is saved as ``features/saec-refined/model.pt`` in saec's checkpoint format plus
``base_signature`` and ``refine``; clips added later are encoded through it (:func:`encode_new`).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .collection import Collection, atomic_path
from .errors import CollectionError, ParameterError
from .progress import CancelCheck, check_cancel
from .refine_head import l2_normalise

#: Training steps per round by device (``EncoderConfig.steps`` = 0 picks these). The CPU value, ``lr`` and
#: ``recon_weight`` were chosen on half A of the dev species (bench/refine.py ``--rounds``); CUDA's is not measured.
CPU_STEPS = 60
CUDA_STEPS = 600
#: Batch size by device (``EncoderConfig.batch_size`` = 0 picks these).
CPU_BATCH = 32
CUDA_BATCH = 256
KIND = "saec-encoder"


@dataclass(frozen=True)
class EncoderConfig:
    """How the encoder is fine-tuned each round (0 = the device's default for steps and batch size)."""

    steps: int = 0
    batch_size: int = 0
    lr: float = 2e-4
    scale: float = 16.0
    label_smoothing: float = 0.1
    recon_weight: float = 1.0
    weight_decay: float = 1e-4

    def __post_init__(self) -> None:
        if int(self.steps) < 0 or int(self.batch_size) < 0:
            raise ParameterError("refine encoder: steps and batch_size must be >= 0 (0 = the device's default)")
        if not (self.lr > 0 and self.scale > 0 and 0 <= self.label_smoothing < 1 and self.recon_weight >= 0):
            raise ParameterError("refine encoder: lr and scale > 0, label_smoothing in [0, 1), recon_weight >= 0")

    def resolved(self, device: str) -> tuple[int, int]:
        """``(steps, batch_size)`` on ``device``."""
        cuda = device == "cuda"
        return (
            int(self.steps or (CUDA_STEPS if cuda else CPU_STEPS)),
            int(self.batch_size or (CUDA_BATCH if cuda else CPU_BATCH)),
        )


def _encode_all(model: Any, S: np.ndarray, ckpt: dict[str, Any], device: str, cancel: CancelCheck | None) -> np.ndarray:
    from .features.saec import encode_spectrograms

    model.eval()
    pool = int(ckpt.get("params", {}).get("input_pool", 1))
    batch = 1024 if device == "cuda" else 256
    Z = encode_spectrograms(model, S, shape=ckpt["shape"], pool=pool, device=device, batch=batch, should_cancel=cancel)
    return l2_normalise(Z)


class SaecEncoderTuner:
    """The saec autoencoder of ``collection`` being fine-tuned; one :meth:`fit` per refine round.

    ``embed()`` gives float32 [n_clips, 2·C·F'] L2-normalised embeddings of every clip; ``save(name)``
    writes the checkpoint of refined set ``name``; ``meta()`` says how it was made."""

    def __init__(
        self,
        collection: Collection,
        *,
        source: str = "saec",
        cfg: EncoderConfig | None = None,
        device: str = "cpu",
        random_state: int = 0,
    ) -> None:
        from .features.saec import load_checkpoint

        self.collection = collection
        self.source = source
        self.cfg = cfg or EncoderConfig()
        self.device = device
        self.random_state = int(random_state)
        self.model, self.ckpt = load_checkpoint(collection.features_model_path(source), device=device)
        self.S = collection.spectrograms()
        if len(self.S) != collection.n_clips():
            raise CollectionError("the spectrograms and the clip table disagree; build the collection again")
        self.pool = int(self.ckpt.get("params", {}).get("input_pool", 1))
        self.steps_done = 0
        self.rounds = 0
        self.Z: np.ndarray | None = None

    def embed(self, *, should_cancel: CancelCheck | None = None) -> np.ndarray:
        """Every clip through the current encoder: float32 [n_clips, dim], unit rows."""
        self.Z = _encode_all(self.model, self.S, self.ckpt, self.device, should_cancel)
        return self.Z

    def fit(self, y: np.ndarray, *, random_state: int = 0, should_cancel: CancelCheck | None = None) -> dict[str, Any]:
        """Continue training on class ids ``y`` int [n_clips] (-1 rows left out). Returns
        ``{loss, ce, recon, accuracy, steps, time_s}`` (means over the last quarter of the steps)."""
        import torch

        from .features.saec import _corrupt, _to_tensor, pool_latent

        F = torch.nn.functional
        steps, batch = self.cfg.resolved(self.device)
        keep = np.flatnonzero(y >= 0)
        classes, yk = np.unique(y[keep], return_inverse=True)
        if len(classes) < 2:
            raise CollectionError("refine needs at least 2 clusters or classes to learn from; got fewer")
        Z = self.Z if self.Z is not None else self.embed(should_cancel=should_cancel)
        means = np.stack([Z[keep[yk == k]].mean(0) for k in range(len(classes))])
        torch.manual_seed(random_state)
        rng = np.random.default_rng(random_state)
        dev = self.device
        protos = torch.nn.Parameter(torch.from_numpy(l2_normalise(means)).to(dev))
        labels = torch.from_numpy(yk.astype(np.int64)).to(dev)
        opt = torch.optim.AdamW(
            [{"params": self.model.parameters()}, {"params": [protos], "lr": self.cfg.lr * 10, "weight_decay": 0.0}],
            lr=self.cfg.lr,
            weight_decay=self.cfg.weight_decay,
        )
        cuda = dev == "cuda"
        scaler = torch.amp.GradScaler("cuda", enabled=cuda)
        gen = torch.Generator(device=dev).manual_seed(random_state)
        batch = min(batch, len(keep))
        self.model.train()
        t0 = time.perf_counter()
        tail: list[tuple[float, float, float, float]] = []
        order, pos = rng.permutation(len(keep)), 0
        for step in range(steps):
            check_cancel(should_cancel)
            if pos + batch > len(order):
                order, pos = rng.permutation(len(keep)), 0
            sel = np.sort(order[pos : pos + batch])
            pos += batch
            x = _to_tensor(self.S[keep[sel]], self.ckpt["shape"], dev, pool=self.pool)
            with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=cuda):
                lat = self.model.encoder(_corrupt(x, gen))
                z = F.normalize(pool_latent(lat), dim=1)
                logits = self.cfg.scale * z @ F.normalize(protos, dim=1).T
                ce = F.cross_entropy(logits, labels[sel], label_smoothing=self.cfg.label_smoothing)
                loss = ce
                recon = torch.zeros((), device=dev)
                if self.cfg.recon_weight > 0:
                    recon = F.mse_loss(self.model.decoder(lat).float(), x)
                    loss = ce + self.cfg.recon_weight * recon
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            if step >= steps - max(1, steps // 4):
                acc = float((logits.argmax(1) == labels[sel]).float().mean())
                tail.append((float(loss.detach()), float(ce.detach()), float(recon.detach()), acc))
        self.model.eval()
        self.steps_done += steps
        self.rounds += 1
        self.Z = None
        loss_m, ce_m, rec_m, acc_m = (float(v) for v in np.mean(np.asarray(tail), axis=0))
        return {
            "loss": loss_m,
            "ce": ce_m,
            "recon": rec_m,
            "accuracy": acc_m,
            "steps": steps,
            "batch_size": batch,
            "time_s": round(time.perf_counter() - t0, 2),
        }

    def snapshot(self) -> tuple[dict[str, Any], int, int]:
        """A copy of the current weights (to go back to a better round)."""
        return {k: v.detach().clone() for k, v in self.model.state_dict().items()}, self.rounds, self.steps_done

    def restore(self, snap: tuple[dict[str, Any], int, int]) -> None:
        state, self.rounds, self.steps_done = snap
        self.model.load_state_dict(state)
        self.model.eval()
        self.Z = None

    def save(self, collection: Collection, name: str) -> None:
        """Write the fine-tuned autoencoder as ``features/NAME/model.pt`` (saec's checkpoint format)."""
        import torch

        path = collection.features_model_path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            torch.save(
                {
                    "signature": f"{KIND}-{self.ckpt.get('signature')}",
                    "base_signature": self.ckpt.get("signature"),
                    "shape": self.ckpt["shape"],
                    "params": self.ckpt.get("params", {}),
                    "state_dict": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
                    "train_info": self.ckpt.get("train_info", {}),
                    "refine": {"rounds": self.rounds, "steps": self.steps_done, "device": self.device},
                },
                tmp,
            )

    def params(self) -> dict[str, Any]:
        steps, batch = self.cfg.resolved(self.device)
        return {"encoder": {**asdict(self.cfg), "steps": steps, "batch_size": batch}}

    def meta(self) -> dict[str, Any]:
        """The ``model`` entry of the refined set's meta: how the encoder was made."""
        steps, batch = self.cfg.resolved(self.device)
        return {
            "kind": KIND,
            "name": "saec encoder fine-tuned on cluster pseudo-labels (cosine softmax + reconstruction)",
            "weights": self.collection.features_model_path(self.source).name,
            "base": {
                "features": self.source,
                "signature": self.ckpt.get("signature"),
                "params": self.ckpt.get("params", {}),
                "train_info": self.ckpt.get("train_info", {}),
            },
            "encoder": {**asdict(self.cfg), "steps": steps, "batch_size": batch},
            "rounds": self.rounds,
            "steps": self.steps_done,
            "device": self.device,
        }


def is_encoder_refined(meta: dict[str, Any]) -> bool:
    """Whether a refined set's meta says its rows come from a fine-tuned saec encoder."""
    return isinstance(meta.get("model"), dict) and meta["model"].get("kind") == KIND


def encode_new(collection: Collection, name: str, S_new: np.ndarray) -> np.ndarray:
    """uint8 spectrograms [m, n_mels, n_frames] through the saved fine-tuned encoder of refined set ``name``
    (CPU): float32 [m, dim] unit rows, the same function that made the stored rows."""
    from .features.saec import load_checkpoint

    model, ckpt = load_checkpoint(collection.features_model_path(name), device="cpu")
    S_new = np.asarray(S_new)
    stored = collection.spectrograms()
    if S_new.ndim != 3 or S_new.shape[1:] != stored.shape[1:]:
        raise ParameterError(f"new clips must be uint8 spectrograms [m, {', '.join(map(str, stored.shape[1:]))}]")
    return _encode_all(model, S_new, ckpt, "cpu", None)
