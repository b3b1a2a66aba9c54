"""The nearest-point table behind the object engine's coarse search (posekit.geometry.neighbours.NearestGrid)."""

import numpy as np
import pytest
import torch
from scipy.spatial import cKDTree

from posekit.errors import BadInputError
from posekit.geometry.neighbours import NearestGrid


@pytest.fixture(scope="module")
def sphere_points():
    p = np.random.default_rng(0).normal(size=(2000, 3))
    return p / np.linalg.norm(p, axis=1, keepdims=True)


def test_near_point_is_within_half_a_voxel_diagonal_of_the_nearest(sphere_points):
    grid = NearestGrid(sphere_points, resolution=32)
    q = np.random.default_rng(1).uniform(-1.3, 1.3, size=(5000, 3))
    true_d = cKDTree(sphere_points).query(q)[0]
    got = grid.nearest_points(torch.as_tensor(q, dtype=torch.float32)).numpy()
    d = np.linalg.norm(got - q, axis=1)
    slack = np.sqrt(3) * grid.voxel  # the query and the voxel centre differ by half a diagonal, twice
    assert (d >= true_d - 1e-5).all()
    assert (d <= true_d + slack).all()
    assert np.median(d - true_d) < 0.1 * grid.voxel  # mostly the exact nearest point


def test_finer_grid_is_closer_to_exact(sphere_points):
    q = torch.as_tensor(np.random.default_rng(2).uniform(-1, 1, size=(3000, 3)), dtype=torch.float32)
    true_d = cKDTree(sphere_points).query(q.numpy())[0]
    err = [np.mean(np.linalg.norm(NearestGrid(sphere_points, resolution=r).nearest_points(q).numpy() - q.numpy(),
                                  axis=1) - true_d) for r in (8, 48)]
    assert err[1] < 0.25 * err[0]


def test_queries_outside_the_grid_get_an_upper_bound(sphere_points):
    grid = NearestGrid(sphere_points, resolution=16)
    q = torch.tensor([[10.0, 0.0, 0.0], [-7.0, 3.0, 1.0]])
    d = (grid.nearest_points(q) - q).norm(dim=-1).numpy()
    assert (d >= cKDTree(sphere_points).query(q.numpy())[0] - 1e-5).all()
    assert np.isfinite(d).all()


def test_batched_shapes_and_indices_on_the_device(sphere_points, device):
    grid = NearestGrid(torch.as_tensor(sphere_points), resolution=16, device=device)
    idx = grid.nearest(torch.zeros(2, 5, 7, 3, device=device))
    assert idx.device.type == torch.device(device).type
    assert idx.shape == (2, 5, 7) and idx.dtype == torch.long
    assert 0 <= int(idx.min()) and int(idx.max()) < len(sphere_points)


@pytest.mark.parametrize("bad", [np.zeros((0, 3)), np.zeros((5, 2)), np.array([[0.0, np.nan, 0.0]] * 4)])
def test_bad_points_raise(bad):
    with pytest.raises(BadInputError):
        NearestGrid(bad)
