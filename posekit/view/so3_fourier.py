"""Wigner-D matrices and spherical harmonics in escnn's real basis; SO(3)/S2 Fourier transforms.

Convention (the only one used in posekit.view):
- ``D^l(R)`` is the real ``(2l+1) x (2l+1)`` irrep of SO(3) exactly as
  ``escnn.group.so3_group().irrep(l)`` defines it (basis order m = -l..l; for l = 1 the basis
  is (y, z, x)). It is computed in batch from ZYZ Euler angles and the generators ``J^l_i``
  read off escnn's irrep: ``D^l(exp(t [e_i]_x)) = expm(t J^l_i)``.
- Restricted to rotations about z, ``D^l(Rz(t))`` is escnn's ``irrep(l).restrict((False, -1))``
  at angle t, i.e. the field type of ``gspaces.rot2dOnR2(-1)`` that the induction layer outputs.
- A function on SO(3) is ``f(R) = sum_l sum_mn F_l[m, n] D^l_mn(R)``; left translation
  ``f(g^-1 R)`` maps ``F_l -> D^l(g) F_l``. A function on S2 is
  ``h(x) = sum_l h_l . Y_l(x)`` with ``Y_l(x) = D^l(R_x) e_0`` (``R_x e_z = x``, ``e_0`` the
  m = 0 vector), so ``Y_l(g x) = D^l(g) Y_l(x)``.
- Forward transforms use grid quadrature with the Haar orthogonality
  ``int D^l_mn D^l'_m'n' dR = delta / (2l+1)`` (Peter-Weyl).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from posekit.errors import ComputationError


def so3_coeff_size(lmax: int) -> int:
    """Number of SO(3) Fourier coefficients up to degree lmax: ``sum (2l+1)^2``."""
    return sum((2 * l + 1) ** 2 for l in range(lmax + 1))


def s2_coeff_size(lmax: int) -> int:
    """Number of S2 coefficients up to degree lmax: ``(lmax+1)^2``."""
    return (lmax + 1) ** 2


@lru_cache(maxsize=32)
def _generators(l: int) -> np.ndarray:
    """``(3, 2l+1, 2l+1)`` antisymmetric generators of escnn's irrep l about x, y, z."""
    from escnn import group
    from scipy.linalg import logm

    from posekit.geometry.rigid_np import rotation_about_axis

    so3 = group.so3_group(1)  # any band limit: irreps are built on demand
    irrep = so3.irrep(l)
    t = 0.5
    out = []
    for axis in np.eye(3):
        D = irrep(so3.element(rotation_about_axis(axis, t), "MAT"))
        J = np.real(logm(D)) / t
        out.append(0.5 * (J - J.T))
    return np.stack(out)


@lru_cache(maxsize=32)
def _eigen(l: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``exp(t J_z) = Vz diag(exp(-i m t)) Vz^H``; returns (Vz, A = Vz^H Vy, m) as complex128 arrays (read-only)."""
    J = _generators(l)
    mz, Vz = np.linalg.eigh(1j * J[2])
    my, Vy = np.linalg.eigh(1j * J[1])
    if np.abs(mz - my).max() > 1e-8:
        raise ComputationError(f"the generators of irrep l={l} do not share their spectrum "
                               f"(max difference {np.abs(mz - my).max():.2e}); the Lie algebra basis is broken")
    out = (Vz, Vz.conj().T @ Vy, mz.astype(np.complex128))
    for a in out:
        a.setflags(write=False)
    return out


def wigner_d(R: np.ndarray | torch.Tensor, l: int) -> torch.Tensor:
    """``D^l(R)`` of rotations ``R (..., 3, 3)``: ``(..., 2l+1, 2l+1)`` float64 torch tensor.

    Computed from ZYZ Euler angles ``R = Rz(a) Ry(b) Rz(c)`` as ``D(Rz(a)) D(Ry(b)) D(Rz(c))``
    with ``D(exp(t J)) = V diag(exp(-i m t)) V^H`` (eigenvectors of the generators).
    """
    R = np.asarray(R.detach().cpu().numpy() if torch.is_tensor(R) else R, dtype=np.float64)
    return _wigner_from_euler(_euler_zyz(R), l).reshape(*R.shape[:-2], 2 * l + 1, 2 * l + 1)


def _euler_zyz(R: np.ndarray) -> np.ndarray:
    """ZYZ Euler angles ``(M, 3)`` of rotations ``R (..., 3, 3)`` float64 (flattened)."""
    import warnings

    from scipy.spatial.transform import Rotation

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # gimbal lock at b = 0 or pi: any valid split works
        return Rotation.from_matrix(R.reshape(-1, 3, 3)).as_euler("ZYZ")


def _wigner_from_euler(abc: np.ndarray, l: int) -> torch.Tensor:
    """``(M, 2l+1, 2l+1)`` float64 ``D^l`` of ZYZ angles ``abc (M, 3)`` (see :func:`wigner_d`); numpy
    complex arithmetic, as fast as torch on large batches and ~5x faster on one rotation."""
    Vz, A, m = _eigen(l)
    e = lambda t: np.exp(-1j * t[:, None] * m[None])
    W = (A[None] * e(abc[:, 1])[:, None, :]) @ A.conj().T[None]  # Vz^H D(Ry(b)) Vz
    W = e(abc[:, 0])[:, :, None] * W * e(abc[:, 2])[:, None, :]
    return torch.from_numpy(np.ascontiguousarray((Vz[None] @ W @ Vz.conj().T[None]).real))


def wigner_d_all(R, lmax: int) -> torch.Tensor:
    """``(..., sum (2l+1)^2)`` float64: flattened ``D^l(R)`` for l = 0..lmax, concatenated."""
    return torch.cat([wigner_d(R, l).flatten(-2) for l in range(lmax + 1)], dim=-1)


def m0_vector(l: int) -> np.ndarray:
    """Unit vector ``(2l+1,)`` fixed by every ``D^l(Rz(t))`` (the m = 0 direction)."""
    Jz = _generators(l)[2]
    vt = np.linalg.svd(Jz)[2]
    v = vt[-1]
    return v * np.sign(v[np.argmax(np.abs(v))])


def rotation_to_direction(x: np.ndarray) -> np.ndarray:
    """Rotations ``(..., 3, 3)`` with ``R e_z = x`` for unit vectors ``x (..., 3)`` (ZYZ, gamma = 0)."""
    from posekit.geometry.so3_grid import rot_y, rot_z

    x = np.asarray(x, dtype=np.float64)
    beta = np.arccos(np.clip(x[..., 2], -1.0, 1.0))
    alpha = np.arctan2(x[..., 1], x[..., 0])
    return rot_z(alpha) @ rot_y(beta)


def spherical_harmonics(x: np.ndarray, lmax: int) -> torch.Tensor:
    """``Y (..., (lmax+1)^2)`` float64 at unit vectors ``x (..., 3)``; ``Y_l(g x) = D^l(g) Y_l(x)``."""
    Rx = rotation_to_direction(x)
    out = []
    for l in range(lmax + 1):
        D = wigner_d(Rx, l)
        out.append(D @ torch.from_numpy(m0_vector(l)))
    return torch.cat(out, dim=-1)


def block_diag_wigner(g: np.ndarray, lmax: int, flatten_so3: bool = False) -> torch.Tensor:
    """Matrix acting on stacked coefficients by ``D^l(g)`` per degree (S2 vectors, or the
    row index of flattened SO(3) blocks when ``flatten_so3``)."""
    blocks = []
    for l in range(lmax + 1):
        D = wigner_d(np.asarray(g), l)
        blocks.append(torch.kron(D, torch.eye(2 * l + 1, dtype=D.dtype)) if flatten_so3 else D)
    return torch.block_diag(*blocks)


def so3_quadrature_matrix(R_grid: np.ndarray, lmax: int) -> torch.Tensor:
    """``(sum (2l+1)^2, N)`` float64 map from grid values to SO(3) coefficients:
    ``F_l[m, n] = (2l+1)/N sum_i f(R_i) D^l_mn(R_i)``."""
    Y = wigner_d_all(R_grid, lmax)
    scale = torch.cat([torch.full(((2 * l + 1) ** 2,), float(2 * l + 1)) for l in range(lmax + 1)])
    return (Y * scale.to(Y.dtype)).T / Y.shape[0]


@lru_cache(maxsize=8)
def grid_wigner(level: int, lmax: int) -> torch.Tensor:
    """``wigner_d_all`` of the level-``level`` HEALPix grid as float32 ``(N, sum (2l+1)^2)``,
    cached (read-only by convention: callers copy before changing it)."""
    from posekit.geometry.so3_grid import rot_y, rot_z, so3_healpix_angles

    alpha, beta, gamma = so3_healpix_angles(level)
    pixels, turns = rot_z(alpha) @ rot_y(beta), rot_z(gamma)
    blocks = []
    for l in range(lmax + 1):  # D(Rz(a) Ry(b) Rz(g)) = D(Rz(a) Ry(b)) D(Rz(g)), grid order (pixel, g)
        D = wigner_d(pixels, l).numpy()[:, None] @ wigner_d(turns, l).numpy()[None]
        blocks.append(D.reshape(-1, (2 * l + 1) ** 2).astype(np.float32))
    return torch.from_numpy(np.concatenate(blocks, axis=1))


@lru_cache(maxsize=4)
def grid_factors(level: int, lmax: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Factors of the grid's Wigner matrices, ``D(R_pg) = D(Rz(a_p) Ry(b_p)) D(Rz(g_g))``:
    ``pixels (P, sum (2l+1)^2)`` float32 (flattened per degree) and per degree
    ``turns[l] (G, 2l+1, 2l+1)`` float32. Memory grows with P + G, not P * G, so that
    level-5 grids (2.36M rotations) can be evaluated; see :func:`grid_function_values`."""
    from posekit.geometry.so3_grid import rot_y, rot_z, so3_healpix_angles

    alpha, beta, gamma = so3_healpix_angles(level)
    pixels, turns = rot_z(alpha) @ rot_y(beta), rot_z(gamma)
    P = torch.cat([wigner_d(pixels, l).flatten(-2) for l in range(lmax + 1)], dim=-1).float()
    return P, [wigner_d(turns, l).float() for l in range(lmax + 1)]


def grid_function_values(coeffs: torch.Tensor, level: int, lmax: int) -> torch.Tensor:
    """Values ``(B, 72 * 8**level)`` on the HEALPix grid (grid order) of SO(3) functions with
    flattened coefficients ``coeffs (B, sum (2l+1)^2)``:
    ``f(R_pg) = sum_l sum_ab D(pixel_p)[a, b] (F_l D(turn_g)^T)[a, b]``."""
    pixels, turns = grid_factors(level, lmax)
    pixels = pixels.to(coeffs.device, coeffs.dtype)
    parts, start = [], 0
    for l, Dg in enumerate(turns):
        d = 2 * l + 1
        F = coeffs[:, start:start + d * d].unflatten(-1, (d, d))
        parts.append(torch.einsum("zac,gbc->zgab", F, Dg.to(coeffs.device, coeffs.dtype)).flatten(-2))
        start += d * d
    N = torch.cat(parts, dim=-1)  # (B, G, K)
    return (N @ pixels.T).transpose(1, 2).reshape(coeffs.shape[0], -1)


def rotate_distribution_coefficients(coeffs, R_cam_crop: np.ndarray, lmax: int):
    """SO(3) Fourier coefficients ``(B, sum (2l+1)^2)`` of ``f(R_crop_obj)`` -> those of
    ``f(R_cam_crop^T R_cam_obj)``, a function of ``R_cam_obj``: ``F_l -> D^l(R_cam_crop) F_l``
    (left translation, see the module docstring). Exact: no grid resampling. One ``(2l+1)^2``
    product per degree (the same map as ``block_diag_wigner(R, lmax, flatten_so3=True)``, without
    building that matrix)."""
    abc = _euler_zyz(np.asarray(R_cam_crop, dtype=np.float64))
    parts, start = [], 0
    for l in range(lmax + 1):
        d = 2 * l + 1
        D = _wigner_from_euler(abc, l)[0].to(coeffs.device, coeffs.dtype)
        F = coeffs[..., start:start + d * d].unflatten(-1, (d, d))
        parts.append((D @ F).flatten(-2))
        start += d * d
    return torch.cat(parts, dim=-1)
