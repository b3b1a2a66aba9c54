"""SO(3): exponential/logarithm maps, distances, sampling and means, batched in torch.

Conventions (used everywhere in posekit):
- rotation matrices ``R (...x3x3)`` act on column vectors, ``x' = R x``;
- rotation vectors ``omega (...x3)``: axis times angle in radians, ``R = exp(hat(omega))``;
- quaternions are XYZW (as roma and ROS use them);
- leading batch dimensions ``...`` broadcast everywhere; float32/float64; any device.

The maps delegate to roma where it already provides them (its log goes through unit
quaternions, which stays accurate near an angle of pi).
"""

from __future__ import annotations

import math

import roma
import torch

from posekit.errors import BadInputError


def hat(omega: torch.Tensor) -> torch.Tensor:
    """Skew-symmetric matrix ``[omega]_x (...x3x3)`` of ``omega (...x3)``, so hat(a) b = a x b."""
    x, y, z = omega.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack([o, -z, y, z, o, -x, -y, x, o], dim=-1).reshape(*omega.shape[:-1], 3, 3)


def vee(W: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`hat`: ``(...x3x3)`` skew matrix -> ``(...x3)`` (antisymmetric part)."""
    return 0.5 * torch.stack(
        [W[..., 2, 1] - W[..., 1, 2], W[..., 0, 2] - W[..., 2, 0], W[..., 1, 0] - W[..., 0, 1]], dim=-1
    )


def so3_exp(omega: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula: rotation vector ``(...x3, rad)`` -> rotation matrix ``(...x3x3)``."""
    return roma.rotvec_to_rotmat(omega)


def so3_log(R: torch.Tensor) -> torch.Tensor:
    """Rotation matrix ``(...x3x3)`` -> rotation vector ``(...x3)`` with angle in [0, pi]."""
    return roma.rotmat_to_rotvec(R)


def rotation_angle(R: torch.Tensor) -> torch.Tensor:
    """Angle of rotation ``(...)`` in radians, in [0, pi], accurate at 0 and near pi."""
    return so3_log(R).norm(dim=-1)


def geodesic_distance(R1: torch.Tensor, R2: torch.Tensor) -> torch.Tensor:
    """Geodesic (angle) distance in radians between rotations: angle of ``R1^T R2``, in [0, pi]."""
    return rotation_angle(R1.transpose(-1, -2) @ R2)


def chordal_distance(R1: torch.Tensor, R2: torch.Tensor) -> torch.Tensor:
    """Chordal distance ``||R1 - R2||_F`` = 2 sqrt(2) sin(theta / 2) (Hartley et al., IJCV 2013)."""
    return (R1 - R2).flatten(-2).norm(dim=-1)


def random_rotation(
    *size: int,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """Rotations ``(*size x3x3)`` drawn uniformly (Haar measure) from normalised Gaussian quaternions."""
    q = torch.randn(*size, 4, generator=generator, dtype=dtype, device=device)
    return roma.unitquat_to_rotmat(q / q.norm(dim=-1, keepdim=True))


def chordal_mean(R: torch.Tensor, weights: torch.Tensor | None = None, dim: int = 0) -> torch.Tensor:
    """Weighted chordal L2 mean of rotations along ``dim``.

    The rotation nearest (in Frobenius norm) to ``sum_i w_i R_i``: projection onto SO(3) by SVD
    with the determinant fixed to +1 (Hartley et al., "Rotation averaging", IJCV 2013, sec. 5.3).
    ``R (...xNx3x3)`` with ``dim`` indexing N; ``weights`` broadcastable to the N axis.
    """
    if weights is None:
        M = R.mean(dim=dim)
    else:
        w = weights.to(R.dtype)
        shape = [1] * R.dim()
        shape[dim % R.dim()] = -1
        M = (R * w.reshape(shape)).sum(dim=dim)
    return roma.special_procrustes(M)


def project_to_so3(M: torch.Tensor) -> torch.Tensor:
    """Closest rotation ``(...x3x3)`` to any 3x3 matrix (SVD, determinant fixed)."""
    return roma.special_procrustes(M)


def _check_rotation_like(R: torch.Tensor) -> None:
    if R.shape[-2:] != (3, 3):
        raise BadInputError(f"expected (...x3x3) rotation matrices, got shape {tuple(R.shape)}")


def is_rotation(R: torch.Tensor, atol: float = 1e-5) -> torch.Tensor:
    """Boolean ``(...)``: orthonormal with determinant +1 within ``atol``."""
    _check_rotation_like(R)
    eye = torch.eye(3, dtype=R.dtype, device=R.device)
    ortho = ((R.transpose(-1, -2) @ R - eye).abs() <= atol).flatten(-2).all(-1)
    return ortho & ((torch.linalg.det(R) - 1).abs() <= atol * 10)


PI = math.pi
