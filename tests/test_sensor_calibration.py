"""Sensor calibration: each statistic on hand-built frames, and the fit recovers known parameters."""

import math

import numpy as np
import pytest

from posekit.data.sensor import DepthSensorModel
from posekit.data.sensor_calibration import (
    _plane_depth,
    depth_level_step,
    fit_sensor_model,
    grazing_angle_quantiles,
    hole_statistics,
    invalid_border,
    measure_sensor,
    plane_residuals_by_depth,
)
from posekit.errors import BadInputError

FX = 300.0
W, H = 320, 240
K = np.array([[FX, 0.0, W / 2], [0.0, FX, H / 2], [0.0, 0.0, 1.0]])


def test_perfect_plane_has_no_residual():
    depth, _ = _plane_depth(1.0, math.radians(30), FX, W, H)
    res = plane_residuals_by_depth(depth, K, patch=21, bins=(0.8, 1.2))
    assert res.n_tiles[0] > 50
    assert res.sigma[0] < 1e-7
    assert abs(res.angle_deg[0] - 30.0) < 2.0


@pytest.mark.parametrize("patch", [21, 5])
def test_white_noise_residual_is_its_std(patch):
    rng = np.random.default_rng(0)
    depth = np.full((H, W), 1.0) + rng.normal(0.0, 2e-3, (H, W))
    res = plane_residuals_by_depth(depth, K, patch=patch, bins=(0.9, 1.1))
    assert res.sigma[0] == pytest.approx(2e-3, rel=0.05)


def test_level_step_of_quantised_inverse_depth():
    rng = np.random.default_rng(1)
    step = 2.8e-3
    z = rng.uniform(0.6, 1.6, (H, W))
    zq = 1.0 / (np.round(1.0 / z / step) * step)
    measured, spacing = depth_level_step([zq])
    assert measured == pytest.approx(step, rel=0.01)
    assert spacing[1.3] == pytest.approx(1.3 ** 2 * step * 1e3, rel=0.1)
    assert depth_level_step([z])[0] == 0.0  # continuous depth has no levels


def test_invalid_border():
    depth = np.ones((H, W))
    depth[:, :7] = 0
    depth[:12] = 0
    depth[:, W - 20:] = 0
    depth[H - 3:] = 0
    assert invalid_border(depth) == (7, 12, 20, 3)


def test_hole_statistics_on_known_pattern():
    depth = np.ones((H, W))  # far surface at 1 m
    depth[40:200, 100:160] = 0.8  # near box
    depth[40:200, 160:163] = 0  # 3 px shadow to the right of the near box, 160 rows
    depth[40:100, 97:100] = 0  # 2 px holes to the left on 60 rows... made 3 px wide
    isolated = [(20, 20), (220, 300), (10, 250)]
    for r, c in isolated:
        depth[r, c] = 0
    st = hole_statistics(depth, fx=FX)
    assert st.hole_fraction == pytest.approx((160 * 3 + 60 * 3 + 3) / (H * W))
    assert sorted(set(st.right_widths)) == [3] and len(st.right_widths) == 160
    assert sorted(set(st.left_widths)) == [3] and len(st.left_widths) == 60
    assert st.shadow_right_fraction == pytest.approx(160 / 220)
    assert st.direct_left == 100  # rows 100-199 meet the box's left side without a hole
    assert st.left_edge_hole_fraction == pytest.approx(60 / 160)
    baseline = 3 / (FX * (1 / 0.8 - 1 / 1.0))
    assert np.allclose(st.right_baselines, baseline)
    # the 3 isolated holes over the flat pixels (all but those near the box and holes)
    assert 3 / (H * W) < st.random_fraction < 3 / (0.8 * H * W)


def test_grazing_angle_of_tilted_plane():
    depth, _ = _plane_depth(1.0, math.radians(50), FX, W, H)
    q = grazing_angle_quantiles(depth, K)
    assert q["n_tiles"] > 100
    # the angle to the ray grows with the ray's own angle off the axis: up to atan(120 / 300)
    # = 21.8 deg vertically, and sideways rays only add to it
    assert 50.0 <= q["p50"] < 56.0
    assert 60.0 < q["p99"] < 50.0 + 21.8 + 1.0


def test_bad_input_is_refused():
    with pytest.raises(BadInputError):
        measure_sensor([], K)
    with pytest.raises(BadInputError):
        measure_sensor([np.full((10, 10), np.nan)], K)
    with pytest.raises(BadInputError):
        plane_residuals_by_depth(np.ones((20, 20)), np.eye(2))


@pytest.mark.slow
def test_fit_recovers_known_sensor_parameters():
    true = DepthSensorModel(sigma_base=0.5e-3, sigma_quadratic=3.0e-3, correlated_fraction=0.5,
                            inverse_depth_step=2.5e-3, random_dropout=1e-3, shadow_baseline=0.0,
                            edge_dropout=0.0)
    frames = []
    for i, (z, theta) in enumerate([(0.8, 0.5), (1.0, 0.6), (1.2, 0.5), (1.4, 0.4)]):
        depth, normals = _plane_depth(z, theta, FX, W, H)
        frames.append(true.apply(depth, K, np.ascontiguousarray(normals), rng=i + 10))
    stats = measure_sensor(frames, K)
    fit = fit_sensor_model(stats, seed=3)
    assert fit.sigma_quadratic == pytest.approx(true.sigma_quadratic, rel=0.25)
    assert fit.sigma_base == pytest.approx(true.sigma_base, abs=0.3e-3)
    assert fit.correlated_fraction == pytest.approx(true.correlated_fraction, abs=0.2)
    assert fit.inverse_depth_step == pytest.approx(true.inverse_depth_step, rel=0.1)
    assert true.random_dropout / 3 < fit.random_dropout < true.random_dropout * 3
    # the fitted model reproduces the measured residuals
    for z in (0.9, 1.1, 1.3):
        assert stats.residual_mm_at(z) > 0


def test_fit_recovers_known_hole_parameters():
    true = DepthSensorModel(lateral_px=0.0, random_dropout=0.0, shadow_baseline=-0.04, shadow_fill_px=2.0,
                            edge_dropout=0.2, edge_run_px=3.0)
    rng = np.random.default_rng(5)
    frames = []
    for i in range(3):
        depth = np.full((H, W), 1.6)  # a wall, with boxes at several depths in front of it
        for _ in range(6):
            r, c = rng.integers(10, H - 60), rng.integers(10, W - 70)
            depth[r: r + 50, c: c + 50] = rng.uniform(0.6, 1.3)
        normals = np.zeros((H, W, 3))
        normals[..., 2] = -1
        frames.append(true.apply(depth, K, normals, rng=i))
    stats = measure_sensor(frames, K)
    assert stats.shadow_right_fraction > 0.5
    fit = fit_sensor_model(stats, seed=0)
    assert fit.shadow_baseline == pytest.approx(true.shadow_baseline, rel=0.2)
    assert fit.shadow_fill_px == pytest.approx(true.shadow_fill_px, abs=1.0)
    assert fit.edge_dropout == pytest.approx(true.edge_dropout, abs=0.07)
    assert fit.edge_run_px == pytest.approx(true.edge_run_px, rel=0.3)
