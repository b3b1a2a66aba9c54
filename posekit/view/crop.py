"""Object crops of full images for the view network, and the allocentric -> camera conversion.

The crop geometry (crop cameras, boxes, masks) lives in :mod:`posekit.geometry.crop_camera`:
a crop is the image seen by a virtual camera turned towards the box. Here: the image warp
that makes the crop (:func:`warp_crop`) and the exact conversion of the network's allocentric
distribution over ``R_crop_obj`` into one over ``R_cam_obj = R_cam_crop R_crop_obj``
(:func:`rotate_distribution_coefficients`). Training renders directly in the crop camera built by
the same :func:`~posekit.geometry.crop_camera.crop_camera` from a jittered box, so training and
prediction crops agree by construction.
"""

from __future__ import annotations

import math

import numpy as np

from posekit.errors import BadInputError
from posekit.geometry.crop_camera import CropCamera
from posekit.validation import check_intrinsics


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


def rotate_distribution_coefficients(coeffs, R_cam_crop: np.ndarray, lmax: int):
    """SO(3) Fourier coefficients ``(B, sum (2l+1)^2)`` of ``f(R_crop_obj)`` -> those of
    ``f(R_cam_crop^T R_cam_obj)``, a function of ``R_cam_obj``: ``F_l -> D^l(R_cam_crop) F_l``
    (left translation, see :mod:`posekit.view.so3_fourier`). Exact: no grid resampling."""
    from posekit.view.so3_fourier import block_diag_wigner

    M = block_diag_wigner(np.asarray(R_cam_crop, dtype=np.float64), lmax, flatten_so3=True)
    return coeffs @ M.to(coeffs.device, coeffs.dtype).T
