"""Worked examples of the BOP pose-error functions (posekit.eval.pose_error)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from posekit.data.meshes import box_mesh as procedural_box
from posekit.errors import BadInputError
from posekit.eval import pose_error as pe
from posekit.geometry import rotation_about_axis as rot
from posekit.io.mesh import Mesh

K = np.array([[200.0, 0.0, 79.5], [0.0, 200.0, 59.5], [0.0, 0.0, 1.0]])
W, H = 160, 120


def box_mesh(sx=0.06, sy=0.04, sz=0.02) -> Mesh:
    """Closed cuboid centred at the origin with full side lengths sx, sy, sz (metres)."""
    return Mesh(*procedural_box((sx, sy, sz)))


BOX = box_mesh()
# The cuboid's symmetry group: identity and the three half turns about the axes.
BOX_SYMS = [(np.eye(3), np.zeros(3))] + [(rot(ax, np.pi), np.zeros(3)) for ax in np.eye(3)]
R0 = rot([0.3, -0.5, 0.8], 0.7)
T0 = np.array([0.01, -0.02, 0.5])


def test_add_equals_translation_offset_and_adi_not_larger():
    offset = np.array([0.003, -0.004, 0.0])  # |offset| = 5 mm
    pts = BOX.vertices
    assert pe.add(R0, T0 + offset, R0, T0, pts) == pytest.approx(0.005, abs=1e-12)
    assert pe.adi(R0, T0 + offset, R0, T0, pts) <= 0.005 + 1e-12
    assert pe.add(R0, T0, R0, T0, pts) == 0.0
    # (3, 1) translations, as the toolkit passes them, work too.
    assert pe.add(R0, (T0 + offset)[:, None], R0, T0[:, None], pts) == pytest.approx(0.005)


def test_symmetric_rotation_gives_zero_adi_and_mssd_but_positive_add():
    half_turn_z = rot([0, 0, 1], np.pi)
    R_est = R0 @ half_turn_z  # the same box surface, other vertex labels
    pts = BOX.vertices
    # Every corner (x, y, z) is compared with (-x, -y, z): distance 2 * sqrt(hx^2 + hy^2).
    expected_add = 2 * np.hypot(0.03, 0.02)
    assert pe.add(R_est, T0, R0, T0, pts) == pytest.approx(expected_add, rel=1e-9)
    assert pe.adi(R_est, T0, R0, T0, pts) == pytest.approx(0.0, abs=1e-12)
    assert pe.mssd(R_est, T0, R0, T0, pts, BOX_SYMS) == pytest.approx(0.0, abs=1e-12)
    # Without symmetries MSSD is the largest point displacement.
    assert pe.mssd(R_est, T0, R0, T0, pts, [(np.eye(3), np.zeros(3))]) == pytest.approx(expected_add)
    # An empty symmetry list means identity only; toolkit-style dicts are accepted.
    assert pe.mssd(R_est, T0, R0, T0, pts, []) == pytest.approx(expected_add)
    dict_syms = [{"R": R, "t": t[:, None]} for R, t in BOX_SYMS]
    assert pe.mssd(R_est, T0, R0, T0, pts, dict_syms) == pytest.approx(0.0, abs=1e-12)
    assert pe.mspd(R_est, T0, R0, T0, K, pts, BOX_SYMS) == pytest.approx(0.0, abs=1e-9)


def test_mssd_with_offset_symmetry_translation():
    # A symmetry whose axis does not pass through the origin: half turn about the z axis
    # through (c, 0, 0) is x -> R x + (c - R c).
    c = np.array([0.01, 0.0, 0.0])
    Rz = rot([0, 0, 1], np.pi)
    syms = [(np.eye(3), np.zeros(3)), (Rz, c - Rz @ c)]
    pts = BOX.vertices + c  # a box centred at c is symmetric under that transform
    R_est = R0 @ Rz
    t_est = T0 + R0 @ (c - Rz @ c)
    assert pe.mssd(R_est, t_est, R0, T0, pts, syms) == pytest.approx(0.0, abs=1e-12)
    assert pe.add(R_est, t_est, R0, T0, pts) > 0.01


def test_mspd_is_pixel_shift_of_nearest_point_for_lateral_translation():
    dx = 0.004
    pts = BOX.vertices
    R = np.eye(3)
    t = np.array([0.0, 0.0, 0.4])
    # Every point moves by fx * dx / z in u; the largest shift is at the smallest depth.
    expected = K[0, 0] * dx / (t[2] - 0.01)
    assert pe.mspd(R, t + [dx, 0, 0], R, t, K, pts, [(np.eye(3), np.zeros(3))]) == pytest.approx(
        expected, rel=1e-9
    )
    # The mean projection distance (proj) averages fx*dx/z over the corners (z = 0.39 and 0.41).
    assert pe.proj(R, t + [dx, 0, 0], R, t, K, pts) == pytest.approx(
        0.5 * (K[0, 0] * dx / 0.39 + K[0, 0] * dx / 0.41), rel=1e-9
    )


def test_re_and_te_known_values():
    assert pe.re(R0 @ rot([1, 2, 3], 0.3), R0) == pytest.approx(0.3, abs=1e-9)
    assert pe.re(rot([0, 1, 0], np.pi), np.eye(3)) == pytest.approx(np.pi, abs=1e-6)
    assert pe.re(R0, R0) == pytest.approx(0.0, abs=1e-6)
    assert pe.te([0.1, 0.2, 0.3], [0.1, 0.2 + 0.03, 0.3 - 0.04]) == pytest.approx(0.05)


def test_depth_to_distance_matches_backprojection():
    depth = np.full((H, W), 2.0, dtype=np.float32)
    depth[5, 7] = 0.0
    dist = pe.depth_to_distance(depth, K)
    u, v = 150, 100
    ray = np.linalg.inv(K) @ [u, v, 1.0]
    assert dist[v, u] == pytest.approx(2.0 * np.linalg.norm(ray), rel=1e-6)
    assert dist[5, 7] == 0.0
    assert dist.min() >= 0 and dist[60, 80] == pytest.approx(2.0 * np.sqrt(1 + (0.5 / 200) ** 2 * 2))


def _block(x0: int, value: float = 1.0, size: int = 10) -> np.ndarray:
    d = np.zeros((H, W), dtype=np.float32)
    d[50 : 50 + size, x0 : x0 + size] = value
    return d


def test_vsd_half_overlapping_silhouettes():
    # GT and estimate are 10x10 blocks at 1 m shifted by 5 columns; the scene holds the GT
    # block only (elsewhere depth is missing, which counts as visible in BOP19 mode).
    gt, est = _block(40), _block(45)
    taus = [0.05, 0.2]
    e = pe.vsd_from_depths(est, gt, gt, K, 0.015, taus, True, 0.1)
    # union 150 px, intersection 50 px with equal depth: VSD = 100 / 150.
    assert e == pytest.approx([2 / 3, 2 / 3])


def test_vsd_depth_offset_step_cost_and_occlusion_rule():
    Kf = np.array([[1e5, 0, 79.5], [0, 1e5, 59.5], [0, 0, 1]])  # rays ~parallel: distance ~ depth
    gt = _block(40)
    est = _block(40, value=1.02)  # 2 cm behind the GT surface, i.e. behind the scene
    taus = [0.1, 0.19, 0.21, 0.5]
    e = pe.vsd_from_depths(est, gt, gt, Kf, 0.015, taus, True, 0.1)
    # The estimate fails its own visibility test (2 cm > delta) but is visible where the GT
    # is (eq. 14), so all 100 px are compared: |diff| / diameter = 0.2.
    assert e == pytest.approx([1.0, 1.0, 0.0, 0.0])
    # Not normalised: taus in metres.
    assert pe.vsd_from_depths(est, gt, gt, Kf, 0.015, [0.019, 0.021], False, 0.1) == pytest.approx([1, 0])


def test_vsd_masks_bop19_missing_depth_visible():
    dist_test = np.array([[1.0, 0.0, 1.0]])
    dist_model = np.array([[1.01, 1.5, 1.5]])
    np.testing.assert_array_equal(pe.estimate_visib_mask_gt(dist_test, dist_model, 0.015), [[1, 1, 0]])
    np.testing.assert_array_equal(
        pe.estimate_visib_mask_gt(dist_test, dist_model, 0.015, visib_mode="bop18"), [[1, 0, 0]]
    )
    visib_gt = np.array([[False, False, True]])
    np.testing.assert_array_equal(
        pe.estimate_visib_mask_est(dist_test, dist_model, visib_gt, 0.015), [[1, 1, 1]]
    )


def test_vsd_rendered_gt_pose_is_zero_and_far_pose_is_one():
    R = rot([1, 1, 0], 0.5)
    t = np.array([0.0, 0.0, 0.4])
    T = pe.pose_matrix(R, t)
    from posekit.data.render import render_depth

    depth_test = render_depth(BOX, T, K, W, H)
    assert (depth_test > 0).sum() > 100
    taus = list(np.arange(0.05, 0.51, 0.05))
    diameter = BOX.diameter
    e_gt = pe.vsd(R, t, R, t, depth_test, K, 0.015, taus, True, diameter, BOX)
    assert e_gt == pytest.approx([0.0] * len(taus), abs=1e-12)
    # Shifted sideways far enough that the silhouettes do not touch.
    e_far = pe.vsd(R, t + [0.15, 0, 0], R, t, depth_test, K, 0.015, taus, True, diameter, BOX)
    assert e_far == pytest.approx([1.0] * len(taus))
    # A small depth offset (1 cm = 0.13 d) is wrong for small taus and right for large ones.
    e_mid = pe.vsd(R, t + [0, 0, 0.01], R, t, depth_test, K, 0.015, taus, True, diameter, BOX)
    assert e_mid[0] > 0.9 and e_mid[-1] < 0.2
    assert all(a >= b for a, b in itertools.pairwise(e_mid))  # non-increasing in tau
    assert pe.cus(R, t, R, t, K, BOX, W, H) == pytest.approx(0.0)
    assert pe.cus(R, t + [0.15, 0, 0], R, t, K, BOX, W, H) == pytest.approx(1.0)


def test_bad_inputs_raise_bad_input_error():
    with pytest.raises(BadInputError):
        pe.add(np.eye(4), T0, R0, T0, BOX.vertices)
    with pytest.raises(BadInputError):
        pe.add(R0, [0, 0], R0, T0, BOX.vertices)
    with pytest.raises(BadInputError):
        pe.adi(R0, T0, R0, T0, np.zeros((0, 3)))
    with pytest.raises(BadInputError):
        pe.mspd(R0, T0, R0, T0, np.eye(2), BOX.vertices, [])
    with pytest.raises(BadInputError):
        pe.te([np.nan, 0, 0], T0)
    with pytest.raises(BadInputError):
        pe.vsd_from_depths(np.zeros((4, 4)), np.zeros((4, 4)), np.zeros((5, 4)), K, 0.015, [0.1], True, 0.1)


def test_symmetry_forms_agree():
    R_est = R0 @ rot([0, 0, 1], np.pi)
    as_4x4 = np.stack([pe.pose_matrix(R, t) for R, t in BOX_SYMS])
    pts = BOX.vertices
    for syms in (BOX_SYMS, as_4x4, list(as_4x4)):
        assert pe.mssd(R_est, T0, R0, T0, pts, syms) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(BadInputError):
        pe.mssd(R_est, T0, R0, T0, pts, np.zeros((2, 3, 3)))
