"""EfficientNet-Lite0's architecture: the Keras model and the input normalisation it was trained with.

Its own module so that both :mod:`train.models` (builds classifiers) and :mod:`train.lite0_weights`
(converts the ImageNet weights into this architecture) depend on it, and not on each other: the
import graph is ``models -> lite0_weights -> lite0`` and ``models -> lite0``.

>>> from train.lite0 import LITE0_NUM_BLOCKS, LITE0_DEFAULT_BLOCKS
>>> LITE0_NUM_BLOCKS, LITE0_DEFAULT_BLOCKS
(16, 11)
"""

from __future__ import annotations

from maskwatch.errors import MaskwatchError

# EfficientNet-Lite0 stages: (repeats, kernel, first stride, expand ratio, out channels).
LITE0_STAGES = [
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
]
LITE0_NUM_BLOCKS = sum(s[0] for s in LITE0_STAGES)  # 16
LITE0_DEFAULT_BLOCKS = 11
"""Blocks kept by default: up to the 112-channel stage (stride 16). Keeps the int8 model < 1 MB and
fast on small faces; ``blocks=None`` / 16 keeps the whole network with its 1280-channel head."""

BN_EPSILON = 1e-3
BN_MOMENTUM = 0.99

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
"""The PyTorch Lite0 port was trained on ImageNet mean/std-normalised RGB (0..1 scale)."""


def lite0_normalization(name: str = "normalize"):
    """Raw RGB 0..255 -> ImageNet mean/std-normalised RGB, as the pretrained Lite0 expects."""
    import keras

    mean = [m * 255 for m in IMAGENET_MEAN]
    var = [(s * 255) ** 2 for s in IMAGENET_STD]
    return keras.layers.Normalization(mean=mean, variance=var, name=name)


def efficientnet_lite0(input_size: int = 224, blocks: int | None = LITE0_DEFAULT_BLOCKS):
    """EfficientNet-Lite0 as a Keras functional model (no squeeze-excite, ReLU6, fixed stem 32).

    ``blocks`` keeps the first N of the 16 MBConv blocks; ``None`` or 16 keeps all of them plus the
    1280-channel head conv. Layer names match :mod:`train.lite0_weights`.
    """
    import keras
    from keras import layers

    n_blocks = LITE0_NUM_BLOCKS if blocks is None else int(blocks)
    if not 1 <= n_blocks <= LITE0_NUM_BLOCKS:
        raise MaskwatchError(f"efficientnet_lite0 keeps 1..{LITE0_NUM_BLOCKS} blocks, got {blocks}")

    def bn(name):
        return layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=name)

    inputs = keras.Input((input_size, input_size, 3))
    x = layers.Conv2D(32, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(inputs)
    x = bn("stem_bn")(x)
    x = layers.ReLU(6.0, name="stem_relu")(x)
    channels, i = 32, 0
    for repeats, kernel, stride, expand, out_ch in LITE0_STAGES:
        for r in range(repeats):
            if i >= n_blocks:
                break
            k = f"block{i}_"
            shortcut = x
            h = x
            if expand != 1:
                h = layers.Conv2D(channels * expand, 1, use_bias=False, name=k + "expand_conv")(h)
                h = bn(k + "expand_bn")(h)
                h = layers.ReLU(6.0, name=k + "expand_relu")(h)
            s = stride if r == 0 else 1
            h = layers.DepthwiseConv2D(kernel, strides=s, padding="same", use_bias=False, name=k + "dwconv")(h)
            h = bn(k + "dw_bn")(h)
            h = layers.ReLU(6.0, name=k + "dw_relu")(h)
            h = layers.Conv2D(out_ch, 1, use_bias=False, name=k + "project_conv")(h)
            h = bn(k + "project_bn")(h)
            if s == 1 and channels == out_ch:
                h = layers.Add(name=k + "add")([h, shortcut])
            x, channels, i = h, out_ch, i + 1
    if n_blocks == LITE0_NUM_BLOCKS:
        x = layers.Conv2D(1280, 1, use_bias=False, name="head_conv")(x)
        x = bn("head_bn")(x)
        x = layers.ReLU(6.0, name="head_relu")(x)
    return keras.Model(inputs, x, name="backbone")
