"""Object candidates in a raw scan without a mask: tabletop clusters and object-sized crops.

Removes the dominant plane (RANSAC, open3d) and everything on its far side. Then either
splits the rest into Euclidean clusters (DBSCAN) and keeps clusters whose size is plausible
for the object (:func:`tabletop_candidates`: objects standing apart), or cuts a ball of the
object's size around seed points spread over the whole rest (:func:`scene_crops`: objects
that touch or occlude each other, where clusters merge). The estimator ranks the candidates,
registers the model to the best and keeps the pose that explains the depth best.
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


def scene_crops(points: np.ndarray, diameter: float, max_seeds: int = 48, seed: int = 0,
                spacing: float = 0.35, radius: float = 0.6, min_points: int = 24) -> list[np.ndarray]:
    """Object-sized crops (each (K, 3) camera points) of a scene cloud ``points (N, 3)`` metres.

    The dominant plane and what lies behind it are removed; seeds are drawn by farthest-point
    sampling over the rest, at least ``spacing`` x diameter apart (at most ``max_seeds``),
    and each crop holds the points within ``radius`` x diameter of its seed. Object-sized
    tabletop clusters are added as crops too. Clutter stays in the crops: the registration
    and its depth score are robust to it.
    """
    from scipy.spatial import cKDTree

    pts = np.asarray(points, dtype=np.float64)
    pts = pts[np.isfinite(pts).all(1)]
    if len(pts) < min_points:
        return []
    above = remove_dominant_plane(pts, max(0.005, 0.06 * diameter), seed=seed)
    if len(above) < min_points:
        return []
    seeds = farthest_points(above, spacing * diameter, max_seeds, seed)
    tree = cKDTree(above)
    crops = [above[idx] for idx in tree.query_ball_point(seeds, radius * diameter) if len(idx) >= min_points]
    spacing_m = _median_spacing(above)
    for idx in euclidean_clusters(above, eps=max(3 * spacing_m, 0.02 * diameter), min_points=20):
        c = above[idx]
        if 0.2 * diameter <= float(np.linalg.norm(c.max(0) - c.min(0))) <= 1.5 * diameter:
            crops.append(c)
    return crops


def farthest_points(points: np.ndarray, min_distance: float, max_count: int, seed: int = 0) -> np.ndarray:
    """Up to ``max_count`` points (K, 3) of ``points`` by farthest-point sampling, stopping when
    the farthest remaining point is closer than ``min_distance`` to the chosen ones."""
    pts = np.asarray(points, dtype=np.float64)
    if len(pts) == 0:
        return pts.reshape(0, 3)
    sample = pts[:: max(1, len(pts) // 8000)]
    first = int(np.random.default_rng(seed).integers(len(sample)))
    chosen = [first]
    dist = np.linalg.norm(sample - sample[first], axis=1)
    while len(chosen) < max_count:
        i = int(np.argmax(dist))
        if dist[i] < min_distance:
            break
        chosen.append(i)
        dist = np.minimum(dist, np.linalg.norm(sample - sample[i], axis=1))
    return sample[chosen]
