"""BOP matching and scoring (posekit.eval.bop_scoring) on hand-made errors and a tiny BOP dataset."""

from __future__ import annotations

import json

import numpy as np
import pytest

from posekit.data.meshes import box_mesh as procedural_box
from posekit.eval import bop_scoring as bs
from posekit.geometry import make_pose as pose
from posekit.geometry import rotation_about_axis as rot
from posekit.io import bop
from posekit.io.mesh import Mesh

K = np.array([[200.0, 0.0, 79.5], [0.0, 200.0, 59.5], [0.0, 0.0, 1.0]])
W, H = 160, 120


# ----------------------------------------------------------------------------- matching


def test_match_greedy_takes_lowest_error_in_score_order():
    errors = np.array([[0.3, 0.1], [0.05, 0.2]])  # rows: estimates by decreasing score
    np.testing.assert_array_equal(bs.match_greedy(errors, [True, True], 0.5), [1, 0])


def test_match_greedy_is_greedy_not_optimal():
    # The best-scored estimate takes GT 0 (its lowest error); the second could only have
    # used GT 0 under the threshold, so it stays unmatched although 2 matches exist.
    errors = np.array([[0.1, 0.2], [0.05, 0.9]])
    np.testing.assert_array_equal(bs.match_greedy(errors, [True, True], 0.5), [0, -1])


def test_match_greedy_threshold_is_strict_and_invalid_gts_are_skipped():
    errors = np.array([[0.5, 0.2]])
    np.testing.assert_array_equal(bs.match_greedy(errors, [True, True], 0.5), [1])
    np.testing.assert_array_equal(bs.match_greedy(errors, [True, False], 0.5), [-1])
    np.testing.assert_array_equal(bs.match_greedy(np.array([[0.5]]), [True], 0.5), [-1])


def test_valid_gts_by_visibility_or_most_visible():
    np.testing.assert_array_equal(bs.valid_gts([0.05, 0.1, 0.9], 3, 0.1), [False, True, True])
    np.testing.assert_array_equal(bs.valid_gts([0.05, 0.1, 0.9], 2, -1), [False, True, True])


def _group(obj_id, errors_by_name, n_gt, gt_valid=None):
    E = next(iter(errors_by_name.values())).shape[0] if errors_by_name else 0
    return bs.TargetGroup(
        scene_id=1, im_id=0, obj_id=obj_id, gt_ids=list(range(n_gt)),
        gt_valid=np.ones(n_gt, bool) if gt_valid is None else np.asarray(gt_valid),
        scores=np.linspace(1, 0.5, E), errors=errors_by_name,
    )


def _errors(E, G, value):
    """Every error type filled with ``value`` (fraction of thresholds / metres / radians)."""
    n_taus = len(bs.BopEvalConfig().vsd_taus)
    return {
        "vsd": np.full((E, G, n_taus), value), "mssd": np.full((E, G), value),
        "mspd": np.full((E, G), value * 100), "add": np.full((E, G), value * 0.1),
        "adi": np.full((E, G), value * 0.1), "re": np.full((E, G), value * 0.01),
        "te": np.full((E, G), value * 0.001),
    }


def test_score_groups_perfect_half_and_missing():
    cfg = bs.BopEvalConfig()
    perfect = bs.score_groups([_group(1, _errors(1, 1, 0.0), 1), _group(2, _errors(2, 2, 0.0), 2)])
    assert perfect.n_targets == 3
    assert all(v == 1.0 for v in perfect.overall.values())
    bad = _errors(1, 1, 1e6)
    half = bs.score_groups([_group(1, _errors(1, 1, 0.0), 1), _group(1, bad, 1)], config=cfg)
    assert all(v == pytest.approx(0.5) for v in half.overall.values())
    # A target without any estimate counts as a failure.
    missing = bs.score_groups([_group(1, _errors(1, 1, 0.0), 1), _group(1, {}, 1)])
    assert missing.overall["ar"] == pytest.approx(0.5) and missing.n_targets == 2
    # Invalid (too occluded) GT instances are neither targets nor matchable.
    invalid = bs.score_groups([_group(1, _errors(1, 2, 0.0), 2, gt_valid=[True, False])])
    assert invalid.n_targets == 1 and invalid.overall["ar"] == 1.0


def test_score_groups_recall_over_threshold_grid():
    # MSSD error of 0.22 diameters passes the thresholds 0.25 ... 0.5: 6 of 10.
    errors = _errors(1, 1, 0.0)
    errors["mssd"][:] = 0.22
    errors["mspd"][:] = 12.0  # passes 15 ... 50 px: 8 of 10
    errors["vsd"][..., :] = 0.0
    errors["vsd"][..., 0] = 0.31  # the smallest tau fails thresholds 0.05 ... 0.3 (6 of 10)
    s = bs.score_groups([_group(3, errors, 1)]).overall
    assert s["ar_mssd"] == pytest.approx(0.6)
    assert s["ar_mspd"] == pytest.approx(0.8)
    assert s["ar_vsd"] == pytest.approx(1 - 6 / 100)
    assert s["ar"] == pytest.approx((0.6 + 0.8 + 0.94) / 3)


def test_add_s_uses_adi_only_for_symmetric_objects():
    errors = _errors(1, 1, 0.0)
    errors["add"][:] = 0.5  # fails 0.1 d
    s = bs.score_groups([_group(7, errors, 1)], symmetric_obj_ids=[7]).overall
    assert (s["add_recall"], s["adi_recall"], s["add_s_recall"]) == (0.0, 1.0, 1.0)
    s = bs.score_groups([_group(7, errors, 1)], symmetric_obj_ids=[]).overall
    assert s["add_s_recall"] == 0.0


# ----------------------------------------------------------------------------- tiny dataset


def irregular_mesh(seed: int = 0, radius: float = 0.04) -> Mesh:
    """Convex hull of random points: an object with no symmetry."""
    from scipy.spatial import ConvexHull

    pts = np.random.default_rng(seed).normal(size=(40, 3))
    pts = radius * pts / np.linalg.norm(pts, axis=1, keepdims=True) * np.array([1.0, 0.7, 0.5])
    hull = ConvexHull(pts)
    used = np.unique(hull.simplices)
    remap = np.full(len(pts), -1)
    remap[used] = np.arange(len(used))
    return Mesh(pts[used], remap[hull.simplices])


def box_mesh(sx=0.06, sy=0.04, sz=0.02) -> Mesh:
    """Closed cuboid centred at the origin with full side lengths sx, sy, sz (metres)."""
    return Mesh(*procedural_box((sx, sy, sz)))


# Scene 1: image 0 holds object 1 and two instances of object 2 (a box with half-turn
# symmetries); image 1 holds object 1 alone. Four targets in all.
SCENE = {
    0: [(1, pose(rot([1, 0, 0], 0.4), [-0.05, 0.0, 0.5])),
        (2, pose(rot([0, 1, 1], 0.3), [0.04, -0.03, 0.45])),
        (2, pose(rot([1, 1, 0], 0.6), [0.04, 0.05, 0.55]))],
    1: [(1, pose(rot([0, 1, 0], 1.0), [0.0, 0.01, 0.4]))],
}


# Image 0 of a second dataset: object 1 in front hides one box completely and the other
# box partly (visible fractions 1.0, 0.0 and about 0.4).
OCCLUDED_SCENE = {
    0: [(1, pose(rot([1, 0, 0], 0.2), [0.0, 0.0, 0.35])),
        (2, pose(rot([0, 0, 1], 0.3), [0.005, 0.0, 0.6])),
        (2, pose(rot([1, 1, 0], 0.6), [0.04, 0.01, 0.5]))],
}


def write_tiny_bop(root, scene):
    """A BOP dataset with one test scene (id 1) rendered at 160x120; visib_fract from renders."""
    from posekit.data.render import render_scene

    meshes = {1: irregular_mesh(), 2: box_mesh()}
    half_turns = [pose(rot(ax, np.pi), np.zeros(3)) for ax in np.eye(3)]
    infos = {1: bop.ModelInfo.from_mesh(meshes[1]),
             2: bop.ModelInfo.from_mesh(meshes[2], symmetries_discrete=half_turns)}
    for obj_id, mesh in meshes.items():
        bop.write_model(root / "models" / bop.model_filename(obj_id), mesh)
    bop.write_models_info(root / "models" / "models_info.json", infos)
    bop.write_camera(root / "camera.json", K, W, H)
    scene_dir = root / "test" / "000001"
    scene_gt, gt_info, cams = {}, {}, {}
    for im_id, objs in scene.items():
        res = render_scene([meshes[o] for o, _ in objs], [T for _, T in objs], K, W, H, full_masks=True)
        bop.write_depth(scene_dir / "depth" / f"{im_id:06d}.png", res.depth)
        scene_gt[im_id] = [bop.BopGt(o, T) for o, T in objs]
        infos_im = []
        for i in range(len(objs)):
            n_all = int(res.full_masks[i].sum())
            n_vis = int(res.visible_mask(i).sum())
            infos_im.append(bop.BopGtInfo([0, 0, 0, 0], [0, 0, 0, 0], n_all, n_all, n_vis, n_vis / n_all))
        gt_info[im_id] = infos_im
        cams[im_id] = bop.SceneCamera(K)
    bop.write_scene_gt(scene_dir / "scene_gt.json", scene_gt)
    bop.write_scene_gt_info(scene_dir / "scene_gt_info.json", gt_info)
    bop.write_scene_camera(scene_dir / "scene_camera.json", cams)
    # Like bop19 targets but counting every instance, visible or not.
    bop.write_test_targets(root / "test_targets_bop19.json", bop.targets_from_gt(1, scene_gt))
    return root


@pytest.fixture(scope="module")
def tiny_bop(tmp_path_factory):
    return write_tiny_bop(tmp_path_factory.mktemp("tiny_bop"), SCENE)


@pytest.fixture(scope="module")
def occluded_bop(tmp_path_factory):
    return write_tiny_bop(tmp_path_factory.mktemp("occluded_bop"), OCCLUDED_SCENE)


def gt_estimates(scene=SCENE, score=1.0):
    return [bop.PoseEstimate(1, im_id, o, score, T[:3, :3].copy(), T[:3, 3].copy())
            for im_id, objs in scene.items() for o, T in objs]


def far_off(est: bop.PoseEstimate) -> bop.PoseEstimate:
    """Off by more than every threshold: 90 degrees about a non-symmetry axis and 20 cm aside."""
    R = est.R @ rot([1, 1, 1], np.pi / 2)
    return bop.PoseEstimate(est.scene_id, est.im_id, est.obj_id, est.score, R, est.t + [0.2, 0.0, 0.05])


def test_all_visible_enough(tiny_bop):
    ds = bop.BopDataset(tiny_bop)
    info = ds.load_image(1, 0, rgb=False).gt_info
    assert all(i.visib_fract >= 0.1 for i in info)


def test_gt_as_estimates_scores_one_everywhere(tiny_bop):
    result = bs.evaluate_bop(bop.BopDataset(tiny_bop), gt_estimates(), progress=False)
    assert set(result) == {"dataset", "n_targets", "overall", "per_object"}
    assert result["n_targets"] == 4
    assert set(result["per_object"]) == {"1", "2"}
    for scores in [result["overall"], *result["per_object"].values()]:
        assert set(scores) == set(bs.SCORE_KEYS)
        for key, value in scores.items():
            assert value == pytest.approx(1.0), key
    json.dumps(result)  # JSON-ready


def test_half_far_off_scores_half(tiny_bop):
    ests = gt_estimates()
    # One of each object's two targets is far off.
    ests[0] = far_off(ests[0])  # image 0, object 1
    ests[2] = far_off(ests[2])  # image 0, second instance of object 2
    result = bs.evaluate_bop(bop.BopDataset(tiny_bop), ests, progress=False)
    for scores in [result["overall"], *result["per_object"].values()]:
        for key, value in scores.items():
            assert value == pytest.approx(0.5), key


def test_missing_estimates_count_as_failures(tiny_bop):
    ests = [e for e in gt_estimates() if e.im_id != 1]  # nothing for image 1 (object 1)
    result = bs.evaluate_bop(bop.BopDataset(tiny_bop), ests, progress=False)
    assert result["n_targets"] == 4
    assert result["overall"]["ar"] == pytest.approx(0.75)
    assert result["per_object"]["1"]["ar"] == pytest.approx(0.5)
    assert result["per_object"]["2"]["ar"] == pytest.approx(1.0)


def test_duplicate_instances_top_n_and_order(tiny_bop):
    ds = bop.BopDataset(tiny_bop)
    gts = gt_estimates()
    a, b = gts[1], gts[2]  # the two instances of object 2 in image 0
    # Swapped order and scores: each estimate still finds its own instance.
    swapped = [gts[0], gts[3],
               bop.PoseEstimate(1, 0, 2, 0.9, b.R, b.t), bop.PoseEstimate(1, 0, 2, 0.8, a.R, a.t)]
    r = bs.evaluate_bop(ds, swapped, progress=False)
    assert r["per_object"]["2"]["ar"] == pytest.approx(1.0)
    # Three estimates for two instances: only the two best-scored count (inst_count = 2),
    # so a wrong estimate with the top score pushes out a correct one.
    bad = far_off(bop.PoseEstimate(1, 0, 2, 0.99, a.R, a.t))
    three = [gts[0], gts[3], bad, bop.PoseEstimate(1, 0, 2, 0.9, a.R, a.t),
             bop.PoseEstimate(1, 0, 2, 0.8, b.R, b.t)]
    r = bs.evaluate_bop(ds, three, progress=False)
    assert r["per_object"]["2"]["ar"] == pytest.approx(0.5)
    # Two estimates of the same instance: only one can match it.
    dup = [gts[0], gts[3], bop.PoseEstimate(1, 0, 2, 0.9, a.R, a.t), bop.PoseEstimate(1, 0, 2, 0.8, a.R, a.t)]
    r = bs.evaluate_bop(ds, dup, progress=False)
    assert r["per_object"]["2"]["ar"] == pytest.approx(0.5)


def test_symmetric_flip_passes_bop19_and_adi_but_not_add_or_rotation(tiny_bop):
    ests = gt_estimates()
    for i in (1, 2):  # both instances of the box, turned by its half-turn symmetry about z
        e = ests[i]
        ests[i] = bop.PoseEstimate(1, 0, 2, 1.0, e.R @ rot([0, 0, 1], np.pi), e.t)
    s = bs.evaluate_bop(bop.BopDataset(tiny_bop), ests, progress=False)["per_object"]["2"]
    assert s["ar_vsd"] == pytest.approx(1.0) and s["ar_mssd"] == 1.0 and s["ar_mspd"] == 1.0
    assert s["adi_recall"] == 1.0 and s["add_s_recall"] == 1.0
    assert s["add_recall"] == 0.0 and s["rot_recall_5deg"] == 0.0 and s["trans_recall_1cm"] == 1.0


def test_small_translation_errors_match_thresholds(tiny_bop):
    ests = gt_estimates()
    # 8 mm along the optical axis: below 1 cm; above 0.1 d for the small irregular object?
    d1 = bop.BopDataset(tiny_bop).models_info[1].diameter
    shift = np.array([0.0, 0.0, 0.008])
    ests = [bop.PoseEstimate(e.scene_id, e.im_id, e.obj_id, e.score, e.R, e.t + shift) if e.obj_id == 1 else e
            for e in ests]
    s = bs.evaluate_bop(bop.BopDataset(tiny_bop), ests, progress=False)["per_object"]["1"]
    assert s["trans_recall_1cm"] == 1.0 and s["rot_recall_5deg"] == 1.0
    # ADD = 8 mm exactly; MSSD = 8 mm: pass thresholds k * d > 8 mm.
    expected_add = 1.0 if 0.008 < 0.1 * d1 else 0.0
    assert s["add_recall"] == expected_add
    expected_mssd = np.mean([0.008 / d1 < th for th in bs.BopEvalConfig().mssd_thresholds])
    assert s["ar_mssd"] == pytest.approx(expected_mssd)


def test_targets_argument(tiny_bop):
    ds = bop.BopDataset(tiny_bop)
    only_image_1 = [t for t in ds.targets() if t.im_id == 1]
    r = bs.evaluate_bop(ds, gt_estimates(), targets=only_image_1, progress=False)
    assert r["n_targets"] == 1 and set(r["per_object"]) == {"1"}


def test_instances_below_ten_percent_visible_are_not_targets(occluded_bop):
    ds = bop.BopDataset(occluded_bop)
    visib = [i.visib_fract for i in ds.load_image(1, 0, rgb=False).gt_info]
    assert visib[0] == 1.0 and visib[1] < 0.1 and 0.1 < visib[2] < 0.9
    r = bs.evaluate_bop(ds, gt_estimates(OCCLUDED_SCENE), progress=False)
    assert r["n_targets"] == 2  # the hidden box is neither counted nor matched
    assert r["overall"]["ar"] == pytest.approx(1.0)
    assert r["per_object"]["2"]["ar_vsd"] == pytest.approx(1.0)  # partly occluded, still exact
    # Only an estimate of the hidden box: nothing to match.
    hidden_only = gt_estimates(OCCLUDED_SCENE)[:2]
    r = bs.evaluate_bop(ds, hidden_only, progress=False)
    assert r["per_object"]["2"]["ar"] == 0.0
    # The toolkit's visib_gt_min = -1 mode: the inst_count most visible instances count.
    r = bs.evaluate_bop(ds, gt_estimates(OCCLUDED_SCENE), progress=False,
                        config=bs.BopEvalConfig(visib_gt_min=-1))
    assert r["n_targets"] == 3
    # VSD of the hidden box's exact pose: its GT-visible mask is empty, so only the
    # estimate's own visible pixels count and they are missing too -> VSD 1 (not matched).
    assert r["per_object"]["2"]["ar_vsd"] == pytest.approx(0.5)


def test_cli_eval_bop_prints_table_and_writes_json(tiny_bop, tmp_path, capsys):
    import argparse

    from posekit.cli import eval as eval_cli

    ests = gt_estimates()
    ests[0] = far_off(ests[0])
    csv = bop.write_results_csv(tmp_path / "method_tiny-test.csv", ests)
    parser = argparse.ArgumentParser(prog="posekit")
    eval_cli.register(parser.add_subparsers(dest="command"))
    out_json = tmp_path / "out" / "scores.json"
    args = parser.parse_args(["eval", "bop", "--dataset", str(tiny_bop), "--results", str(csv),
                              "--json", str(out_json), "--no-progress"])
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in printed.splitlines() if line.strip()}
    assert rows["all"][1] == "4" and float(rows["all"][2]) == pytest.approx(0.75)
    assert rows["1"][1] == "2" and float(rows["1"][2]) == pytest.approx(0.5)
    written = json.loads(out_json.read_text())
    assert written == bs.evaluate_bop(bop.BopDataset(tiny_bop), bop.read_results_csv(csv), progress=False)
    # `posekit eval` alone prints its help and fails.
    args = parser.parse_args(["eval"])
    assert args.func(args) == 2
