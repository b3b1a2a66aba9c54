"""SO(3) HEALPix grids (Yershova et al., IJRR 2010; as used by Implicit-PDF and I2S) and nearest lookup.

A level-``r`` grid has ``72 * 8**r`` rotations: the ``12 * 4**r`` HEALPix pixel centres
(nested order, ``nside = 2**r``) give the direction ``(beta, alpha)`` of the rotated z axis
and ``6 * 2**r`` evenly spaced angles give the in-plane angle ``gamma``:
``R = Rz(alpha) @ Ry(beta) @ Rz(gamma)`` (ZYZ Euler angles, rotations acting on column vectors).
Because HEALPix is symmetric under quarter turns about the pole, every grid is closed under
left multiplication by ``Rz(k * pi / 2)``: that is what makes the in-plane equivariance of the
grid logits exact.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from posekit.errors import BadInputError, ComputationError


def grid_size(level: int) -> int:
    """Number of rotations of a level-``level`` grid: ``72 * 8**level``."""
    return 72 * 8 ** int(level)


def _about(axis: str, angle) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    a = np.asarray(angle, dtype=np.float64)
    return Rotation.from_euler(axis, a.reshape(-1, 1)).as_matrix().reshape(*a.shape, 3, 3)


def rot_z(angle) -> np.ndarray:
    """Rotations about z, ``(..., 3, 3)`` for ``angle (...)`` radians (scipy's ``from_euler``)."""
    return _about("z", angle)


def rot_y(angle) -> np.ndarray:
    """Rotations about y, ``(..., 3, 3)`` for ``angle (...)`` radians (scipy's ``from_euler``)."""
    return _about("y", angle)


def check_grid_level(level: int) -> int:
    """A grid level: an integer in 0..6 (72 * 8**level rotations; 6 is 18.9M). Bools, floats
    and strings are refused (BadInputError), as are levels whose grid would not fit in memory."""
    from posekit.validation import check_count

    level = check_count(level, "SO(3) grid level", minimum=0)
    if level > 6:
        raise BadInputError(f"SO(3) grid level must be an integer in 0..6 (72 * 8**level rotations), got {level}")
    return level


def so3_healpix_angles(level: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ZYZ angles of the grid: ``alpha (P,)``, ``beta (P,)`` of the HEALPix pixels and
    ``gamma (G,)``; grid rotation ``p * G + g`` is ``Rz(alpha[p]) Ry(beta[p]) Rz(gamma[g])``."""
    import healpy

    nside = 2 ** check_grid_level(level)
    beta, alpha = healpy.pix2ang(nside, np.arange(12 * nside * nside), nest=True)
    gamma = np.linspace(0.0, 2.0 * np.pi, 6 * nside, endpoint=False)
    return alpha, beta, gamma


@lru_cache(maxsize=8)
def _grid_cached(level: int) -> np.ndarray:
    alpha, beta, gamma = so3_healpix_angles(level)
    a = np.repeat(alpha, gamma.size)
    b = np.repeat(beta, gamma.size)
    g = np.tile(gamma, alpha.size)
    from scipy.spatial.transform import Rotation

    R = Rotation.from_euler("ZYZ", np.stack([a, b, g], axis=-1)).as_matrix()  # Rz(a) Ry(b) Rz(g)
    R.setflags(write=False)
    return R


def so3_healpix_grid(level: int) -> np.ndarray:
    """Grid rotations ``(72 * 8**level, 3, 3)`` float64 (read-only), ordered (pixel, in-plane angle)."""
    return _grid_cached(check_grid_level(level))


def matrix_to_quaternion(R: np.ndarray) -> np.ndarray:
    """Unit quaternions ``(..., 4)`` XYZW of rotations ``(..., 3, 3)`` (sign arbitrary)."""
    from scipy.spatial.transform import Rotation

    R = np.asarray(R, dtype=np.float64)
    return Rotation.from_matrix(R.reshape(-1, 3, 3)).as_quat().reshape(*R.shape[:-2], 4)


class NearestRotationIndex:
    """Nearest grid rotation (geodesic distance) for query rotations, via a k-d tree on +-q.

    The Euclidean distance between unit quaternions (taking the closer of q, -q) grows
    monotonically with the rotation angle between them, so the nearest quaternion is the
    nearest rotation.
    """

    def __init__(self, rotations: np.ndarray):
        from scipy.spatial import cKDTree

        q = matrix_to_quaternion(np.asarray(rotations, dtype=np.float64))
        self.n = q.shape[0]
        self._tree = cKDTree(np.concatenate([q, -q], axis=0))

    def query(self, R: np.ndarray) -> np.ndarray:
        """Indices ``(...)`` int64 of the nearest grid rotations to ``R (..., 3, 3)``."""
        R = np.asarray(R, dtype=np.float64)
        if R.shape[-2:] != (3, 3):
            raise BadInputError(f"rotations must have shape (..., 3, 3), got {R.shape}")
        q = matrix_to_quaternion(R)
        _, idx = self._tree.query(q.reshape(-1, 4))
        return (np.asarray(idx) % self.n).reshape(R.shape[:-2]).astype(np.int64)


@lru_cache(maxsize=8)
def nearest_index(level: int) -> NearestRotationIndex:
    """A cached :class:`NearestRotationIndex` of the level-``level`` grid."""
    return NearestRotationIndex(so3_healpix_grid(level))


def geodesic_angle_np(R1: np.ndarray, R2: np.ndarray) -> np.ndarray:
    """Angle ``(...)`` radians of ``R1^T R2`` (broadcasting), clipped trace formula."""
    tr = np.einsum("...ij,...ij->...", np.asarray(R1), np.asarray(R2))
    return np.arccos(np.clip((tr - 1.0) / 2.0, -1.0, 1.0))


def quarter_turn_permutation(level: int, k: int = 1) -> np.ndarray:
    """``perm (N,)`` with ``Rz(k pi/2) @ grid[i] == grid[perm[i]]`` (exact: the grid is closed)."""
    R = so3_healpix_grid(level)
    rotated = rot_z(k * np.pi / 2) @ R
    perm = nearest_index(level).query(rotated)
    err = geodesic_angle_np(R[perm], rotated).max()
    if err > 1e-6:
        raise ComputationError(f"grid level {level} is not closed under quarter turns (error {err:.2e} rad)")
    return perm
