"""One home for the object engine's settings: the API, the CLI and the ROS node run what the
model card measured (the weights' ``inference`` config) unless told otherwise."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from posekit.registration.estimator import InferenceConfig, ObjectPoseEstimator


def _settings(est: ObjectPoseEstimator) -> dict:
    return {"chains": est.num_hypotheses, "steps": None if est.schedule is None else est.schedule.steps,
            "icp": est.refine_icp, "coarse": est.coarse_rotations, "icp_candidates": est.icp_candidates,
            "match_iters": est.match_iters, "flips": est.inference.flip_candidates}


@pytest.fixture(scope="module")
def api(test_device):
    return ObjectPoseEstimator.from_pretrained("registration-procedural", device=test_device)


def test_api_uses_the_weights_inference_settings(api):
    inference = InferenceConfig(**api.config.get("inference", {}))
    assert api.num_hypotheses == inference.anchors
    assert api.schedule.steps == inference.sample_steps
    assert api.refine_icp == inference.refine_icp


def test_cli_default_is_the_api_default(api):
    from posekit.cli.registration import estimator_from_args, register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["register", "--model", "m.ply", "--observed", "o.ply"])
    assert _settings(estimator_from_args(args)) == _settings(api)
    args = parser.parse_args(["register", "--model", "m.ply", "--observed", "o.ply", "--hypotheses", "6", "--no-icp"])
    cli = estimator_from_args(args)
    assert (cli.num_hypotheses, cli.refine_icp) == (6, False)


def test_ros_node_default_is_the_api_default(api):
    pytest.importorskip("rclpy")
    from ros_nodes import object_processing as op
    from ros_nodes.parameters import COMMON_PARAMETERS, read_parameters_file, validate_parameters

    specs = (*COMMON_PARAMETERS, *op.PARAMETERS)
    pipeline = op.ObjectPosePipeline(validate_parameters(specs, {}))
    assert _settings(pipeline.estimator) == _settings(api)
    # the shipped YAML of the node says the same
    from pathlib import Path

    yaml_params = read_parameters_file(Path(__file__).parents[1] / "configs/ros/object_pose_node.yaml",
                                       "object_pose_node")
    pipeline = op.ObjectPosePipeline(validate_parameters(specs, yaml_params))
    assert _settings(pipeline.estimator) == _settings(api)


def test_result_says_where_the_time_went(api):
    from posekit.data.meshes import procedural_mesh

    mesh, _ = procedural_mesh(5)
    pts = mesh.sample_points(800, seed=1)
    pts = pts[pts[:, 2] < 0] + [0.0, 0.0, 0.7]  # one side, in front of the camera
    result = api.estimate(api.prepare_model(mesh), pts)
    assert result.success
    stages = {"inputs", "coarse_search", "chains", "scoring", "refinement"}
    assert stages <= set(result.stage_ms) <= stages | {"wide_search"}  # the last resort below wide_below
    assert all(v >= 0 for v in result.stage_ms.values())
    assert sum(result.stage_ms.values()) <= result.time_ms + 1.0


def test_start_rotations_prior_seeds_the_chains(api):
    """A prior (e.g. from the view engine) replaces the coarse search: one chain from the true
    rotation finds the pose; one from a wrong rotation (and no ICP) does not, unless its low score
    sends it on to the depth-only search (``retry_below``)."""
    import dataclasses

    import numpy as np

    from posekit.data.meshes import procedural_mesh
    from posekit.errors import BadInputError
    from posekit.geometry.rigid_np import make_pose, rotation_about_axis

    mesh, info = procedural_mesh(77, family="box", diameter_range=(0.12, 0.14))
    R = rotation_about_axis([0.4, 1.0, -0.2], 2.0)
    T = make_pose(R, np.array([0.0, 0.0, 0.7]))
    pts, nrm = mesh.sample_points(3000, seed=3, return_normals=True)
    cam = pts @ R.T + T[:3, 3]
    seen = cam[((nrm @ R.T) * cam).sum(1) < 0]
    model = api.prepare_model(mesh)
    no_icp = ObjectPoseEstimator.from_pretrained("registration-procedural", refine_icp=False, device=api.device.type)
    right = no_icp.estimate(model, seen, start_rotations=R[None])
    bad_prior = (rotation_about_axis([1.0, 0.0, 0.0], 2.5) @ R)[None]
    recovered = no_icp.estimate(model, seen, start_rotations=bad_prior)  # doubtful: the depth search too
    no_icp.inference = dataclasses.replace(no_icp.inference, retry_below=0.0)  # trust the prior
    wrong = no_icp.estimate(model, seen, start_rotations=bad_prior)

    def rot_err(T_est):  # up to the box's symmetries (a square cross-section: 8 of them)
        return min(np.degrees(np.arccos(np.clip((np.trace(T_est[:3, :3].T @ R @ S[:3, :3]) - 1) / 2, -1, 1)))
                   for S in [np.eye(4), *info.symmetries_discrete])

    assert rot_err(right.T_cam_model) < 10 and np.linalg.norm(right.t - T[:3, 3]) < 0.01 * 2 + 0.1 * info.diameter
    assert rot_err(wrong.T_cam_model) > 30 and wrong.score < right.score
    assert rot_err(recovered.T_cam_model) < 10 and recovered.score > wrong.score
    with pytest.raises(BadInputError, match="start_rotations"):
        api.estimate(model, seen, start_rotations=np.zeros((1, 3, 3)))
    with pytest.raises(BadInputError, match="together"):
        api.estimate(model, seen, rgb=np.zeros((4, 4, 3), np.uint8))


def test_chains_from_a_prior_run_the_last_prior_steps_of_the_schedule(api, monkeypatch):
    """prior_steps: chains seeded by a prior call the denoiser that many times (the schedule's
    last steps); the depth's own search runs the whole schedule; 0 means the whole schedule."""
    from posekit.data.meshes import procedural_mesh
    from posekit.geometry.rigid_np import rotation_about_axis

    mesh, _ = procedural_mesh(78, family="box", diameter_range=(0.12, 0.14))
    R = rotation_about_axis([0.2, 1.0, 0.3], 1.1)
    cloud = mesh.sample_points(800, seed=4) @ R.T + np.array([0.0, 0.0, 0.7])
    model = api.prepare_model(mesh)
    calls = []
    match = api.net.match
    monkeypatch.setattr(api.net, "match", lambda *a, **k: calls.append(1) or match(*a, **k))
    monkeypatch.setattr(api.inference, "retry_below", 0.0)  # one pass each: no fallback search
    counts = {}
    for steps in (2, 0):
        monkeypatch.setattr(api.inference, "prior_steps", steps)
        calls.clear()
        api.estimate(model, cloud, start_rotations=R[None])
        counts[steps] = len(calls)
    calls.clear()
    api.estimate(model, cloud)
    assert counts == {2: 2, 0: api.schedule.steps} and len(calls) == api.schedule.steps


def test_chains_from_a_prior_send_prior_icp_candidates_hypotheses_to_icp(api, monkeypatch):
    """The prior's few chains are all refined (prior_icp_candidates); the depth's own search
    refines its icp_candidates best."""
    from posekit.data.meshes import procedural_mesh
    from posekit.geometry.rigid_np import rotation_about_axis

    mesh, _ = procedural_mesh(78, family="box", diameter_range=(0.12, 0.14))
    R = rotation_about_axis([0.2, 1.0, 0.3], 1.1)
    cloud = mesh.sample_points(800, seed=4) @ R.T + np.array([0.0, 0.0, 0.7])
    model = api.prepare_model(mesh)
    asked = []
    distinct = api._distinct
    monkeypatch.setattr(api, "_distinct", lambda T, order, k, **kw: asked.append(k) or distinct(T, order, k, **kw))
    monkeypatch.setattr(api.inference, "retry_below", 0.0)  # one pass each: no fallback search
    monkeypatch.setattr(api.inference, "prior_icp_candidates", 3)
    api.estimate(model, cloud, start_rotations=np.stack([R, R.T]))
    api.estimate(model, cloud)
    assert asked == [3, api.icp_candidates] and api.icp_candidates != 3


def test_a_huge_cloud_is_subsampled_before_anything_else(api):
    """Issue 14: a million-point cloud is cut to ``max_observed_points`` (seeded) before normals,
    scoring or search: the answer is the one for that subset, and n_observed says so."""
    import numpy as np

    from posekit.data.meshes import procedural_mesh

    mesh, _ = procedural_mesh(5)
    model = api.prepare_model(mesh)
    pts = mesh.sample_points(400_000, seed=1)
    pts = pts[pts[:, 2] < 0] + [0.0, 0.0, 0.7]
    limit = api.inference.max_observed_points
    assert len(pts) > limit
    big = api.estimate(model, pts)
    subset = pts[np.sort(np.random.default_rng(api.seed).choice(len(pts), limit, replace=False))]
    small = api.estimate(model, subset)
    assert big.success and big.n_observed <= limit
    np.testing.assert_allclose(big.T_cam_model, small.T_cam_model, atol=1e-9)


_REPRO = """
import sys
import numpy as np
from posekit.data.meshes import procedural_mesh
from posekit.registration.estimator import ObjectPoseEstimator
mesh, _ = procedural_mesh(11)
est = ObjectPoseEstimator.from_pretrained("registration-procedural")
pts = mesh.sample_points(61000, seed=4)
pts = pts[pts[:, 2] < 0] + [0.02, 0.0, 0.8] + np.random.default_rng(0).normal(0, 0.001, (1, 3))
np.save(sys.argv[1], est.estimate(est.prepare_model(mesh), pts).T_cam_model)
"""


@pytest.mark.slow
def test_same_input_and_seed_give_the_same_pose_in_fresh_processes(tmp_path):
    """Issue 14: 4 fresh processes once gave poses 10 cm apart (ICP on)."""
    import os
    import subprocess
    import sys

    import numpy as np

    script = tmp_path / "repro.py"
    script.write_text(_REPRO)
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    procs = [subprocess.Popen([sys.executable, str(script), str(tmp_path / f"T{i}.npy")], env=env) for i in range(2)]
    assert all(p.wait(timeout=600) == 0 for p in procs)
    T0, T1 = (np.load(tmp_path / f"T{i}.npy") for i in range(2))
    # open3d's ICP sums its normal equations in parallel (TBB), in an order that depends on the
    # machine's load: the last bits may differ, the pose may not (the issue saw 10 cm).
    np.testing.assert_allclose(T0, T1, rtol=0, atol=1e-9)


def test_a_doubtful_pruned_answer_is_retried_with_every_chain(api, monkeypatch):
    """retry_below: a pruned answer scoring below it is registered again without pruning and the
    better-scoring answer is kept; a confident one is returned as it is."""
    from posekit.registration.estimator import ObjectPoseResult

    calls = []

    def fake_once(model, pts, normals, view, return_hypotheses, start_rotations, prune, one_view=None):
        calls.append(prune)
        score = 0.1 if prune else 0.6
        return ObjectPoseResult(True, np.eye(4), score, stage_ms={"chains": 1.0})

    monkeypatch.setattr(api, "_register_once", fake_once)
    monkeypatch.setattr(api.inference, "retry_below", 0.2)
    monkeypatch.setattr(api.inference, "wide_starts", 0)  # the last resort has a test of its own
    out = api._register(None, None, None, None, False)
    assert calls == [True, False] and out.score == 0.6 and out.stage_ms["chains"] == 2.0
    calls.clear()
    monkeypatch.setattr(api.inference, "retry_below", 0.05)
    assert api._register(None, None, None, None, False).score == 0.1 and calls == [True]
    calls.clear()
    monkeypatch.setattr(api.inference, "prune_after", 0)  # nothing pruned: nothing to retry
    monkeypatch.setattr(api.inference, "retry_below", 0.2)
    assert api._register(None, None, None, None, False).score == 0.1 and calls == [True]


def test_a_doubtful_prior_answer_is_followed_by_the_depth_search(api, monkeypatch):
    """retry_below with a prior: chains from a prior whose answer scores below it are followed by
    the depth-only search (with its own retry), and the better answer is kept; a confident prior
    answer is returned as it is, without any search."""
    from posekit.registration.estimator import ObjectPoseResult

    calls = []
    prior = np.eye(3)[None]

    def fake_once(model, pts, normals, view, return_hypotheses, start_rotations, prune, one_view=None):
        calls.append(("prior" if start_rotations is not None else "search", prune))
        score = 0.3 if start_rotations is not None else 0.7
        return ObjectPoseResult(True, np.eye(4), score, stage_ms={"chains": 1.0})

    monkeypatch.setattr(api, "_register_once", fake_once)
    monkeypatch.setattr(api.inference, "retry_below", 0.45)
    monkeypatch.setattr(api.inference, "wide_starts", 0)  # the last resort has a test of its own
    out = api._register(None, None, None, None, False, prior)
    assert calls == [("prior", True), ("search", True)] and out.score == 0.7 and out.stage_ms["chains"] == 2.0
    calls.clear()
    monkeypatch.setattr(api.inference, "retry_below", 0.25)
    assert api._register(None, None, None, None, False, prior).score == 0.3 and calls == [("prior", True)]


@pytest.mark.parametrize("valid", [0, 10])
def test_an_object_without_depth_fails_with_a_reason_that_says_why(api, valid):
    """A mask on which the sensor measured (almost) nothing (too close for it, or a black or shiny
    surface): the failure says how much of the object has no depth and the depth around it."""
    from posekit.data.meshes import procedural_mesh

    depth = np.full((120, 160), 0.6, np.float32)
    mask = np.zeros((120, 160), bool)
    mask[30:90, 40:120] = True
    depth[mask] = 0.0
    depth[30, 40:40 + valid] = 0.25
    K = np.array([[150.0, 0, 79.5], [0, 150.0, 59.5], [0, 0, 1]])
    res = api.estimate(api.prepare_model(procedural_mesh(5)[0]), depth=depth, K=K, mask=mask)
    assert not res.success
    assert f"no depth on {100 - round(100 * valid / mask.sum())}% of its {mask.sum()} pixels" in res.reason
    assert "nearest depth around it is 0.60 m" in res.reason


def test_a_still_doubtful_answer_gets_the_wide_search(api, monkeypatch):
    """wide_below: an answer that still scores low after the retry (here a wrong pose put in its
    place) is followed by ICP from the best starts of a denser coarse search, which finds the
    pose; with wide_starts=0 the wrong answer stays; a confident answer skips it."""
    from posekit.data.meshes import procedural_mesh
    from posekit.geometry.rigid_np import make_pose, rotation_about_axis
    from posekit.registration.estimator import ObjectPoseResult

    mesh, info = procedural_mesh(77, family="box", diameter_range=(0.12, 0.14))
    R = rotation_about_axis([0.3, -1.0, 0.5], 1.3)
    T = make_pose(R, np.array([0.01, 0.02, 0.7]))
    pts, nrm = mesh.sample_points(3000, seed=3, return_normals=True)
    cam = pts @ R.T + T[:3, 3]
    seen = cam[((nrm @ R.T) * cam).sum(1) < 0]
    model = api.prepare_model(mesh)
    wrong = make_pose(rotation_about_axis([1.0, 0.0, 0.0], 2.4) @ R, T[:3, 3])

    def fake_once(model, pts, normals, view, return_hypotheses, start_rotations, prune, one_view=None):
        return ObjectPoseResult(True, wrong.copy(), 0.01, stage_ms={"chains": 1.0})

    def rot_err(T_est):  # up to the box's symmetries
        return min(np.degrees(np.arccos(np.clip((np.trace(T_est[:3, :3].T @ R @ S[:3, :3]) - 1) / 2, -1, 1)))
                   for S in [np.eye(4), *info.symmetries_discrete])

    monkeypatch.setattr(api, "_register_once", fake_once)
    found = api.estimate(model, seen)
    monkeypatch.setattr(api.inference, "wide_starts", 0)
    kept = api.estimate(model, seen)
    assert rot_err(found.T_cam_model) < 5 and found.score > 0.3 and "wide_search" in found.stage_ms
    assert rot_err(kept.T_cam_model) > 45 and kept.score == 0.01 and "wide_search" not in kept.stage_ms
    monkeypatch.setattr(api.inference, "wide_starts", 24)
    monkeypatch.setattr(api.inference, "wide_below", 0.005)  # 0.01 is confident enough now
    assert "wide_search" not in api.estimate(model, seen).stage_ms
