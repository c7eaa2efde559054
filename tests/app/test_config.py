"""Configuration: every field checked (one line naming the file and field), one merge of TOML, flags
and GUI settings, and the paths into it (CLI, ``python -m maskwatch.gui``) that must use both."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from maskwatch.config import _RULES, Config, DetectorConfig, SourceConfig, TrackerConfig, _fields_and_rules
from maskwatch.errors import MaskwatchError


def write(tmp_path: Path, text: str, name: str = "site.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def load_error(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(MaskwatchError) as info:
        Config.from_toml(path)
    message = str(info.value)
    assert "\n" not in message
    return message.replace(str(path), "site.toml")


def test_every_field_has_a_check():
    names = [name for name, _value, _rule in _fields_and_rules(Config())]
    for cls, prefix in ((SourceConfig, "sources."), (DetectorConfig, "detector."), (TrackerConfig, "tracker.")):
        assert {prefix + f.name for f in dataclasses.fields(cls)} <= set(names)
    untyped = [n for n in names if n not in _RULES]
    assert all("Path" in str(Config.__dataclass_fields__[n].type) for n in untyped), untyped  # checked as paths
    assert Config().validate() is not None


BAD_VALUES = {
    # the issue's own examples
    "sources backoff": ("[sources]\nbackoff_max_s = -1\n", "sources.backoff_max_s must be a number >= 0.1 (seconds; a shorter wait retries an unreachable camera many times a second), got -1"),
    "sources reconnects text": ('[sources]\nmax_reconnects = "x"\n',
                                "sources.max_reconnects must be an integer >= 0 (or left out: retry forever), got 'x'"),
    "log number": ("log = 5\n", "log must be a path (a non-empty string), or empty for none, got 5"),
    # the rest of [sources]
    "open timeout zero": ("[sources]\nopen_timeout_s = 0\n", "sources.open_timeout_s must be a number >= 0.1 (seconds; a shorter one fails on a healthy camera and turns into reconnects), got 0"),
    "read timeout text": ('[sources]\nread_timeout_s = "5"\n', "sources.read_timeout_s must be a number >= 0.1 (seconds; a shorter one fails on a healthy camera and turns into reconnects), got '5'"),
    "stall timeout nan": ("[sources]\nstall_timeout_s = nan\n", "sources.stall_timeout_s must be a number >= 0.1 (seconds; a shorter one fails on a healthy camera and turns into reconnects), got nan"),
    "backoff inf": ("[sources]\nbackoff_initial_s = inf\n", "sources.backoff_initial_s must be a number >= 0.1 (seconds; a shorter wait retries an unreachable camera many times a second), got inf"),
    "backoff order": ("[sources]\nbackoff_initial_s = 10\nbackoff_max_s = 2\n",
                      "sources.backoff_initial_s must be <= sources.backoff_max_s (2), got 10"),
    "reconnects negative": ("[sources]\nmax_reconnects = -1\n", "sources.max_reconnects must be an integer >= 0"),
    "realtime number": ("[sources]\nrealtime = 1\n", "sources.realtime must be true or false, got 1"),
    "sources not a table": ("sources = 5\n", "config key sources must be a table, got 5"),
    "unknown sources key": ("[sources]\nbackof_max_s = 1\n", "unknown config key sources.backof_max_s"),
    # bool is not a number
    "interval bool": ("interval_s = true\n", "interval_s must be a number >= 0.001 (seconds; interval start times are written to the millisecond), got True"),
    "score bool": ("[detector]\nmin_score = true\n", "detector.min_score must be a number between 0 and 1, got True"),
    "window bool": ("[tracker]\nvote_window = true\n", "tracker.vote_window must be an integer >= 1, got True"),
    "reconnects bool": ("[sources]\nmax_reconnects = false\n", "sources.max_reconnects must be an integer >= 0"),
    # top level
    "interval negative": ("interval_s = -3\n", "interval_s must be a number >= 0.001 (seconds; interval start times are written to the millisecond), got -3"),
    "alert threshold": ("alert_compliance_below = 1.5\n", "alert_compliance_below must be a number between 0 and 1, got 1.5"),
    "model empty": ('model = ""\n', "model must be a path (a non-empty string), got None"),
    "model number": ("model = 3\n", "model must be a path (a non-empty string), got 3"),
    "events table": ("[events]\nx = 1\n", "events must be a path"),
    "source empty": ('source = " "\n', "source must be a webcam index, a camera URL, a video file or an image folder"),
    "source list": ("source = [1]\n", "source must be a webcam index"),
    # detector and tracker
    "mode unknown": ('[detector]\nmode = "yolo"\n', "detector.mode must be one of retina, short, full, dense, tiled, got 'yolo'"),
    "every_n float": ("[detector]\nevery_n = 1.5\n", "detector.every_n must be an integer >= 1, got 1.5"),
    "options not a table": ("[detector]\noptions = 3\n", "detector.options must be a table, got 3"),
    "option unknown": ('[detector]\nmode = "retina"\n[detector.options]\ntile = 96\n',
                       "detector.options: face detector mode 'retina' has no option tile"),
    "option value": ("[detector.options]\nmax_pixels = -1\n", "detector.options: face detector mode 'retina' option max_pixels"),
    "min_votes over window": ("[tracker]\nvote_window = 5\nmin_votes = 8\n",
                              "tracker.min_votes must be <= tracker.vote_window (5), got 8"),
    "max_age negative": ("[tracker]\nmax_age = -1\n", "tracker.max_age must be an integer >= 0, got -1"),
    "min_hits zero": ("[tracker]\nmin_hits = 0\n", "tracker.min_hits must be an integer >= 1, got 0"),
}


@pytest.mark.parametrize("case", sorted(BAD_VALUES))
def test_bad_toml_values_are_one_line_naming_file_and_field(case, tmp_path):
    text, expected = BAD_VALUES[case]
    message = load_error(tmp_path, text)
    assert message.startswith("config file site.toml: ") or message.startswith("config file site.toml ")
    assert expected in message


@pytest.mark.parametrize("field, floor", [
    ("sources.backoff_initial_s", 0.1), ("sources.backoff_max_s", 0.1), ("sources.open_timeout_s", 0.1),
    ("sources.read_timeout_s", 0.1), ("sources.stall_timeout_s", 0.1), ("interval_s", 0.001),
])
def test_times_have_floors(field, floor):
    """Regression: ``backoff_initial_s = backoff_max_s = 0.0001`` passed the "> 0" check and gave
    thousands of reconnects a second; a tiny interval has no millisecond timestamp of its own."""
    with pytest.raises(MaskwatchError, match=rf"^{field} must be a number >= {floor:g} \(seconds; .+\), got 0.0001$"):
        Config.load(overrides={field: 0.0001})
    Config.load(overrides={field: floor, "sources.backoff_initial_s": 0.1})  # the floor itself is fine


def test_config_file_that_is_not_a_file(tmp_path):
    with pytest.raises(MaskwatchError, match=r"^config file .* is a directory, not a TOML file$"):
        Config.from_toml(tmp_path)
    with pytest.raises(MaskwatchError, match=r"^config file not found: "):
        Config.from_toml(tmp_path / "missing.toml")
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"interval_s = 5\n\xff\xfe\n")
    with pytest.raises(MaskwatchError, match=r"is not valid TOML: not UTF-8 text$"):
        Config.from_toml(binary)
    odd = tmp_path / os.fsdecode(b"caf\xe9.toml")
    odd.write_text("interval_s = -1\n")
    with pytest.raises(MaskwatchError) as info:
        Config.from_toml(odd)
    assert "caf\\xe9.toml: interval_s" in str(info.value)
    str(info.value).encode("utf-8")  # printable


def test_unreadable_config_file(tmp_path, monkeypatch):
    path = write(tmp_path, "interval_s = 5\n")
    path.chmod(0)
    if os.geteuid() == 0:  # root (CI) reads a mode-0 file: make the open fail as it does for anyone else
        import builtins

        real_open = builtins.open

        def denying_open(file, *args, **kwargs):
            if os.fspath(file) == os.fspath(path):
                raise PermissionError(13, "Permission denied", os.fspath(file))
            return real_open(file, *args, **kwargs)

        monkeypatch.setattr(builtins, "open", denying_open)
    with pytest.raises(MaskwatchError, match=r"^cannot read config file .*site.toml: permission denied$"):
        Config.from_toml(path)


def test_with_overrides_is_flags_over_toml_over_defaults(tmp_path):
    toml = write(tmp_path, 'log = "t.csv"\n[detector]\nmode = "dense"\n[tracker]\nvote_window = 20\nmin_votes = 12\n'
                           '[sources]\nbackoff_max_s = 4\n')
    config = Config.load(toml, {"interval_s": 5, "tracker.vote_window": 8, "log": None, "detector.every_n": 2})
    assert config.interval_s == 5 and config.log == Path("t.csv")  # None: not given, the TOML value stays
    assert (config.detector.mode, config.detector.min_score, config.detector.every_n) == ("dense", 0.6, 2)
    assert (config.tracker.vote_window, config.tracker.min_votes) == (8, 8)  # the window caps min_votes
    assert config.sources.backoff_max_s == 4
    assert Config.load(toml, {"log": ""}).log is None  # "" turns a path off
    # the three spellings of a change are one merge
    nested = Config().with_overrides({"detector": {"mode": "short", "min_score": 0.4}})
    dotted = Config().with_overrides({"detector.mode": "short", "detector.min_score": 0.4})
    keywords = Config().with_overrides(detector={"mode": "short", "min_score": 0.4})
    assert nested == dotted == keywords and nested.detector.min_score == 0.4
    with pytest.raises(MaskwatchError, match="^unknown config key detector.modes$"):
        Config().with_overrides({"detector.modes": "x"})
    with pytest.raises(MaskwatchError, match="^unknown config key interval_s.x$"):
        Config().with_overrides({"interval_s.x": 1})


def test_cli_build_config_validates_and_names_the_file(tmp_path, capfd):
    from maskwatch.cli import main

    toml = write(tmp_path, "[sources]\nbackoff_max_s = -1\n")
    assert main(["--headless", "--config", str(toml)]) == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert err == [f"maskwatch: error: config file {toml}: sources.backoff_max_s must be a number >= 0.1 (seconds; a shorter wait retries an unreachable camera many times a second), got -1"]
    assert main(["--headless", "--config", str(tmp_path)]) == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert err == [f"maskwatch: error: config file {tmp_path} is a directory, not a TOML file"]


def test_gui_entry_point_validates_too(tmp_path, capfd):
    from maskwatch.gui.app import main

    toml = write(tmp_path, "log = 5\n")
    assert main(["--config", str(toml)]) == 2
    assert capfd.readouterr().err.strip().splitlines() == [
        f"maskwatch: error: config file {toml}: log must be a path (a non-empty string), or empty for none, got 5"]
    assert main(["--interval", "0"]) == 2
    assert "interval_s must be a number >= 0.001 (seconds; interval start times are written to the millisecond), got 0.0" in capfd.readouterr().err
    assert main(["--detector", "yolo"]) == 2
    assert "detector.mode must be one of" in capfd.readouterr().err
    assert main(["rtsp://admin:hunter22@cam:99999/x", "--detector", "yolo"]) == 2
    assert "hunter22" not in capfd.readouterr().err


def test_gui_settings_merge_the_same_way(tmp_path):
    from PyQt6.QtCore import QSettings

    from maskwatch.gui.settings import GuiSettings

    settings = GuiSettings(QSettings(str(tmp_path / "gui.ini"), QSettings.Format.IniFormat))
    assert settings.apply(Config()) == Config()  # nothing saved
    settings.q.setValue("detector/mode", "dense")
    settings.q.setValue("tracker/vote_window", 4)
    settings.q.setValue("output/log", str(tmp_path / "gui.csv"))
    config = settings.apply(Config())
    assert (config.detector.mode, config.detector.min_score) == ("dense", 0.6)  # the mode's default score
    assert (config.tracker.vote_window, config.tracker.min_votes) == (4, 4)
    assert config.log == tmp_path / "gui.csv"
    explicit = Config.load(overrides={"detector.mode": "short", "log": str(tmp_path / "flag.csv")})
    config = settings.apply(explicit)  # flags and TOML win over saved settings
    assert (config.detector.mode, config.detector.min_score, config.log) == ("short", 0.5, tmp_path / "flag.csv")
    settings.q.setValue("detector/min_score", 7.5)  # an INI file edited by hand: ignored, not a crash
    settings.q.setValue("detector/mode", "yolo")
    config = settings.apply(Config())
    assert (config.detector.mode, config.detector.min_score) == ("retina", 0.7)
    config.validate()


def test_an_explicit_score_survives_a_saved_mode(tmp_path):
    """Regression: ``--min-score 0.4`` with ``dense`` saved in the app ran at dense's 0.6 (the saved
    mode went through ``with_mode``). Precedence: explicit flag > saved setting > mode default."""
    from PyQt6.QtCore import QSettings

    from maskwatch.cli import _main_parser, build_config
    from maskwatch.gui.settings import GuiSettings

    settings = GuiSettings(QSettings(str(tmp_path / "gui.ini"), QSettings.Format.IniFormat))
    settings.q.setValue("detector/mode", "dense")
    flags = lambda *argv: build_config(_main_parser().parse_args(list(argv)))  # noqa: E731
    config = settings.apply(flags("--min-score", "0.4"))
    assert (config.detector.mode, config.detector.min_score) == ("dense", 0.4)  # flag > saved mode's default
    assert settings.apply(flags()).detector.min_score == 0.6  # no flag: the saved mode's default
    toml = write(tmp_path, '[detector]\nmin_score = 0.45\n')
    assert settings.apply(flags("--config", str(toml))).detector.min_score == 0.45  # TOML is explicit too
    settings.q.setValue("detector/min_score", 0.55)
    assert settings.apply(flags()).detector.min_score == 0.55  # saved score > mode default
    assert settings.apply(flags("--min-score", "0.4")).detector.min_score == 0.4  # flag > saved score
    # a score saved with dense is dense's: --detector short overrides the mode, and short's default applies
    assert (settings.apply(flags("--detector", "short")).detector.mode,
            settings.apply(flags("--detector", "short")).detector.min_score) == ("short", 0.5)
    assert settings.apply(flags("--detector", "short", "--min-score", "0.3")).detector.min_score == 0.3


def test_a_tilde_in_a_path_is_the_home_folder(tmp_path, monkeypatch):
    """Regression: ``log = "~/c.csv"`` wrote ./~/c.csv (the sinks' same-file check expanded it)."""
    from PyQt6.QtCore import QSettings

    from maskwatch.cli import _main_parser, build_config
    from maskwatch.gui.settings import GuiSettings

    monkeypatch.setenv("HOME", str(tmp_path))
    toml = write(tmp_path, 'log = "~/c.csv"\nevents = "~/e.jsonl"\nsnapshots = "~/snaps"\nsave_video = "~/v.mp4"\n'
                           'model = "~/m.tflite"\n')
    config = Config.from_toml(toml)
    assert (config.log, config.events, config.snapshots, config.save_video, config.model) == (
        tmp_path / "c.csv", tmp_path / "e.jsonl", tmp_path / "snaps", tmp_path / "v.mp4", tmp_path / "m.tflite")
    flags = build_config(_main_parser().parse_args(["--log=~/flag.csv", "--snapshots", "~/s", "--model", "~/m.tflite"]))
    assert (flags.log, flags.snapshots, flags.model) == (tmp_path / "flag.csv", tmp_path / "s", tmp_path / "m.tflite")
    settings = GuiSettings(QSettings(str(tmp_path / "gui.ini"), QSettings.Format.IniFormat))
    settings.q.setValue("output/log", "~/gui.csv")
    assert settings.apply(Config()).log == tmp_path / "gui.csv"


def test_the_pipeline_checks_the_config_it_is_given():
    from maskwatch.pipeline import Pipeline

    config = dataclasses.replace(Config(), sources=SourceConfig(backoff_max_s=True))
    with pytest.raises(MaskwatchError, match=r"^sources.backoff_max_s must be a number >= 0.1 \(seconds; .*\), got True$"):
        Pipeline(config)


def test_ignore_regions_are_checked_and_read_from_toml(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text("[detector]\nignore = [[0.44, 0.17, 0.54, 0.33]]\n")
    assert Config.from_toml(toml).detector.ignore == [[0.44, 0.17, 0.54, 0.33]]
    for bad in ("[[0.5, 0.2, 0.4, 0.3]]", "[[0, 0, 1]]", "[[0, 0, 2, 1]]", '"corner"'):
        toml.write_text(f"[detector]\nignore = {bad}\n")
        with pytest.raises(MaskwatchError, match=r"detector.ignore must be a list of \[x1, y1, x2, y2\] regions"):
            Config.from_toml(toml)


def test_a_config_pickled_to_another_process_hides_its_camera_password_there():
    """serve hands each camera's Config to a spawned worker: the parsed source is not pickled, so
    the worker parses it and its redact() learns the password, even one no pattern can find."""
    import pickle
    import subprocess
    import sys

    config = Config(source="rtsp://admin:x://y@z@cam/live").validate()
    assert config.spec.password == "x://y@z"
    code = ("import pickle, sys\nfrom maskwatch.sources.spec import redact\n"
            "c = pickle.loads(sys.stdin.buffer.read())\n"
            "print(redact('cannot open rtsp://admin:x://y@z@cam/live'), c.spec.password == 'x://y@z')")
    out = subprocess.run([sys.executable, "-c", code], input=pickle.dumps(config), capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr.decode()
    assert out.stdout.decode().split() == ["cannot", "open", "rtsp://admin:***@cam/live", "True"]
