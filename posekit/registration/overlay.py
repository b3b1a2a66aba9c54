"""Pictures of a registration result: the posed model over the image (or over the scan's points)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from posekit import viz
from posekit.registration.clouds import ModelCloud

# A virtual camera for scans without an image: Kinect-like, 640x480.
_SCAN_K = np.array([[572.4, 0, 319.5], [0, 572.4, 239.5], [0, 0, 1.0]])


def overlay_image(image: np.ndarray, K: np.ndarray, T_cam_model: np.ndarray, model: ModelCloud,
                  colour=(0, 255, 255)) -> np.ndarray:
    """The model's points projected at ``T_cam_model`` onto ``image`` (H, W, 3) uint8, with its axes."""
    out = viz.draw_model_silhouette(image, model.points, K, T_cam_model, colour)
    return viz.draw_axes(out, K, T_cam_model, length=0.6 * model.diameter)


def points_image(points: np.ndarray, K: np.ndarray = _SCAN_K, width: int = 640, height: int = 480) -> np.ndarray:
    """Depth-coloured splat of camera-frame points, for scans that have no image."""
    pts = np.asarray(points, dtype=np.float64)
    pts = pts[np.isfinite(pts).all(1) & (pts[:, 2] > 0)]
    depth = np.zeros((height, width), np.float32)
    if len(pts):
        uv = np.round((pts[:, :2] / pts[:, 2:3]) * [K[0, 0], K[1, 1]] + [K[0, 2], K[1, 2]]).astype(int)
        ok = (uv[:, 0] >= 0) & (uv[:, 0] < width) & (uv[:, 1] >= 0) & (uv[:, 1] < height)
        order = np.argsort(-pts[ok, 2])  # near points drawn last
        depth[uv[ok, 1][order], uv[ok, 0][order]] = pts[ok, 2][order]
    return viz.depth_to_colour(depth)


def save_overlay(path: str | Path, result, model: ModelCloud, points: np.ndarray | None = None,
                 depth: np.ndarray | None = None, K: np.ndarray | None = None,
                 rgb: np.ndarray | None = None) -> Path:
    """One PNG: the input (RGB, depth or the scan's points) and the same with the posed model drawn on it."""
    if rgb is not None and K is not None:
        base = rgb
    elif depth is not None and K is not None:
        base = viz.depth_to_colour(depth)
    else:
        K = _SCAN_K
        base = points_image(points if points is not None else np.zeros((0, 3)), K)
    caption = (f"posed model, score {result.score:.2f}" if result.success else f"no pose: {result.reason}")
    panels = [("input", base)]
    panels.append((caption, overlay_image(base, K, result.T_cam_model, model) if result.success else base))
    return viz.save_panels(path, panels, title="posekit register")
