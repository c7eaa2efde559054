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
