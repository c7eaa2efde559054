"""Backbones + classification head. Every model takes raw RGB 0..255 floats and normalises inside.

The backbone is always a nested sub-model named ``"backbone"`` (Grad-CAM and fine-tuning find it by
name); the head is global average pooling, dropout and a softmax ``Dense`` in ``maskwatch.LABELS`` order.

>>> from train.models import build_model
>>> m = build_model("lowres_cnn", 32, weights="none")
>>> m.output_shape
(None, 3)
"""

from __future__ import annotations

from pathlib import Path

from maskwatch.errors import MaskwatchError
# The Lite0 architecture lives in train.lite0 (train.lite0_weights builds it too, so neither of these
# two modules imports the other); its names stay importable from here.
from train.lite0 import (BN_EPSILON, BN_MOMENTUM, LITE0_DEFAULT_BLOCKS, LITE0_NUM_BLOCKS,  # noqa: F401
                         LITE0_STAGES, efficientnet_lite0, lite0_normalization)
from train.lite0_weights import imagenet_weights_path

BACKBONES = ("efficientnet_lite0", "mobilenet_v2", "efficientnet_b0", "resnet50", "lowres_cnn")


def normalization_layer(backbone: str):
    """The layer that maps raw RGB 0..255 to what ``backbone`` was pretrained on."""
    import keras

    if backbone == "efficientnet_lite0":
        return lite0_normalization("normalize")
    if backbone == "mobilenet_v2":
        return keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="normalize")
    if backbone == "efficientnet_b0":  # Keras' EfficientNetB0 rescales and normalises itself
        return keras.layers.Identity(name="normalize")
    if backbone == "resnet50":  # caffe style: BGR, ImageNet mean subtracted, no scaling
        return keras.layers.Lambda(
            lambda x: keras.ops.flip(x, axis=-1) - keras.ops.convert_to_tensor([103.939, 116.779, 123.68]),
            name="normalize",
        )
    if backbone == "lowres_cnn":
        return keras.layers.Rescaling(1.0 / 255.0, name="normalize")
    raise MaskwatchError(f"unknown backbone {backbone!r}; choose one of {', '.join(BACKBONES)}")


def lowres_cnn(input_size: int = 64):
    """The small CNN for low-resolution faces: 3 conv blocks (the 3 dense layers are in the head)."""
    import keras
    from keras import layers

    inputs = keras.Input((input_size, input_size, 3))
    x = inputs
    for i, filters in enumerate((32, 64, 128)):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{i}a")(x)
        x = layers.BatchNormalization(name=f"bn{i}a")(x)
        x = layers.ReLU(name=f"relu{i}a")(x)
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{i}b")(x)
        x = layers.BatchNormalization(name=f"bn{i}b")(x)
        x = layers.ReLU(name=f"relu{i}b")(x)
        x = layers.MaxPooling2D(2, name=f"pool{i}")(x)
    return keras.Model(inputs, x, name="backbone")


def _check_weights_file(weights: str) -> Path:
    path = Path(weights).expanduser()
    if not path.is_file():
        raise MaskwatchError(f"weights file not found: {path}")
    return path


def build_backbone(backbone: str, input_size: int, weights: str = "imagenet", alpha: float = 1.0,
                   lite0_blocks: int | None = LITE0_DEFAULT_BLOCKS):
    """The backbone sub-model (named ``"backbone"``) with ``weights``: ``imagenet``, ``none`` or a file."""
    import keras

    weights = str(weights)
    if weights not in ("imagenet", "none"):
        weights_file = _check_weights_file(weights)
    shape = (input_size, input_size, 3)
    if backbone == "efficientnet_lite0":
        model = efficientnet_lite0(input_size, lite0_blocks)
        if weights == "imagenet":
            _load_lite0(model, imagenet_weights_path())
        elif weights != "none":
            _load_lite0(model, weights_file)
        return model
    if backbone == "lowres_cnn":
        model = lowres_cnn(input_size)
        if weights == "imagenet":
            raise MaskwatchError("lowres_cnn has no ImageNet weights: use --weights none or a .weights.h5 file")
        if weights != "none":
            _load_weights(model, weights_file)
        return model
    apps = {
        "mobilenet_v2": lambda w: keras.applications.MobileNetV2(input_shape=shape, alpha=alpha, include_top=False, weights=w),
        "efficientnet_b0": lambda w: keras.applications.EfficientNetB0(input_shape=shape, include_top=False, weights=w),
        "resnet50": lambda w: keras.applications.ResNet50(input_shape=shape, include_top=False, weights=w),
    }
    if backbone not in apps:
        raise MaskwatchError(f"unknown backbone {backbone!r}; choose one of {', '.join(BACKBONES)}")
    try:
        app = apps[backbone]("imagenet" if weights == "imagenet" else None)
    except ValueError as e:
        raise MaskwatchError(f"cannot build {backbone}: {str(e).splitlines()[0]}") from None
    except Exception as e:  # download failures surface as URLError/OSError/Exception from keras
        if weights == "imagenet":
            raise MaskwatchError(
                f"cannot download ImageNet weights for {backbone} ({type(e).__name__}); "
                "offline, use --backbone efficientnet_lite0 (its ImageNet weights ship in models/) or --weights none"
            ) from None
        raise
    if weights not in ("imagenet", "none"):
        _load_weights(app, weights_file)
    return keras.Model(app.input, app.output, name="backbone")


def _load_weights(model, path: Path) -> None:
    try:
        model.load_weights(str(path))
    except Exception as e:
        raise MaskwatchError(f"cannot load weights {path} into {model.name}: {str(e).splitlines()[0][:200]}") from None


def _load_lite0(model, path: Path) -> None:
    """Load full-Lite0 weights into a possibly truncated Lite0 (by layer name)."""
    full = efficientnet_lite0(model.input_shape[1], blocks=None)
    _load_weights(full, path)
    names = {layer.name for layer in full.layers}
    for layer in model.layers:
        if layer.weights and layer.name in names:
            layer.set_weights(full.get_layer(layer.name).get_weights())


def build_model(backbone: str = "efficientnet_lite0", input_size: int = 64, num_classes: int = 3,
                weights: str = "imagenet", alpha: float = 1.0, dropout: float = 0.2,
                lite0_blocks: int | None = LITE0_DEFAULT_BLOCKS):
    """The full classifier: raw RGB 0..255 -> normalise -> backbone -> head -> softmax(num_classes)."""
    import keras
    from keras import layers

    if input_size < 16:
        raise MaskwatchError(f"input size {input_size} is too small (>= 16)")
    norm = normalization_layer(backbone)
    base = build_backbone(backbone, input_size, weights, alpha, lite0_blocks)
    inputs = keras.Input((input_size, input_size, 3), name="image")
    x = norm(inputs)
    x = base(x)
    if backbone == "lowres_cnn":  # 3 dense layers
        x = layers.Flatten(name="flatten")(x)
        x = layers.Dense(256, activation="relu", name="fc1")(x)
        x = layers.Dropout(dropout, name="dropout1")(x)
        x = layers.Dense(64, activation="relu", name="fc2")(x)
        x = layers.Dropout(dropout, name="dropout")(x)
    else:
        x = layers.GlobalAveragePooling2D(name="pool")(x)
        x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs, name=f"maskwatch_{backbone}")


def backbone_of(model):
    """The nested ``"backbone"`` sub-model."""
    return model.get_layer("backbone")


def set_backbone_trainable(model, top_fraction: float) -> int:
    """Freeze the backbone, then unfreeze its top ``top_fraction`` of layers, BatchNorm kept frozen.

    For EfficientNet-Lite0 the cut falls on a block boundary. Returns the number of trainable layers.
    """
    import keras

    base = backbone_of(model)
    layers_ = base.layers
    base.trainable = True
    n = len(layers_)
    start = n - int(round(n * top_fraction))
    if top_fraction > 0 and any(layer.name.startswith("block") for layer in layers_):
        # move the cut back to the start of the block it falls in
        name = layers_[min(start, n - 1)].name
        if name.startswith("block"):
            prefix = name.split("_")[0] + "_"
            start = min(i for i, layer in enumerate(layers_) if layer.name.startswith(prefix))
    count = 0
    for i, layer in enumerate(layers_):
        trainable = top_fraction > 0 and i >= start and not isinstance(layer, keras.layers.BatchNormalization)
        layer.trainable = trainable
        count += bool(trainable and layer.weights)
    return count
