"""Pose-error functions of the BOP benchmark, in posekit's units.

Each function mirrors one function of ``bop_toolkit_lib/pose_error.py`` (Hodan, Michel et
al., "BOP: Benchmark for 6D Object Pose Estimation", ECCV 2018; Hodan et al., "On
Evaluation of 6D Object Pose Estimation", ECCVW 2016) and takes the same arguments in the
same order. Differences from the toolkit, all on purpose:

* Units are posekit's: metres and radians. Translations, model points, depth images, the
  VSD tolerance ``delta`` and the diameter are in metres, so :func:`add`, :func:`adi`,
  :func:`mssd` and :func:`te` return metres, :func:`re` returns **radians** (the toolkit
  returns degrees), :func:`mspd` and :func:`proj` return pixels. Errors that BOP compares
  against a fraction of the diameter (ADD, ADI, MSSD, VSD) are unit-free once divided by
  the diameter, so thresholds carry over unchanged.
* A pose is ``R (3, 3)`` and ``t (3,)`` (``(3, 1)`` is accepted too) mapping model points
  into the camera frame: ``x_cam = R @ x_model + t`` (``T_cam_model``).
* Symmetries are the transforms ``T_model_model`` of the model onto itself, identity
  included: an ``(S, 4, 4)`` array as ``posekit.io.bop.symmetry_transformations`` returns
  it, or ``(R_sym (3, 3), t_sym (3,))`` pairs, or the toolkit's ``{"R", "t"}`` dicts.
* The renderer is ``posekit.data.render.render_depth`` on a :class:`posekit.io.mesh.Mesh`
  instead of the toolkit's renderer object plus ``obj_id``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from posekit.errors import BadInputError
from posekit.geometry.rigid_np import make_pose, project_points_np, transform_points_np
from posekit.validation import (
    STORED_ROTATION_ATOL,
    as_float_array,
    check_depth_metres,
    check_intrinsics,
    check_points,
    check_positive,
    check_rotation,
    check_translation,
)

# Symmetry transforms are processed in chunks so memory stays bounded for objects with a
# continuous symmetry (hundreds of discretised rotations times thousands of points).
_SYM_CHUNK_POINTS = 2_000_000


# ----------------------------------------------------------------------------- input checks


def _rotation(R: Any, name: str) -> np.ndarray:
    # Metrics use the matrices as stored (as bop_toolkit does): real GT drifts past 1e-3.
    return check_rotation(R, name, atol=STORED_ROTATION_ATOL)


def _translation(t: Any, name: str) -> np.ndarray:
    return check_translation(t, name)


def _points(pts: Any) -> np.ndarray:
    return check_points(pts, "model points")


def _intrinsics(K: Any) -> np.ndarray:
    return check_intrinsics(K, "K")


def symmetries_as_arrays(syms: Sequence[Any] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Stack symmetry transforms into ``R_syms (S, 3, 3)`` and ``t_syms (S, 3)`` (metres).

    Accepts an ``(S, 4, 4)`` array of ``T_model_model`` (what
    ``posekit.io.bop.symmetry_transformations`` returns), a sequence of 4x4 matrices, of
    ``(R, t)`` pairs, or of the toolkit's ``{"R": ..., "t": ...}`` dicts. An empty
    sequence means "no symmetry" and yields the identity alone.
    """
    if len(syms) == 0:
        return np.eye(3)[None], np.zeros((1, 3))
    arr = np.asarray(syms, dtype=np.float64) if isinstance(syms, np.ndarray) else None
    if arr is not None:
        if arr.ndim != 3 or arr.shape[1:] != (4, 4) or not np.isfinite(arr).all():
            raise BadInputError(f"symmetries must be a finite (S, 4, 4) array, got shape {arr.shape}")
        return arr[:, :3, :3], arr[:, :3, 3]
    Rs, ts = [], []
    for i, sym in enumerate(syms):
        if isinstance(sym, dict):
            if "R" not in sym or "t" not in sym:
                raise BadInputError(f"symmetry {i} is a dict without 'R' and 't' keys: {sorted(sym)}")
            R, t = sym["R"], sym["t"]
        elif isinstance(sym, (tuple, list)) and len(sym) == 2:
            R, t = sym
        else:
            T = as_float_array(sym, f"symmetry {i}")
            if T.shape != (4, 4):
                raise BadInputError(f"symmetry {i} must be a 4x4 matrix or an (R, t) pair, got shape {T.shape}")
            R, t = T[:3, :3], T[:3, 3]
        Rs.append(_rotation(R, f"symmetry {i} R"))
        ts.append(_translation(t, f"symmetry {i} t"))
    return np.stack(Rs), np.stack(ts)


# ----------------------------------------------------------------------------- 3D distances


def add(R_est, t_est, R_gt, t_gt, pts) -> float:
    """ADD, mean distance of corresponding model points (metres).

    Mirrors ``pose_error.add`` (Hinterstoisser et al., ACCV 2012). ``pts (N, 3)`` metres.
    """
    R_est, R_gt = _rotation(R_est, "R_est"), _rotation(R_gt, "R_gt")
    t_est, t_gt = _translation(t_est, "t_est"), _translation(t_gt, "t_gt")
    pts = _points(pts)
    # (R_e - R_g) x + (t_e - t_g): one matrix product instead of two transforms.
    diff = pts @ (R_est - R_gt).T + (t_est - t_gt)
    return float(np.linalg.norm(diff, axis=1).mean())


def adi(R_est, t_est, R_gt, t_gt, pts) -> float:
    """ADI / ADD-S, mean distance from each GT-posed point to the nearest estimated one (metres).

    Mirrors ``pose_error.adi`` (Hinterstoisser et al., ACCV 2012): nearest neighbours via
    ``scipy.spatial.cKDTree`` built on the points in the estimated pose.
    """
    from scipy.spatial import cKDTree

    R_est, R_gt = _rotation(R_est, "R_est"), _rotation(R_gt, "R_gt")
    t_est, t_gt = _translation(t_est, "t_est"), _translation(t_gt, "t_gt")
    pts = _points(pts)
    pts_est = transform_points_np(pts, R_est, t_est)
    pts_gt = transform_points_np(pts, R_gt, t_gt)
    nn_dists, _ = cKDTree(pts_est).query(pts_gt, k=1)
    return float(np.mean(nn_dists))


def _sym_chunks(n_syms: int, n_pts: int):
    step = max(1, _SYM_CHUNK_POINTS // max(n_pts, 1))
    for start in range(0, n_syms, step):
        yield slice(start, min(start + step, n_syms))


def mssd(R_est, t_est, R_gt, t_gt, pts, syms) -> float:
    """MSSD, Maximum Symmetry-aware Surface Distance (metres).

    Mirrors ``pose_error.mssd`` (BOP Challenge 2019): the smallest, over the symmetry
    transforms S = (R_s, t_s), of the largest distance between a point in the estimated
    pose and the same point in the GT pose composed with S (``R_gt R_s``, ``R_gt t_s + t_gt``).
    """
    R_est, R_gt = _rotation(R_est, "R_est"), _rotation(R_gt, "R_gt")
    t_est, t_gt = _translation(t_est, "t_est"), _translation(t_gt, "t_gt")
    pts = _points(pts)
    R_syms, t_syms = symmetries_as_arrays(syms)
    # Distances are invariant to R_gt, so compare in the GT model frame:
    # |R_e x + t_e - R_g (R_s x + t_s) - t_g| = |R_g^T (R_e x + t_e - t_g) - (R_s x + t_s)|.
    est_in_gt = (transform_points_np(pts, R_est, t_est) - t_gt) @ R_gt
    best = np.inf
    for sl in _sym_chunks(len(R_syms), len(pts)):
        sym_pts = np.einsum("sij,nj->sni", R_syms[sl], pts) + t_syms[sl, None, :]
        dists = np.linalg.norm(est_in_gt[None] - sym_pts, axis=2).max(axis=1)
        best = min(best, float(dists.min()))
    return best


def mspd(R_est, t_est, R_gt, t_gt, K, pts, syms) -> float:
    """MSPD, Maximum Symmetry-aware Projection Distance (pixels).

    Mirrors ``pose_error.mspd`` (BOP Challenge 2019): like :func:`mssd` but with distances
    between the 2D projections of the points through ``K (3, 3)``.
    """
    R_est, R_gt = _rotation(R_est, "R_est"), _rotation(R_gt, "R_gt")
    t_est, t_gt = _translation(t_est, "t_est"), _translation(t_gt, "t_gt")
    K = _intrinsics(K)
    pts = _points(pts)
    R_syms, t_syms = symmetries_as_arrays(syms)
    proj_est = project_points_np(pts, K, R_est, t_est)
    best = np.inf
    for sl in _sym_chunks(len(R_syms), len(pts)):
        R_gs = np.einsum("ij,sjk->sik", R_gt, R_syms[sl])  # (S, 3, 3)
        t_gs = t_syms[sl] @ R_gt.T + t_gt  # (S, 3)
        cam = np.einsum("sij,nj->sni", R_gs, pts) + t_gs[:, None, :]
        uvw = cam @ K.T
        proj_gt = uvw[..., :2] / uvw[..., 2:3]
        dists = np.linalg.norm(proj_est[None] - proj_gt, axis=2).max(axis=1)
        best = min(best, float(dists.min()))
    return best


def proj(R_est, t_est, R_gt, t_gt, K, pts) -> float:
    """Mean 2D distance of projected model points (pixels).

    Mirrors ``pose_error.proj`` (Brachmann et al., CVPR 2016).
    """
    R_est, R_gt = _rotation(R_est, "R_est"), _rotation(R_gt, "R_gt")
    t_est, t_gt = _translation(t_est, "t_est"), _translation(t_gt, "t_gt")
    K = _intrinsics(K)
    pts = _points(pts)
    diff = project_points_np(pts, K, R_est, t_est) - project_points_np(pts, K, R_gt, t_gt)
    return float(np.linalg.norm(diff, axis=1).mean())


def re(R_est, R_gt) -> float:
    """Rotation error: angle of ``R_est R_gt^T`` in **radians**, in [0, pi].

    Mirrors ``pose_error.re``, which returns degrees; posekit keeps radians
    (``np.degrees`` converts).
    """
    R_est, R_gt = _rotation(R_est, "R_est"), _rotation(R_gt, "R_gt")
    cos = 0.5 * (np.trace(R_est @ R_gt.T) - 1.0)
    return float(np.arccos(np.clip(cos, -1.0, 1.0)))


def te(t_est, t_gt) -> float:
    """Translation error: Euclidean distance ``|t_est - t_gt|`` (metres). Mirrors ``pose_error.te``."""
    return float(np.linalg.norm(_translation(t_est, "t_est") - _translation(t_gt, "t_gt")))


# ----------------------------------------------------------------------------- VSD


def depth_to_distance(depth: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Distance image: for each pixel the distance from the camera centre to its 3D point.

    Mirrors ``misc.depth_im_to_dist_im_fast``. ``depth (H, W)`` is the Z coordinate
    (metres, 0 = missing); pixel (x, y) back-projects through its integer coordinates.
    Returns ``(H, W) float64`` in the unit of ``depth``, 0 where depth is 0.
    """
    depth = check_depth_metres(depth, "depth")
    K = _intrinsics(K)
    h, w = depth.shape
    x_over_z = (np.arange(w, dtype=np.float64) - K[0, 2]) / K[0, 0]
    y_over_z = (np.arange(h, dtype=np.float64) - K[1, 2]) / K[1, 1]
    scale = np.sqrt(1.0 + x_over_z[None, :] ** 2 + y_over_z[:, None] ** 2)
    return depth * scale


def _visible_mask(dist_test: np.ndarray, dist_model: np.ndarray, delta: float, visib_mode: str):
    diff = dist_model.astype(np.float32) - dist_test.astype(np.float32)
    if visib_mode == "bop19":
        # Missing scene depth counts as visible, so shiny objects can still be scored.
        return ((diff <= delta) | (dist_test == 0)) & (dist_model > 0)
    if visib_mode == "bop18":
        return (diff <= delta) & (dist_test > 0) & (dist_model > 0)
    raise BadInputError(f"unknown visibility mode {visib_mode!r}; use 'bop19' or 'bop18'")


def estimate_visib_mask_gt(dist_test, dist_gt, delta: float, visib_mode: str = "bop19") -> np.ndarray:
    """Visible part ``(H, W) bool`` of the object rendered in the GT pose.

    Mirrors ``visibility.estimate_visib_mask_gt``: a rendered pixel is visible where it is
    not more than ``delta`` behind the scene (and, in 'bop19' mode, where scene depth is
    missing). Distance images and ``delta`` share one unit (metres in posekit).
    """
    return _visible_mask(np.asarray(dist_test), np.asarray(dist_gt), delta, visib_mode)


def estimate_visib_mask_est(
    dist_test, dist_est, visib_gt, delta: float, visib_mode: str = "bop19"
) -> np.ndarray:
    """Visible part ``(H, W) bool`` of the object rendered in the estimated pose.

    Mirrors ``visibility.estimate_visib_mask_est``: as the GT mask, plus every pixel that
    is visible in the GT pose and covered by the estimate (Hodan et al. ECCVW 2016, eq. 14),
    so an estimate is not rewarded for hiding behind an occluder.
    """
    dist_est = np.asarray(dist_est)
    visib_est = _visible_mask(np.asarray(dist_test), dist_est, delta, visib_mode)
    return visib_est | (np.asarray(visib_gt, dtype=bool) & (dist_est > 0))


def vsd_from_depths(
    depth_est: np.ndarray,
    depth_gt: np.ndarray,
    depth_test: np.ndarray,
    K: np.ndarray,
    delta: float,
    taus: Sequence[float],
    normalized_by_diameter: bool,
    diameter: float,
    cost_type: str = "step",
) -> list[float]:
    """VSD from already rendered depth images of the model in the estimated and GT poses.

    The core of ``pose_error.vsd`` without the rendering; see :func:`vsd` for the
    arguments. All depth images ``(H, W)`` are metres with 0 = no surface.
    """
    depth_test = check_depth_metres(depth_test, "depth_test")
    depth_est = check_depth_metres(depth_est, "depth_est")
    depth_gt = check_depth_metres(depth_gt, "depth_gt")
    check_positive(delta, "VSD delta (metres)")
    taus = list(taus)
    if not taus:
        raise BadInputError("taus is empty; pass at least one VSD misalignment tolerance")
    for tau in taus:
        check_positive(tau, "VSD tau")
    if np.shape(depth_est) != depth_test.shape or np.shape(depth_gt) != depth_test.shape:
        raise BadInputError(
            f"depth images differ in shape: test {depth_test.shape}, "
            f"est {np.shape(depth_est)}, gt {np.shape(depth_gt)}"
        )
    if normalized_by_diameter and not diameter > 0:
        raise BadInputError(f"diameter must be positive to normalise VSD, got {diameter}")
    dist_test = depth_to_distance(depth_test, K)
    dist_gt = depth_to_distance(depth_gt, K)
    dist_est = depth_to_distance(depth_est, K)

    visib_gt = estimate_visib_mask_gt(dist_test, dist_gt, delta, visib_mode="bop19")
    visib_est = estimate_visib_mask_est(dist_test, dist_est, visib_gt, delta, visib_mode="bop19")
    inter = visib_gt & visib_est
    union_count = int(np.count_nonzero(visib_gt | visib_est))
    if union_count == 0:
        return [1.0] * len(taus)
    comp_count = union_count - int(np.count_nonzero(inter))

    dists = np.abs(dist_gt[inter] - dist_est[inter])
    if normalized_by_diameter:
        dists = dists / diameter
    errors = []
    for tau in taus:
        if cost_type == "step":
            cost = float(np.count_nonzero(dists >= tau))
        elif cost_type == "tlinear":
            cost = float(np.minimum(dists / tau, 1.0).sum())
        else:
            raise BadInputError(f"unknown VSD cost type {cost_type!r}; use 'step' or 'tlinear'")
        errors.append((cost + comp_count) / union_count)
    return errors


def vsd(
    R_est,
    t_est,
    R_gt,
    t_gt,
    depth_test: np.ndarray,
    K: np.ndarray,
    delta: float,
    taus: Sequence[float],
    normalized_by_diameter: bool,
    diameter: float,
    model,
    cost_type: str = "step",
) -> list[float]:
    """VSD, Visible Surface Discrepancy, one value in [0, 1] per tolerance in ``taus``.

    Mirrors ``pose_error.vsd`` (Hodan, Michel et al., ECCV 2018) with BOP19 visibility
    masks (missing scene depth counts as visible). ``depth_test (H, W)`` is the scene depth
    in metres (0 = missing); ``delta`` is the visibility tolerance in metres (BOP: 15 mm ->
    0.015); ``taus`` are misalignment tolerances, fractions of ``diameter`` (metres) when
    ``normalized_by_diameter`` else metres. ``model`` is the :class:`~posekit.io.mesh.Mesh`
    (metres), rendered with ``posekit.data.render.render_depth`` at the size of
    ``depth_test``. ``cost_type`` is 'step' (BOP since 2017) or 'tlinear' (ECCVW 2016).
    """
    from posekit.data.render import render_depth

    depth_test = check_depth_metres(depth_test, "depth_test")
    K = _intrinsics(K)
    h, w = depth_test.shape
    depth_est = render_depth(model, pose_matrix(R_est, t_est), K, w, h)
    depth_gt = render_depth(model, pose_matrix(R_gt, t_gt), K, w, h)
    return vsd_from_depths(
        depth_est, depth_gt, depth_test, K, delta, taus, normalized_by_diameter, diameter, cost_type
    )


def cus(R_est, t_est, R_gt, t_gt, K, model, width: int, height: int) -> float:
    """Complement over union of the rendered silhouettes, in [0, 1].

    Mirrors ``pose_error.cus``; ``model`` is a Mesh in metres rendered at ``width x height``.
    """
    from posekit.data.render import render_depth

    K = _intrinsics(K)
    mask_est = render_depth(model, pose_matrix(R_est, t_est), K, width, height) > 0
    mask_gt = render_depth(model, pose_matrix(R_gt, t_gt), K, width, height) > 0
    union = int(np.count_nonzero(mask_est | mask_gt))
    if union == 0:
        return 1.0
    return 1.0 - np.count_nonzero(mask_est & mask_gt) / union


def pose_matrix(R, t) -> np.ndarray:
    """4x4 ``T_cam_model`` from ``R (3, 3)`` and ``t (3,)`` metres, checked (BadInputError)."""
    return make_pose(_rotation(R, "R"), _translation(t, "t"))
