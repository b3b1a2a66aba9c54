"""Colour and grey images from files, as posekit's arrays: ``(H, W)``, ``(H, W, 3)`` or ``(H, W, 4)`` uint8.

Pillow reads the file. Two things it does not do for us: an image too large to decode
safely (Pillow's decompression-bomb guard, about 179 megapixels) raises
:class:`~posekit.errors.BadInputError` instead of Pillow's own error, and 16-bit grey images
(PNG ``I;16``, common for IR and scientific cameras) are scaled to 8 bits (value / 257)
instead of being clipped to 0 or 255.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from posekit.errors import BadInputError, CorruptFileError, MissingFileError, UnsupportedFormatError
from posekit.validation import as_path

_HIGH_BIT_DEPTH_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def read_image(path: str | Path) -> np.ndarray:
    """An image file as uint8: ``(H, W)`` grey, ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA.

    Palette, 1-bit, CMYK and other modes are converted to RGB(A) or grey; 16-bit grey is
    scaled to 0..255. MissingFileError, CorruptFileError (not an image, truncated),
    BadInputError (too large to decode) or UnsupportedFormatError (float images).
    """
    from PIL import Image, UnidentifiedImageError

    path = as_path(path, "image path")
    if not path.is_file():
        raise MissingFileError(f"image file not found: {path}")
    if path.stat().st_size == 0:
        raise CorruptFileError(f"{path} is empty (0 bytes); pass a PNG or JPG image")
    try:
        with Image.open(path) as im:
            im.load()
            return _as_uint8(im, path)
    except Image.DecompressionBombError as exc:
        raise BadInputError(
            f"{path} is too large to decode safely ({exc}); crop or downscale it first"
        ) from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
        raise CorruptFileError(f"{path} is not a readable image ({exc}); pass a PNG or JPG image") from exc


def _as_uint8(im, path: Path) -> np.ndarray:
    if im.mode in ("L", "RGB", "RGBA"):
        return np.asarray(im)
    if im.mode in _HIGH_BIT_DEPTH_MODES:
        a = np.asarray(im).astype(np.int64)
        if a.size and (a.min() < 0 or a.max() > 65535):
            raise UnsupportedFormatError(
                f"{path}: {im.mode} image with values outside 0..65535; posekit reads 8- and 16-bit images")
        return np.round(a / 257.0).astype(np.uint8)
    if im.mode == "F":
        raise UnsupportedFormatError(
            f"{path}: floating-point image; posekit reads 8- and 16-bit images (depth: read_depth_image)")
    has_alpha = "A" in im.mode or (im.mode == "P" and "transparency" in im.info)
    if im.mode in ("1", "LA") and not has_alpha:
        return np.asarray(im.convert("L"))
    return np.asarray(im.convert("RGBA" if has_alpha else "RGB"))


__all__ = ["read_image"]
