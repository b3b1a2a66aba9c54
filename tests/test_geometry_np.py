"""The numpy rigid-transform helpers agree with the torch geometry core and are uniform."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from posekit import geometry as G
from posekit.errors import BadInputError


def _random_pose(rng):
    return G.random_rotation_np(rng), rng.normal(0, 0.5, 3)


def test_rotation_about_axis_matches_so3_exp():
    rng = np.random.default_rng(0)
    for _ in range(20):
        axis = rng.normal(size=3) * rng.uniform(0.1, 10)  # any length
        angle = rng.uniform(-2 * math.pi, 2 * math.pi)
        R = G.rotation_about_axis(axis, angle)
        omega = torch.as_tensor(axis / np.linalg.norm(axis) * angle)
        np.testing.assert_allclose(R, G.so3_exp(omega).numpy(), atol=1e-12)
        np.testing.assert_allclose(R @ axis, axis, atol=1e-12)  # the axis is fixed
    # right-handed: +90 deg about z takes x to y
    np.testing.assert_allclose(G.rotation_about_axis((0, 0, 1), math.pi / 2) @ [1, 0, 0],
                               [0, 1, 0], atol=1e-15)
    with pytest.raises(BadInputError, match="non-zero"):
        G.rotation_about_axis((0, 0, 0), 1.0)


def test_make_pose_and_transform_points_match_torch():
    rng = np.random.default_rng(1)
    R, t = _random_pose(rng)
    T = G.make_pose(R, t)
    assert T.shape == (4, 4) and T.dtype == np.float64
    np.testing.assert_array_equal(T, G.make_transform(torch.as_tensor(R), torch.as_tensor(t)).numpy())
    np.testing.assert_array_equal(G.make_pose(), np.eye(4))
    np.testing.assert_array_equal(G.make_pose(t=[1, 2, 3])[:3, 3], [1, 2, 3])
    pts = rng.normal(size=(50, 3))
    want = G.transform_points(torch.as_tensor(T), torch.as_tensor(pts)).numpy()
    np.testing.assert_allclose(G.transform_points_np(pts, R, t), want, atol=1e-12)
    np.testing.assert_allclose(G.transform_points_np(pts, R), pts @ R.T, atol=1e-12)
    np.testing.assert_array_equal(G.transform_points_np(pts), pts)


def test_project_points_np_matches_pinhole_model():
    rng = np.random.default_rng(2)
    K = np.array([[500.0, 2.0, 320.0], [0.0, 480.0, 240.0], [0.0, 0.0, 1.0]])  # with skew
    R, _ = _random_pose(rng)
    t = np.array([0.05, -0.02, 1.5])
    pts = rng.uniform(-0.1, 0.1, (40, 3))
    uv = G.project_points_np(pts, K, R, t)
    cam = G.transform_points(torch.as_tensor(G.make_pose(R, t)), torch.as_tensor(pts)).numpy()
    assert uv.shape == (40, 2)
    # z [u, v, 1] = K x_cam, checked row by row
    np.testing.assert_allclose(np.c_[uv, np.ones(40)] * cam[:, 2:], cam @ K.T, atol=1e-9)
    # the optical axis goes through the principal point; camera-frame points need no pose
    np.testing.assert_allclose(G.project_points_np([[0.0, 0.0, 2.0]], K), [[320.0, 240.0]])
    # a point on the camera plane: inf by default, finite with min_depth (drawing)
    with np.errstate(divide="ignore", invalid="ignore"):
        assert not np.isfinite(G.project_points_np([[0.1, 0.0, 0.0]], K)).all()
    assert np.isfinite(G.project_points_np([[0.1, 0.0, 0.0]], K, min_depth=1e-9)).all()


def test_random_rotation_np_is_uniform():
    rng = np.random.default_rng(3)
    R = np.stack([G.random_rotation_np(rng) for _ in range(5000)])
    assert G.is_rotation(torch.as_tensor(R)).all()
    # Haar: the angle has density (1 - cos w) / pi on [0, pi]
    w = G.rotation_angle(torch.as_tensor(R)).numpy()
    assert stats.kstest(w, lambda x: (x - np.sin(x)) / math.pi).pvalue > 1e-3
    # a non-uniform sampler (uniform angle) fails the same test
    assert stats.kstest(rng.uniform(0, math.pi, 5000), lambda x: (x - np.sin(x)) / math.pi).pvalue < 1e-6
    assert np.abs(R.mean(0)).max() < 0.05  # E[R] = 0
    # same seed, same rotation
    np.testing.assert_array_equal(G.random_rotation_np(np.random.default_rng(7)),
                                  G.random_rotation_np(np.random.default_rng(7)))


def test_geometry_package_imports_numpy_part_without_torch():
    import subprocess
    import sys

    code = ("import sys, posekit.geometry as G, posekit.io.bop, posekit.eval.pose_error; "
            "G.make_pose(); assert 'torch' not in sys.modules, 'torch imported'; "
            "G.so3_exp; assert 'torch' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
