"""Object crops of full images as virtual cameras, and the allocentric <-> camera conversion.

A crop around a detector box is rendered exactly as a second pinhole camera would see it: the
*crop camera* shares the real camera's centre, is turned by ``R_cam_crop`` (the smallest
rotation taking the optical axis z onto the ray through the box centre) and has its own
intrinsics ``K_crop`` (square, principal point at the crop centre, focal length so that the
padded box fills the crop). Its pixels are a homography of the image,
``H = K_crop R_cam_crop^T K^-1`` (Hartley and Zisserman, Sec. 8.4.2: a camera that only rotates).

An orientation seen in the crop is allocentric (Kundu et al., 3D-RCNN, CVPR 2018):
``R_crop_obj = R_cam_crop^T R_cam_obj``. The view network predicts ``R_crop_obj``; the camera
frame rotation is ``R_cam_obj = R_cam_crop R_crop_obj`` (for a whole distribution:
:func:`posekit.view.so3_fourier.rotate_distribution_coefficients`). Training renders directly in the crop
camera built by the same :func:`crop_camera` from a jittered box, so training and prediction
crops agree by construction.

Boxes are ``(x, y, w, h)`` pixels as in BOP's ``bbox_obj``: the box covers columns
``x .. x + w - 1`` and rows ``y .. y + h - 1`` (pixel centres at integers), so its centre is
``(x + (w - 1) / 2, y + (h - 1) / 2)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from posekit.errors import BadInputError
from posekit.validation import as_float_array, check_intrinsics

DEFAULT_PADDING = 1.2  # the crop covers the box's larger side times this


def rotation_to_ray(ray) -> np.ndarray:
    """Smallest rotation ``(3, 3)`` taking the optical axis ``(0, 0, 1)`` onto ``ray (3,)``
    (any positive length, ``ray[2] > 0``); the identity for the optical axis itself."""
    from posekit.geometry.rigid_np import rotation_about_axis

    r = as_float_array(ray, "ray", (3,))
    n = np.linalg.norm(r)
    if n == 0:
        raise BadInputError("ray must be a non-zero 3-vector")
    r = r / n
    axis = np.array([-r[1], r[0], 0.0])  # z x r
    s = float(np.linalg.norm(axis))
    if s < 1e-12:
        if r[2] < 0:
            raise BadInputError("ray points behind the camera (z < 0)")
        return np.eye(3)
    return rotation_about_axis(axis, math.atan2(s, float(r[2])))


@dataclass
class CropCamera:
    """A virtual camera looking through a box of a real camera's image.

    ``R_cam_crop (3, 3)``: crop camera axes in the real camera frame; ``K_crop (3, 3)``;
    ``size`` (px, square); ``bbox (4,)`` the box it was made from (x, y, w, h, px).
    """

    R_cam_crop: np.ndarray
    K_crop: np.ndarray
    size: int
    bbox: np.ndarray

    def homography(self, K: np.ndarray) -> np.ndarray:
        """``H (3, 3)`` mapping homogeneous image pixels of camera ``K`` to crop pixels."""
        K = check_intrinsics(K)
        return self.K_crop @ self.R_cam_crop.T @ np.linalg.inv(K)

    def to_camera(self, R_crop_obj) -> np.ndarray:
        """``R_cam_obj = R_cam_crop @ R_crop_obj`` for rotations ``(..., 3, 3)``."""
        return self.R_cam_crop @ np.asarray(R_crop_obj, dtype=np.float64)

    def to_crop(self, R_cam_obj) -> np.ndarray:
        """``R_crop_obj = R_cam_crop^T @ R_cam_obj`` for rotations ``(..., 3, 3)`` (the allocentric label)."""
        return self.R_cam_crop.T @ np.asarray(R_cam_obj, dtype=np.float64)


def check_bbox(bbox, width: int | None = None, height: int | None = None) -> np.ndarray:
    """``bbox (4,)`` float64 ``(x, y, w, h)`` with ``w, h >= 1``; with an image size, the box
    must overlap the image."""
    b = as_float_array(bbox, "bbox (x, y, w, h)", (4,))
    if b[2] < 1 or b[3] < 1:
        raise BadInputError(f"bbox width and height must be >= 1 px, got w={b[2]:g} h={b[3]:g}; "
                            "pass (x, y, w, h), not (x0, y0, x1, y1) with x1 < x0")
    outside = b[0] + b[2] <= 0 or b[1] + b[3] <= 0 or b[0] >= (width or 0) or b[1] >= (height or 0)
    if width is not None and height is not None and outside:
        raise BadInputError(f"bbox {b.tolist()} (x, y, w, h) lies outside the {width}x{height} image")
    return b


def bbox_from_mask(mask) -> np.ndarray:
    """``(x, y, w, h)`` float64 of the non-zero pixels of ``mask (H, W)`` (bool or numbers, no
    NaN); BadInputError if empty."""
    m = np.asarray(mask)
    if m.dtype.kind not in "biuf":
        raise BadInputError(f"mask must be a bool or numeric (H, W) array, got dtype {m.dtype}")
    if m.ndim == 3 and m.shape[-1] in (1, 3, 4):
        m = m[..., 0]
    if m.ndim != 2:
        raise BadInputError(f"mask must be (H, W), got shape {m.shape}")
    if m.dtype.kind == "f" and not np.isfinite(m).all():
        raise BadInputError("mask contains NaN or inf; pass a bool mask (True on the object)")
    rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))  # 10x faster than nonzero(m)
    if rows.size == 0:
        raise BadInputError("mask is empty (no non-zero pixel); pass the object's mask or a bbox")
    return np.array([cols[0], rows[0], cols[-1] - cols[0] + 1, rows[-1] - rows[0] + 1], float)


def crop_camera(bbox, K, size: int, padding: float = DEFAULT_PADDING) -> CropCamera:
    """The :class:`CropCamera` of a box ``(x, y, w, h)`` px in an image with intrinsics ``K (3, 3)``.

    Its axis passes through the box centre; its focal length makes the box's larger angular
    half-extent (measured from that axis at the four edge midpoints) times ``padding`` reach
    the crop border.
    """
    K = check_intrinsics(K)
    b = check_bbox(bbox)
    try:
        whole = not isinstance(size, (bool, np.bool_)) and int(size) == size and size >= 8
    except (TypeError, ValueError, OverflowError):  # a list, text, NaN, inf
        whole = False
    if not whole:
        raise BadInputError(f"crop size must be an integer >= 8, got {size!r}")
    if not padding > 0:
        raise BadInputError(f"padding must be positive, got {padding!r}")
    x, y, w, h = b
    cu, cv = x + (w - 1) / 2.0, y + (h - 1) / 2.0
    Kinv = np.linalg.inv(K)
    Q = rotation_to_ray(Kinv @ np.array([cu, cv, 1.0]))
    edges = np.array([[x - 0.5, cv, 1], [x + w - 0.5, cv, 1], [cu, y - 0.5, 1], [cu, y + h - 0.5, 1]])
    rays = edges @ Kinv.T @ Q  # rows: Q^T ray, in the crop camera frame
    half_tan = float(np.max(np.abs(rays[:, :2]) / rays[:, 2:3]))
    f = (size / 2.0) / (padding * half_tan)
    c = (size - 1) / 2.0
    return CropCamera(Q, np.array([[f, 0.0, c], [0.0, f, c], [0.0, 0.0, 1.0]]), int(size), b)


def warp_crop(image: np.ndarray, camera: CropCamera, K) -> np.ndarray:
    """The crop ``(size, size, C)`` of ``image (H, W, C)`` seen by ``camera`` (perspective warp).

    Shrinking warps are done at an integer multiple of the crop size and area-averaged down
    (no aliasing); pixels outside the image repeat the border.
    """
    import cv2

    img = np.ascontiguousarray(image)
    if img.ndim not in (2, 3) or img.shape[0] < 1 or img.shape[1] < 1:
        raise BadInputError(f"image must be (H, W) or (H, W, C), got shape {img.shape}")
    K = check_intrinsics(K)
    H = camera.homography(K)
    scale = float(np.sqrt(K[0, 0] * K[1, 1])) / camera.K_crop[0, 0]  # image px per crop px at the centre
    k = int(min(8, max(1, math.ceil(scale - 1e-6))))
    S = np.diag([k, k, 1.0]) @ np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1]]) @ H  # crop px -> fine px
    S = np.array([[1, 0, -0.5], [0, 1, -0.5], [0, 0, 1]]) @ S
    out = cv2.warpPerspective(img, S, (camera.size * k, camera.size * k), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
    if k > 1:
        out = cv2.resize(out, (camera.size, camera.size), interpolation=cv2.INTER_AREA)
    return out

