"""Rigid alignment of corresponding point sets (Procrustes / weighted Kabsch), in torch."""

from __future__ import annotations

import roma
import torch

from posekit.errors import BadInputError
from posekit.geometry.se3 import make_transform


def weighted_kabsch(
    source: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Rigid ``T (...x4x4)`` minimising ``sum_i w_i ||R source_i + t - target_i||^2``.

    ``source, target (...xNx3)`` are corresponding points; ``weights (...xN)`` non-negative.
    Kabsch (1976) / Umeyama (1991) by SVD with the determinant fixed, via roma, differentiable.
    """
    if source.shape != target.shape or source.shape[-1] != 3:
        raise BadInputError(f"source {tuple(source.shape)} and target {tuple(target.shape)} must both be (...xNx3)")
    if source.shape[-2] < 3:
        raise BadInputError("weighted_kabsch needs at least 3 point pairs")
    if torch.is_grad_enabled() and any(x is not None and x.requires_grad for x in (source, target, weights)):
        R, t = roma.rigid_points_registration(source, target, weights=weights)  # stable gradients
        return make_transform(R, t)
    return _kabsch_svd(source, target, weights)


def _kabsch_svd(source: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """The same optimum in closed form by one batched 3x3 SVD (inference: no gradients needed;
    several times faster than the differentiable route for small batches)."""
    w = torch.ones(source.shape[:-1], dtype=source.dtype, device=source.device) if weights is None else weights
    w = (w / w.sum(-1, keepdim=True).clamp_min(1e-12)).unsqueeze(-1)  # (..., N, 1)
    mu_s, mu_t = (w * source).sum(-2), (w * target).sum(-2)
    cov = (target - mu_t.unsqueeze(-2)).transpose(-1, -2) @ (w * (source - mu_s.unsqueeze(-2)))  # (..., 3, 3)
    U, _, Vh = torch.linalg.svd(cov)
    d = torch.sign(torch.linalg.det(U @ Vh))
    d = torch.where(d == 0, torch.ones_like(d), d)
    D = torch.diag_embed(torch.stack([torch.ones_like(d), torch.ones_like(d), d], -1))
    R = U @ D @ Vh
    t = mu_t - (R @ mu_s.unsqueeze(-1)).squeeze(-1)
    return make_transform(R, t)
