"""The CLI round trip a user runs: synth a BOP set, write results, score them."""

import json

import numpy as np
import pytest

from posekit.cli import main
from posekit.io.bop import BopDataset, PoseEstimate, write_results_csv


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    rc = main(["synth", "bop", "--models", "procedural", "--out", str(out), "--scenes", "1",
               "--images", "2", "--seed", "3", "--width", "200", "--height", "150",
               "--objects-per-scene", "3", "--procedural-objects", "4", "--quiet"])
    assert rc == 0
    return out


def _results_from_gt(ds: BopDataset, shift=(0.0, 0.0, 0.0)):
    shift = np.asarray(shift, dtype=np.float64)
    ests = []
    for s in ds.scene_ids:
        for im in ds.image_ids(s):
            for g in ds.load_image(s, im, rgb=False, depth=False).gt:
                ests.append(PoseEstimate(s, im, g.obj_id, 1.0, g.R, g.t + shift, 0.5))
    return ests


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for cmd in ("demo", "synth", "eval"):
        assert cmd in text


def test_synth_then_eval_gt_is_perfect_and_shift_matches_definitions(synth_dir, tmp_path):
    ds = BopDataset(synth_dir)
    assert len(ds.targets()) > 0
    gt_csv = write_results_csv(tmp_path / "gt.csv", _results_from_gt(ds))
    assert main(["eval", "bop", "--dataset", str(synth_dir), "--results", str(gt_csv),
                 "--json", str(tmp_path / "gt.json"), "--no-progress"]) == 0
    scores = json.loads((tmp_path / "gt.json").read_text())
    assert scores["n_targets"] == len(ds.targets())
    for key in ("ar", "ar_vsd", "ar_mssd", "ar_mspd", "add_s_recall", "add_recall", "adi_recall",
                "rot_recall_5deg", "trans_recall_1cm"):
        assert scores["overall"][key] == pytest.approx(1.0), key

    # a pure translation of d metres: MSSD = d for every object, so AR_MSSD is the fraction of
    # the thresholds (0.05..0.5 of the diameter) above d, averaged over targets
    d = 0.015
    shift_csv = write_results_csv(tmp_path / "shift.csv", _results_from_gt(ds, np.array([0.0, d, 0.0])))
    assert main(["eval", "bop", "--dataset", str(synth_dir), "--results", str(shift_csv),
                 "--json", str(tmp_path / "shift.json"), "--no-progress"]) == 0
    shifted = json.loads((tmp_path / "shift.json").read_text())
    ths = np.arange(0.05, 0.51, 0.05)
    targets = [t for t in ds.targets() for _ in range(t.inst_count)]
    expected = np.mean([np.mean(d < ths * ds.models_info[t.obj_id].diameter) for t in targets])
    assert shifted["overall"]["ar_mssd"] == pytest.approx(expected, abs=1e-9)
    assert shifted["overall"]["trans_recall_1cm"] == 0.0
    assert shifted["overall"]["rot_recall_5deg"] == 1.0


def test_eval_reports_missing_results_file(synth_dir, tmp_path, capsys):
    rc = main(["eval", "bop", "--dataset", str(synth_dir), "--results", str(tmp_path / "none.csv")])
    assert rc == 1
    assert "none.csv" in capsys.readouterr().err


def test_demo_writes_png_and_scores(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--width", "240", "--height", "180"]) == 0
    png = tmp_path / "scene.png"
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out = capsys.readouterr().out
    for picture in ("object_poses.png", "body_fit.png", "view_cube.png"):
        assert (tmp_path / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "object engine: registration-procedural" in out and "BOP scores of this image" in out
    assert "V2V" in out and "log-likelihood" in out
    rows = (tmp_path / "object_results.csv").read_text().splitlines()
    assert rows[0].startswith("scene_id,im_id,obj_id") and len(rows) >= 2
