"""IDNN in plain torch: a torchvision-format state dict (random weights written here) loads and runs."""

from __future__ import annotations

import numpy as np
import pytest

from preprocess.collection import Collection
from preprocess.errors import MissingDependencyError, ParameterError
from preprocess.features import run_extractor
from preprocess.features.idnn import BACKBONES, build_backbone, load_backbone

torch = pytest.importorskip("torch")


def _write_weights(path, backbone: str, *, seed: int = 0, extra: dict | None = None, drop: str | None = None):
    """A random state dict with torchvision's names (plus the head keys torchvision files carry)."""
    torch.manual_seed(seed)
    model = build_backbone(backbone)
    for m in model.modules():  # non-trivial BN statistics, so a wrong mapping would show
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    state = dict(model.state_dict())
    state["fc.weight"] = torch.zeros(1000, 512)  # keys of layers after the one used are ignored
    state.update(extra or {})
    if drop:
        del state[drop]
    torch.save(state, path)
    return path


def test_resnet18_keys_match_torchvision_names():
    names = set(build_backbone("resnet18").state_dict())
    for key in ("conv1.weight", "bn1.running_var", "layer2.0.downsample.0.weight", "layer3.1.bn2.bias"):
        assert key in names
    assert not any(k.startswith(("layer4", "fc")) for k in names)
    r50 = set(build_backbone("resnet50").state_dict())
    assert "layer3.5.conv3.weight" in r50 and "layer1.0.downsample.1.running_mean" in r50
    assert build_backbone("resnet50").state_dict()["layer3.0.conv2.weight"].shape == (256, 256, 3, 3)


@pytest.mark.parametrize("backbone", ["resnet18", "resnet50"])
def test_layer_output_shape(backbone, tmp_path):
    model = load_backbone(backbone, _write_weights(tmp_path / "w.pth", backbone))
    with torch.inference_mode():
        out = model(torch.randn(2, 3, 224, 288))
    assert out.shape == (2, BACKBONES[backbone][2], 14, 18)


def test_features_on_real_clips_deterministic_and_distinct(demo_collection_path, copy_collection, tmp_path):
    torch.set_num_threads(1)
    weights = _write_weights(tmp_path / "resnet18-random.pth", "resnet18")
    root = copy_collection(demo_collection_path)
    params = {"weights_path": str(weights), "image_height_px": 64}
    out = run_extractor(Collection.open(root), "idnn", device="cpu", params=params)
    coll = Collection.open(root)
    X = np.load(out / "features.npy")
    assert X.shape == (coll.n_clips(), 256 * 4 * 2) and X.dtype == np.float32 and np.isfinite(X).all()
    # different clips give different features (no constant output from a broken mapping)
    assert np.linalg.norm(X - X.mean(0), axis=1).min() > 0
    assert len(np.unique(X.round(4), axis=0)) == len(X)
    # the same weights give the same numbers; other weights give other numbers
    from preprocess.features.idnn import IdnnExtractor

    ex = IdnnExtractor(weights_path=str(weights), image_height_px=64)
    ex.check_available()
    ex.prepare(coll, out_dir=tmp_path, fit=False, progress=None)
    ids = np.arange(min(8, len(X)))
    np.testing.assert_allclose(ex.transform(coll, ids)["features"], X[ids], rtol=1e-4, atol=1e-5)
    other = IdnnExtractor(weights_path=str(_write_weights(tmp_path / "o.pth", "resnet18", seed=1)), image_height_px=64)
    other.check_available()
    other.prepare(coll, out_dir=tmp_path, fit=False, progress=None)
    assert not np.allclose(other.transform(coll, ids)["features"], X[ids], atol=1e-3)


def test_wrong_files_get_clear_errors(tmp_path):
    with pytest.raises(ParameterError, match="could not be read"):
        (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
        load_backbone("resnet18", tmp_path / "junk.pth")
    with pytest.raises(ParameterError, match="missing, e.g. layer3.1.conv2.weight"):
        load_backbone("resnet18", _write_weights(tmp_path / "m.pth", "resnet18", drop="layer3.1.conv2.weight"))
    # a resnet50 file passed for resnet18: keys exist but shapes differ
    with pytest.raises(ParameterError, match="shape"):
        load_backbone("resnet18", _write_weights(tmp_path / "r50.pth", "resnet50"))
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(ParameterError, match="not a state dict"):
        load_backbone("resnet18", tmp_path / "list.pth")


def test_missing_weights_name_where_they_come_from(demo_collection_path, copy_collection, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    root = copy_collection(demo_collection_path)
    with pytest.raises(MissingDependencyError, match="resnet18-f37072fd.pth"):
        run_extractor(Collection.open(root), "idnn", device="cpu")
    with pytest.raises(MissingDependencyError, match="does not exist"):
        run_extractor(Collection.open(root), "idnn", device="cpu", params={"weights_path": str(tmp_path / "nope.pth")})
    assert not (root / "features" / "idnn" / "features.npy").exists()
    from preprocess.cli import main

    assert main(["features", str(root), "--extractor", "idnn", "--weights", str(tmp_path / "nope.pth")]) == 2
