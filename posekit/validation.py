"""Checks of numpy inputs at posekit's public boundaries: one place per concept.

Each check returns the validated value in the dtype posekit computes with (float64 unless
stated) or raises :class:`~posekit.errors.BadInputError` naming the argument, what was wrong
and what to do. Used by the I/O, metrics and rendering code so that bad input never reaches
numpy, OpenCV or open3d as a crash deep inside them.

Conventions checked: a rotation ``R (3, 3)`` is orthonormal with determinant +1; a pose
``T (4, 4)`` = ``[[R, t], [0, 0, 0, 1]]`` with ``t`` in metres; points ``(N, 3)``; a pinhole
camera matrix ``K (3, 3)`` has positive focal lengths (pixels) and last row ``[0, 0, 1]``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from posekit.errors import BadInputError

# Rotations read from files or predicted by networks carry rounding (BOP files keep ~8
# digits, float32 ~7): |R^T R - I| up to this is accepted as a rotation.
ROTATION_ATOL = 1e-3
# Rotations *stored in datasets and result files* are read as they are (metrics must use the
# stored matrices, as bop_toolkit does): real BOP ground truth drifts past ROTATION_ATOL (LM-O
# has |R^T R - I| = 0.0019), so up to this much is accepted with a warning; beyond it (or det
# <= 0, NaN) the entry is broken.
STORED_ROTATION_ATOL = 0.05
# Depth in metres beyond this is almost surely millimetres passed where metres were expected.
MAX_PLAUSIBLE_DEPTH_M = 100.0
# A point coordinate beyond this (metres) is a sensor or file error (e.g. 1e30 outliers): its
# square overflows float32 and poisons every distance computed with it (knn, centring, ICP).
MAX_PLAUSIBLE_COORDINATE_M = 1e6


def as_path(value: Any, name: str = "path") -> Path:
    """``value`` as a :class:`~pathlib.Path`; BadInputError unless it is a str or os.PathLike.

    None, numbers, bytes and arrays are refused with a message naming the argument (pathlib
    would raise a bare TypeError, or accept bytes it then cannot open portably).
    """
    if isinstance(value, str) or (isinstance(value, os.PathLike) and isinstance(os.fspath(value), str)):
        if isinstance(value, str) and (value == "" or "\x00" in value):
            raise BadInputError(f"{name} must be a file or folder name, got {value!r}")
        return Path(value)
    raise BadInputError(f"{name} must be a path (str or pathlib.Path), got {type(value).__name__}")


def as_float_array(value: Any, name: str, shape: tuple[int | None, ...] | None = None,
                   finite: bool = True) -> np.ndarray:
    """``value`` as a float64 array; ``shape`` entries of None match any size.

    Rejects text, complex numbers and objects that are not numbers (numpy would crash on
    them later, or silently drop an imaginary part), a wrong shape, and NaN/inf if ``finite``.
    """
    kind = getattr(getattr(value, "dtype", None), "kind", None)
    if kind in ("U", "S", "c", "V"):
        raise BadInputError(f"{name} must hold real numbers, got dtype {value.dtype}")
    try:
        a = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise BadInputError(
            f"{name} must be an array of real numbers, got {type(value).__name__} ({err})"
        ) from err
    if shape is not None and (
        a.ndim != len(shape) or any(s is not None and s != n for s, n in zip(shape, a.shape))
    ):
        want = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
        raise BadInputError(f"{name} must have shape {want}, got {a.shape}")
    if finite and not np.isfinite(a).all():
        raise BadInputError(f"{name} contains NaN or inf")
    return a


def check_positive(value: Any, name: str) -> float:
    """A finite number > 0 as float."""
    if isinstance(value, (str, bytes)) or np.ndim(value) != 0:
        raise BadInputError(f"{name} must be a positive number, got {value!r}")
    try:
        x = float(value)
    except (TypeError, ValueError) as err:
        raise BadInputError(f"{name} must be a positive number, got {value!r}") from err
    if not (math.isfinite(x) and x > 0):
        raise BadInputError(f"{name} must be a positive number, got {value!r}")
    return x


def check_count(value: Any, name: str, minimum: int = 1) -> int:
    """An integer ``>= minimum`` (a count: modes, samples, chains) as int.

    Python and numpy integers only: bools, floats (``2.5`` would be truncated silently) and
    strings are refused.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise BadInputError(f"{name} must be an integer >= {minimum}, got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise BadInputError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_intrinsics(K: Any, name: str = "intrinsics K") -> np.ndarray:
    """Validate a pinhole camera matrix; return it as (3, 3) float64.

    K = [[fx, s, cx], [0, fy, cy], [0, 0, 1]] with fx, fy > 0 (pixels), all finite. A flat
    9-vector (ROS CameraInfo.k, BOP cam_K) is reshaped row-major.
    """
    if not isinstance(K, np.ndarray) and isinstance(K, (str, bytes)):
        raise BadInputError(f"{name} must be a numeric 3x3 matrix, got {type(K).__name__}")
    if getattr(getattr(K, "dtype", None), "kind", None) in ("U", "S", "c", "V", "O"):
        raise BadInputError(f"{name} must be a real 3x3 matrix, got dtype {K.dtype}")
    try:
        K = np.asarray(K, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise BadInputError(f"{name} must be a numeric 3x3 matrix, got {type(K).__name__}") from err
    if K.shape == (9,):
        K = K.reshape(3, 3)
    if K.shape != (3, 3):
        raise BadInputError(f"{name} must have shape (3, 3), got {K.shape}")
    if not np.isfinite(K).all():
        raise BadInputError(f"{name} contains NaN or inf")
    if K[0, 0] <= 0 or K[1, 1] <= 0:
        raise BadInputError(
            f"{name} needs positive focal lengths, got fx={K[0, 0]}, fy={K[1, 1]}"
        )
    if not np.allclose(K[2], [0.0, 0.0, 1.0]) or K[1, 0] != 0:
        raise BadInputError(
            f"{name} must be upper triangular with last row [0, 0, 1], got rows {K[1].tolist()}, {K[2].tolist()}"
        )
    return K


def check_rotation(R: Any, name: str = "R", atol: float = ROTATION_ATOL) -> np.ndarray:
    """A rotation matrix (3, 3) float64: finite, ``|R^T R - I| <= atol``, ``det R > 0``."""
    R = as_float_array(R, name, (3, 3))
    with np.errstate(over="ignore", invalid="ignore"):  # huge entries: err becomes inf, refused
        err = float(np.abs(R.T @ R - np.eye(3)).max())
        det = float(np.linalg.det(R))
    if err > atol or det <= 0:
        raise BadInputError(
            f"{name} is not a rotation matrix (|R^T R - I| = {err:.3g}, det = {det:.3g}); pass an "
            "orthonormal matrix with determinant +1 (project it with an SVD if it drifted, and "
            "check row- vs column-major order)"
        )
    return R


def stored_rotation_problem(R: Any) -> tuple[str, float]:
    """Why a rotation read from a file cannot be used ("" if it can) and its |R^T R - I|.

    Accepts what a dataset stores (rounding and drift up to :data:`STORED_ROTATION_ATOL`);
    broken: not 3x3 numbers, NaN/inf, further from orthonormal, or a reflection (det <= 0).
    """
    try:
        R = np.asarray(R, dtype=np.float64).reshape(3, 3)
    except (TypeError, ValueError):
        return "not 9 numbers", math.inf
    if not np.isfinite(R).all():
        return "contains NaN or inf", math.inf
    err = float(np.abs(R.T @ R - np.eye(3)).max())
    det = float(np.linalg.det(R))
    if det <= 0:
        return f"det R = {det:.3g} (a reflection or degenerate, not a rotation)", err
    if err > STORED_ROTATION_ATOL:
        return f"|R^T R - I| = {err:.3g} (over {STORED_ROTATION_ATOL})", err
    return "", err


def check_translation(t: Any, name: str = "t") -> np.ndarray:
    """A translation (3,) float64 metres; (3, 1) and (1, 3) are flattened."""
    t = as_float_array(t, name)
    if t.size != 3:
        raise BadInputError(f"{name} must have 3 elements (metres), got shape {t.shape}")
    return t.reshape(3)


def check_pose(T: Any, name: str = "T", atol: float = ROTATION_ATOL) -> np.ndarray:
    """A rigid transform (4, 4) float64: rotation block (within ``atol``), last row [0, 0, 0, 1], finite."""
    T = as_float_array(T, name, (4, 4))
    if not np.allclose(T[3], [0.0, 0.0, 0.0, 1.0]):
        raise BadInputError(f"{name} must have last row [0, 0, 0, 1], got {T[3].tolist()}")
    check_rotation(T[:3, :3], f"rotation of {name}", atol=atol)
    return T


def check_depth_metres(depth: Any, name: str = "depth") -> np.ndarray:
    """A depth image (H, W) float64 in metres: finite, >= 0 (0 = missing), at most 100 m."""
    d = as_float_array(depth, name)
    if d.ndim != 2:
        raise BadInputError(f"{name} must have shape (H, W), got {d.shape}")
    if d.size == 0:
        raise BadInputError(f"{name} is empty")
    if (d < 0).any():
        raise BadInputError(f"{name} has negative values; use 0 for missing pixels")
    if d.max() > MAX_PLAUSIBLE_DEPTH_M:
        raise BadInputError(
            f"{name} max is {d.max():g}; posekit depth is in metres and this looks like "
            "millimetres (multiply by 0.001)"
        )
    return d


def valid_points_mask(points: np.ndarray) -> np.ndarray:
    """(N,) bool: points that are finite and within :data:`MAX_PLAUSIBLE_COORDINATE_M` of the origin."""
    with np.errstate(invalid="ignore"):
        return np.isfinite(points).all(axis=1) & (np.abs(points) <= MAX_PLAUSIBLE_COORDINATE_M).all(axis=1)


def check_points(points: Any, name: str = "points") -> np.ndarray:
    """Points (N, 3) float64 with N >= 1, all finite and within 1e6 m of the origin."""
    pts = as_float_array(points, name, (None, 3))
    if len(pts) == 0:
        raise BadInputError(f"{name} is empty (0 points)")
    bad = int((~valid_points_mask(pts)).sum())
    if bad:
        raise BadInputError(
            f"{name} has {bad} point(s) farther than {MAX_PLAUSIBLE_COORDINATE_M:g} m from the origin "
            "(outliers of a sensor or file error); drop them first")
    return pts


__all__ = [
    "MAX_PLAUSIBLE_COORDINATE_M",
    "MAX_PLAUSIBLE_DEPTH_M",
    "ROTATION_ATOL",
    "as_float_array",
    "as_path",
    "check_depth_metres",
    "check_intrinsics",
    "check_points",
    "check_pose",
    "check_positive",
    "check_rotation",
    "check_translation",
    "valid_points_mask",
]
