"""SAEC: a denoising convolutional autoencoder trained on the collection's own spectrograms.

The stored uint8 log-mel spectrograms (scaled to [0, 1], average-pooled 2x2 by default to make CPU
training affordable, zero-padded to multiples of 16) go through four
stride-2 conv blocks and a 1x1 conv to ``latent_channels`` maps of (n_mels/16) x (n_frames/16); the
decoder mirrors it. Training corrupts the input (Gaussian noise and random time/frequency masks) and
asks for the clean spectrogram (MSE). The embedding of a clip is its latent, flattened over
channels x frequency, pooled over time as mean and standard deviation.

Training is seeded and bounded: ``max_train_clips`` sampled clips, ``max_steps`` steps (defaults
depend on the device: a 2-core CPU trains ~20-65 images/s, a GPU thousands, with mixed precision
and large batches). The checkpoint is saved as ``features/saec/model.pt``; clips appended later are
encoded with it (never retrained, so old rows do not move).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from ..collection import Collection, atomic_path
from ..errors import CollectionError, MissingDependencyError
from ..progress import CancelCheck, Progress, check_cancel
from ..schema import FEATURES_MODEL_FILE
from .base import FeatureExtractor

CHECKPOINT = FEATURES_MODEL_FILE  # the file name recorded in meta.json
#: device -> (max_steps, train batch size, max_train_clips, encode batch size)
DEFAULTS = {"cpu": (200, 32, 4096, 256), "cuda": (3000, 256, 100_000, 1024)}


def build_autoencoder(*, latent_channels: int = 16, width: int = 16) -> Any:
    """The conv autoencoder (a ``torch.nn.Module`` with ``encode`` and ``forward``)."""
    import torch
    from torch import nn

    def down(c_in: int, c_out: int) -> nn.Module:
        return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.BatchNorm2d(c_out), nn.GELU())

    def up(c_in: int, c_out: int) -> nn.Module:
        return nn.Sequential(nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1), nn.BatchNorm2d(c_out), nn.GELU())

    class Autoencoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            w = width
            self.encoder = nn.Sequential(
                down(1, w), down(w, 2 * w), down(2 * w, 4 * w), down(4 * w, 8 * w), nn.Conv2d(8 * w, latent_channels, 1)
            )
            self.decoder = nn.Sequential(
                nn.Conv2d(latent_channels, 8 * w, 1),
                nn.GELU(),
                up(8 * w, 4 * w),
                up(4 * w, 2 * w),
                up(2 * w, w),
                nn.ConvTranspose2d(w, 1, 4, stride=2, padding=1),
            )

        def encode(self, x: torch.Tensor) -> torch.Tensor:
            return self.encoder(x)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.decoder(self.encoder(x))

    return Autoencoder()


def _padded(shape: tuple[int, int]) -> tuple[int, int]:
    return tuple(int(np.ceil(s / 16) * 16) for s in shape)  # type: ignore[return-value]


def _to_tensor(S: np.ndarray, shape: tuple[int, int], device: str, *, pool: int = 1) -> Any:
    """uint8 [n, F, T] -> float [n, 1, F', T'] in [0, 1], average-pooled by ``pool``, zero-padded (0 = floor)."""
    import torch

    x = torch.from_numpy(np.array(S, dtype=np.uint8, copy=True)).to(device)
    x = x.float().div_(255.0).unsqueeze(1)
    if pool > 1:
        x = torch.nn.functional.avg_pool2d(x, pool)
    pad_t, pad_f = shape[1] - x.shape[3], shape[0] - x.shape[2]
    return torch.nn.functional.pad(x, (0, pad_t, 0, pad_f))


def _corrupt(x: Any, generator: Any, *, noise: float = 0.1, mask_frac: float = 0.1) -> Any:
    """Denoising corruption: Gaussian noise plus one random time band and one frequency band set to 0."""
    import torch

    n, _, F, T = x.shape
    y = x + noise * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    tw, fw = max(1, int(T * mask_frac)), max(1, int(F * mask_frac))
    t0 = torch.randint(0, T - tw + 1, (n,), generator=generator, device=x.device)
    f0 = torch.randint(0, F - fw + 1, (n,), generator=generator, device=x.device)
    t = torch.arange(T, device=x.device)[None, :]
    f = torch.arange(F, device=x.device)[None, :]
    tmask = ((t >= t0[:, None]) & (t < t0[:, None] + tw))[:, None, None, :]
    fmask = ((f >= f0[:, None]) & (f < f0[:, None] + fw))[:, None, :, None]
    return y.masked_fill(tmask | fmask, 0.0).clamp_(0.0, 1.0)


def pool_latent(z: Any) -> Any:
    """Latent [n, C, F, T] -> [n, 2·C·F]: mean and std over time of each channel x frequency row."""
    z = z.float().flatten(1, 2)
    return __import__("torch").cat([z.mean(dim=2), z.std(dim=2, unbiased=False)], dim=1)


class SaecExtractor(FeatureExtractor):
    """Denoising conv autoencoder; embedding = latent pooled over time (mean + std)."""

    name = "saec"
    version = "1"
    supports_cuda = True

    def __init__(
        self,
        *,
        device: str = "cpu",
        batch_size: int | None = None,
        max_steps: int | None = None,
        max_train_clips: int | None = None,
        train_batch_size: int | None = None,
        latent_channels: int = 16,
        width: int = 16,
        input_pool: int = 2,
        learning_rate: float = 2e-3,
        random_state: int = 0,
    ) -> None:
        super().__init__(device=device, batch_size=batch_size)
        steps, tbs, clips, _ = DEFAULTS["cuda" if device == "cuda" else "cpu"]
        self.max_steps = int(max_steps if max_steps is not None else steps)
        self.max_train_clips = int(max_train_clips if max_train_clips is not None else clips)
        self.train_batch_size = int(train_batch_size or tbs)
        self.latent_channels = latent_channels
        self.width = width
        self.input_pool = int(input_pool)
        self.learning_rate = learning_rate
        self.random_state = random_state

    def params(self) -> dict[str, Any]:
        return {
            "max_steps": self.max_steps,
            "max_train_clips": self.max_train_clips,
            "train_batch_size": self.train_batch_size,
            "latent_channels": self.latent_channels,
            "width": self.width,
            "input_pool": self.input_pool,
            "learning_rate": self.learning_rate,
            "random_state": self.random_state,
        }

    def model_info(self) -> dict[str, Any]:
        info = {"name": "denoising conv autoencoder", "checkpoint": CHECKPOINT}
        info.update(getattr(self, "train_info_", {}))
        return info

    def check_available(self) -> None:
        try:
            import torch  # noqa: F401
        except ImportError:
            raise MissingDependencyError("the saec extractor needs torch: pip install torch") from None

    def prepare(
        self,
        collection: Collection,
        *,
        out_dir: Path,
        fit: bool,
        progress: Progress,
        should_cancel: CancelCheck | None = None,
    ) -> None:
        import torch

        S = collection.spectrograms()
        self.shape_ = _padded((S.shape[1] // self.input_pool, S.shape[2] // self.input_pool))
        torch.manual_seed(self.random_state)  # the initial weights are part of the seeded result
        self.model_ = build_autoencoder(latent_channels=self.latent_channels, width=self.width).to(self.device)
        path = collection.features_model_path(out_dir.name)
        stored = torch.load(path, map_location=self.device, weights_only=False) if path.is_file() else None
        if stored is not None and stored.get("signature") == self.signature() and stored.get("shape") == self.shape_:
            self.model_.load_state_dict(stored["state_dict"])
            self.train_info_ = stored.get("train_info", {})
        elif not fit:
            raise CollectionError(
                f"{path} is missing or was made with other parameters, so new clips cannot be encoded like the "
                f"stored ones; delete {out_dir} and run again to retrain on every clip"
            )
        else:
            self.train_info_ = self._train(S, progress=progress, should_cancel=should_cancel)
            with atomic_path(path) as tmp:
                state = {k: v.cpu() for k, v in self.model_.state_dict().items()}
                torch.save(
                    {
                        "signature": self.signature(),
                        "shape": self.shape_,
                        "params": self.params(),
                        "state_dict": state,
                        "train_info": self.train_info_,
                    },
                    tmp,
                )
        self.model_.eval()
        self.dim_ = 2 * self.latent_channels * (self.shape_[0] // 16)

    def _train(self, S: np.ndarray, *, progress: Progress, should_cancel: CancelCheck | None) -> dict[str, Any]:
        import torch

        torch.manual_seed(self.random_state)
        rng = np.random.default_rng(self.random_state)
        n = len(S)
        subset = np.sort(rng.choice(n, size=min(n, self.max_train_clips), replace=False))
        data = np.asarray(S[subset])  # uint8, small enough to hold
        cuda = self.device == "cuda"
        gen = torch.Generator(device=self.device).manual_seed(self.random_state)
        opt = torch.optim.AdamW(self.model_.parameters(), lr=self.learning_rate, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.learning_rate, total_steps=max(1, self.max_steps))
        scaler = torch.amp.GradScaler("cuda", enabled=cuda)
        batch = min(self.train_batch_size, len(data))
        self.model_.train()
        t0 = time.perf_counter()
        losses = []
        order = rng.permutation(len(data))
        pos = 0
        for step in range(self.max_steps):
            check_cancel(should_cancel)
            if pos + batch > len(order):
                order, pos = rng.permutation(len(data)), 0
            idx = np.sort(order[pos : pos + batch])
            pos += batch
            x = _to_tensor(data[idx], self.shape_, self.device, pool=self.input_pool)
            with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=cuda):
                loss = torch.nn.functional.mse_loss(self.model_(_corrupt(x, gen)).float(), x)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            sched.step()
            losses.append(float(loss.detach()) if step % 10 == 0 or step == self.max_steps - 1 else np.nan)
            if step % 10 == 0 or step == self.max_steps - 1:
                progress("features:saec:train", step + 1, self.max_steps, f"loss {losses[-1]:.4f}")
        elapsed = time.perf_counter() - t0
        return {
            "train_clips": int(len(data)),
            "train_steps": self.max_steps,
            "train_time_s": round(elapsed, 2),
            "train_images_per_s": round(self.max_steps * batch / max(elapsed, 1e-9), 1),
            "final_loss": float(losses[-1]) if losses else None,
        }

    @property
    def encode_batch_size(self) -> int:
        return int(self.batch_size or DEFAULTS["cuda" if self.device == "cuda" else "cpu"][3])

    def transform(
        self, collection: Collection, clip_ids: np.ndarray, *, should_cancel: CancelCheck | None = None
    ) -> dict[str, np.ndarray]:
        S = collection.spectrograms()[int(clip_ids[0]) : int(clip_ids[-1]) + 1]
        return {"features": self.encode(np.asarray(S), should_cancel=should_cancel)}

    def encode(self, S: np.ndarray, *, should_cancel: CancelCheck | None = None) -> np.ndarray:
        """uint8 spectrograms [n, n_mels, n_frames] -> float32 [n, dim_] embeddings."""
        return encode_spectrograms(
            self.model_,
            S,
            shape=self.shape_,
            pool=self.input_pool,
            device=self.device,
            batch=self.encode_batch_size,
            should_cancel=should_cancel,
        )


def encode_spectrograms(
    model: Any,
    S: np.ndarray,
    *,
    shape: tuple[int, int],
    pool: int,
    device: str = "cpu",
    batch: int = 256,
    should_cancel: CancelCheck | None = None,
) -> np.ndarray:
    """uint8 spectrograms [n, n_mels, n_frames] -> float32 [n, 2·C·F'] pooled latents of ``model`` (eval mode
    expected; input average-pooled by ``pool`` and padded to ``shape``). CUDA runs in float16 autocast."""
    import torch

    out = []
    cuda = device == "cuda"
    with torch.inference_mode(), torch.autocast(device_type="cuda", dtype=torch.float16, enabled=cuda):
        for i in range(0, len(S), batch):
            check_cancel(should_cancel)
            z = model.encode(_to_tensor(np.asarray(S[i : i + batch]), shape, device, pool=pool))
            out.append(pool_latent(z).cpu().numpy())
    if not out:
        return np.zeros((0, 0), np.float32)
    return np.concatenate(out).astype(np.float32)


def load_checkpoint(path: Path, *, device: str = "cpu") -> tuple[Any, dict[str, Any]]:
    """``(autoencoder on device, checkpoint dict)`` from a saec ``model.pt`` (``signature, shape, params,
    state_dict, train_info``; a refined one adds ``base_signature`` and ``refine``)."""
    import torch

    if not Path(path).is_file():
        raise CollectionError(f"no saec checkpoint at {path}; compute the saec features first")
    ckpt = torch.load(path, map_location=device, weights_only=False)
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "shape" not in ckpt:
        raise CollectionError(f"{path} is not a saec checkpoint (no state_dict/shape); compute the saec features again")
    params = ckpt.get("params", {})
    model = build_autoencoder(
        latent_channels=int(params.get("latent_channels", 16)), width=int(params.get("width", 16))
    )
    model.load_state_dict(ckpt["state_dict"])
    ckpt["shape"] = tuple(int(s) for s in ckpt["shape"])
    return model.to(device), ckpt
