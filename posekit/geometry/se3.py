"""SE(3): rigid transforms as 4x4 matrices, their exponential/logarithm and actions, in torch.

Conventions (one home for them, used by every engine):
- ``T (...x4x4)`` maps points from frame b to frame a (``T_a_b``): ``x_a = R x_b + t``.
- A twist ``xi (...x6)`` is ordered ``(omega, v)``: rotation part first (radians), then
  translation part (metres). ``T = exp(xi)`` is the matrix exponential of
  ``[[hat(omega), v], [0, 0]]`` (Barfoot, "State Estimation for Robotics", eq. 7.85).
- Perturbations are applied on the LEFT, in the frame the transform maps into:
  ``T' = exp(xi) @ T`` (as the SE(3) diffusion paper does).
"""

from __future__ import annotations

import torch

from posekit.errors import BadInputError
from posekit.geometry.so3 import hat, so3_exp, so3_log


def make_transform(R: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Build ``T (...x4x4)`` from ``R (...x3x3)`` and ``t (...x3)``."""
    batch = torch.broadcast_shapes(R.shape[:-2], t.shape[:-1])
    T = torch.zeros(*batch, 4, 4, dtype=R.dtype, device=R.device)
    T[..., :3, :3] = R
    T[..., :3, 3] = t
    T[..., 3, 3] = 1
    return T


def split_transform(T: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``T (...x4x4)`` -> ``(R (...x3x3), t (...x3))``."""
    return T[..., :3, :3], T[..., :3, 3]


def se3_inverse(T: torch.Tensor) -> torch.Tensor:
    """Inverse rigid transform ``(...x4x4)``: ``[R^T, -R^T t]``, exact (no matrix inversion)."""
    R, t = split_transform(T)
    Rt = R.transpose(-1, -2)
    return make_transform(Rt, -(Rt @ t.unsqueeze(-1)).squeeze(-1))


def se3_compose(T1: torch.Tensor, T2: torch.Tensor) -> torch.Tensor:
    """``T1 @ T2``: first apply T2, then T1 (``T_a_c = T_a_b @ T_b_c``)."""
    return T1 @ T2


def transform_points(T: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Apply ``T (...x4x4)`` to ``points (...xNx3)``: ``R x + t`` for each point.

    Shapes are checked (BadInputError, a ValueError); rotations are not, to keep this cheap
    and free of device syncs: use :func:`posekit.geometry.so3.is_rotation` where needed.
    """
    if T.shape[-2:] != (4, 4) or points.shape[-1] != 3:
        raise BadInputError(
            f"expected T (...x4x4) and points (...xNx3), got {tuple(T.shape)} and {tuple(points.shape)}"
        )
    R, t = split_transform(T)
    return points @ R.transpose(-1, -2) + t.unsqueeze(-2)


def _taylor_threshold(dtype: torch.dtype) -> float:
    # The closed forms below lose about eps / th^2 to cancellation; switch to their Taylor series
    # (exact to th^6) where that loss would exceed ~1e-6 of the value.
    return 1e-2 if dtype == torch.float64 else 0.2


def _series_coefficients(theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``A = (1 - cos th) / th^2`` and ``B = (th - sin th) / th^3``, Taylor-expanded near 0."""
    small = theta < _taylor_threshold(theta.dtype)
    th = torch.where(small, torch.ones_like(theta), theta)
    th2 = th * th
    s2 = theta**2
    A = torch.where(small, 0.5 - s2 / 24 + s2**2 / 720, (1 - torch.cos(th)) / th2)
    B = torch.where(small, 1.0 / 6 - s2 / 120 + s2**2 / 5040, (th - torch.sin(th)) / (th2 * th))
    return A, B


def se3_left_jacobian_so3(omega: torch.Tensor) -> torch.Tensor:
    """Left Jacobian of SO(3), ``V (...x3x3) = I + A W + B W^2`` with ``W = hat(omega)``."""
    theta = omega.norm(dim=-1)
    A, B = _series_coefficients(theta)
    W = hat(omega)
    eye = torch.eye(3, dtype=omega.dtype, device=omega.device).expand(W.shape)
    return eye + A[..., None, None] * W + B[..., None, None] * (W @ W)


def se3_exp(xi: torch.Tensor) -> torch.Tensor:
    """Twist ``xi (...x6) = (omega, v)`` -> transform ``T (...x4x4)`` (closed form, stable at 0)."""
    if xi.shape[-1] != 6:
        raise BadInputError(f"a twist has 6 components (omega, v), got shape {tuple(xi.shape)}")
    omega, v = xi[..., :3], xi[..., 3:]
    R = so3_exp(omega)
    t = (se3_left_jacobian_so3(omega) @ v.unsqueeze(-1)).squeeze(-1)
    return make_transform(R, t)


def se3_log(T: torch.Tensor) -> torch.Tensor:
    """Transform ``T (...x4x4)`` -> twist ``(...x6) = (omega, v)``, rotation angle in [0, pi].

    ``v = V^-1 t`` with ``V^-1 = I - W/2 + C W^2``, ``C = (1 - th sin th / (2 (1 - cos th))) / th^2``,
    which is finite at th = pi (C = 1/pi^2) and Taylor-expanded (1/12 + th^2/720 + th^4/30240) near 0.
    """
    if T.shape[-2:] != (4, 4):
        raise BadInputError(f"expected (...x4x4) transforms, got shape {tuple(T.shape)}")
    R, t = split_transform(T)
    omega = so3_log(R)
    theta = omega.norm(dim=-1)
    small = theta < _taylor_threshold(theta.dtype)
    th = torch.where(small, torch.ones_like(theta), theta)
    C = torch.where(
        small,
        1.0 / 12 + theta**2 / 720 + theta**4 / 30240,
        (1 - th * torch.sin(th) / (2 * (1 - torch.cos(th)))) / (th * th),
    )
    W = hat(omega)
    eye = torch.eye(3, dtype=T.dtype, device=T.device).expand(W.shape)
    V_inv = eye - 0.5 * W + C[..., None, None] * (W @ W)
    v = (V_inv @ t.unsqueeze(-1)).squeeze(-1)
    return torch.cat([omega, v], dim=-1)


def se3_perturb(
    T: torch.Tensor,
    sigma_rot: float,
    sigma_trans: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Gaussian perturbation on se(3): ``exp(xi) @ T`` with ``xi = (sigma_rot e_r, sigma_trans e_t)``.

    ``e_r, e_t ~ N(0, I3)`` independent; ``sigma_rot`` in radians, ``sigma_trans`` in metres.
    """
    eps = torch.randn(*T.shape[:-2], 6, generator=generator, dtype=T.dtype, device=T.device)
    scale = torch.tensor([sigma_rot] * 3 + [sigma_trans] * 3, dtype=T.dtype, device=T.device)
    return se3_exp(eps * scale) @ T


def translation_distance(T1: torch.Tensor, T2: torch.Tensor) -> torch.Tensor:
    """Euclidean distance ``(...)`` between the translations of two transforms (metres)."""
    return (T1[..., :3, 3] - T2[..., :3, 3]).norm(dim=-1)
