"""Temperature scaling and expected calibration error (ECE) of the mask classifier's probabilities.

The app reads the classifier's probabilities, not only its arg-max: the track vote averages them,
alerts and the review loop compare them with thresholds. A model trained with label smoothing and
class weights, then quantised, is not calibrated by construction, so ``maskwatch-train export``
fits one temperature ``T`` on the validation split (Guo et al. 2017, "On Calibration of Modern
Neural Networks"): ``softmax(z / T)``, ``T`` minimising the negative log-likelihood of the
validation labels. One scalar cannot change the arg-max, so accuracy and F1 stay as they are.

**Probabilities as logits.** The int8 TFLite model ends in its softmax and outputs uint8
probabilities; the logits are gone. But ``log softmax(z) = z - logsumexp(z)``: the log-probabilities
*are* the logits up to one constant per row, and the softmax cancels that constant, so
``softmax(log p / T) == softmax(z / T)`` exactly. The only loss is the quantisation: a 0 output is
floored at :data:`maskwatch.classification.PROB_FLOOR` (half the uint8 step) before the log, here
when fitting and in the app when applying (:func:`maskwatch.classification.apply_temperature`).
Where many outputs sit under the floor the log-probabilities span less than the logits did, and the
fitted ``T`` is that of the floored outputs (smaller than the float model's): it is the right ``T``
for what the int8 model can express, which is what the app applies it to.

**ECE** (Naeini et al. 2015; Guo et al. 2017): the top probability (confidence) of each sample is
put in one of 15 equal-width bins ``((m-1)/15, m/15]``; ECE = sum over bins of
``(n_bin / n) * |accuracy_bin - mean confidence_bin|``. 0 is perfectly calibrated.

Example::

    from train.calibration import fit_temperature, expected_calibration_error, calibrate
    T = fit_temperature(val_probs, val_y)                 # probabilities (N, 3), labels (N,)
    test_cal = calibrate(test_probs, T)
    expected_calibration_error(test_probs, test_y), expected_calibration_error(test_cal, test_y)
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from maskwatch.classification import PROB_FLOOR, apply_temperature

ECE_BINS = 15
"""Equal-width confidence bins of the ECE (the usual 15)."""
T_BOUNDS = (0.05, 20.0)
"""Search interval of the temperature (the search runs on log T)."""


def logits_from_probs(probs: np.ndarray) -> np.ndarray:
    """``log p`` (floored at :data:`PROB_FLOOR`): the logits up to a per-row constant, see the module doc.

    >>> z = np.array([[2.0, 0.0, -1.0]])
    >>> p = np.exp(z) / np.exp(z).sum()
    >>> bool(np.allclose(softmax(logits_from_probs(p) / 3.0), softmax(z / 3.0)))
    True
    """
    return np.log(np.clip(np.asarray(probs, np.float64), PROB_FLOOR, 1.0))


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax (stable)."""
    z = np.asarray(z, np.float64)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def nll(logits: np.ndarray, y: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of labels ``y`` under ``softmax(logits / temperature)``."""
    z = np.asarray(logits, np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(z).sum(axis=1))
    y = np.asarray(y, np.int64)
    return float(np.mean(log_norm - z[np.arange(len(y)), y])) if len(y) else 0.0


def fit_temperature_logits(logits: np.ndarray, y: np.ndarray, bounds: tuple[float, float] = T_BOUNDS) -> float:
    """The temperature ``T > 0`` minimising :func:`nll` of ``y`` (bounded search on ``log T``).

    Returns 1.0 when there is nothing to fit on (no samples).

    >>> rng = np.random.default_rng(0)
    >>> z = rng.normal(0, 2, (4000, 3)); y = np.array([rng.choice(3, p=q) for q in softmax(z)])
    >>> round(fit_temperature_logits(3 * z, y), 1)
    3.0
    """
    from scipy.optimize import minimize_scalar

    logits, y = np.asarray(logits, np.float64), np.asarray(y, np.int64)
    if len(y) == 0:
        return 1.0
    res = minimize_scalar(lambda log_t: nll(logits, y, math.exp(log_t)),
                          bounds=(math.log(bounds[0]), math.log(bounds[1])), method="bounded",
                          options={"xatol": 1e-5})
    return float(math.exp(res.x))


def fit_temperature(probs: np.ndarray, y: np.ndarray, bounds: tuple[float, float] = T_BOUNDS) -> float:
    """The temperature of probability outputs (softmax models, int8 TFLite): fitted on their log."""
    return fit_temperature_logits(logits_from_probs(probs), y, bounds)


def calibrate(probs: np.ndarray, temperature: float) -> np.ndarray:
    """``probs`` scaled by ``temperature`` exactly as the app does (:func:`apply_temperature`)."""
    return apply_temperature(np.asarray(probs, np.float32), temperature)


def reliability_bins(probs: np.ndarray, y: np.ndarray, n_bins: int = ECE_BINS) -> list[dict]:
    """Per confidence bin ``(lo, hi]``: number of samples, mean confidence and accuracy (None if empty).

    >>> [b["n"] for b in reliability_bins(np.array([[0.5, 0.5, 0.0], [0.95, 0.05, 0.0]]), np.array([0, 1]), 2)]
    [1, 1]
    """
    probs, y = np.asarray(probs, np.float64), np.asarray(y, np.int64)
    conf, pred = probs.max(axis=1), probs.argmax(axis=1)
    idx = np.clip(np.ceil(conf * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    out = []
    for m in range(n_bins):
        sel = idx == m
        n = int(sel.sum())
        out.append({"lo": m / n_bins, "hi": (m + 1) / n_bins, "n": n,
                    "confidence": float(conf[sel].mean()) if n else None,
                    "accuracy": float((pred[sel] == y[sel]).mean()) if n else None})
    return out


def expected_calibration_error(probs: np.ndarray, y: np.ndarray, n_bins: int = ECE_BINS) -> float:
    """ECE with ``n_bins`` equal-width bins of the top probability (see the module doc); 0.0 for no samples.

    >>> expected_calibration_error(np.array([[0.9, 0.1, 0.0]] * 10), np.array([0] * 9 + [1]))
    0.0
    >>> round(expected_calibration_error(np.array([[0.9, 0.1, 0.0]] * 10), np.array([0] * 5 + [1] * 5)), 3)
    0.4
    """
    n = len(y)
    if n == 0:
        return 0.0
    return float(sum(b["n"] / n * abs(b["accuracy"] - b["confidence"])
                     for b in reliability_bins(probs, y, n_bins) if b["n"]))


def calibration_summary(val_probs: np.ndarray, val_y: np.ndarray, test_probs: np.ndarray | None = None,
                        test_y: np.ndarray | None = None, digits: int = 4) -> dict:
    """Fit ``T`` on the validation probabilities; ECE (and NLL) before and after, on val and on test.

    JSON-ready: ``{"temperature", "fitted_on": {"n"}, "val": {"ece_before", "ece_after", "nll_before",
    "nll_after"}, "test": {...}}`` (``test`` only when given). ``temperature`` is 1.0 without val faces.
    """
    t = fit_temperature(val_probs, val_y) if len(val_y) else 1.0

    def figures(p, y):
        z = logits_from_probs(p)
        return {"n": int(len(y)),
                "ece_before": round(expected_calibration_error(p, y), digits),
                "ece_after": round(expected_calibration_error(calibrate(p, t), y), digits),
                "nll_before": round(nll(z, y, 1.0), digits), "nll_after": round(nll(z, y, t), digits)}

    out = {"temperature": round(t, digits), "bins": ECE_BINS, "val": figures(val_probs, val_y)}
    if test_probs is not None and test_y is not None:
        out["test"] = figures(test_probs, test_y)
    return out


def save_reliability_diagram(probs: np.ndarray, y: np.ndarray, path: str | Path, temperature: float | None = None,
                             title: str = "", n_bins: int = ECE_BINS) -> Path:
    """Reliability diagram PNG: accuracy against confidence per bin, before (and after ``temperature``).

    Bars are each bin's accuracy, the diagonal is perfect calibration, the gap is the miscalibration;
    the legend gives each curve's ECE. With ``temperature`` the calibrated probabilities are drawn too.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = [("raw", np.asarray(probs), "tab:red")]
    if temperature is not None and temperature != 1.0:
        curves.append((f"T = {temperature:.3g}", calibrate(probs, temperature), "tab:blue"))
    fig, ax = plt.subplots(figsize=(4.8, 4.6), dpi=120)
    ax.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=1, label="perfect")
    width = 1.0 / n_bins
    for k, (name, p, colour) in enumerate(curves):
        bins = [b for b in reliability_bins(p, y, n_bins) if b["n"]]
        offset = (k - (len(curves) - 1) / 2) * width / len(curves)
        ax.bar([(b["lo"] + b["hi"]) / 2 + offset for b in bins], [b["accuracy"] for b in bins],
               width=width / len(curves), color=colour, alpha=0.45, edgecolor=colour,
               label=f"{name}: ECE {expected_calibration_error(p, y, n_bins):.3f}")
        ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], "o-", color=colour, markersize=3,
                linewidth=1)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (top probability)")
    ax.set_ylabel("accuracy")
    ax.set_title(title or f"reliability ({len(y)} faces, {n_bins} bins)", fontsize=9)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
