"""sensor_msgs/PointCloud2 <-> numpy, in pure Python: no ROS import needed.

Works on any object with the message's attributes (``header, height, width, fields,
is_bigendian, point_step, row_step, data, is_dense``; each field with ``name, offset,
datatype, count``): rclpy messages, rosbags message dataclasses, or a stand-in.

Layout (the REP/sensor_msgs definition): point (row r, column c) starts at byte
``r * row_step + c * point_step``; a field starts ``offset`` bytes into the point and
holds ``count`` values of ``datatype`` (1 INT8 .. 8 FLOAT64). Colours follow PCL's packing:
a 4-byte ``rgb``/``rgba`` field (float32 or uint32) whose bits are 0xAARRGGBB.
"""

from __future__ import annotations

import array
import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from posekit.errors import BadInputError
from posekit.io.pointcloud import PointCloud
from posekit.validation import valid_points_mask

# sensor_msgs/PointField datatype constants.
INT8, UINT8, INT16, UINT16, INT32, UINT32, FLOAT32, FLOAT64 = range(1, 9)
POINTFIELD_DTYPES: dict[int, np.dtype] = {
    INT8: np.dtype(np.int8),
    UINT8: np.dtype(np.uint8),
    INT16: np.dtype(np.int16),
    UINT16: np.dtype(np.uint16),
    INT32: np.dtype(np.int32),
    UINT32: np.dtype(np.uint32),
    FLOAT32: np.dtype(np.float32),
    FLOAT64: np.dtype(np.float64),
}
_PACKED_COLOR_FIELDS = ("rgb", "rgba")


def _message_bytes(data) -> bytes | memoryview:
    """The raw bytes of ``msg.data`` (numpy uint8, array.array('B'), bytes, or a list of ints)."""
    if isinstance(data, np.ndarray):
        return np.ascontiguousarray(data, dtype=np.uint8).data.cast("B")
    if isinstance(data, (bytes, bytearray, memoryview)):
        return data
    if isinstance(data, array.array):
        return memoryview(data).cast("B")
    try:
        return bytes(data)
    except (TypeError, ValueError) as err:
        raise BadInputError(
            f"PointCloud2.data must be bytes or uint8 values, got {type(data).__name__}"
        ) from err


# One point of any real sensor is a few dozen bytes; beyond this the message is garbage.
_MAX_POINT_STEP = 1 << 16


def _point_dtype(msg) -> np.dtype:
    """numpy structured dtype of one point; checks every field against point_step."""
    try:
        fields = list(msg.fields)
        point_step = int(msg.point_step)
        big = bool(msg.is_bigendian)
    except AttributeError as err:
        raise BadInputError(f"not a PointCloud2-like message: {err}") from err
    if not 0 < point_step <= _MAX_POINT_STEP:
        raise BadInputError(
            f"PointCloud2 point_step must be 1..{_MAX_POINT_STEP} bytes, got {point_step}")
    names, formats, offsets = [], [], []
    for f in fields:
        if not isinstance(f.name, str) or not f.name:
            raise BadInputError(f"PointCloud2 field names must be non-empty text, got {f.name!r}")
        datatype, offset, count = int(f.datatype), int(f.offset), int(f.count)
        if datatype not in POINTFIELD_DTYPES:
            raise BadInputError(
                f"PointCloud2 field {f.name!r} has unknown datatype {datatype} (valid: 1 INT8 .. 8 FLOAT64)"
            )
        if count < 1:
            # count 0 is legal in old messages and means "no value here": skip such fields.
            continue
        base = POINTFIELD_DTYPES[datatype].newbyteorder(">" if big else "<")
        end = offset + base.itemsize * count
        if offset < 0 or end > point_step:
            raise BadInputError(
                f"PointCloud2 field {f.name!r} spans bytes {offset}..{end} of each point but "
                f"point_step is {point_step}: point_step must be at least the end of every field"
            )
        if f.name in names:
            raise BadInputError(f"PointCloud2 has two fields named {f.name!r}")
        names.append(str(f.name))
        formats.append(base if count == 1 else np.dtype((base, (count,))))
        offsets.append(offset)
    if not names:
        raise BadInputError("PointCloud2 message has no fields")
    return np.dtype(
        {"names": names, "formats": formats, "offsets": offsets, "itemsize": point_step}
    )


def pointcloud2_to_structured(msg, organized: bool = False) -> np.ndarray:
    """All fields of a PointCloud2 as a numpy structured array, in native byte order.

    Returns shape (height * width,) or, with ``organized=True``, (height, width). Fields
    with count > 1 become sub-arrays. Raises BadInputError when the message's sizes disagree
    (len(data) vs row_step * height, row_step vs width * point_step, fields vs point_step).
    """
    dtype = _point_dtype(msg)
    height, width, row_step = int(msg.height), int(msg.width), int(msg.row_step)
    point_step = dtype.itemsize
    raw = _message_bytes(msg.data)
    if height < 0 or width < 0:
        raise BadInputError(f"PointCloud2 height/width must be >= 0, got {height}x{width}")
    if row_step < width * point_step:
        raise BadInputError(
            f"PointCloud2 row_step {row_step} is smaller than width * point_step = "
            f"{width} * {point_step} = {width * point_step}"
        )
    if len(raw) != row_step * height:
        raise BadInputError(
            f"PointCloud2 data has {len(raw)} bytes but row_step * height = {row_step} * {height} "
            f"= {row_step * height}"
        )
    buf = np.frombuffer(raw, dtype=np.uint8)
    if height * width == 0:
        out = np.zeros((height, width), dtype=dtype)
    else:
        # Rows may end in padding (row_step > width * point_step): view each row on its own.
        rows = buf.reshape(height, row_step)[:, : width * point_step]
        out = np.ascontiguousarray(rows).view(dtype).reshape(height, width)
    out = out.astype(dtype.newbyteorder("="))  # native order, copied out of the message buffer
    return out if organized else out.reshape(-1)


def _flat_columns(structured: np.ndarray, fields: Sequence[str]) -> np.ndarray:
    cols = []
    for name in fields:
        if name not in (structured.dtype.names or ()):
            raise BadInputError(
                f"PointCloud2 has no field {name!r}; it has {list(structured.dtype.names or ())}"
            )
        col = structured[name].astype(np.float64)
        cols.append(col.reshape(structured.shape + (int(np.prod(col.shape[structured.ndim:])),)))
    return np.concatenate(cols, axis=-1)


def pointcloud2_to_array(
    msg, fields: Sequence[str] = ("x", "y", "z"), skip_nans: bool = True, organized: bool = False
) -> np.ndarray:
    """Named fields of a PointCloud2 as float32 columns: (N, F), or (H, W, F) with ``organized``.

    F is the number of values of the named fields (a field with count k gives k columns).
    ``skip_nans`` drops points with a NaN/inf in any requested column (not with
    ``organized``, which keeps the image grid and its NaNs).
    """
    structured = pointcloud2_to_structured(msg, organized=organized)
    values = _flat_columns(structured, fields)
    if skip_nans and not organized:
        values = values[np.isfinite(values).all(axis=1)]
    return values.astype(np.float32)


def unpack_rgb(packed: np.ndarray) -> np.ndarray:
    """PCL-packed colours (float32 or uint32, bits 0xAARRGGBB) -> (N, 3) uint8 RGB."""
    packed = np.ascontiguousarray(packed)
    if packed.dtype.itemsize != 4:
        raise BadInputError(
            f"packed rgb values must be 4 bytes (float32 or uint32), got {packed.dtype}"
        )
    bits = packed.view(np.uint32)
    return np.stack([(bits >> 16) & 0xFF, (bits >> 8) & 0xFF, bits & 0xFF], axis=-1).astype(
        np.uint8
    )


def pack_rgb(colors: np.ndarray) -> np.ndarray:
    """(N, 3) RGB (uint8, or float in [0, 1]) -> (N,) float32 with PCL's 0x00RRGGBB bits."""
    c = np.asarray(colors)
    if c.ndim != 2 or c.shape[1] != 3:
        raise BadInputError(f"colors must have shape (N, 3), got {c.shape}")
    if c.dtype != np.uint8:
        if c.dtype.kind != "f" or not np.isfinite(c).all() or c.min() < 0 or c.max() > 1:
            raise BadInputError("colors must be uint8, or float within [0, 1]")
        c = np.rint(c * 255.0).astype(np.uint8)
    c = c.astype(np.uint32)
    return ((c[:, 0] << 16) | (c[:, 1] << 8) | c[:, 2]).astype(np.uint32).view(np.float32)


def pointcloud2_to_pointcloud(msg, skip_nans: bool = True) -> PointCloud:
    """A PointCloud2 as a :class:`PointCloud` (metres), with colours and normals when present.

    Colours come from a packed ``rgb``/``rgba`` field, or from ``r``, ``g``, ``b`` fields
    (uint8 0-255, or float 0-1); normals from ``normal_x``, ``normal_y``, ``normal_z``.
    NaN/inf points are dropped (counted in ``dropped_invalid``) unless ``skip_nans=False``,
    which raises BadInputError if there are any.
    """
    s = pointcloud2_to_structured(msg)
    if len(s) == 0:
        raise BadInputError("PointCloud2 has no points (height * width = 0)")
    names = s.dtype.names or ()
    points = _flat_columns(s, ("x", "y", "z"))
    colors = None
    packed = [n for n in _PACKED_COLOR_FIELDS if n in names]
    if packed:
        colors = unpack_rgb(s[packed[0]].reshape(len(s), -1)[:, 0]).astype(np.float32) / 255.0
    elif all(n in names for n in "rgb"):
        rgb = _flat_columns(s, ("r", "g", "b"))
        colors = (rgb / 255.0 if s.dtype["r"].kind in "iu" else rgb).astype(np.float32)
    normals = None
    if all(n in names for n in ("normal_x", "normal_y", "normal_z")):
        normals = _flat_columns(s, ("normal_x", "normal_y", "normal_z"))
    valid = valid_points_mask(points)
    n_bad = int((~valid).sum())
    if n_bad and not skip_nans:
        raise BadInputError(
            f"PointCloud2 has {n_bad} of {len(points)} NaN/inf/far-off points; pass skip_nans=True"
        )
    if valid.sum() == 0:
        raise BadInputError(
            f"PointCloud2 has no valid points ({len(points)} points, {n_bad} NaN/inf/far-off)"
        )
    return PointCloud(
        points[valid],
        None if colors is None else colors[valid],
        None if normals is None else normals[valid],
        dropped_invalid=n_bad,
    )


def _default_data_container(msg_factory) -> str:
    # rosbags dataclasses serialize uint8 sequences from numpy arrays; rclpy messages
    # accept array.array('B') without checking every element.
    return "numpy" if dataclasses.is_dataclass(msg_factory) else "array"


def array_to_pointcloud2(
    points: np.ndarray | PointCloud,
    colors: np.ndarray | None = None,
    *,
    msg_factory: Callable[..., Any],
    field_factory: Callable[..., Any],
    header: Any = None,
    data_container: str | None = None,
):
    """Build a PointCloud2 message from points (metres) and optional colours.

    points (N, 3) or organized (H, W, 3) float (NaN allowed: ``is_dense`` is then False), or
    a :class:`PointCloud` (its colours are used when ``colors`` is None); colors (N, 3) or
    (H, W, 3) uint8 or float in [0, 1], packed into a float32 ``rgb`` field (PCL).
    Fields: x, y, z float32 at offsets 0, 4, 8 (+ rgb at 12), little-endian, no padding.

    ``msg_factory`` / ``field_factory`` are the message classes, e.g.
    ``sensor_msgs.msg.PointCloud2`` / ``sensor_msgs.msg.PointField`` in a ROS node, or the
    rosbags typestore's ``sensor_msgs/msg/PointCloud2`` / ``sensor_msgs/msg/PointField``.
    ``header`` is passed as is (required by rosbags classes, which have no defaults).
    ``data_container`` picks the type of ``data``: "numpy" (uint8 array), "array"
    (array.array('B')) or "bytes"; by default numpy for dataclasses, array.array otherwise.
    """
    if isinstance(points, PointCloud):
        if colors is None and points.colors is not None:
            colors = points.colors
        points = points.points
    pts = np.asarray(points)
    if pts.dtype.kind not in "fiu":
        raise BadInputError(f"points must be numeric, got dtype {pts.dtype}")
    if pts.ndim == 2 and pts.shape[1] == 3:
        height, width = 1, pts.shape[0]
    elif pts.ndim == 3 and pts.shape[2] == 3:
        height, width = pts.shape[:2]
    else:
        raise BadInputError(f"points must have shape (N, 3) or (H, W, 3), got {pts.shape}")
    flat = pts.reshape(-1, 3).astype("<f4")
    names = [("x", 0), ("y", 4), ("z", 8)]
    if colors is not None:
        c = np.asarray(colors)
        if c.shape != pts.shape:
            raise BadInputError(f"colors shape {c.shape} does not match points shape {pts.shape}")
        rgb = pack_rgb(c.reshape(-1, 3))
        names.append(("rgb", 12))
        rec = np.empty(
            len(flat), dtype=np.dtype({"names": ["xyz", "rgb"], "formats": [("<f4", 3), "<f4"]})
        )
        rec["xyz"], rec["rgb"] = flat, rgb
        payload = rec.tobytes()
    else:
        payload = flat.tobytes()
    point_step = 4 * len(names)

    container = data_container or _default_data_container(msg_factory)
    if container == "numpy":
        data = np.frombuffer(payload, dtype=np.uint8).copy()
    elif container == "array":
        data = array.array("B", payload)
    elif container == "bytes":
        data = payload
    else:
        raise BadInputError(
            f"data_container must be 'numpy', 'array' or 'bytes', got {data_container!r}"
        )

    fields = [field_factory(name=n, offset=o, datatype=FLOAT32, count=1) for n, o in names]
    kwargs = {
        "height": height,
        "width": width,
        "fields": fields,
        "is_bigendian": False,
        "point_step": point_step,
        "row_step": point_step * width,
        "data": data,
        "is_dense": bool(np.isfinite(flat).all()),
    }
    if header is not None:
        kwargs["header"] = header
    try:
        return msg_factory(**kwargs)
    except TypeError as err:
        if header is None and "header" in str(err):
            raise BadInputError(
                f"{getattr(msg_factory, '__name__', msg_factory)} needs a header: pass header=..."
            ) from err
        raise


__all__ = [
    "POINTFIELD_DTYPES",
    "array_to_pointcloud2",
    "pack_rgb",
    "pointcloud2_to_array",
    "pointcloud2_to_pointcloud",
    "pointcloud2_to_structured",
    "unpack_rgb",
]
