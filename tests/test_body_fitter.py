"""BodyFitter API, CLI on files, bad input, optimisation baseline, benchmark JSON and demo (shipped weights)."""

import json

import numpy as np
import pytest

from posekit.body.clouds import make_body_batch
from posekit.body.fitter import BodyFitter
from posekit.errors import BadInputError, CorruptFileError
from posekit.eval.body_metrics import mpjpe_cm, part_accuracy, v2v_cm


@pytest.fixture(scope="module")
def fitter():
    return BodyFitter.from_pretrained("body-default")


@pytest.fixture(scope="module")
def sample(fitter):
    return make_body_batch(fitter.body, np.random.default_rng(11), 1, 2048, "common", rotate=True)


def test_fit_returns_a_complete_result(fitter, sample):
    points = sample.points[0].numpy()
    fit = fitter.fit(points)
    assert fit.rotations.shape == (24, 3, 3) and fit.axis_angle.shape == (24, 3)
    np.testing.assert_allclose(fit.rotations @ fit.rotations.transpose(0, 2, 1), np.broadcast_to(np.eye(3), (24, 3, 3)),
                               atol=1e-4)
    assert fit.joints.shape == (24, 3) and fit.vertices.shape == (fitter.body.n_vertices, 3)
    assert fit.betas.shape == (10,) and fit.translation.shape == (3,)
    assert fit.part_labels.shape == (2048,) and 0 <= fit.confidence <= 1
    assert fit.timing_ms["network"] > 0
    # The fit overlays the input: translation is predicted (pelvis within 15 cm, surface close).
    assert np.linalg.norm(fit.joints[0] - sample.joints[0, 0].numpy()) < 0.15
    assert fit.residual_m < 0.06
    d = fit.to_dict()
    assert json.loads(json.dumps(d))["joint_names"][0] == "pelvis" and len(d["rotations"]) == 24


def test_refine_lowers_the_surface_distance(fitter, sample):
    from posekit.body.optimization import OptimizationSettings

    points = sample.points[0].numpy()
    fit = fitter.fit(points)
    refined = fitter.refine(points, fit, settings=OptimizationSettings(iterations=45))
    assert refined.residual_m < fit.residual_m
    assert v2v_cm(refined.vertices, sample.vertices[0].numpy()) < v2v_cm(fit.vertices, sample.vertices[0].numpy()) + 1.0


def test_random_rotations_move_the_predicted_root_rotation(fitter, sample):
    """Equivariance beyond the 12 anchors is learned: random SO(3) rotations are followed within 20 deg (shipped: ~7 deg)."""
    from posekit.geometry.rigid_np import random_rotation_np

    points = sample.points[0].numpy()
    base = fitter.fit(points)
    rng = np.random.default_rng(2)
    errors = []
    for _ in range(4):
        R = random_rotation_np(rng)
        fit = fitter.fit(points @ R.T)
        delta = (R @ base.global_rotations[0]).T @ fit.global_rotations[0]
        errors.append(np.degrees(np.arccos(np.clip((np.trace(delta) - 1) / 2, -1, 1))))
    assert np.median(errors) < 20.0, errors


def test_bad_input_is_reported_clearly(fitter, sample):
    points = sample.points[0].numpy()
    with pytest.raises(BadInputError, match="at least"):
        fitter.fit(points[:20])
    with pytest.raises(BadInputError, match="millimetres"):
        fitter.fit(points * 1000.0)
    with pytest.raises(BadInputError):
        fitter.fit(points[:, :2])
    with_nan = points.copy()
    with_nan[:100] = np.nan
    fit = fitter.fit(with_nan)
    assert fit.dropped_invalid == 100 and fit.part_labels.shape == (1948,)
    with pytest.raises(BadInputError, match="valid points"):
        fitter.fit(np.full((500, 3), np.nan))


def test_a_cloud_that_is_not_a_person_gets_low_confidence(fitter, sample):
    rng = np.random.default_rng(0)
    person = fitter.fit(sample.points[0].numpy(), viewpoint=None)  # a full cloud: no camera
    box = rng.uniform(-0.5, 0.5, size=(3000, 3)) * [1.0, 0.6, 0.8]
    box[np.arange(3000), rng.integers(0, 3, 3000)] = np.sign(rng.normal(size=3000)) * 0.5  # on the faces
    not_person = fitter.fit(box)
    # The network's own fit of a person is a few cm off everywhere (confidence 0.2-0.5, flagged
    # until refined); a box is explained by no body (0.002 here).
    assert not_person.confidence < 0.1 < person.confidence and not_person.low_confidence


def test_wrong_body_model_file_is_a_clear_error(tmp_path):
    np.savez(tmp_path / "bad.npz", v_template=np.zeros((10, 3)))
    with pytest.raises(CorruptFileError, match="missing key"):
        BodyFitter.from_pretrained("body-default", body_model=tmp_path / "bad.npz")


def test_optimisation_baseline_fits(fitter, sample):
    from posekit.body.optimization import OptimizationSettings

    points = sample.points[0].numpy()
    fit = fitter.fit_by_optimization(points, OptimizationSettings(iterations=20, n_inits=4, keep=1, sweeps=1,
                                                                  random_candidates=2))
    assert fit.method == "optimization" and fit.residual_m < 0.1
    assert np.isfinite(fit.vertices).all()


def test_metrics_worked_example():
    a = np.zeros((4, 3))
    b = a + [0.03, 0.04, 0.0]  # 5 cm everywhere
    assert v2v_cm(a, b) == pytest.approx(5.0) and mpjpe_cm(a, b) == pytest.approx(5.0)
    assert part_accuracy([1, 2, 3, 4], [1, 2, 0, 4]) == 0.75


def test_fit_body_cli_on_a_file(tmp_path, sample):
    from posekit.cli import main
    from posekit.io.pointcloud import PointCloud, write_point_cloud

    scan = write_point_cloud(PointCloud(sample.points[0].numpy()), tmp_path / "scan.ply")
    rc = main(["fit-body", str(scan), "--out", str(tmp_path / "fit.ply"), "--png", str(tmp_path / "overlay.png"),
               "--json", str(tmp_path / "fit.json")])
    assert rc == 0
    assert (tmp_path / "fit.ply").stat().st_size > 10000 and (tmp_path / "overlay.png").stat().st_size > 10000
    d = json.loads((tmp_path / "fit.json").read_text())
    assert np.asarray(d["rotations"]).shape == (24, 3, 3) and len(d["part_labels"]) == 2048
    assert main(["fit-body", str(tmp_path / "absent.ply")]) == 1


def test_make_model_cli_and_fitting_with_another_model_file(tmp_path, sample):
    from posekit.body.model import load_body_model
    from posekit.cli import main

    assert main(["body", "make-model", "--out", str(tmp_path / "b.npz"), "--voxel", "0.035"]) == 0
    other = load_body_model(tmp_path / "b.npz")
    assert 1000 < other.n_vertices < 4000
    fit = BodyFitter.from_pretrained("body-default", body_model=tmp_path / "b.npz").fit(sample.points[0].numpy())
    assert fit.vertices.shape == (other.n_vertices, 3) and fit.faces.max() == other.n_vertices - 1


@pytest.mark.slow
def test_benchmark_json_has_the_issue_keys():
    from posekit.bench.body import format_table, run_body_benchmark
    from posekit.body.optimization import OptimizationSettings

    tiny = OptimizationSettings(iterations=3, n_inits=2, keep=1, sweeps=0)
    result = json.loads(json.dumps(run_body_benchmark(samples=1, quick=True, optimization=tiny, refine=tiny,
                                                      sweep=1, kinect=1)))
    table = format_table(result)
    assert "V2V unseen rotated" in table and "V2V kinect" in table and "flip rate" in table
    assert result["benchmark"] == "body" and set(result["methods"]) == {"posekit", "posekit+refine", "optimization"}
    assert result["settings"]["optimization"]["n_inits"] == 2 and result["settings"]["kinect"]["clouds"] == 1
    keys = {"v2v_cm_common", "v2v_cm_unseen", "v2v_cm_unseen_rotated", "v2v_cm_unseen_partial", "v2v_cm_kinect",
            "mpjpe_cm_unseen", "part_acc_unseen", "flip_rate", "flip_n", "confidence_auroc", "good_fits",
            "latency_ms_median", "n_samples"}
    for name, m in result["methods"].items():
        sweep = name != "optimization"  # the flip sweep runs the network and the refinement
        assert set(m) == keys | ({"v2v_cm_sweep"} if sweep else set())
        assert m["n_samples"] == 5 + sweep and m["flip_n"] == 2 + sweep and 0 <= m["part_acc_unseen"] <= 1
        assert 0 <= m["flip_rate"] <= 1
        assert m["confidence_auroc"] is None or 0 <= m["confidence_auroc"] <= 1
    assert result["methods"]["posekit"]["latency_ms_median"] < result["methods"]["optimization"]["latency_ms_median"]


@pytest.mark.slow
def test_demo_writes_a_picture(tmp_path):
    import re

    from posekit.body.demo import run_demo

    lines = run_demo(tmp_path)
    assert (tmp_path / "body_fit.png").stat().st_size > 10000
    refine = next(line for line in lines if "+ refine" in line)
    v2v = float(re.search(r"V2V ([0-9.]+) cm", refine).group(1))
    assert "confidence" in refine
    if v2v > 10.0:  # a fit this far off must be flagged to the person watching the demo
        assert "LOW CONFIDENCE" in refine


def test_a_low_confidence_refinement_is_retried_from_its_flips(fitter, sample):
    """A start turned 180 deg about the body's long axis, with a turn penalty that forbids the
    refinement to turn it back: the fit stays back to front and has low confidence; the retry
    from its three flips turns it back (one of them is the true orientation) and keeps it, as
    it explains more of the cloud."""
    from dataclasses import replace

    import torch

    from posekit.body.optimization import FLIPS, OptimizationSettings, set_root
    from posekit.eval.body_metrics import orientation_error_deg

    points, truth_j = sample.points[0].numpy(), sample.joints[0].numpy()
    L = sample.pose[:1]
    R = (L[0, 0] @ torch.as_tensor(FLIPS[1], dtype=torch.float32) @ L[0, 0].T)[None]
    pelvis = sample.joints[0, 0]
    L2, t2 = set_root(fitter.body, L, sample.betas[:1], sample.transl[:1], R, (pelvis - R[0] @ pelvis)[None])
    start = replace(fitter.fit(points), rotations=L2[0].numpy(), betas=sample.betas[0].numpy(),
                    translation=t2[0].numpy())
    s = OptimizationSettings(keep=1, sweeps=0, iterations=10, turn_penalty=10.0, upright_headings=0,
                             retry_wide=False)  # the flip retry alone
    stuck = fitter.refine(points, start, settings=replace(s, retry_flips=False), viewpoint=None)
    assert orientation_error_deg(stuck.joints, truth_j) > 90 and stuck.low_confidence
    retried = fitter.refine(points, start, settings=s, viewpoint=None)
    assert orientation_error_deg(retried.joints, truth_j) < 20
    assert retried.terms["retried_flip"] == 1.0 and retried.confidence > stuck.confidence


def test_a_low_confidence_refinement_is_retried_with_a_wider_search(fitter, sample):
    """A start with the left arm and the left leg turned 1 rad off the truth and a refinement
    without a joint search: the fit keeps both limbs off and has low confidence; the wide retry
    (a joint search from the start and from the fit) puts them back and is kept, as it explains
    more of the cloud."""
    from dataclasses import replace

    import torch

    from posekit.body.optimization import OptimizationSettings
    from posekit.geometry.so3 import so3_exp

    points, truth_v = sample.points[0].numpy(), sample.vertices[0].numpy()
    L = sample.pose[0].clone()
    for joint, axis in ((16, 2), (1, 0)):  # left shoulder about z, left hip about x
        w = torch.zeros(1, 3)
        w[0, axis] = 1.0
        L[joint] = L[joint] @ so3_exp(w)[0]
    start = replace(fitter.fit(points), rotations=L.numpy(), betas=sample.betas[0].numpy(),
                    translation=sample.transl[0].numpy())
    s = OptimizationSettings(keep=1, sweeps=0, iterations=10, upright_headings=0, retry_flips=False, retry_sweeps=1,
                             retry_random_candidates=4)
    stuck = fitter.refine(points, start, settings=replace(s, retry_wide=False), viewpoint=None)
    assert v2v_cm(stuck.vertices, truth_v) > 6.0 and stuck.low_confidence
    retried = fitter.refine(points, start, settings=s, viewpoint=None)
    assert v2v_cm(retried.vertices, truth_v) < 4.0
    assert retried.terms["retried_wide"] == 1.0 and retried.confidence > stuck.confidence
    # A candidate must gain retry_min_gain of confidence to be kept.
    strict = fitter.refine(points, start, settings=replace(s, retry_min_gain=1.0), viewpoint=None)
    assert "retried_wide" not in strict.terms and v2v_cm(strict.vertices, truth_v) > 6.0


def test_the_wide_retry_leaves_out_single_views_without_a_camera(fitter, monkeypatch):
    """One view of a person with no camera is always flagged (unknown side); the wide retry,
    which cannot tell its front from its back, is not run on it (it is on a full cloud)."""
    from dataclasses import replace

    from posekit.body.optimization import OptimizationSettings

    calls = []
    monkeypatch.setattr(fitter, "_retry_wide", lambda pts, start, out, *a: calls.append(len(pts)) or out)
    s = OptimizationSettings(keep=1, sweeps=0, iterations=5, upright_headings=0, retry_flips=False)
    for partial in (1.0, 0.0):
        cloud = make_body_batch(fitter.body, np.random.default_rng(5), 1, 2048, "common", rotate=False,
                                partial_fraction=partial)
        points = cloud.points[0].numpy()
        start = replace(fitter.fit(points, viewpoint=None), rotations=np.eye(3)[None].repeat(24, 0),
                        betas=cloud.betas[0].numpy(), translation=cloud.transl[0].numpy())  # a T-pose: off
        fit = fitter.refine(points, start, settings=s, viewpoint=None)
        assert fit.low_confidence and fit.terms["unknown_side"] == partial
        assert len(calls) == (0 if partial else 1)
