"""The mask classifier's metadata: every bad value is one line naming the file and the field, exit 2."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from conftest import TINY_MODEL, run_cli
from maskwatch.classification import MaskClassifier, load_metadata
from maskwatch.errors import MaskwatchError

GOOD = json.loads(TINY_MODEL.with_suffix(".json").read_text())


def model_with(tmp_path, metadata, name: str = "model") -> os.PathLike:
    """A copy of the tiny classifier whose JSON is ``metadata`` (a dict, or text written as is)."""
    model = tmp_path / f"{name}.tflite"
    shutil.copy(TINY_MODEL, model)
    text = metadata if isinstance(metadata, str) else json.dumps(metadata)
    model.with_suffix(".json").write_text(text)
    return model


BAD_METADATA = {
    "not an object": ("[1, 2]", "must be a JSON object, got list"),
    "labels unknown": ({"labels": ["mask", "no_mask", "bad"]},
                       'labels must be ["with_mask", "without_mask", "mask_worn_incorrectly"], got ["mask", "no_mask", "bad"]'),
    "labels text": ({"labels": "with_mask"}, 'labels must be'),
    "labels reordered": ({"labels": ["without_mask", "with_mask", "mask_worn_incorrectly"]}, "labels must be"),
    "size text": ({"input_size": "32x32"}, 'input_size must be two equal integers >= 1 (a square input, [h, w]), got "32x32"'),
    "size not square": ({"input_size": [32, 48]}, "input_size must be two equal integers >= 1"),
    "size zero": ({"input_size": [0, 0]}, "input_size must be two equal integers >= 1"),
    "size bool": ({"input_size": [True, True]}, "input_size must be two equal integers >= 1"),
    "size float": ({"input_size": [32.5, 32.5]}, "input_size must be two equal integers >= 1"),
    "margin negative": ({"crop_margin": -0.1}, "crop_margin must be a number >= 0, got -0.1"),
    "margin text": ({"crop_margin": "0.2"}, 'crop_margin must be a number >= 0, got "0.2"'),
    "margin bool": ({"crop_margin": True}, "crop_margin must be a number >= 0, got true"),
    "version object": ({"version": {"v": 1}}, 'version must be text or a number, got {"v": 1}'),
    "missing": (None, "lacks crop_margin"),  # None: crop_margin left out
    "temperature zero": ({"temperature": 0}, "temperature must be a number > 0 (fitted by maskwatch-train export; "
                                             "1.0 = uncalibrated), got 0"),
    "temperature negative": ({"temperature": -1.5}, "temperature must be a number > 0"),
    "temperature text": ({"temperature": "2"}, 'temperature must be a number > 0 (fitted by maskwatch-train export; '
                                               '1.0 = uncalibrated), got "2"'),
    "temperature bool": ({"temperature": True}, "temperature must be a number > 0"),
    "temperature null": ({"temperature": None}, "temperature must be a number > 0"),
    "temperature list": ({"temperature": [2.0]}, "temperature must be a number > 0"),
    "temperature nan": ('{"labels": ["with_mask", "without_mask", "mask_worn_incorrectly"], "input_size": [32, 32], '
                        '"crop_margin": 0.2, "version": "t", "temperature": NaN}', "got NaN"),
    "temperature infinite": ({"temperature": float("inf")}, "1.0 = uncalibrated), got Infinity"),
}


@pytest.mark.parametrize("case", sorted(BAD_METADATA))
def test_bad_metadata_is_one_line_naming_file_and_field(case, tmp_path):
    change, expected = BAD_METADATA[case]
    if change is None:
        metadata = {k: v for k, v in GOOD.items() if k != "crop_margin"}
    elif isinstance(change, str):
        metadata = change
    else:
        metadata = {**GOOD, **change}
    model = model_with(tmp_path, metadata)
    with pytest.raises(MaskwatchError) as info:
        MaskClassifier(model)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"model metadata {model.with_suffix('.json')}")
    assert expected in message
    assert info.value.exit_code == 2


def test_metadata_that_is_not_a_file_or_not_text(tmp_path):
    model = model_with(tmp_path, GOOD)
    model.with_suffix(".json").unlink()
    model.with_suffix(".json").mkdir()
    with pytest.raises(MaskwatchError, match=r"^cannot read model metadata .*model\.json: is a directory$"):
        load_metadata(model)
    model.with_suffix(".json").rmdir()
    model.with_suffix(".json").write_bytes(b'{"labels": "\xff"}')
    with pytest.raises(MaskwatchError, match=r"is not valid JSON"):
        load_metadata(model)


def test_bad_metadata_from_the_command_line_exits_2(tmp_path):
    model = model_with(tmp_path, {**GOOD, "input_size": [32, "32"]})
    r = run_cli("--headless", "--model", model, "--source", TINY_MODEL.parent / "clip_320x240.mp4", timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        f"maskwatch: error: model metadata {model.with_suffix('.json')}: input_size must be two equal integers >= 1 "
        '(a square input, [h, w]), got [32, "32"]']


def test_a_model_whose_name_is_not_utf8_loads(tmp_path):
    model = model_with(tmp_path, GOOD, name=os.fsdecode(b"mod\xe8le"))
    classifier = MaskClassifier(model)
    probs = classifier.classify(np.zeros((2, 32, 32, 3), np.uint8))
    assert probs.shape == (2, 3) and np.allclose(probs.sum(axis=1), 1, atol=0.01)
    model.with_suffix(".json").write_text("{}")
    with pytest.raises(MaskwatchError) as info:
        MaskClassifier(model)
    assert "mod\\xe8le.json lacks labels" in str(info.value)


def test_temperature_calibrates_every_probability(tmp_path):
    """The metadata's temperature is applied to what classify (and so the vote, alerts, --json) returns:
    softmax(log p / T), the arg-max unchanged; no temperature = the raw outputs, bit for bit."""
    crops = np.random.default_rng(0).integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)
    plain = MaskClassifier(model_with(tmp_path, GOOD, name="plain"))
    assert plain.temperature == 1.0 and "temperature" not in GOOD
    raw = plain.classify(crops)
    assert np.array_equal(raw, plain.classify(crops, calibrated=False)), "no temperature: untouched"
    warm = MaskClassifier(model_with(tmp_path, {**GOOD, "temperature": 2}, name="warm"))
    assert warm.temperature == 2.0
    assert np.array_equal(warm.classify(crops, calibrated=False), raw)
    flat = warm.classify(crops)
    floored = np.clip(raw.astype(np.float64), 0.5 / 256, 1.0)
    expected = np.sqrt(floored) / np.sqrt(floored).sum(axis=1, keepdims=True)   # p ** (1 / T), normalised
    assert np.allclose(flat, expected, atol=1e-6) and np.allclose(flat.sum(axis=1), 1.0, atol=1e-6)
    assert np.array_equal(flat.argmax(axis=1), raw.argmax(axis=1))
    assert np.all(flat.max(axis=1) <= raw.max(axis=1) + 1e-6) and flat.max() < raw.max(), "T = 2 flattens"
    scene = np.full((120, 160, 3), 128, np.uint8)
    boxes = np.array([[40, 30, 90, 90]], np.float32)
    assert np.allclose(warm.classify_faces(scene, boxes),
                       np.sqrt(np.clip(plain.classify_faces(scene, boxes), 0.5 / 256, 1)) /
                       np.sqrt(np.clip(plain.classify_faces(scene, boxes), 0.5 / 256, 1)).sum(), atol=1e-6)
    same = MaskClassifier(model_with(tmp_path, {**GOOD, "temperature": 1.0}, name="one"))
    assert np.array_equal(same.classify(crops), raw), "T = 1.0 written out: the same bytes as none"
