"""maskwatch: real-time face-mask compliance monitor.

Frames flow one way through small stages (source -> detector -> classifier -> tracker -> counter)
and every consumer (GUI, headless logger, benchmark, evaluation) reads the same ``FrameResult``.
"""

__version__ = "0.1.0"

LABELS: tuple[str, str, str] = ("with_mask", "without_mask", "mask_worn_incorrectly")
"""Class names, in the order of the classifier's output."""
