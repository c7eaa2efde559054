"""The detector registry: one table of modes read by FaceDetector, the config, the CLI and the GUI;
typed options that refuse bad values in one line; a new back-end is one class plus one register line."""

from __future__ import annotations

import os

os.environ["QT_QPA_PLATFORM"] = "offscreen"  # before any QApplication exists (the GUI mode-list test)

import dataclasses  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from dataclasses import dataclass  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from maskwatch import detection  # noqa: E402
from maskwatch.config import MODE_MIN_SCORE, Config, DetectorConfig  # noqa: E402
from maskwatch.detection import DetectorOptions, FaceDetector, option, registry, validate_mode_options  # noqa: E402
from maskwatch.detection.options import DenseOptions, RetinaOptions, TiledOptions  # noqa: E402
from maskwatch.errors import MaskwatchError  # noqa: E402
from maskwatch.faces import Faces  # noqa: E402
from maskwatch.gui.qt_env import prepare_qt_environment  # noqa: E402

prepare_qt_environment()  # as tests/gui/test_gui.py: before Qt is loaded

BUILT_IN = ("retina", "short", "full", "dense", "tiled")


def test_every_table_of_modes_is_the_registry():
    assert registry.modes() == detection.DETECTOR_MODES == BUILT_IN
    assert tuple(MODE_MIN_SCORE) == BUILT_IN
    assert dict(MODE_MIN_SCORE) == {"retina": 0.7, "short": 0.5, "full": 0.5, "dense": 0.6, "tiled": 0.6}
    assert detection.DEFAULT_MODE == "retina" == DetectorConfig().mode
    assert registry.mode_options()["retina"] == {"max_pixels": 960 * 540, "max_upscale": 3.0, "nms_iou": 0.4, "num_threads": None,
                                                 "calibrate": True, "weights": "float", "motion": None, "full_every": 5,
                                                 "region_scale": 1.0, "motion_width": 320}
    assert list(registry.mode_options()["tiled"]) == ["tile", "overlap", "max_tiles", "nms_iou", "num_threads", "whole", "min_eye_mouth"]
    for mode in BUILT_IN:
        opts = registry.get(mode).options
        assert opts.mode == mode and opts.help and "\n" not in opts.help
        assert all(text and "\n" not in text for text in opts.field_help().values()), mode


def test_cli_help_lists_each_mode_with_its_help():
    from maskwatch.cli import _main_parser

    text = " ".join(_main_parser().format_help().split())
    assert "retina (default): small faces in CCTV and crowds, min score 0.7" in text
    for mode in BUILT_IN:
        assert f"{mode}: {registry.get(mode).options.help}" in text or f"{mode} (default)" in text


LIGHT_CHECK = """
import sys
import maskwatch.config
from maskwatch.config import DetectorConfig, MODE_MIN_SCORE
from maskwatch.detection import DETECTOR_MODES, validate_mode_options
from maskwatch.cli import _main_parser
_main_parser()  # the --detector choices and help
assert DetectorConfig().with_mode("dense").min_score == 0.6 and len(MODE_MIN_SCORE) == len(DETECTOR_MODES)
validate_mode_options("dense", {"scales": [1, 2]})
heavy = sorted(m for m in ("cv2", "numpy", "onnxruntime", "mediapipe", "ai_edge_litert") if m in sys.modules)
print(heavy)
"""


def test_config_cli_and_option_checks_load_no_model_runtime():
    out = subprocess.run([sys.executable, "-c", LIGHT_CHECK], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("mode", "options", "fragment"),
    [
        ("retina", {"max_pixels": "x"}, "option max_pixels must be a number > 0, got 'x'"),
        ("retina", {"max_pixels": True}, "option max_pixels must be a number > 0, got True"),  # bool is not a number
        ("retina", {"max_pixels": float("inf")}, "option max_pixels must be a number > 0"),
        ("retina", {"max_upscale": 0}, "option max_upscale must be a number > 0, got 0"),
        ("retina", {"nms_iou": 2}, "option nms_iou must be a number in (0, 1], got 2"),
        ("retina", {"calibrate": 1}, "option calibrate must be true or false, got 1"),
        ("retina", {"num_threads": -1}, "option num_threads must be an integer >= 0 (or unset), got -1"),
        ("retina", {"num_threads": 1.5}, "option num_threads must be an integer"),
        ("dense", {"scales": []}, "option scales must be a number > 0 or a list of them, got []"),
        ("dense", {"scales": [1, -0.5]}, "option scales must be a number > 0 or a list of them"),
        ("dense", {"scales": "1,2"}, "option scales must be"),
        ("dense", {"min_eye_mouth": -0.1}, "option min_eye_mouth must be a number >= 0"),
        ("tiled", {"tile": 8}, "option tile must be an integer >= 16, got 8"),
        ("tiled", {"tile": 128.5}, "option tile must be an integer >= 16, got 128.5"),
        ("tiled", {"overlap": 1.0}, "option overlap must be a number in [0, 1), got 1.0"),
        ("tiled", {"max_tiles": 0}, "option max_tiles must be an integer >= 1, got 0"),
        ("tiled", {"whole": "half"}, "option whole must be one of 'dense', 'full', got 'half'"),
        ("short", {"tile": 96}, "face detector mode 'short' has no option tile (it takes nms_iou)"),
        ("full", {"nms_iou": None}, "option nms_iou must be a number in (0, 1], got None"),
    ],
)
def test_bad_option_values_are_one_line_errors_naming_the_option(mode, options, fragment):
    for check in (validate_mode_options, lambda m, o: FaceDetector(m, **o)):
        with pytest.raises(MaskwatchError) as e:
            check(mode, options)
        message = str(e.value)
        assert fragment in message and "\n" not in message
        assert message.startswith(f"face detector mode {mode!r}")


def test_good_options_are_normalised_and_only_the_given_ones_returned():
    assert validate_mode_options("dense", {"scales": 2}) == {"scales": (2.0,)}
    assert validate_mode_options("dense", {"scales": [1, 2.5], "confirm_px": 0}) == {"scales": (1.0, 2.5), "confirm_px": 0}
    assert validate_mode_options("retina", {"max_pixels": 942080, "num_threads": 0}) == {"max_pixels": 942080, "num_threads": 0}
    assert validate_mode_options("tiled", {}) == {}
    assert validate_mode_options("tiled", {"tile": np.int64(160), "overlap": np.float32(0.5)}) == {"tile": 160, "overlap": 0.5}  # numpy numbers are numbers
    with pytest.raises(MaskwatchError, match="unknown face detector mode 'huge'; choose one of retina, short"):
        validate_mode_options("huge", {})
    with pytest.raises(MaskwatchError, match="unknown face detector mode"):
        validate_mode_options(["retina"], {})  # a TOML list where a name belongs
    with pytest.raises(MaskwatchError, match="options must be a table"):
        validate_mode_options("retina", ["max_pixels"])


def test_options_are_typed_frozen_and_checked_when_made():
    opts = TiledOptions(tile=160)
    assert (opts.tile, opts.whole, opts.min_eye_mouth) == (160, "dense", 0.28)
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.tile = 8
    with pytest.raises(MaskwatchError, match="option max_pixels must be a number > 0, got -1"):
        RetinaOptions(max_pixels=-1)
    assert DenseOptions().scales == (1.0, 0.5) and DenseOptions.default_min_score == 0.6


# --- a new back-end: one class with the Detector protocol, one options class, one register line ----------------


@dataclass(frozen=True)
class FakeOptions(DetectorOptions):
    mode = "fake"
    title = "fake"
    help = "a test back-end: one box per `faces`"
    default_min_score = 0.42

    faces: int = option(1, "boxes to return", ge=0)


class FakeDetector:
    closed = 0

    def __init__(self, options: FakeOptions, min_score: float, model_dir):
        self.options, self.min_score, self.model_dir = options, min_score, model_dir

    def detect(self, bgr: np.ndarray) -> Faces:
        n = self.options.faces
        xyxy = np.array([[10 * i, 0, 10 * i + 8, 8] for i in range(n)], np.float32).reshape(n, 4)
        return Faces(xyxy=xyxy, score=np.full(n, self.min_score, np.float32))

    def close(self) -> None:
        FakeDetector.closed += 1


@pytest.fixture
def fake_mode():
    registry.register(FakeOptions, FakeDetector)
    try:
        yield "fake"
    finally:
        registry.unregister("fake")


def test_a_registered_back_end_is_built_through_the_config_path(fake_mode):
    assert isinstance(FakeDetector(FakeOptions(), 0.5, None), detection.Detector)  # the protocol, structurally
    assert fake_mode in detection.DETECTOR_MODES and MODE_MIN_SCORE[fake_mode] == 0.42
    assert registry.mode_options()[fake_mode] == {"faces": 1}

    config = Config().with_overrides({"detector": {"mode": "fake", "options": {"faces": 3}}})
    assert config.detector.min_score == 0.42  # the mode's own default
    closed = FakeDetector.closed
    with FaceDetector.from_config(config.detector) as det:
        assert isinstance(det._backend, FakeDetector) and det.options == {"faces": 3}
        faces = det.detect(np.zeros((20, 50), np.uint8))  # the facade converts grayscale for every back-end
        assert len(faces) == 3 and faces.score.tolist() == pytest.approx([0.42] * 3)
    assert FakeDetector.closed == closed + 1

    with pytest.raises(MaskwatchError, match="face detector mode 'fake' option faces must be an integer >= 0, got -1"):
        FaceDetector.from_config(Config().with_overrides({"detector": {"mode": "fake", "options": {"faces": -1}}}).detector)


def test_a_registered_back_end_shows_in_the_cli(fake_mode, tmp_path):
    from maskwatch.cli import _main_parser, build_config

    parser = _main_parser()
    assert "fake: a test back-end: one box per `faces`, min score 0.42" in " ".join(parser.format_help().split())
    config = build_config(parser.parse_args(["--headless", "--detector", "fake"]))
    assert (config.detector.mode, config.detector.min_score) == ("fake", 0.42)
    toml = tmp_path / "fake.toml"
    toml.write_text('[detector]\nmode = "fake"\n[detector.options]\nfaces = "two"\n')
    with pytest.raises(MaskwatchError, match="option faces must be an integer >= 0, got 'two'"):
        build_config(parser.parse_args(["--headless", "--config", str(toml)]))  # checks the config


def test_unregistered_mode_is_gone(fake_mode):
    registry.unregister(fake_mode)
    assert fake_mode not in detection.DETECTOR_MODES and fake_mode not in MODE_MIN_SCORE
    with pytest.raises(MaskwatchError, match="unknown face detector mode 'fake'"):
        FaceDetector("fake")
    assert DetectorConfig(min_score=0.3).with_mode("fake").min_score == 0.3  # unknown: the score is kept for the check to refuse


def test_register_refuses_duplicates_and_non_options(fake_mode):
    with pytest.raises(ValueError, match="already registered"):
        registry.register(FakeOptions, FakeDetector)
    with pytest.raises(TypeError):
        registry.register(dict, FakeDetector)
    with pytest.raises(TypeError, match="needs FakeOptions"):
        registry.build("fake", RetinaOptions(), 0.5, None)


def test_gui_mode_list_reads_the_registry(fake_mode, qtbot, tmp_path):
    from PyQt6.QtCore import QSettings, Qt

    from maskwatch.gui.controls import ControlsDialog
    from maskwatch.gui.settings import GuiSettings

    settings = GuiSettings(QSettings(str(tmp_path / "gui.ini"), QSettings.Format.IniFormat))
    dialog = ControlsDialog(settings, Config())
    qtbot.addWidget(dialog)
    combo = dialog.mode
    assert [combo.itemData(i) for i in range(combo.count())] == [*BUILT_IN, "fake"]
    assert combo.itemText(0) == "RetinaFace — small faces in CCTV and crowds (default)"
    tip = combo.itemData(combo.findData("tiled"), Qt.ItemDataRole.ToolTipRole)
    assert tip.startswith("tiled: smallest faces, slowest") and "tile = 128:" in tip and 'whole = "dense"' in tip
    combo.activated.emit(combo.findData("fake"))  # picking the mode puts its default score in the box
    assert dialog.min_score.value() == pytest.approx(0.42)
