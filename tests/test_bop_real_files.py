"""BOP files as real datasets ship them: rotations a little off orthonormal, a broken entry.

Real LM-O ground truth holds a rotation with |R^T R - I| = 0.00194: it must be read as stored
(bop_toolkit computes errors with the stored matrices), with one warning per file, and one
broken entry must never stop a whole dataset.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from posekit.cli import main
from posekit.errors import PosekitWarning
from posekit.geometry.rigid_np import rotation_about_axis
from posekit.io import bop


def _drifted(R: np.ndarray, err: float) -> np.ndarray:
    """R scaled so that |R^T R - I| = err (the kind of drift stored GT files have)."""
    return R * np.sqrt(1.0 + err)


def _gt_entry(R, t_mm, obj_id=1):
    return {"cam_R_m2c": np.asarray(R).reshape(-1).tolist(), "cam_t_m2c": list(t_mm), "obj_id": obj_id}


def test_scene_gt_keeps_drifted_rotations_as_stored_with_one_warning(tmp_path):
    R = rotation_about_axis([0.3, 1.0, 0.2], 0.7)
    Rd = _drifted(R, 0.00194)
    assert np.abs(Rd.T @ Rd - np.eye(3)).max() == pytest.approx(0.00194, rel=1e-2)
    path = tmp_path / "scene_gt.json"
    path.write_text(json.dumps({"0": [_gt_entry(Rd, [10, 20, 700]), _gt_entry(_drifted(R, 0.0015), [0, 0, 800], 2)],
                                "1": [_gt_entry(R, [5, 5, 900])]}))
    with pytest.warns(PosekitWarning) as record:
        gt = bop.read_scene_gt(path)
    assert len(record) == 1, "one warning per file, not one per entry"
    assert "2 GT rotation(s)" in str(record[0].message) and "image 0 gt 0" in str(record[0].message)
    np.testing.assert_array_equal(gt[0][0].R, Rd)  # exactly as stored: no re-orthonormalisation
    np.testing.assert_allclose(gt[0][0].t, [0.010, 0.020, 0.700])
    assert all(not g.problem for g in gt[0] + gt[1])


def test_scene_gt_flags_broken_entries_and_reads_the_rest(tmp_path):
    R = rotation_about_axis([0.0, 0.0, 1.0], 0.4)
    reflection = R @ np.diag([1.0, 1.0, -1.0])
    path = tmp_path / "scene_gt.json"
    content = {"3": [_gt_entry(R, [0, 0, 600]), _gt_entry(reflection, [0, 0, 600], 2),
                     _gt_entry(R * 1.2, [0, 0, 600], 3), {"obj_id": 4, "cam_R_m2c": [1, 0, 0]},
                     _gt_entry(R, [0, 0, 650], 5)]}
    path.write_text(json.dumps(content).replace("600]", "600]", 1))
    with pytest.warns(PosekitWarning, match="image 3 gt 1") as record:
        gt = bop.read_scene_gt(path)
    text = str(record[0].message)
    assert "3 GT entries are broken" in text and "image 3 gt 2" in text and "image 3 gt 3" in text
    assert [g.obj_id for g in gt[3]] == [1, 2, 3, 4, 5], "broken entries keep their gt_id"
    assert [bool(g.problem) for g in gt[3]] == [False, True, True, True, False]
    assert "det" in gt[3][1].problem and "over 0.05" in gt[3][2].problem
    np.testing.assert_allclose(gt[3][4].t, [0, 0, 0.65])
    # targets count only usable instances
    assert [(t.obj_id, t.inst_count) for t in bop.targets_from_gt(3, gt)] == [(1, 1), (5, 1)]


@pytest.mark.parametrize("R, fragment", [("[NaN, 0, 0, 0, 1, 0, 0, 0, 1]", "NaN"),
                                         ("[1, 0, 0, 0, 1, 0, 0, 0]", "9 numbers"),
                                         ("[2, 0, 0, 0, 1, 0, 0, 0, 1]", "over 0.05")])
def test_scene_gt_broken_rotation_is_reported_not_fatal(tmp_path, R, fragment):
    path = tmp_path / "scene_gt.json"
    path.write_text(f'{{"0": [{{"obj_id": 1, "cam_R_m2c": {R}, "cam_t_m2c": [0, 0, 500]}}]}}')
    with pytest.warns(PosekitWarning, match="image 0 gt 0"):
        gt = bop.read_scene_gt(path)
    assert fragment in gt[0][0].problem


def test_results_csv_reads_drifted_rows_and_skips_broken_ones(tmp_path):
    R = rotation_about_axis([1.0, 0.2, 0.0], 1.1)
    rows = [bop.RESULTS_HEADER]
    for i, Ri in enumerate([_drifted(R, 0.002), R @ np.diag([1.0, -1.0, 1.0]), R]):
        rows.append(f"1,{i},1,0.9,{' '.join(map(repr, Ri.reshape(-1)))},0 0 500,0.1")
    path = tmp_path / "other_method.csv"
    path.write_text("\n".join(rows) + "\n")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        ests = bop.read_results_csv(path)
    messages = [str(w.message) for w in record if issubclass(w.category, PosekitWarning)]
    assert any("off orthonormal" in m for m in messages)
    assert any("line 3" in m and "skipped" in m for m in messages)
    assert [e.im_id for e in ests] == [0, 2]
    np.testing.assert_array_equal(ests[0].R, _drifted(R, 0.002))


@pytest.fixture(scope="module")
def drifted_dataset(tmp_path_factory):
    """A small rendered dataset whose scene_gt.json has a drifted and a broken rotation."""
    out = tmp_path_factory.mktemp("drifted")
    assert main(["synth", "bop", "--models", "procedural", "--out", str(out), "--scenes", "1", "--images", "2",
                 "--seed", "4", "--width", "160", "--height", "120", "--objects-per-scene", "3",
                 "--procedural-objects", "3", "--quiet"]) == 0
    path = next(out.glob("test/*/scene_gt.json"))
    content = json.loads(path.read_text())
    first = content["0"][0]
    first["cam_R_m2c"] = (np.asarray(first["cam_R_m2c"]) * np.sqrt(1.00194)).tolist()
    content["1"][0]["cam_R_m2c"] = [float("nan")] * 9
    path.write_text(json.dumps(content))
    return out


def test_eval_bop_cli_scores_a_dataset_with_drifted_and_broken_gt(drifted_dataset, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PosekitWarning)
        ds = bop.BopDataset(drifted_dataset)
        ests = [bop.PoseEstimate(s, im, g.obj_id, 1.0, g.R, g.t, 0.2)
                for s in ds.scene_ids for im in ds.image_ids(s)
                for g in ds.load_image(s, im, rgb=False, depth=False).gt if not g.problem]
    csv = bop.write_results_csv(tmp_path / "gt.csv", ests)
    with pytest.warns(PosekitWarning):
        rc = main(["eval", "bop", "--dataset", str(drifted_dataset), "--results", str(csv),
                   "--json", str(tmp_path / "scores.json"), "--no-progress"])
    assert rc == 0
    scores = json.loads((tmp_path / "scores.json").read_text())
    assert scores["overall"]["add_s_recall"] == pytest.approx(1.0)
    # every target is scored except the one whose only GT instance is broken
    assert scores["n_targets"] == len(ds.targets()) - 1
