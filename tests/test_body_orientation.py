"""Orientation, free space, confidence flag, overlay frame, Kinect-like views and the new body metrics."""

import json

import numpy as np
import pytest
import torch
from body_helpers import turned_body

from posekit.body.clouds import make_kinect_batch
from posekit.body.model import load_body_model
from posekit.eval.body_metrics import auroc, flip_rate, orientation_error_deg


@pytest.fixture(scope="module")
def body():
    return load_body_model()


@pytest.fixture(scope="module")
def kinect(body):
    return make_kinect_batch(body, np.random.default_rng(5), 1, 2048, "unseen")


def test_kinect_view_is_a_camera_frame_single_view_without_floor(body, kinect):
    pts, verts = kinect.points[0], kinect.vertices[0]
    assert pts.shape == (2048, 3) and 1.2 < float(pts[:, 2].median()) < 4.0  # in front of the camera
    out = body(kinect.pose[:1], kinect.betas[:1], kinect.transl[:1])
    torch.testing.assert_close(out.vertices[0], verts, atol=1e-4, rtol=0)  # ground truth is consistent
    d = torch.cdist(pts, verts).amin(-1)
    assert float(d.median()) < 0.03 and float((d < 0.08).float().mean()) > 0.97  # on the body, not the floor
    # One side only: much of the surface has no point near it.
    covered = float((torch.cdist(verts, pts).amin(-1) < 0.03).float().mean())
    assert 0.15 < covered < 0.65


def test_free_space_term_penalises_a_flipped_body_that_the_points_do_not(body, kinect):
    from posekit.body.energy import BodyEnergy
    from posekit.body.optimization import FLIPS

    energy = BodyEnergy(body, kinect.points[0], viewpoint=np.zeros(3))
    no_view = BodyEnergy(body, kinect.points[0], viewpoint=None)
    truth = energy.terms(kinect.vertices[:1], kinect.pose[:1], kinect.betas[:1])
    assert float(no_view.terms(kinect.vertices[:1])["free_space"][0]) == 0.0
    for flip in FLIPS:
        L, t = turned_body(body, kinect, 0, flip)
        terms = energy.terms(body(L, kinect.betas[:1], t).vertices, L, kinect.betas[:1])
        assert float(terms["free_space"][0]) > float(truth["free_space"][0]) + 0.2
        assert float(terms["energy"][0]) > float(truth["energy"][0])


@pytest.mark.parametrize("flip_index", [0, 2])
def test_orientation_check_turns_an_upside_down_body_back(body, kinect, flip_index):
    from posekit.body.optimization import FLIPS, check_orientation

    L, t = turned_body(body, kinect, 0, FLIPS[flip_index])  # head down
    out = body(L, kinect.betas[:1], t)
    assert orientation_error_deg(out.joints[0].numpy(), kinect.joints[0].numpy()) > 150
    local, transl, info = check_orientation(body, kinect.points[0], L[0], kinect.betas[0], t[0],
                                            viewpoint=np.zeros(3), group="flips")
    fixed = body(local[None], kinect.betas[:1], transl[None])
    assert orientation_error_deg(fixed.joints[0].numpy(), kinect.joints[0].numpy()) < 30
    assert info["margin"] > 0 and info["candidates"] == 4


def test_up_direction_rejects_head_down_candidates_without_a_camera(body, kinect):
    """Without a viewpoint a full cloud cannot tell; ``up`` decides."""
    from posekit.body.clouds import make_body_batch
    from posekit.body.optimization import FLIPS, check_orientation

    full = make_body_batch(body, np.random.default_rng(3), 1, 1024, "common", rotate=False)
    L, t = turned_body(body, full, 0, FLIPS[0])
    local, transl, _ = check_orientation(body, full.points[0], L[0], full.betas[0], t[0], viewpoint=None,
                                         group="flips", up=np.array([0.0, 1.0, 0.0]))
    out = body(local[None], full.betas[:1], transl[None])
    assert float(out.joints[0, 15, 1] - out.joints[0, 0, 1]) > 0.3  # head above pelvis


def test_joint_limit_prior_and_euler_solutions():
    from posekit.body.energy import JointLimitPrior, euler_zyx
    from posekit.body.poses import euler_to_matrix, joint_limits

    rng = np.random.default_rng(0)
    lo, hi = joint_limits("full")
    angles = rng.uniform(lo, hi, size=(8, 24, 3))
    R = torch.as_tensor(euler_to_matrix(angles), dtype=torch.float32)
    for sol in euler_zyx(R):  # both solutions give back the same rotation
        back = torch.as_tensor(euler_to_matrix(sol.double().numpy()), dtype=torch.float32)
        torch.testing.assert_close(back, R, atol=1e-4, rtol=0)
    prior = JointLimitPrior("cpu")
    assert float(prior(R).max()) < 1e-6  # within the limits: no penalty (elbows bend past 90 deg too)
    bent = R.clone()
    bent[:, 4] = torch.as_tensor(euler_to_matrix(np.array([-1.2, 0.0, 0.0])), dtype=torch.float32)  # knee backwards
    assert float(prior(bent).min()) > 0.5


def test_joint_search_lowers_the_energy_of_a_perturbed_pose(body, kinect):
    from posekit.body.energy import BodyEnergy
    from posekit.body.optimization import OptimizationSettings, joint_search
    from posekit.geometry.so3 import so3_exp

    energy = BodyEnergy(body, kinect.points[0], viewpoint=np.zeros(3))
    L = kinect.pose[0].clone()
    for j in (4, 16, 18):  # knee, shoulder, elbow turned away
        L[j] = L[j] @ so3_exp(torch.tensor([0.9, 0.4, 0.0]))
    before = energy.terms(energy.pose(body, L[None], kinect.betas[:1], kinect.transl[:1]).vertices, L[None])["energy"]
    s = OptimizationSettings(sweeps=1, random_candidates=4)
    L2, t2 = joint_search(body, energy, L, kinect.betas[0], kinect.transl[0], s, np.random.default_rng(0))
    after = energy.terms(energy.pose(body, L2[None], kinect.betas[:1], t2[None]).vertices, L2[None])["energy"]
    assert float(after) < float(before) - 0.01


def test_low_confidence_is_flagged_in_the_api_and_warned_in_the_cli(tmp_path, capsys):
    from posekit.body.fitter import LOW_CONFIDENCE, BodyFitter
    from posekit.cli import main
    from posekit.io.pointcloud import PointCloud, write_point_cloud

    rng = np.random.default_rng(0)
    box = rng.uniform(-0.5, 0.5, size=(3000, 3)) * [1.0, 0.6, 0.8]
    box[np.arange(3000), rng.integers(0, 3, 3000)] = np.sign(rng.normal(size=3000)) * 0.5
    fit = BodyFitter.from_pretrained("body-default").fit(box)
    assert fit.confidence < LOW_CONFIDENCE and fit.low_confidence and fit.to_dict()["low_confidence"] is True
    path = write_point_cloud(PointCloud(box.astype(np.float32)), tmp_path / "box.ply")
    assert main(["fit-body", str(path), "--json", str(tmp_path / "fit.json")]) == 0
    assert "warning: low confidence" in capsys.readouterr().out
    assert json.loads((tmp_path / "fit.json").read_text())["low_confidence"] is True
    assert main(["fit-body", str(path), "--up", "0,1"]) == 1  # a clear error, not a crash


def test_overlay_is_drawn_in_the_input_frame(tmp_path):
    """The picture must not depend on the fit's own rotation: a flipped fit looks flipped."""
    from posekit.body.fitter import BodyFitter, draw_body_overlay, overlay_axes

    np.testing.assert_allclose(overlay_axes(camera_frame=True), np.diag([1.0, -1.0, -1.0]))
    up = np.array([0.0, 0.0, 2.0])
    axes = overlay_axes(up)
    np.testing.assert_allclose(axes[1], [0, 0, 1]) and np.testing.assert_allclose(axes @ axes.T, np.eye(3), atol=1e-12)
    fitter = BodyFitter.from_pretrained("body-default")
    pts = np.random.default_rng(0).normal(size=(400, 3)).astype(np.float32) * [0.2, 0.5, 0.1]
    fit = fitter.fit(pts, viewpoint=None)
    a = draw_body_overlay(pts, fit, tmp_path / "a.png", title="t")
    fit.global_rotations = fit.global_rotations[:, ::-1].copy()  # a different frame for the fitted body
    b = draw_body_overlay(pts, fit, tmp_path / "b.png", title="t")
    assert a.read_bytes() == b.read_bytes()


def test_orientation_error_flip_rate_and_auroc_worked_examples():
    from posekit.body.skeleton import REST_JOINTS
    from posekit.geometry.rigid_np import rotation_about_axis

    J = REST_JOINTS.copy()
    R = rotation_about_axis(np.array([1.0, 0.0, 0.0]), np.radians(120))
    assert orientation_error_deg(J @ R.T + [1, 2, 3], J) == pytest.approx(120, abs=1e-6)
    assert orientation_error_deg(J, J) == pytest.approx(0, abs=1e-4)
    assert flip_rate([10, 100, 170, 30]) == 0.5
    assert auroc([0.9, 0.8, 0.3, 0.1], [True, True, False, False]) == 1.0
    assert auroc([0.5, 0.5], [True, False]) == 0.5
    assert auroc([0.1, 0.9, 0.5], [True, False, False]) == 0.0
    assert auroc([0.2, 0.3], [True, True]) is None
