"""maskwatch-train loso: leave-one-source-out end to end on the fixtures (2 sources, 1 tiny epoch)."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("imagehash")

from maskwatch import LABELS  # noqa: E402
from train import cli  # noqa: E402
from train.data import load_manifest, prepare  # noqa: E402
from train.loso import holdout_rows  # noqa: E402

pytestmark = pytest.mark.train
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "train"
TINY = ["--backbone", "lowres_cnn", "--weights", "none", "--size", "32", "--epochs-head", "1",
        "--epochs-finetune", "0", "--batch-size", "8", "--no-progress"]


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    """Two sources: the ImageFolder crops and the YOLO scenes (its third class mapped)."""
    tmp = tmp_path_factory.mktemp("loso_pool")
    shutil.copytree(FIXTURES / "crops", tmp / "crops")
    out = tmp / "data"
    prepare([tmp / "crops", FIXTURES / "yolo_yaml"], out, size=32, redetect="none", val=0.2, test=0.2, progress=False,
            label_map=["with_incorrect_mask=mask_worn_incorrectly"])
    return out


def test_holdout_rows_never_leak_the_held_out_source():
    rows = [{"source": "s", "split": sp, "group": g, "label": "with_mask"} for sp, g in
            (("train", "1"), ("val", "2"), ("test", "3"))]
    rows += [{"source": "o", "split": sp, "group": g, "label": "without_mask"} for sp, g in
             (("train", "1"), ("train", "9"), ("val", "3"), ("val", "8"), ("test", "7"))]
    sub, n = holdout_rows(rows, "s")
    assert [r["split"] for r in sub if r["source"] == "s"] == ["test"] * 3, "every face of S is tested"
    assert all(r["source"] == "s" for r in sub if r["split"] == "test")
    assert sorted((r["split"], r["group"]) for r in sub if r["source"] == "o") == [("train", "9"), ("val", "8")]
    assert n == {"left_out_same_group": 2, "other_test_unused": 1, "left_out_donor": 0}
    assert rows[0]["split"] == "train", "the input rows are not changed"


def test_loso_end_to_end_and_resume(tmp_path, pool, capsys):
    out = tmp_path / "loso"
    rows = load_manifest(pool)
    n_by_source = {s: sum(r["source"] == s for r in rows) for s in ("crops", "yolo_yaml")}
    rc = cli.main(["loso", "--manifest", str(pool), "--holdout", "crops,yolo_yaml", "--out", str(out), *TINY])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    assert "[1/2] crops: training on" in cap.err and "[2/2] yolo_yaml: done in" in cap.err
    for name in ("loso.md", "loso.png", "loso.json"):
        assert (out / name).is_file() and (out / name).stat().st_size > 200, name
    summary = json.loads((out / "loso.json").read_text())
    assert summary["recipe"]["backbone"] == "lowres_cnn" and summary["recipe"]["epochs_head"] == 1
    assert summary["command"].startswith("maskwatch-train loso --manifest")
    assert [r["holdout"] for r in summary["results"]] == ["crops", "yolo_yaml"]
    for r in summary["results"]:
        other = "yolo_yaml" if r["holdout"] == "crops" else "crops"
        assert r["train_sources"] == [other]
        assert r["n_test"] == n_by_source[r["holdout"]], "tested on every face of the source, all its splits"
        m = r["metrics"]
        assert np.array(m["confusion_matrix"]["matrix"]).sum() == r["n_test"]
        assert set(m["per_class"]) == set(LABELS) and all({"precision", "recall"} <= set(c) for c in m["per_class"].values())
        assert 0.0 <= m["macro_f1"] <= 1.0
        assert [b["bucket"] for b in r["by_face_width"]] == ["<16", "16-32", "32-64", ">=64"]
        assert sum(b["n"] for b in r["by_face_width"]) == r["n_test"]
        c = r["calibration"]   # ECE of the held-out faces; T from the other source's val split only
        assert 0.0 <= c["ece_before"] <= 1.0 and c["fitted_on"] == f"val split of {other}" and not c["in_sample"]
        assert c["n_fit"] == r["n_val"] and (c["temperature"] is None) == (r["n_val"] == 0)
        held = load_manifest(out / r["holdout"] / "data")
        assert {x["source"] for x in held if x["split"] == "test"} == {r["holdout"]}
        assert {x["source"] for x in held if x["split"] != "test"} == {other}
        config = json.loads((out / r["holdout"] / "fit" / "config.json").read_text())
        assert config["augment"] == "lowres_heavy" and config["class_weight"] == "sqrt", "fit's defaults"
    md = (out / "loso.md").read_text()
    assert md.count("| crops |") == 1 and md.count("| yolo_yaml |") == 1 and "## yolo_yaml held out" in md
    assert "recall with / without / incorrect" in md and "![confusion matrices](loso.png)" in md
    assert "| ECE before → after |" in md and md.count(" → ") >= 2

    assert "| crops |" in cap.out, "the table is printed too"

    # resumable: a finished source is skipped, its result kept (one stored before calibration was measured
    # still loads: its ECE column reads "–")
    stored = json.loads((out / "crops" / "result.json").read_text())
    del stored["calibration"]
    (out / "crops" / "result.json").write_text(json.dumps(stored))
    stamp = (out / "crops" / "result.json").stat().st_mtime_ns
    rc = cli.main(["loso", "--manifest", str(pool), "--holdout", "crops", "--out", str(out), *TINY])
    cap = capsys.readouterr()
    assert rc == 0 and "[1/1] crops: result exists" in cap.err and "training on" not in cap.err
    assert (out / "crops" / "result.json").stat().st_mtime_ns == stamp
    row = next(line for line in (out / "loso.md").read_text().splitlines() if line.startswith("| crops |"))
    assert "| – |" in row
    # another recipe is refused (one line), not mixed in; --force redoes it
    rc = cli.main(["loso", "--manifest", str(pool), "--holdout", "crops", "--out", str(out), *TINY, "--seed", "1"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "made with another recipe" in err and "seed 0 -> 1" in err and "\n" not in err
    rc = cli.main(["loso", "--manifest", str(pool), "--holdout", "crops", "--out", str(out), *TINY, "--seed", "1",
                   "--force"])
    assert rc == 0 and "[1/1] crops: training on" in capsys.readouterr().err
    assert json.loads((out / "crops" / "result.json").read_text())["recipe"]["seed"] == 1


def test_loso_resumes_a_finished_fit_and_refuses_bad_holdouts(tmp_path, pool, capsys):
    out = tmp_path / "loso"
    rc = cli.main(["loso", "--manifest", str(pool), "--holdout", "yolo_yaml", "--out", str(out), *TINY])
    assert rc == 0
    (out / "yolo_yaml" / "result.json").unlink()      # killed after the fit, before the result
    rc = cli.main(["loso", "--manifest", str(pool), "--holdout", "yolo_yaml", "--out", str(out), *TINY])
    err = capsys.readouterr().err
    assert rc == 0 and "reusing the finished fit" in err and (out / "yolo_yaml" / "result.json").is_file()
    rc = cli.main(["loso", "--manifest", str(pool), "--holdout", "crops,nowhere", "--out", str(out), *TINY])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err == (f"maskwatch-train: error: --holdout nowhere: not a source of {pool / 'manifest.csv'} "
                               "(its sources: crops, yolo_yaml)")
