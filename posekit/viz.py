"""Pictures a person would rather look at than read: pose axes, masks and depth as images.

All functions take numpy arrays (images ``(H, W, 3) uint8 RGB``, depth ``(H, W)`` metres,
poses ``T_cam_model (4, 4)`` metres, ``K (3, 3)``) and return new images; nothing is drawn
in place. Writing PNGs uses matplotlib's Agg backend, so no display is needed.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from posekit.geometry.rigid_np import project_points_np, transform_points_np

# distinct colours for instances (RGB), cycled
PALETTE = np.array(
    [[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48], [145, 30, 180],
     [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 212], [0, 128, 128], [170, 110, 40]],
    dtype=np.uint8,
)


def _pixels(points: np.ndarray, K: np.ndarray, T_cam_model: np.ndarray) -> np.ndarray:
    """Integer pixels ``(N, 2)`` of model points; points on the camera plane do not divide by 0."""
    T = np.asarray(T_cam_model, dtype=np.float64)
    uv = project_points_np(points, K, T[:3, :3], T[:3, 3], min_depth=1e-9)
    return np.round(uv).astype(int)


def draw_axes(image: np.ndarray, K: np.ndarray, T_cam_model: np.ndarray, length: float = 0.05,
              thickness: int = 2) -> np.ndarray:
    """Draw the model frame's x (red), y (green), z (blue) axes of ``length`` metres."""
    out = np.ascontiguousarray(image.copy())
    pts = np.array([[0, 0, 0], [length, 0, 0], [0, length, 0], [0, 0, length]], dtype=np.float64)
    cam = transform_points_np(pts, T_cam_model[:3, :3], T_cam_model[:3, 3])
    if (cam[:, 2] <= 0).any():
        return out
    uv = _pixels(pts, K, T_cam_model)
    for i, colour in ((1, (255, 0, 0)), (2, (0, 255, 0)), (3, (0, 0, 255))):
        cv2.line(out, tuple(map(int, uv[0])), tuple(map(int, uv[i])), colour, thickness, cv2.LINE_AA)
    return out


def overlay_masks(image: np.ndarray, masks: list[np.ndarray], alpha: float = 0.45) -> np.ndarray:
    """Blend boolean ``masks (H, W)`` over ``image`` in palette colours, with outlines."""
    out = image.astype(np.float32).copy()
    for i, m in enumerate(masks):
        m = np.asarray(m, dtype=bool)
        colour = PALETTE[i % len(PALETTE)].astype(np.float32)
        out[m] = (1 - alpha) * out[m] + alpha * colour
    out = out.clip(0, 255).astype(np.uint8)
    for i, m in enumerate(masks):
        contours, _ = cv2.findContours(np.asarray(m, dtype=np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(out, contours, -1, tuple(int(c) for c in PALETTE[i % len(PALETTE)]), 1)
    return out


def draw_model_silhouette(image: np.ndarray, model_points: np.ndarray, K: np.ndarray,
                          T_cam_model: np.ndarray, colour=(0, 255, 255)) -> np.ndarray:
    """Draw the projected model points of a posed model as dots (a quick silhouette overlay)."""
    out = np.ascontiguousarray(image.copy())
    uv = _pixels(model_points, K, T_cam_model)
    h, w = out.shape[:2]
    ok = (uv[:, 0] >= 0) & (uv[:, 0] < w) & (uv[:, 1] >= 0) & (uv[:, 1] < h)
    out[uv[ok, 1], uv[ok, 0]] = colour
    return out


def depth_to_colour(depth: np.ndarray, d_min: float | None = None, d_max: float | None = None) -> np.ndarray:
    """Colour-map a depth image (metres, 0 = missing) to RGB; missing pixels are black."""
    valid = depth > 0
    if not valid.any():
        return np.zeros((*depth.shape, 3), np.uint8)
    lo = d_min if d_min is not None else float(np.percentile(depth[valid], 1))
    hi = d_max if d_max is not None else float(np.percentile(depth[valid], 99))
    norm = np.clip((depth - lo) / max(hi - lo, 1e-6), 0, 1)
    rgb = cv2.applyColorMap((255 * (1 - norm)).astype(np.uint8), cv2.COLORMAP_TURBO)[..., ::-1]
    rgb = rgb.copy()
    rgb[~valid] = 0
    return rgb


def save_panels(path: str | Path, panels: list[tuple[str, np.ndarray]], title: str = "",
                columns: int | None = None) -> Path:
    """Save images side by side with captions as one PNG (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(panels)
    cols = columns or n
    rows = (n + cols - 1) // cols
    h, w = panels[0][1].shape[:2]
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols * w / max(h, 1) * 0.75 + 0.5, 3.6 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (caption, img) in zip(axes.ravel(), panels):
        ax.imshow(img)
        ax.set_title(caption, fontsize=10)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    from posekit.io.atomic import atomic_path

    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110, format=path.suffix.lstrip(".").lower() or "png")
    finally:
        plt.close(fig)
    return path
