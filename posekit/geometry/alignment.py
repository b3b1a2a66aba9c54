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
    R, t = roma.rigid_points_registration(source, target, weights=weights)
    return make_transform(R, t)
