"""The object engine's depth-rendering score (posekit.registration.scoring): how well a pose
explains measured depth. Rendered scenes with known poses; every property here fails if the
score stops looking at the depth (a constant, a score without the free-space term, ...)."""

import numpy as np
import pytest
import torch

from posekit.data.meshes import procedural_mesh
from posekit.data.render import render_scene
from posekit.data.scenes import default_intrinsics
from posekit.geometry.rigid_np import make_pose
from posekit.registration.scoring import (
    ScoreConfig,
    score_poses,
    score_poses_fine_and_coarse,
    view_from_depth,
    view_from_points,
)

W, H = 320, 240
K = default_intrinsics(W, H)


def _turn(T, deg, axis=(0.0, 1.0, 0.0), shift=(0.0, 0.0, 0.0)):
    from scipy.spatial.transform import Rotation

    R = Rotation.from_rotvec(np.radians(deg) * np.asarray(axis) / np.linalg.norm(axis)).as_matrix()
    out = T.copy()
    c = T[:3, 3]
    out[:3, :3] = R @ T[:3, :3]
    out[:3, 3] = R @ (T[:3, 3] - c) + c + np.asarray(shift)
    return out


@pytest.fixture(scope="module")
def scene(test_device):
    mesh, _ = procedural_mesh(4242, family="box", diameter_range=(0.12, 0.14))
    from posekit.geometry.rigid_np import random_rotation_np

    R = random_rotation_np(np.random.default_rng(3))
    T = make_pose(R, np.array([0.01, 0.0, 0.6]) - R @ mesh.vertices.mean(0))
    res = render_scene([mesh], [T], K, W, H)
    mask = res.instance == 0
    pts, nrm = mesh.sample_points(4000, seed=1, return_normals=True)
    surface = torch.as_tensor(pts, dtype=torch.float32, device=test_device)
    normals = torch.as_tensor(nrm, dtype=torch.float32, device=test_device)
    tri = mesh.vertices[mesh.faces]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1).sum()
    spacing = float(np.sqrt(area / len(pts)))
    return mesh, T, res.depth, mask, surface, normals, spacing


def _scores(scene, poses, coarse=False, masked=True):
    mesh, _, depth, mask, surface, normals, spacing = scene
    view = view_from_depth(depth, K, mask if masked else None, mesh.diameter, spacing, ScoreConfig(),
                           device=surface.device)
    return score_poses(np.stack(poses), surface, normals, view, mesh.diameter, coarse=coarse)


def test_the_true_pose_scores_high_and_small_errors_cost_continuously(scene):
    T = scene[1]
    s = _scores(scene, [T, _turn(T, 2), _turn(T, 6), _turn(T, 0, shift=(0.004, 0, 0)),
                        _turn(T, 0, shift=(0.012, 0, 0))]).score
    assert s[0] > 0.7  # noise-free render; cells at the silhouette stay partly unexplained
    assert s[0] > s[1] > s[2]  # worse with the angle
    assert s[0] > s[3] > s[4]  # worse with the offset
    assert s[2] < 0.6 * s[0] and s[4] < 0.6 * s[0]


def test_a_pose_elsewhere_explains_nothing(scene):
    T = scene[1]
    s = _scores(scene, [T, _turn(T, 0, shift=(0.2, 0.0, 0.0)), _turn(T, 0, shift=(0.0, 0.0, 0.3))])
    assert s.score[1] < 0.05 and s.coverage[1] < 0.05
    assert s.score[2] < 0.1 * s.score[0]


def test_model_in_front_of_the_measurement_is_a_violation(scene):
    """10 cm towards the camera the model hides the measured surface: the sensor saw through it."""
    T = scene[1]
    s = _scores(scene, [T, _turn(T, 0, shift=(0.0, 0.0, -0.1))])
    assert s.violations[1] > 0.8 and s.violations[0] < 0.1
    assert s.support[1] < 0.1


def test_coarse_tolerance_ranks_a_near_miss_above_a_wrong_pose(scene):
    T = scene[1]
    near, wrong = _turn(T, 15, axis=(1, 1, 0)), _turn(T, 0, shift=(0.0, 0.0, 0.2))
    fine = _scores(scene, [near, wrong]).score
    coarse = _scores(scene, [near, wrong], coarse=True).score
    assert coarse[0] > fine[0]
    assert coarse[0] > 2 * coarse[1] + 0.05


def test_fine_and_coarse_together_equal_two_calls(scene):
    mesh, T, depth, mask, surface, normals, spacing = scene
    poses = np.stack([T, _turn(T, 5), _turn(T, 20, axis=(0, 0, 1))])
    view = view_from_depth(depth, K, mask, mesh.diameter, spacing, device=surface.device)
    fine, coarse = score_poses_fine_and_coarse(poses, surface, normals, view, mesh.diameter)
    np.testing.assert_allclose(fine.score, score_poses(poses, surface, normals, view, mesh.diameter).score)
    np.testing.assert_allclose(coarse.score, score_poses(poses, surface, normals, view, mesh.diameter,
                                                         coarse=True).score)


def test_a_bare_cloud_is_scored_through_a_virtual_camera(scene):
    from posekit.io.depth import depth_to_points

    mesh, T, depth, mask, surface, normals, spacing = scene
    pts = depth_to_points(depth, K, mask=mask)
    view = view_from_points(pts, mesh.diameter, spacing, device=surface.device)
    s = score_poses(np.stack([T, _turn(T, 8), _turn(T, 0, shift=(0.0, 0.0, -0.08))]), surface, normals, view,
                    mesh.diameter).score
    assert s[0] > 0.6 and s[0] > s[1] > s[2]
