"""Augmentation presets keep shape/dtype, 'none' is the identity, low-res degradation really degrades."""

import numpy as np
import pytest

pytest.importorskip("cv2")

from maskwatch.errors import MaskwatchError  # noqa: E402
from train.augment import PRESETS, Augmenter, AugmentPreset  # noqa: E402


def _checker(size=64):
    yy, xx = np.mgrid[:size, :size]
    img = (((yy // 4 + xx // 4) % 2) * 255).astype(np.uint8)
    return np.repeat(img[:, :, None], 3, axis=2)


@pytest.mark.parametrize("preset", list(PRESETS))
def test_presets_keep_shape_and_dtype(preset):
    batch = np.stack([_checker()] * 5)
    out = Augmenter(preset, seed=1)(batch)
    assert out.shape == batch.shape and out.dtype == np.uint8


def test_none_is_identity_and_input_untouched():
    batch = np.stack([_checker()] * 2)
    before = batch.copy()
    assert np.array_equal(Augmenter("none")(batch), before)
    Augmenter("lowres", seed=0)(batch)
    assert np.array_equal(batch, before)


def test_lowres_degradation_removes_fine_detail():
    img = _checker()
    aug = Augmenter(AugmentPreset(lowres=1.0, lowres_px=(12, 12)), seed=0)
    out = aug.one(img)
    # 4-px checks cannot survive a 12-px round trip: contrast collapses towards grey
    assert out.astype(float).std() < 0.5 * img.astype(float).std()


def test_seeded_is_reproducible():
    batch = np.stack([_checker()] * 3)
    assert np.array_equal(Augmenter("lowres", seed=3)(batch), Augmenter("lowres", seed=3)(batch))


def test_unknown_preset():
    with pytest.raises(MaskwatchError, match="unknown augmentation preset"):
        Augmenter("wild")
