"""Nearest neighbours of batched torch point clouds: the one home for the engines' k-NN, and
:class:`NearestGrid`, a nearest-point lookup table for a fixed point set queried millions of times.

(numpy code that needs a tree uses ``scipy.spatial.cKDTree`` directly.)

NearestGrid is a voxel grid around a fixed point set that stores, per voxel, the index of the
set's point nearest to the voxel's centre.

A query costs one rounding and one gather, whatever the set's size, so millions of queries
(every point of a cloud under a thousand rotations) run in milliseconds, on any torch device.
The answer is the exact nearest point for queries at voxel centres and a near one elsewhere:
its distance exceeds the true nearest distance by at most the voxel's half diagonal.
Queries outside the grid are clamped to its border, so their distance to the returned point
is still an upper bound (and correct in order of magnitude). Build once per point set (an
object model), reuse for every frame.
"""

from __future__ import annotations

import numpy as np
import torch

from posekit.errors import BadInputError


def squared_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """|a_i - b_j|^2 (...xNxM) for a (...xNx3), b (...xMx3), by one matrix product (far faster
    than torch.cdist for small batched clouds on a CPU)."""
    return ((a * a).sum(-1, keepdim=True) + (b * b).sum(-1).unsqueeze(-2) - 2.0 * a @ b.transpose(-1, -2)).clamp_min(0)


def knn_indices(points: torch.Tensor, queries: torch.Tensor, k: int) -> torch.Tensor:
    """Indices (BxQxk) of the k nearest ``points (BxNx3)`` of each of ``queries (BxQx3)``,
    nearest first (k is capped at N)."""
    k = min(k, points.shape[1])
    return squared_distances(queries, points).topk(k, dim=-1, largest=False).indices


class NearestGrid:
    """Approximate nearest neighbours of a fixed set ``points (M, 3)`` (see module doc).

    ``resolution`` voxels per side over the points' bounding cube widened by ``margin`` times
    its half side on every face.
    """

    def __init__(self, points, resolution: int = 48, margin: float = 0.6, device="cpu"):
        from scipy.spatial import cKDTree

        pts = np.asarray(points.detach().cpu() if isinstance(points, torch.Tensor) else points, np.float64)
        if pts.ndim != 2 or pts.shape[1] != 3 or len(pts) == 0 or not np.isfinite(pts).all():
            raise BadInputError(f"a nearest-point grid needs finite points (M, 3), got shape {pts.shape}")
        if int(resolution) < 2:
            raise BadInputError(f"resolution must be >= 2 voxels per side, got {resolution}")
        centre = 0.5 * (pts.min(0) + pts.max(0))
        half = max(float(np.abs(pts - centre).max()), 1e-9) * (1.0 + float(margin))
        g = int(resolution)
        self.resolution = g
        self.lo = centre - half
        self.voxel = 2.0 * half / g
        axis = (np.arange(g) + 0.5) * self.voxel
        cx, cy, cz = np.meshgrid(axis + self.lo[0], axis + self.lo[1], axis + self.lo[2], indexing="ij")
        centres = np.stack([cx.ravel(), cy.ravel(), cz.ravel()], 1)
        nearest = cKDTree(pts).query(centres)[1]
        self.device = torch.device(device)
        self.points = torch.as_tensor(pts, dtype=torch.float32, device=self.device)
        self.table = torch.as_tensor(nearest, dtype=torch.long, device=self.device)
        self._lo = torch.as_tensor(self.lo, dtype=torch.float32, device=self.device)
        self._cells = self.points[self.table]  # each voxel's near point itself: one gather per lookup
        self._strides = torch.tensor([g * g, g, 1], dtype=torch.long, device=self.device)

    def nearest(self, queries: torch.Tensor) -> torch.Tensor:
        """Index (...) into ``points`` of a near point for each of ``queries (..., 3)``."""
        g = self.resolution
        ijk = ((queries - self._lo) / self.voxel).long().clamp_(0, g - 1)
        return self.table[(ijk[..., 0] * g + ijk[..., 1]) * g + ijk[..., 2]]

    def nearest_points(self, queries: torch.Tensor) -> torch.Tensor:
        """The near points themselves (..., 3)."""
        ijk = ((queries - self._lo) / self.voxel).long().clamp_(0, self.resolution - 1)
        return self._cells[(ijk * self._strides).sum(-1)]


__all__ = ["NearestGrid", "knn_indices", "squared_distances"]
