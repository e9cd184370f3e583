"""IDNN: activations of an ImageNet-pretrained CNN on the spectrogram images.

The whole clip goes in (no centre crop that would drop its edges): the stored log-mel spectrogram,
high frequencies on top as in the tiles, scaled so its height is ``image_height_px``, repeated on
three channels with ImageNet normalisation. An inner layer's activation map [C, F', T'] is pooled
into ``n_bands`` frequency bands and then over time (mean and max), giving ``C·n_bands·2`` values.

torchvision is optional (it does not exist for the CPU torch build used here); so are the weights:
nothing is downloaded, they are used only when already in torch's cache folder
(``~/.cache/torch/hub/checkpoints``) or in ``weights_path``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..collection import Collection
from ..errors import MissingDependencyError, ParameterError
from ..progress import CancelCheck, Progress, check_cancel
from .base import FeatureExtractor

#: backbone -> (torchvision builder, weights enum name, layer, channels of that layer)
BACKBONES = {
    "resnet18": ("resnet18", "ResNet18_Weights", "layer3", 256),
    "resnet50": ("resnet50", "ResNet50_Weights", "layer3", 1024),
    "vgg16": ("vgg16", "VGG16_Weights", "features.22", 512),
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _import_torchvision() -> Any:
    try:
        import torchvision
    except Exception as e:  # ImportError, or a torchvision built for another torch
        raise MissingDependencyError(
            "the idnn extractor needs the optional package 'torchvision' (matching your torch build), "
            f"which could not be imported ({type(e).__name__}: {e}); install it with: pip install torchvision "
            "(or use --extractor birdnet, saec or acoustic)"
        ) from None
    return torchvision


class IdnnExtractor(FeatureExtractor):
    """ImageNet backbone activations pooled over frequency bands and time."""

    name = "idnn"
    version = "1"
    supports_cuda = True

    def __init__(
        self,
        *,
        device: str = "cpu",
        batch_size: int | None = None,
        backbone: str = "resnet18",
        n_bands: int = 4,
        image_height_px: int = 224,
        weights_path: str | None = None,
    ) -> None:
        super().__init__(device=device, batch_size=batch_size)
        if backbone not in BACKBONES:
            raise ParameterError(f"unknown idnn backbone {backbone!r}; allowed: {', '.join(BACKBONES)}")
        self.backbone = backbone
        self.n_bands = int(n_bands)
        self.image_height_px = int(image_height_px)
        self.weights_path = weights_path
        self.dim_ = BACKBONES[backbone][3] * self.n_bands * 2

    def params(self) -> dict[str, Any]:
        return {"backbone": self.backbone, "layer": BACKBONES[self.backbone][2], "n_bands": self.n_bands}

    def model_info(self) -> dict[str, Any]:
        return {"name": f"torchvision {self.backbone} (ImageNet)", "weights": str(getattr(self, "weights_file_", ""))}

    def check_available(self) -> None:
        torchvision = _import_torchvision()
        self.weights_file_ = self._find_weights(torchvision)

    def _find_weights(self, torchvision: Any) -> Path:
        if self.weights_path:
            path = Path(self.weights_path)
            if not path.is_file():
                raise MissingDependencyError(f"idnn weights file {path} does not exist")
            return path
        import torch.hub

        builder, enum_name, _, _ = BACKBONES[self.backbone]
        weights = getattr(torchvision.models, enum_name).IMAGENET1K_V1
        file_name = weights.url.rsplit("/", 1)[-1]
        path = Path(torch.hub.get_dir()) / "checkpoints" / file_name
        if not path.is_file():
            raise MissingDependencyError(
                f"the idnn extractor needs the ImageNet weights of {self.backbone} ({file_name}), which are not in "
                f"{path.parent}; sonomap never downloads: copy the file there (from {weights.url}) or pass weights_path"
            )
        return path

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
        from torchvision.models.feature_extraction import create_feature_extractor

        torchvision = _import_torchvision()
        builder, _, layer, _ = BACKBONES[self.backbone]
        model = getattr(torchvision.models, builder)(weights=None)
        model.load_state_dict(torch.load(self.weights_file_, map_location="cpu", weights_only=True))
        self.model_ = create_feature_extractor(model, return_nodes={layer: "out"}).eval().to(self.device)

    def transform(
        self, collection: Collection, clip_ids: np.ndarray, *, should_cancel: CancelCheck | None = None
    ) -> dict[str, np.ndarray]:
        S = collection.spectrograms()[int(clip_ids[0]) : int(clip_ids[-1]) + 1]
        batch = int(self.batch_size or (256 if self.device == "cuda" else 32))
        out = []
        for i in range(0, len(S), batch):
            check_cancel(should_cancel)
            out.append(self.embed(np.asarray(S[i : i + batch])))
        return {"features": np.concatenate(out)}

    def embed(self, S: np.ndarray) -> np.ndarray:
        """uint8 spectrograms [n, n_mels, n_frames] -> float32 [n, dim_]."""
        import torch
        import torch.nn.functional as F

        cuda = self.device == "cuda"
        with torch.inference_mode(), torch.autocast(device_type="cuda", dtype=torch.float16, enabled=cuda):
            x = torch.from_numpy(np.ascontiguousarray(S[:, ::-1, :])).to(self.device).float().div_(255.0)
            scale = self.image_height_px / S.shape[1]
            x = F.interpolate(x[:, None], scale_factor=scale, mode="bilinear", align_corners=False)
            mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
            std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
            x = (x.expand(-1, 3, -1, -1) - mean) / std
            a = self.model_(x)["out"].float()  # [n, C, F', T']
            a = F.adaptive_avg_pool2d(a, (self.n_bands, a.shape[3]))  # bands x time
            pooled = torch.cat([a.mean(dim=3), a.amax(dim=3)], dim=2)  # [n, C, 2·bands]
        return pooled.flatten(1).cpu().numpy().astype(np.float32)
