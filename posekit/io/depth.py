"""Depth images: reading and writing 16-bit depth files, and back-projection to 3D points.

Conventions:
- In memory, depth is (H, W) float32 in metres, 0 where the sensor has no measurement.
- On disk, 16-bit PNG/TIFF depth is in units of ``depth_scale`` millimetres (BOP's
  ``depth_scale``: metres = value * depth_scale / 1000; Kinect/PrimeSense files use 1.0);
  32-bit float images are metres. This module is the one place that converts between the
  two; ``posekit.io.bop`` reads and writes its depth PNGs through it.
- Pixel (u, v) = (column, row) has its centre at integer coordinates, as OpenCV and BOP use
  it; a camera point (x, y, z) projects to z * [u, v, 1] = K @ [x, y, z].
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from posekit.errors import (
    BadInputError,
    CorruptFileError,
    MissingFileError,
    UnsupportedFormatError,
)
from posekit.io.atomic import atomic_write_bytes
from posekit.validation import MAX_PLAUSIBLE_DEPTH_M, as_path, check_intrinsics, check_positive

DEPTH_IMAGE_SUFFIXES = (".png", ".tif", ".tiff")

# Scenes a depth camera sees: the median valid depth of a metric image lies in this range;
# the same image in millimetres has its median 1000x higher.
_PLAUSIBLE_MEDIAN_DEPTH_M = (0.05, 20.0)
# A 16-bit depth image whose valid pixels all lie below this many mm was almost surely written
# in metres (or with the wrong depth_scale): no depth sensor sees only that close.
_MIN_PLAUSIBLE_MAX_DEPTH_MM = 20.0


def _check_depth_array(depth, dtype=np.float32) -> np.ndarray:
    """(H, W) float depth in metres as ``dtype``; (H, W, 1) is squeezed."""
    depth = np.asarray(depth)
    if depth.ndim == 3 and depth.shape[2] == 1:
        depth = depth[:, :, 0]
    if depth.ndim != 2:
        raise BadInputError(f"depth must have shape (H, W), got {depth.shape}")
    if depth.size == 0:
        raise BadInputError("depth image is empty")
    if depth.dtype.kind != "f":
        raise BadInputError(
            f"depth must be float metres, got dtype {depth.dtype}; convert raw sensor units first "
            "(read_depth_image does mm -> m)"
        )
    with np.errstate(over="ignore"):  # beyond float32 becomes inf: treated as missing or refused
        return depth.astype(dtype, copy=False)


def _check_depth_scale(depth_scale: float) -> None:
    check_positive(depth_scale, "depth_scale (mm per unit)")


def depth_to_points(
    depth: np.ndarray,
    K,
    mask: np.ndarray | None = None,
    organized: bool = False,
    depth_range: tuple[float, float] | None = None,
    return_pixels: bool = False,
):
    """Back-project a depth image to camera-frame 3D points (metres).

    depth (H, W) float metres (0, NaN or inf = missing); K (3, 3) pixels; mask (H, W) bool
    or 0/1 (points outside are dropped); depth_range (near, far) metres, inclusive.
    Pixel (u, v) = (column, row), centre at integer coordinates (OpenCV/BOP):
    [x, y, z] = z * K^-1 [u, v, 1].

    Returns (N, 3) float32 points of the valid pixels in row-major order, or with
    ``organized=True`` an (H, W, 3) float32 image with NaN at invalid pixels. With
    ``return_pixels=True`` also returns (N, 2) int64 pixel coordinates (u, v) of the
    points (not available with ``organized``, where the index is the pixel).
    """
    depth = _check_depth_array(depth)
    K = check_intrinsics(K)
    h, w = depth.shape
    valid = np.isfinite(depth) & (depth > 0)
    if mask is not None:
        mask = np.asarray(mask)
        if mask.shape != depth.shape:
            raise BadInputError(f"mask shape {mask.shape} does not match depth shape {depth.shape}")
        if mask.dtype != bool:
            if not np.isin(mask, (0, 1)).all():
                raise BadInputError(
                    "mask must be boolean or contain only 0 and 1 (use mask > 0 for labels)"
                )
            mask = mask.astype(bool)
        valid &= mask
    if depth_range is not None:
        try:
            near, far = (float(x) for x in depth_range)
        except (TypeError, ValueError) as err:
            raise BadInputError(
                f"depth_range must be (near, far) metres, got {depth_range!r}"
            ) from err
        if not (0 <= near < far):
            raise BadInputError(
                f"depth_range must be (near, far) metres with 0 <= near < far, got {depth_range}"
            )
        valid &= (depth >= near) & (depth <= far)
    if organized and return_pixels:
        raise BadInputError(
            "return_pixels is for the (N, 3) output; an organized cloud is indexed by pixel"
        )

    if valid.any() and float(depth[valid].max()) > MAX_PLAUSIBLE_DEPTH_M:
        raise BadInputError(
            f"depth max is {float(depth[valid].max()):g}; posekit depth is in metres and this looks "
            "like millimetres (multiply by 0.001, or read 16-bit files with read_depth_image)"
        )
    K_inv = np.linalg.inv(K)
    if organized:
        v, u = np.mgrid[0:h, 0:w]
        z = np.where(valid, depth, np.nan).astype(np.float64)
    else:
        v, u = np.nonzero(valid)
        z = depth[v, u].astype(np.float64)
    pix = np.stack([u, v, np.ones_like(u)], axis=-1).astype(np.float64)
    points = (pix @ K_inv.T) * z[..., None]
    points = points.astype(np.float32)
    if return_pixels:
        return points, np.stack([u, v], axis=1).astype(np.int64)
    return points


def read_depth_image(path: str | Path, depth_scale: float = 1.0) -> np.ndarray:
    """Read a depth image as (H, W) float32 metres, 0 where missing.

    16-bit PNG/TIFF: metres = value * depth_scale / 1000 (BOP's ``depth_scale``, mm per
    unit; Kinect/PrimeSense files are mm, depth_scale = 1). 32-bit float images are already
    metres (depth_scale must then be 1). NaN, inf and negative values become 0.
    A 16-bit image whose valid depths are all below 20 mm raises BadInputError: it was
    almost surely saved in metres.
    """
    import cv2

    path = as_path(path, "depth image path")
    if not path.is_file():
        raise MissingFileError(f"depth image not found: {path}")
    if path.suffix.lower() not in DEPTH_IMAGE_SUFFIXES:
        raise UnsupportedFormatError(
            f"{path}: unsupported depth image format {path.suffix!r}; use one of {list(DEPTH_IMAGE_SUFFIXES)}"
        )
    _check_depth_scale(depth_scale)
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise CorruptFileError(f"{path}: cannot be decoded as an image (truncated or corrupt)")
    if raw.ndim == 3 and raw.shape[2] == 1:
        raw = raw[:, :, 0]
    if raw.ndim != 2:
        raise BadInputError(
            f"{path}: depth images have one channel, this one has shape {raw.shape} "
            "(is it the colour image?)"
        )
    if raw.dtype == np.uint16:
        mm = raw.astype(np.float64) * float(depth_scale)
        valid = mm > 0
        if valid.any() and mm[valid].max() < _MIN_PLAUSIBLE_MAX_DEPTH_MM:
            raise BadInputError(
                f"{path}: all depth values are below {_MIN_PLAUSIBLE_MAX_DEPTH_MM} mm (max "
                f"{mm[valid].max():g} mm with depth_scale={depth_scale}); the image looks like it "
                "was saved in metres. 16-bit depth images hold millimetres / depth_scale: re-save "
                "it in mm or fix depth_scale"
            )
        depth = (mm / 1000.0).astype(np.float32)
    elif raw.dtype in (np.float32, np.float64):
        if depth_scale != 1.0:
            raise BadInputError(
                f"{path}: float depth images are read as metres; depth_scale={depth_scale} "
                "applies to 16-bit images only (scale the result yourself if this file is not metric)"
            )
        depth = raw.astype(np.float32)
        depth[~np.isfinite(depth) | (depth < 0)] = 0.0
        if depth.max() > MAX_PLAUSIBLE_DEPTH_M:
            raise BadInputError(
                f"{path}: float depth images hold metres, but its max is {depth.max():g}: it looks "
                "like millimetres; re-save it in metres or as 16-bit millimetres"
            )
    else:
        raise UnsupportedFormatError(
            f"{path}: depth images must be uint16 (mm) or float32 (m), got {raw.dtype}"
        )
    return depth


def write_depth_image(depth: np.ndarray, path: str | Path, depth_scale: float = 1.0) -> Path:
    """Write (H, W) float metres as a 16-bit PNG/TIFF with value = round(metres * 1000 / depth_scale).

    Missing depth (0, NaN, inf) is written as 0. Depth beyond 65535 units raises BadInputError
    (pass a larger depth_scale), and so does depth beyond 100 m (millimetres passed as metres).
    Written under a temporary name, then renamed (:mod:`posekit.io.atomic`).
    """
    import cv2

    depth = _check_depth_array(depth, dtype=np.float64)
    path = as_path(path, "depth image path")
    if path.suffix.lower() not in DEPTH_IMAGE_SUFFIXES:
        raise UnsupportedFormatError(
            f"{path}: cannot write depth image format {path.suffix!r}; use one of {list(DEPTH_IMAGE_SUFFIXES)}"
        )
    _check_depth_scale(depth_scale)
    d = np.where(np.isfinite(depth), depth, 0.0)
    if (d < 0).any():
        raise BadInputError("depth has negative values")
    if d.max() > MAX_PLAUSIBLE_DEPTH_M:
        raise BadInputError(
            f"depth max is {d.max():g}; posekit depth is in metres and this looks like millimetres "
            "(multiply by 0.001)"
        )
    units = np.rint(d * 1000.0 / depth_scale)
    if units.max() > np.iinfo(np.uint16).max:
        raise BadInputError(
            f"depth up to {d.max():.3f} m does not fit 16 bits at depth_scale={depth_scale} mm; "
            "use a larger depth_scale"
        )
    suffix = path.suffix.lower()
    params = [cv2.IMWRITE_PNG_COMPRESSION, 3] if suffix == ".png" else []
    ok, encoded = cv2.imencode(suffix, units.astype(np.uint16), params)
    if not ok:
        raise CorruptFileError(f"{path}: OpenCV could not encode the depth image")
    return atomic_write_bytes(path, encoded.tobytes())


def check_depth_units(depth: np.ndarray, expected: str = "m") -> float:
    """Check that a depth image is in the expected unit ('m' or 'mm'); return its median valid depth.

    Uses the median of valid (> 0, finite) depths: real scenes lie between 5 cm and 20 m, so a
    metric image has a median within that range and a millimetre image 1000x higher.
    Raises BadInputError naming the likely unit and the conversion to apply.
    """
    if expected not in ("m", "mm"):
        raise BadInputError(f"expected must be 'm' or 'mm', got {expected!r}")
    d = np.asarray(depth)
    if d.ndim != 2 or d.size == 0:
        raise BadInputError(f"depth must have shape (H, W), got {d.shape}")
    if d.dtype.kind not in "fiu":
        raise BadInputError(f"depth must be numeric, got dtype {d.dtype}")
    d = d.astype(np.float64)
    values = d[np.isfinite(d) & (d > 0)]
    if len(values) == 0:
        raise BadInputError("depth image has no valid (> 0) values")
    median = float(np.median(values))
    lo, hi = _PLAUSIBLE_MEDIAN_DEPTH_M
    median_m = median if expected == "m" else median / 1000.0
    if lo <= median_m <= hi:
        return median
    if expected == "m" and lo <= median / 1000.0 <= hi:
        raise BadInputError(
            f"depth median {median:.4g} is too large for metres: it looks like millimetres, "
            "multiply by 0.001 (read_depth_image converts 16-bit mm images for you)"
        )
    if expected == "mm" and lo <= median <= hi:
        raise BadInputError(
            f"depth median {median:.4g} is too small for millimetres: it looks like metres, "
            "multiply by 1000 (or pass it where metres are expected)"
        )
    raise BadInputError(
        f"depth median {median:.4g} {expected} is outside the plausible {lo}-{hi} m of a depth "
        "camera; check the units and depth_scale"
    )


def normals_from_depth(depth: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Unit normals (H, W, 3) in the camera frame, facing the camera, from central differences
    of the back-projected depth map; 0 where depth or a neighbour is missing."""
    depth = _check_depth_array(depth, dtype=np.float64)
    K = check_intrinsics(K)
    H, W = depth.shape
    v, u = np.mgrid[0:H, 0:W]
    return normals_at_pixels(depth, K, np.stack([u.ravel(), v.ravel()], 1), fallback=False).reshape(H, W, 3)


def normals_at_pixels(depth: np.ndarray, K: np.ndarray, pixels: np.ndarray, fallback: bool = True) -> np.ndarray:
    """Unit normals (N, 3), camera frame, facing the camera, at ``pixels (N, 2)`` (u, v) of a
    depth image (H, W) metres, by central differences of the back-projected neighbours: only
    those pixels are computed (an object's mask, not the whole image).

    Where a neighbour is missing the normal is 0, or with ``fallback`` the direction towards
    the camera (a usable guess for registration).
    """
    depth = np.asarray(depth, dtype=np.float64)
    H, W = depth.shape
    K = np.asarray(K, dtype=np.float64)
    u, v = np.asarray(pixels, dtype=np.int64).T
    ul, ur = np.clip(u - 1, 0, W - 1), np.clip(u + 1, 0, W - 1)
    vu, vd = np.clip(v - 1, 0, H - 1), np.clip(v + 1, 0, H - 1)

    def point(uu, vv):
        z = depth[vv, uu]
        return np.stack([(uu - K[0, 2]) / K[0, 0] * z, (vv - K[1, 2]) / K[1, 1] * z, z], -1), z

    (pl, zl), (pr, zr), (pu, zu), (pd, zd) = point(ul, v), point(ur, v), point(u, vu), point(u, vd)
    n = np.cross(pr - pl, pd - pu)
    norm = np.linalg.norm(n, axis=-1, keepdims=True)
    n = np.where(norm > 0, n / np.maximum(norm, 1e-12), 0.0)
    centre, z = point(u, v)
    n[(n * centre).sum(-1) > 0] *= -1
    ok = (z > 0) & (zl > 0) & (zr > 0) & (zu > 0) & (zd > 0) & (u > 0) & (u < W - 1) & (v > 0) & (v < H - 1)
    if fallback:
        towards = -centre / np.maximum(np.linalg.norm(centre, axis=-1, keepdims=True), 1e-12)
        n[~ok] = towards[~ok]
    else:
        n[~ok] = 0
    return n


def depth_from_points(points: np.ndarray, focal: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A depth image (H, W) float32 metres and its K (3, 3) from camera-frame points (N, 3): the
    points z-buffered into a pinhole camera whose image just holds them.

    ``focal`` (pixels) defaults to the cloud's own angular density (the median angle between
    neighbouring rays), so an organized sensor cloud maps back to about one point per pixel.
    """
    from scipy.spatial import cKDTree

    pts = np.asarray(points, dtype=np.float64)
    pts = pts[np.isfinite(pts).all(1) & (pts[:, 2] > 1e-3)]
    if len(pts) == 0:
        raise BadInputError("no point lies in front of the camera (z > 0)")
    xy = pts[:, :2] / pts[:, 2:]
    if focal is None:
        sample = xy[:: max(1, len(xy) // 4000)]
        gap = np.median(cKDTree(xy).query(sample, k=2)[0][:, 1]) if len(xy) > 1 else 1e-3
        focal = float(np.clip(1.0 / max(gap, 1e-5), 50.0, 2000.0))
    lo, hi = xy.min(0), xy.max(0)
    W, H = (np.ceil((hi - lo) * focal).astype(int) + 1)
    if W * H > 4096 * 4096:
        raise BadInputError(f"the cloud spans {W}x{H} pixels at focal {focal:.0f}; pass a smaller field of view")
    K = np.array([[focal, 0, -lo[0] * focal], [0, focal, -lo[1] * focal], [0, 0, 1.0]])
    u = np.clip(np.round(xy[:, 0] * focal + K[0, 2]).astype(int), 0, W - 1)
    v = np.clip(np.round(xy[:, 1] * focal + K[1, 2]).astype(int), 0, H - 1)
    depth = np.full(H * W, np.inf)
    np.minimum.at(depth, v * W + u, pts[:, 2])
    depth[~np.isfinite(depth)] = 0
    return depth.reshape(H, W).astype(np.float32), K
