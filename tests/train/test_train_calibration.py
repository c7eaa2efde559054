"""train.calibration: temperature scaling recovers a known temperature, ECE measures what it should,
and the app applies the temperature exactly as it was fitted."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from maskwatch.classification import PROB_FLOOR, apply_temperature
from train.calibration import (calibrate, calibration_summary, expected_calibration_error, fit_temperature,
                               fit_temperature_logits, logits_from_probs, nll, reliability_bins,
                               save_reliability_diagram, softmax)


def sampled(n: int, scale: float = 1.0, seed: int = 0, spread: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
    """Logits ``z`` (N, 3) and labels drawn from ``softmax(z / scale)``: the calibrated model is ``z / scale``."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, spread, (n, 3)) + np.array([1.0, 0.0, -1.0]) * spread / 1.5
    p = softmax(z)
    y = (rng.random((n, 1)) > np.cumsum(p, axis=1)).sum(axis=1)
    return z * scale, y


@pytest.mark.parametrize("scale", [3.0, 0.5])
def test_fit_recovers_a_known_temperature_from_logits(scale):
    z, y = sampled(20000, scale)
    assert fit_temperature_logits(z, y) == pytest.approx(scale, rel=0.05)


def test_fit_recovers_a_known_temperature_from_probabilities():
    """Softmax outputs (no logits, as the int8 model gives): log p stands in for the logits."""
    z, y = sampled(20000, 2.0, seed=1, spread=0.5)
    probs = softmax(z)
    assert np.mean(probs < PROB_FLOOR) < 0.01, "the floor hardly binds here"
    assert fit_temperature(probs, y) == pytest.approx(2.0, rel=0.05)
    # softmax(log p / T) is softmax(z / T): the per-row constant cancels
    assert np.allclose(softmax(logits_from_probs(probs[:50]) / 2.0), softmax(z[:50] / 2.0), atol=1e-6)


def test_ece_near_zero_when_calibrated_large_when_overconfident_and_reduced_after():
    z, y = sampled(30000, spread=0.5)             # log p floored in under 2% of the entries
    calibrated = softmax(z)
    assert expected_calibration_error(calibrated, y) < 0.015
    over = softmax(3.0 * z)                      # same ranking, three times too sharp
    before = expected_calibration_error(over, y)
    assert before > 0.08
    val, test = slice(0, 15000), slice(15000, None)
    t = fit_temperature(over[val], y[val])
    assert t == pytest.approx(3.0, rel=0.1)
    after = expected_calibration_error(calibrate(over[test], t), y[test])
    assert after < 0.02 and after < before / 4
    assert nll(logits_from_probs(over[test]), y[test], t) < nll(logits_from_probs(over[test]), y[test], 1.0)
    assert np.array_equal(calibrate(over, t).argmax(1), over.argmax(1)), "a temperature never changes the class"


def test_ece_by_hand():
    probs = np.array([[0.95, 0.05, 0.0], [0.95, 0.0, 0.05], [0.55, 0.45, 0.0], [0.4, 0.35, 0.25]])
    y = np.array([0, 1, 0, 2])
    # bins (of 15): 0.95 -> bin 14 (2 faces, accuracy 0.5), 0.55 -> bin 8 (1, right), 0.4 -> bin 5 (1, wrong)
    expected = 2 / 4 * abs(0.5 - 0.95) + 1 / 4 * abs(1 - 0.55) + 1 / 4 * abs(0 - 0.4)
    assert expected_calibration_error(probs, y) == pytest.approx(expected)
    bins = reliability_bins(probs, y)
    assert [b["n"] for b in bins if b["n"]] == [1, 1, 2] and sum(b["n"] for b in bins) == 4
    assert bins[14]["accuracy"] == 0.5 and bins[0]["confidence"] is None
    assert expected_calibration_error(np.zeros((0, 3)), np.zeros(0, np.int64)) == 0.0


def test_apply_temperature_is_the_fitted_transform():
    p = np.array([[0.996, 0.0, 0.004], [0.5, 0.25, 0.25]], np.float32)
    assert apply_temperature(p, 1.0) is p, "T = 1: the raw outputs, untouched"
    q = apply_temperature(p, 2.0)
    floored = np.clip(p.astype(np.float64), PROB_FLOOR, 1)
    expected = np.sqrt(floored) / np.sqrt(floored).sum(axis=1, keepdims=True)
    assert np.allclose(q, expected, atol=1e-6) and np.allclose(q.sum(1), 1, atol=1e-6)
    assert q[0, 1] > 0 and q[0, 0] < p[0, 0], "T > 1 flattens; a quantised 0 becomes the floor's share"


def test_summary_and_reliability_diagram(tmp_path):
    z, y = sampled(4000, seed=2, spread=0.5)
    over = softmax(2.5 * z)
    s = calibration_summary(over[:2000], y[:2000], over[2000:], y[2000:])
    assert s["temperature"] == pytest.approx(2.5, rel=0.1) and s["bins"] == 15
    for split in ("val", "test"):
        assert s[split]["n"] == 2000 and s[split]["ece_after"] < s[split]["ece_before"]
        assert s[split]["nll_after"] < s[split]["nll_before"]
    assert "test" not in calibration_summary(over[:10], y[:10])
    assert calibration_summary(over[:0], y[:0])["temperature"] == 1.0
    png = save_reliability_diagram(over, y, tmp_path / "sub" / "rel.png", temperature=s["temperature"])
    img = cv2.imread(str(png))
    assert img is not None and img.shape[0] > 300 and img.std() > 10
