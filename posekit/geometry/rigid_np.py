"""Rigid transforms in numpy: the counterparts of :mod:`posekit.geometry.so3` / ``se3`` for
code that works on numpy arrays (I/O, data generation, metrics, drawing).

Same conventions as the torch core (see :mod:`posekit.geometry.se3`):
- ``R (3, 3)`` acts on column vectors, ``x' = R x``; a pose ``T (4, 4)`` = ``[[R, t], [0, 1]]``
  maps points from frame b to frame a (``T_a_b``): ``x_a = R x_b + t``, ``t (3,)`` metres;
- points are rows, ``(N, 3)``; pixels ``(N, 2)`` are (u, v) = (column, row) with integer
  values at pixel centres (OpenCV / BOP), ``z [u, v, 1] = K [x, y, z]``;
- quaternions are XYZW.
Results are float64 unless stated otherwise. This module imports numpy only.
"""

from __future__ import annotations

import numpy as np

from posekit.errors import BadInputError
from posekit.validation import as_float_array, check_intrinsics


def rotation_about_axis(axis, angle: float) -> np.ndarray:
    """Rotation ``(3, 3)`` by ``angle`` radians about ``axis (3,)`` (any non-zero length),
    right-handed (scipy's ``Rotation.from_rotvec``, the validated numpy entry point).

    The numpy counterpart of ``so3_exp(axis / |axis| * angle)``.
    """
    from scipy.spatial.transform import Rotation

    a = as_float_array(axis, "rotation axis", (3,), finite=False)
    angle = float(as_float_array(angle, "rotation angle", ()))
    norm = np.linalg.norm(a)
    if not np.isfinite(norm) or norm == 0:
        raise BadInputError(f"rotation axis must be a finite non-zero 3-vector, got {a.tolist()}")
    return Rotation.from_rotvec(a / norm * angle).as_matrix()


def random_rotation_np(rng: np.random.Generator) -> np.ndarray:
    """One rotation ``(3, 3)`` drawn uniformly (Haar measure) with ``rng``: a normalised
    Gaussian quaternion (XYZW) turned into a matrix (Shoemake, Graphics Gems III, 1992).

    The numpy counterpart of :func:`posekit.geometry.so3.random_rotation`.
    """
    q = rng.normal(size=4)
    x, y, z, w = q / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def make_pose(R=None, t=None) -> np.ndarray:
    """Pose ``T (4, 4)`` float64 from ``R (3, 3)`` (default identity) and ``t (3,)`` metres
    (default zero). The numpy counterpart of :func:`posekit.geometry.se3.make_transform`."""
    T = np.eye(4)
    if R is not None:
        T[:3, :3] = as_float_array(R, "R", (3, 3))
    if t is not None:
        t = as_float_array(t, "t")
        if t.size != 3:
            raise BadInputError(f"t must have 3 elements (metres), got shape {t.shape}")
        T[:3, 3] = t.reshape(3)
    return T


def transform_points_np(points, R=None, t=None) -> np.ndarray:
    """``points (N, 3)`` moved by ``x' = R x + t`` (``R (3, 3)`` default identity, ``t (3,)``
    default zero), as bop_toolkit's ``misc.transform_pts_Rt``.

    The numpy counterpart of :func:`posekit.geometry.se3.transform_points`; for a pose ``T``
    pass ``T[:3, :3], T[:3, 3]``.
    """
    out = np.asarray(points)
    if out.dtype.kind not in "fiu":
        out = as_float_array(out, "points", finite=False)
    if out.ndim != 2 or out.shape[1] != 3:
        raise BadInputError(f"points must have shape (N, 3), got {out.shape}")
    if R is not None:
        out = out @ as_float_array(R, "R", (3, 3), finite=False).T
    if t is not None:
        t = as_float_array(t, "t", finite=False)
        if t.size != 3:
            raise BadInputError(f"t must have 3 elements (metres), got shape {t.shape}")
        out = out + t.reshape(3)
    return out


def project_points_np(points, K, R=None, t=None, min_depth: float | None = None) -> np.ndarray:
    """Pixels ``(N, 2)`` of ``points (N, 3)`` seen by a pinhole camera ``K (3, 3)``, as
    bop_toolkit's ``misc.project_pts``: ``z [u, v, 1] = K (R x + t)``.

    The points are in the camera frame, or in a model frame with pose ``(R, t)`` = T_cam_model.
    ``min_depth``: when given, depths with ``|z| < min_depth`` are replaced by ``min_depth``
    so points on the camera plane give far-away pixels instead of a division by zero (for
    drawing); by default they give inf/NaN, as the reference does.
    """
    cam = transform_points_np(as_float_array(points, "points", finite=False), R, t)
    uvw = cam @ check_intrinsics(K).T
    z = uvw[:, 2:3]
    if min_depth is not None:
        z = np.where(np.abs(z) < min_depth, min_depth, z)
    return uvw[:, :2] / z


__all__ = [
    "make_pose", "project_points_np", "random_rotation_np", "rotation_about_axis",
    "transform_points_np",
]
