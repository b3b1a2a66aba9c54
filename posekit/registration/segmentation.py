"""Tabletop fallback segmentation: object candidates from a raw scan without a mask.

Removes the dominant plane (RANSAC, open3d) and everything on its far side, then splits
the rest into Euclidean clusters (DBSCAN) and keeps clusters whose size is plausible for
the object (extent between 20% and 150% of its diameter). The estimator registers the
model to each candidate and keeps the one that fits best.
"""

from __future__ import annotations

import numpy as np

from posekit.errors import BadInputError


def remove_dominant_plane(points: np.ndarray, distance: float = 0.01, min_fraction: float = 0.15,
                          seed: int = 0) -> np.ndarray:
    """Points (N, 3) not on the dominant plane nor behind it (seen from the origin = camera).

    If no plane holds ``min_fraction`` of the points the cloud is returned unchanged.
    """
    import open3d as o3d

    pts = np.asarray(points, dtype=np.float64)
    if len(pts) < 50:
        return pts
    o3d.utility.random.seed(int(seed))
    pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pts))
    (a, b, c, d), inliers = pc.segment_plane(distance, 3, 200)
    if len(inliers) < min_fraction * len(pts):
        return pts
    normal = np.array([a, b, c])
    side = pts @ normal + d
    camera_side = np.sign(d) if d != 0 else 1.0  # origin's signed distance is d
    keep = side * camera_side > distance
    return pts[keep]


def euclidean_clusters(points: np.ndarray, eps: float, min_points: int = 30) -> list[np.ndarray]:
    """DBSCAN clusters (open3d) of ``points``, largest first, as index arrays."""
    import open3d as o3d

    if len(points) < min_points:
        return []
    pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.asarray(points, dtype=np.float64)))
    labels = np.asarray(pc.cluster_dbscan(eps=float(eps), min_points=int(min_points)))
    clusters = [np.nonzero(labels == k)[0] for k in range(labels.max() + 1)] if len(labels) else []
    return sorted(clusters, key=len, reverse=True)


def tabletop_candidates(points: np.ndarray, diameter: float, max_candidates: int = 5,
                        plane_distance: float | None = None) -> list[np.ndarray]:
    """Object-sized clusters (each (K, 3) camera points) of a raw scene cloud, largest first."""
    pts = np.asarray(points, dtype=np.float64)
    pts = pts[np.isfinite(pts).all(1)]
    if len(pts) == 0:
        raise BadInputError("the scene cloud has no valid points")
    above = remove_dominant_plane(pts, plane_distance or max(0.005, 0.06 * diameter))
    spacing = _median_spacing(above)
    out = []
    for idx in euclidean_clusters(above, eps=max(3 * spacing, 0.02 * diameter), min_points=20):
        c = above[idx]
        extent = float(np.linalg.norm(c.max(0) - c.min(0)))
        if 0.2 * diameter <= extent <= 1.5 * diameter:
            out.append(c)
        if len(out) >= max_candidates:
            break
    return out


def _median_spacing(points: np.ndarray) -> float:
    from scipy.spatial import cKDTree

    if len(points) < 2:
        return 0.005
    sample = points[:: max(1, len(points) // 2000)]
    return float(np.median(cKDTree(points).query(sample, k=2)[0][:, 1]))
