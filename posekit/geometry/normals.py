"""Surface normals of point clouds by local PCA: the one home for normal estimation of clouds.

Depth images have their own, cheaper route (central differences on the pixel grid:
:func:`posekit.io.depth.normals_from_depth`, :func:`posekit.io.depth.normals_at_pixels`).
"""

from __future__ import annotations

import numpy as np

from posekit.errors import BadInputError


def estimate_normals(points: np.ndarray, towards: str | np.ndarray = "camera", k: int = 16,
                     radius: float | None = None) -> np.ndarray:
    """Unit normals ``(N, 3)`` float64 of ``points (N, 3)`` by local PCA (open3d) over the ``k``
    nearest neighbours, or with ``radius`` (same units as the points) over at most ``k``
    neighbours within that radius; turned towards ``towards``: ``"camera"`` (the origin:
    observed clouds), a point ``(3,)``, or ``"outward"`` (away from the centroid: models).
    """
    import open3d as o3d

    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise BadInputError(f"points must be (N, 3), got shape {pts.shape}")
    if int(k) < 3:
        raise BadInputError(f"normal estimation needs k >= 3 neighbours, got {k!r}")
    if radius is not None and not radius > 0:
        raise BadInputError(f"normal radius must be positive, got {radius!r}")
    search = (o3d.geometry.KDTreeSearchParamKNN(knn=int(k)) if radius is None
              else o3d.geometry.KDTreeSearchParamHybrid(radius=float(radius), max_nn=int(k)))
    pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pts))
    pc.estimate_normals(search)
    normals = np.asarray(pc.normals).copy()
    outward = isinstance(towards, str) and towards == "outward"
    if outward:
        anchor = pts.mean(0)
    elif isinstance(towards, str):
        if towards != "camera":
            raise BadInputError(f"towards must be 'camera', 'outward' or a point (3,), got {towards!r}")
        anchor = np.zeros(3)
    else:
        anchor = np.asarray(towards, dtype=np.float64)
    to_anchor = anchor[None] - pts
    flip = (normals * to_anchor).sum(1) < 0
    if outward:
        flip = ~flip  # outward: away from the centroid
    normals[flip] *= -1
    return normals


__all__ = ["estimate_normals"]
