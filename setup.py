"""What ``pyproject.toml`` cannot say: the top-level ``models/`` and ``assets/`` folders of the
repository ship inside the package, as ``maskwatch/models`` and ``maskwatch/assets`` of the wheel
(and in the sdist), so an installed ``maskwatch`` runs without a clone next to it.

The folders stay where they are in the repository (package-dir mapping, nothing is copied into the
source tree); :mod:`maskwatch.paths` finds them inside the installed package first, then at the
top of a clone (``pip install -e .``). Everything else is in ``pyproject.toml``.
"""

from setuptools import find_namespace_packages, setup

DATA_PACKAGES = {"maskwatch.models": "models", "maskwatch.assets": "assets"}

setup(
    packages=find_namespace_packages(include=["maskwatch", "maskwatch.*", "train", "train.*"]) + list(DATA_PACKAGES),
    package_dir=DATA_PACKAGES,
    package_data={
        # the models the app and train/ load, their metadata, licences and cards
        "maskwatch.models": ["*.tflite", "*.onnx", "*.json", "*.keras", "*.npz", "*.md", "LICENSE*"],
        # the demo clip, the window's icons, the desktop entry, app icons and the systemd unit
        "maskwatch.assets": ["*.mp4", "*.md", "*.desktop", "*.service", "icons/*.svg", "icons/hicolor/*/apps/*"],
        # the label corrections maskwatch-train prepare applies by default (train.data.corrections)
        "train": ["label_corrections.csv"],
    },
)
