"""train.explain: Grad-CAM through a nested backbone (shape, range, localisation) and the PNG grid CLI."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytestmark = pytest.mark.train


def colour_model():
    """A nested model with known weights: backbone = 1x1 conv giving [red, blue] maps; class 0 scores
    red, class 1 scores blue, class 2 nothing. Grad-CAM must light up the red / blue regions."""
    import keras
    from keras import layers

    inner_in = keras.Input((32, 32, 3))
    feat = layers.Conv2D(2, 1, use_bias=False, name="colour_conv")(inner_in)
    backbone = keras.Model(inner_in, feat, name="backbone")
    inp = keras.Input((32, 32, 3), name="image")
    x = layers.Rescaling(1 / 255.0, name="normalize")(inp)
    x = backbone(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    out = layers.Dense(3, activation="softmax", name="probs")(x)
    model = keras.Model(inp, out)
    backbone.get_layer("colour_conv").set_weights([np.array([[[[1, 0], [0, 0], [0, 1]]]], np.float32)])
    model.get_layer("probs").set_weights([np.array([[4, 0, 0], [0, 4, 0]], np.float32), np.zeros(3, np.float32)])
    return model


def test_grad_cam_localises_through_nested_backbone():
    from train.explain import grad_cam, grad_cam_with_probs

    img = np.zeros((1, 32, 32, 3), np.float32)
    img[0, :12, :12, 0] = 255      # red square top-left
    img[0, 20:, 20:, 2] = 255      # blue square bottom-right
    model = colour_model()
    red = grad_cam(model, img, class_index=0)[0]
    blue = grad_cam(model, img, class_index=1)[0]
    assert red.shape == blue.shape == (32, 32)
    assert red[:10, :10].mean() > 0.9 and red[22:, 22:].max() < 0.1
    assert blue[22:, 22:].mean() > 0.9 and blue[:10, :10].max() < 0.1
    heat, probs = grad_cam_with_probs(model, img)       # default: the predicted class
    np.testing.assert_allclose(probs, model.predict(img, verbose=0), atol=1e-5)
    assert heat.shape == (1, 32, 32)


@pytest.mark.parametrize("backbone", ["lowres_cnn", "efficientnet_lite0", "mobilenet_v2"])
def test_grad_cam_on_build_model(backbone):
    from train.explain import find_feature_layer, grad_cam
    from train.models import build_model

    model = build_model(backbone, 32, weights="none")
    container, layer = find_feature_layer(model)
    assert container.name == "backbone" and min(layer.output.shape[1:3]) >= 2
    x = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3)).astype(np.uint8)
    heat = grad_cam(model, x)
    assert heat.shape == (3, 32, 32) and heat.dtype == np.float32
    assert np.isfinite(heat).all() and heat.min() >= 0.0 and heat.max() <= 1.0
    assert heat.max() > 0      # a real gradient reached the nested feature map
    per_class = grad_cam(model, x, class_index=[0, 1, 2])
    assert per_class.shape == (3, 32, 32)


def _folder(root, n=3):
    rng = np.random.default_rng(0)
    for lab in ("with_mask", "without_mask", "incorrect_mask", "unrelated"):
        d = root / lab
        d.mkdir(parents=True)
        for i in range(n):
            cv2.imwrite(str(d / f"{i}.png"), rng.integers(0, 256, (40, 40, 3)).astype(np.uint8))
    return root


def test_explain_cli_writes_grid(tmp_path, capsys):
    from train.cli import main
    from train.models import build_model

    model_path = tmp_path / "m.keras"
    build_model("lowres_cnn", 32, weights="none").save(model_path)
    data = _folder(tmp_path / "data")
    out = tmp_path / "grid.png"
    assert main(["explain", "--model", str(model_path), "--data", str(data), "--per-class", "2", "--out", str(out)]) == 0
    grid = cv2.imread(str(out))
    assert grid is not None and grid.shape[0] > 200 and grid.std() > 10     # 3 class rows, not blank
    one = tmp_path / "one.png"
    assert main(["explain", "--model", str(model_path), "--images", str(data / "with_mask" / "0.png"),
                 str(data / "without_mask"), "--class", "incorrect_mask", "--out", str(one)]) == 0
    assert cv2.imread(str(one)).std() > 10
    capsys.readouterr()


@pytest.mark.parametrize("case", ["tflite", "missing_image", "missing_model", "bad_class"])
def test_explain_bad_inputs(case, tmp_path, capsys):
    from train.cli import main

    img = tmp_path / "a.png"
    cv2.imwrite(str(img), np.zeros((32, 32, 3), np.uint8))
    model = {"tflite": tmp_path / "m.tflite", "missing_image": tmp_path / "m.keras",
             "missing_model": tmp_path / "absent.keras", "bad_class": tmp_path / "m.keras"}[case]
    if case == "tflite":
        model.write_bytes(b"x")
    if case in ("missing_image", "bad_class"):
        colour_model().save(model)
    if case == "missing_image":
        img = tmp_path / "absent.png"
    extra = ["--class", "hat"] if case == "bad_class" else []
    code = main(["explain", "--model", str(model), "--images", str(img), "--out", str(tmp_path / "g.png"), *extra])
    err = capsys.readouterr().err
    assert code == 2 and err.count("maskwatch-train: error:") == 1 and "Traceback" not in err
    assert {"tflite": ".keras", "missing_image": "not found", "missing_model": "not found",
            "bad_class": "unknown class"}[case] in err
