"""Nearest neighbours of batched torch point clouds: the one home for the engines' k-NN.

(numpy code that needs a tree uses ``scipy.spatial.cKDTree`` directly.)
"""

from __future__ import annotations

import torch


def squared_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """|a_i - b_j|^2 (...xNxM) for a (...xNx3), b (...xMx3), by one matrix product (far faster
    than torch.cdist for small batched clouds on a CPU)."""
    return ((a * a).sum(-1, keepdim=True) + (b * b).sum(-1).unsqueeze(-2) - 2.0 * a @ b.transpose(-1, -2)).clamp_min(0)


def knn_indices(points: torch.Tensor, queries: torch.Tensor, k: int) -> torch.Tensor:
    """Indices (BxQxk) of the k nearest ``points (BxNx3)`` of each of ``queries (BxQx3)``,
    nearest first (k is capped at N)."""
    k = min(k, points.shape[1])
    return squared_distances(queries, points).topk(k, dim=-1, largest=False).indices


__all__ = ["knn_indices", "squared_distances"]
