"""IDNN: activations of an ImageNet-pretrained CNN on the spectrogram images.

The whole clip goes in (no centre crop that would drop its edges): the stored log-mel spectrogram,
high frequencies on top as in the tiles, scaled so its height is ``image_height_px``, repeated on
three channels with ImageNet normalisation. An inner layer's activation map [C, F', T'] is pooled
into ``n_bands`` frequency bands and then over time (mean and max), giving ``C·n_bands·2`` values.

The backbones (ResNet-18/50, VGG-16 up to the layer used) are built here in plain torch with
torchvision's parameter names, so a torchvision-format state dict (``resnet18-f37072fd.pth`` …)
loads without torchvision, which does not exist for every torch build. Nothing is downloaded: the
weights are read from ``weights_path`` or from torch's cache folder (``~/.cache/torch/hub/checkpoints``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..collection import Collection
from ..errors import MissingDependencyError, ParameterError
from ..progress import CancelCheck, Progress, check_cancel
from .base import FeatureExtractor

#: backbone -> (weights file torchvision publishes, layer used, channels of that layer)
BACKBONES = {
    "resnet18": ("resnet18-f37072fd.pth", "layer3", 256),
    "resnet50": ("resnet50-0676ba61.pth", "layer3", 1024),
    "vgg16": ("vgg16-397923af.pth", "features.22", 512),
}
WEIGHTS_URL = "https://download.pytorch.org/models/"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _import_torch() -> Any:
    try:
        import torch
    except ImportError:
        raise MissingDependencyError("the idnn extractor needs torch; install it with: pip install torch") from None
    return torch


def build_backbone(backbone: str) -> Any:
    """A torch module with torchvision's parameter names, ``forward(x [n,3,H,W]) -> [n, C, H', W']``
    ending at the layer of ``BACKBONES[backbone]`` (layers after it are not built)."""
    torch = _import_torch()
    nn = torch.nn

    class BasicBlock(nn.Module):
        expansion = 1

        def __init__(self, c_in: int, c: int, stride: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(c_in, c, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(c)
            self.conv2 = nn.Conv2d(c, c, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(c)
            self.relu = nn.ReLU(inplace=True)
            self.downsample = _downsample(c_in, c, stride)

        def forward(self, x: Any) -> Any:
            idt = x if self.downsample is None else self.downsample(x)
            out = self.relu(self.bn1(self.conv1(x)))
            return self.relu(self.bn2(self.conv2(out)) + idt)

    class Bottleneck(nn.Module):
        expansion = 4

        def __init__(self, c_in: int, c: int, stride: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(c_in, c, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(c)
            self.conv2 = nn.Conv2d(c, c, 3, stride, 1, bias=False)  # stride on the 3x3, as torchvision (v1.5)
            self.bn2 = nn.BatchNorm2d(c)
            self.conv3 = nn.Conv2d(c, c * 4, 1, bias=False)
            self.bn3 = nn.BatchNorm2d(c * 4)
            self.relu = nn.ReLU(inplace=True)
            self.downsample = _downsample(c_in, c * 4, stride)

        def forward(self, x: Any) -> Any:
            idt = x if self.downsample is None else self.downsample(x)
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.relu(self.bn2(self.conv2(out)))
            return self.relu(self.bn3(self.conv3(out)) + idt)

    def _downsample(c_in: int, c_out: int, stride: int) -> Any:
        if stride == 1 and c_in == c_out:
            return None
        return nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    class ResNetTrunk(nn.Module):
        def __init__(self, block: Any, layers: list[int]) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            c_in = 64
            for i, (c, n) in enumerate(zip((64, 128, 256), layers, strict=True)):
                blocks = []
                for j in range(n):
                    blocks.append(block(c_in, c, 2 if (j == 0 and i > 0) else 1))
                    c_in = c * block.expansion
                setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))

        def forward(self, x: Any) -> Any:
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            return self.layer3(self.layer2(self.layer1(x)))

    class VggTrunk(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512]
            layers: list[Any] = []
            c_in = 3
            for v in cfg:
                if v == "M":
                    layers.append(nn.MaxPool2d(2, 2))
                else:
                    layers += [nn.Conv2d(c_in, int(v), 3, padding=1), nn.ReLU(inplace=True)]
                    c_in = int(v)
            self.features = nn.Sequential(*layers)  # ends at features.22 (the ReLU after conv4_3)

        def forward(self, x: Any) -> Any:
            return self.features(x)

    if backbone == "resnet18":
        return ResNetTrunk(BasicBlock, [2, 2, 2])
    if backbone == "resnet50":
        return ResNetTrunk(Bottleneck, [3, 4, 6])
    if backbone == "vgg16":
        return VggTrunk()
    raise ParameterError(f"unknown idnn backbone {backbone!r}; allowed: {', '.join(BACKBONES)}")


def load_backbone(backbone: str, weights_file: str | Path) -> Any:
    """Build ``backbone`` and load a torchvision-format state dict from ``weights_file``; the keys of
    layers after the one used (``layer4``, ``fc``, ``classifier`` …) are ignored. Raises
    :class:`ParameterError` naming the file when it is not a state dict of this backbone."""
    torch = _import_torch()
    path = Path(weights_file)
    model = build_backbone(backbone)
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:
        raise ParameterError(
            f"idnn weights file {path} could not be read as a torch state dict ({type(e).__name__}: {e})"
        ) from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(hasattr(v, "shape") for v in state.values()):
        raise ParameterError(f"idnn weights file {path} is not a state dict (name -> tensor)")
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    if missing:
        raise ParameterError(
            f"idnn weights file {path} is not a torchvision {backbone} state dict: {len(missing)} parameter(s) "
            f"missing, e.g. {', '.join(missing[:3])}"
        )
    wrong = [
        f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}" for k, v in expected.items() if state[k].shape != v.shape
    ]
    if wrong:
        raise ParameterError(
            f"idnn weights file {path} does not fit {backbone}: {len(wrong)} shape(s) differ, e.g. {wrong[0]}"
        )
    model.load_state_dict({k: state[k] for k in expected}, strict=True)
    return model.eval()


class IdnnExtractor(FeatureExtractor):
    """ImageNet backbone activations pooled over frequency bands and time."""

    name = "idnn"
    version = "2"
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
        if int(n_bands) < 1 or int(image_height_px) < 32:
            raise ParameterError("idnn: n_bands must be >= 1 and image_height_px >= 32")
        self.backbone = backbone
        self.n_bands = int(n_bands)
        self.image_height_px = int(image_height_px)
        self.weights_path = weights_path
        self.dim_ = BACKBONES[backbone][2] * self.n_bands * 2

    def params(self) -> dict[str, Any]:
        return {"backbone": self.backbone, "layer": BACKBONES[self.backbone][1], "n_bands": self.n_bands}

    def model_info(self) -> dict[str, Any]:
        return {
            "name": f"{self.backbone} (torchvision-format weights)",
            "weights": str(getattr(self, "weights_file_", "")),
        }

    def check_available(self) -> None:
        torch = _import_torch()
        self.weights_file_ = self._find_weights(torch)

    def _find_weights(self, torch: Any) -> Path:
        if self.weights_path:
            path = Path(self.weights_path)
            if not path.is_file():
                raise MissingDependencyError(f"idnn weights file {path} does not exist")
            return path
        import torch.hub

        file_name = BACKBONES[self.backbone][0]
        path = Path(torch.hub.get_dir()) / "checkpoints" / file_name
        if not path.is_file():
            raise MissingDependencyError(
                f"the idnn extractor needs the ImageNet weights of {self.backbone} ({file_name}), which are not in "
                f"{path.parent}; sonomap never downloads: copy the file there (from {WEIGHTS_URL}{file_name}) "
                "or pass --weights PATH"
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
        if not hasattr(self, "weights_file_"):
            self.check_available()
        self.model_ = load_backbone(self.backbone, self.weights_file_).to(self.device)

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
            a = self.model_(x).float()  # [n, C, F', T']
            a = F.adaptive_avg_pool2d(a, (self.n_bands, a.shape[3]))  # bands x time
            pooled = torch.cat([a.mean(dim=3), a.amax(dim=3)], dim=2)  # [n, C, 2·bands]
        return pooled.flatten(1).cpu().numpy().astype(np.float32)
