"""rosbag2 (.db3 / .mcap) and ROS 1 bags -> numpy, and numpy -> rosbag2, with ``rosbags`` (no ROS).

What a message becomes (``message_to_numpy``):
- sensor_msgs/PointCloud2 -> :class:`~posekit.io.pointcloud.PointCloud` (metres, NaN dropped);
- sensor_msgs/Image -> (H, W, 3) uint8 RGB for rgb8, bgr8, rgba8, bgra8 and mono8;
  (H, W) float32 metres for depth: 16UC1 (mm, REP 118) and 32FC1 (m), 0 = missing;
- sensor_msgs/CameraInfo -> dict with K (3, 3) float64, D, width, height, distortion_model,
  frame_id.
Timestamps are the bag's receive times in nanoseconds (``header.stamp`` is kept in payloads
where posekit has a place for it: CameraInfo dicts and :class:`RGBDFrame`).

A bag is the rosbag2 folder (with ``metadata.yaml``), a file inside it, or a ROS 1 ``.bag``.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from posekit.errors import (
    BadInputError,
    CorruptFileError,
    MissingFileError,
    UnsupportedFormatError,
)
from posekit.io.atomic import atomic_directory
from posekit.io.depth import check_intrinsics
from posekit.io.pointcloud import PointCloud
from posekit.io.pointcloud2 import array_to_pointcloud2, pointcloud2_to_pointcloud
from posekit.validation import MAX_PLAUSIBLE_DEPTH_M, as_path

POINTCLOUD2 = "sensor_msgs/msg/PointCloud2"
IMAGE = "sensor_msgs/msg/Image"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
SUPPORTED_MSGTYPES = (POINTCLOUD2, IMAGE, CAMERA_INFO)

COLOR_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8")
DEPTH_ENCODINGS = ("16UC1", "32FC1")
_BYTES_PER_PIXEL = {
    "rgb8": 3,
    "bgr8": 3,
    "rgba8": 4,
    "bgra8": 4,
    "mono8": 1,
    "16UC1": 2,
    "32FC1": 4,
}


def normalized_msgtype(msgtype: str) -> str:
    """ROS 1 names types 'sensor_msgs/Image', ROS 2 'sensor_msgs/msg/Image': use the latter."""
    parts = msgtype.split("/")
    return f"{parts[0]}/msg/{parts[1]}" if len(parts) == 2 else msgtype


def _default_typestore():
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_HUMBLE)


def bag_paths(bag: str | Path) -> list[Path]:
    path = as_path(bag, "bag path")
    if not path.exists():
        raise MissingFileError(f"bag not found: {path}")
    if path.is_file() and path.suffix == ".bag":
        return [path]
    if path.is_file():
        if path.suffix not in (".db3", ".mcap"):
            raise UnsupportedFormatError(
                f"{path}: not a bag; pass a rosbag2 folder, a .db3/.mcap file inside one, or a ROS 1 .bag"
            )
        path = path.parent
    if not (path / "metadata.yaml").is_file():
        raise CorruptFileError(
            f"{path}: a rosbag2 folder needs its metadata.yaml next to the .db3/.mcap files; "
            "it is missing (recreate it with `ros2 bag reindex`)"
        )
    return [path]


@contextmanager
def open_bag(bag: str | Path, typestore=None):
    """An open rosbags AnyReader (``typestore`` for its messages: ROS 2 Humble by default).

    rosbags' own errors (corrupt, truncated, empty or unreadable bags) become CorruptFileError;
    use :func:`read_raw_messages` and :func:`deserialize_message` on the reader likewise.
    """
    from rosbags.highlevel import AnyReader, AnyReaderError

    paths = bag_paths(bag)
    try:
        reader = AnyReader(paths, default_typestore=typestore or _default_typestore())
        reader.open()
    except (AnyReaderError, KeyError, ValueError, OSError) as err:
        raise CorruptFileError(f"{paths[0]}: cannot open the bag ({err})") from err
    except Exception as err:  # sqlite3/mcap parsers raise their own types for damaged files
        raise CorruptFileError(
            f"{paths[0]}: cannot open the bag ({type(err).__name__}: {err})"
        ) from err
    try:
        yield reader
    finally:
        reader.close()


@dataclass(frozen=True)
class BagTopic:
    """One topic of a bag: name, message type (ROS 2 spelling) and number of messages."""

    name: str
    msgtype: str
    message_count: int


def list_topics(bag: str | Path) -> list[BagTopic]:
    """Topics of a bag, sorted by name."""
    with open_bag(bag) as reader:
        counts: dict[tuple[str, str], int] = {}
        for c in reader.connections:
            key = (c.topic, normalized_msgtype(c.msgtype))
            counts[key] = counts.get(key, 0) + c.msgcount
    return [BagTopic(t, m, n) for (t, m), n in sorted(counts.items())]


# ---------------------------------------------------------------------------------------------
# message -> numpy


def image_to_numpy(msg) -> np.ndarray:
    """A sensor_msgs/Image as (H, W, 3) uint8 RGB (colour encodings) or (H, W) float32 metres (depth).

    Raises UnsupportedFormatError for other encodings and BadInputError when the message's
    sizes disagree (step vs width, len(data) vs step * height).
    """
    encoding = str(msg.encoding)
    if encoding not in _BYTES_PER_PIXEL:
        raise UnsupportedFormatError(
            f"image encoding {encoding!r} is not supported; posekit reads {list(COLOR_ENCODINGS)} "
            f"and depth {list(DEPTH_ENCODINGS)}"
        )
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    bpp = _BYTES_PER_PIXEL[encoding]
    data = msg.data
    if isinstance(data, np.ndarray):
        buf = np.ascontiguousarray(data, dtype=np.uint8).reshape(-1)
    else:
        buf = np.frombuffer(bytes(data), dtype=np.uint8)
    if h <= 0 or w <= 0:
        raise BadInputError(f"image is empty ({h}x{w})")
    if step < w * bpp:
        raise BadInputError(
            f"{encoding} image step {step} is smaller than width * {bpp} bytes = {w * bpp}"
        )
    if len(buf) != step * h:
        raise BadInputError(
            f"image data has {len(buf)} bytes but step * height = {step} * {h} = {step * h}"
        )
    rows = np.ascontiguousarray(buf.reshape(h, step)[:, : w * bpp])
    if encoding in DEPTH_ENCODINGS:
        order = ">" if msg.is_bigendian else "<"
        if encoding == "16UC1":
            return (rows.view(order + "u2").astype(np.float32) * np.float32(0.001)).reshape(h, w)
        depth = rows.view(order + "f4").astype(np.float32).reshape(h, w)
        depth[~np.isfinite(depth) | (depth < 0)] = 0.0
        if depth.max() > MAX_PLAUSIBLE_DEPTH_M:
            raise BadInputError(
                f"32FC1 depth holds metres (REP 118), but its max is {depth.max():g}: millimetres "
                "in a float image, or corrupt data"
            )
        return depth
    px = rows.reshape(h, w, bpp)
    if encoding == "mono8":
        return np.repeat(px, 3, axis=2)
    rgb = px[:, :, :3]
    if encoding.startswith("bgr"):
        rgb = rgb[:, :, ::-1]
    return np.ascontiguousarray(rgb)


def camera_info_to_dict(msg) -> dict[str, Any]:
    """A sensor_msgs/CameraInfo as {K (3,3), D (n,), width, height, distortion_model, frame_id, stamp_ns}."""
    k = getattr(msg, "k", None)
    if k is None:
        k = msg.K  # ROS 1 spelling
    d = getattr(msg, "d", None)
    if d is None:
        d = getattr(msg, "D", ())
    K = check_intrinsics(k, "CameraInfo k")  # 9 values row by row (a fixed float64[9] in ROS 2)
    return {
        "K": K,
        "D": np.asarray(d, dtype=np.float64).reshape(-1),
        "width": int(msg.width),
        "height": int(msg.height),
        "distortion_model": str(msg.distortion_model),
        "frame_id": str(msg.header.frame_id),
        "stamp_ns": _stamp_ns(msg.header),
    }


def _stamp_ns(header) -> int:
    stamp = header.stamp
    nsec = getattr(stamp, "nanosec", None)
    if nsec is None:
        nsec = getattr(stamp, "nsec", 0)  # ROS 1
    sec = getattr(stamp, "sec", None)
    if sec is None:
        sec = getattr(stamp, "secs", 0)
    return int(sec) * 1_000_000_000 + int(nsec)


def message_to_numpy(msg, msgtype: str):
    """Convert a deserialized PointCloud2, Image or CameraInfo message (see the module docstring)."""
    msgtype = normalized_msgtype(msgtype)
    if msgtype == POINTCLOUD2:
        return pointcloud2_to_pointcloud(msg)
    if msgtype == IMAGE:
        return image_to_numpy(msg)
    if msgtype == CAMERA_INFO:
        return camera_info_to_dict(msg)
    raise UnsupportedFormatError(
        f"message type {msgtype} is not converted by posekit; supported: {list(SUPPORTED_MSGTYPES)}"
    )


def _select_connections(reader, topics: Sequence[str] | None):
    connections = [
        c for c in reader.connections if normalized_msgtype(c.msgtype) in SUPPORTED_MSGTYPES
    ]
    if topics is None:
        return connections
    if isinstance(topics, str):
        topics = [topics]
    by_topic = {c.topic: c for c in reader.connections}
    for t in topics:
        if t not in by_topic:
            raise BadInputError(f"topic {t!r} is not in the bag; it has {sorted(by_topic)}")
        mt = normalized_msgtype(by_topic[t].msgtype)
        if mt not in SUPPORTED_MSGTYPES:
            raise UnsupportedFormatError(
                f"topic {t!r} has type {mt}, which posekit does not convert; supported: {list(SUPPORTED_MSGTYPES)}"
            )
    return [c for c in connections if c.topic in set(topics)]


def deserialize_message(reader, connection, timestamp: int, raw):
    """The message object of one raw record; CorruptFileError if it cannot be decoded."""
    try:
        return reader.deserialize(raw, connection.msgtype)
    except Exception as err:  # rosbags raises several types for truncated/garbled messages
        raise CorruptFileError(
            f"message on {connection.topic} at t={timestamp} ns cannot be deserialized ({err})"
        ) from err


def iter_messages(
    bag: str | Path, topics: Sequence[str] | None = None
) -> Iterator[tuple[str, int, Any]]:
    """Yield (topic, timestamp_ns, payload) in time order, payloads converted to numpy.

    ``topics=None`` reads every topic whose type posekit converts (PointCloud2, Image,
    CameraInfo) and skips the others; naming a topic of another type raises
    UnsupportedFormatError, naming a missing topic BadInputError.
    """
    with open_bag(bag) as reader:
        connections = _select_connections(reader, topics)
        if not connections:
            return
        for connection, timestamp, raw in read_raw_messages(reader, connections):
            msg = deserialize_message(reader, connection, timestamp, raw)
            try:
                payload = message_to_numpy(msg, connection.msgtype)
            except (BadInputError, UnsupportedFormatError) as err:
                raise type(err)(f"{connection.topic} at t={timestamp} ns: {err}") from err
            yield connection.topic, int(timestamp), payload


def read_raw_messages(reader, connections=None):
    """Yield (connection, timestamp_ns, raw) of an open reader, in time order.

    ``connections=None`` reads every connection; damaged data raises CorruptFileError.
    """
    if connections is not None and not connections:
        return
    try:
        yield from reader.messages(connections=connections or ())
    except CorruptFileError:
        raise
    except Exception as err:
        raise CorruptFileError(
            f"the bag's message data cannot be read ({type(err).__name__}: {err})"
        ) from err


# ---------------------------------------------------------------------------------------------
# RGB-D frames


@dataclass
class RGBDFrame:
    """Depth with the camera model (and colour) nearest to it in time.

    depth (H, W) float32 metres, 0 = missing; K (3, 3); rgb (H', W', 3) uint8 or None;
    timestamp_ns: the depth message's bag time; rgb_timestamp_ns / info_timestamp_ns: those of
    the messages paired with it.
    """

    timestamp_ns: int
    depth: np.ndarray
    K: np.ndarray
    frame_id: str
    rgb: np.ndarray | None = None
    rgb_timestamp_ns: int | None = None
    info_timestamp_ns: int | None = None
    camera_info: dict = field(default_factory=dict)


def _nearest(sorted_times: list[int], t: int) -> int | None:
    if not sorted_times:
        return None
    i = bisect.bisect_left(sorted_times, t)
    candidates = [sorted_times[j] for j in (i - 1, i) if 0 <= j < len(sorted_times)]
    return min(candidates, key=lambda s: (abs(s - t), s))


def read_frames(
    bag: str | Path,
    depth_topic: str,
    info_topic: str,
    rgb_topic: str | None = None,
    max_rgb_offset_ns: int = 20_000_000,
) -> list[RGBDFrame]:
    """RGB-D frames of a bag: each depth image with its nearest CameraInfo and colour image.

    Pairing is by nearest bag timestamp. CameraInfo is usually static, so the nearest one is
    taken at any distance; a depth image whose nearest colour image is more than
    ``max_rgb_offset_ns`` away (default 20 ms) is skipped. Depth must have the size the
    CameraInfo states (BadInputError otherwise); colour may differ in size (registered or not
    is the caller's business).
    """
    topics = [depth_topic, info_topic] + ([rgb_topic] if rgb_topic else [])
    with open_bag(bag) as reader:
        connections = _select_connections(reader, topics)
        by_topic = {c.topic: c for c in connections}
        for t, want in ((depth_topic, IMAGE), (info_topic, CAMERA_INFO), (rgb_topic, IMAGE)):
            if t is not None and normalized_msgtype(by_topic[t].msgtype) != want:
                raise BadInputError(f"topic {t!r} has type {by_topic[t].msgtype}, expected {want}")

        # Pass 1: timestamps only (and the small CameraInfo messages), to plan the pairing.
        depth_times: list[int] = []
        rgb_times: list[int] = []
        infos: dict[int, dict] = {}
        for connection, timestamp, raw in read_raw_messages(reader, connections):
            if connection.topic == depth_topic:
                depth_times.append(int(timestamp))
            elif connection.topic == rgb_topic:
                rgb_times.append(int(timestamp))
            else:
                msg = deserialize_message(reader, connection, timestamp, raw)
                infos[int(timestamp)] = camera_info_to_dict(msg)
        if not depth_times:
            return []
        if not infos:
            raise BadInputError(
                f"no CameraInfo messages on {info_topic!r}; cannot back-project depth"
            )
        info_times = sorted(infos)
        rgb_times.sort()
        plan: dict[int, int | None] = {}
        for t in depth_times:
            match = _nearest(rgb_times, t) if rgb_topic else None
            if rgb_topic and (match is None or abs(match - t) > max_rgb_offset_ns):
                continue
            plan[t] = match

        # Pass 2: decode only the images the plan uses.
        wanted_rgb = {t for t in plan.values() if t is not None}
        depths: dict[int, np.ndarray] = {}
        rgbs: dict[int, np.ndarray] = {}
        for connection, timestamp, raw in read_raw_messages(
            reader, [by_topic[depth_topic]] + ([by_topic[rgb_topic]] if rgb_topic else [])
        ):
            timestamp = int(timestamp)
            if connection.topic == depth_topic and timestamp in plan:
                depths[timestamp] = _decode_image(reader, connection, timestamp, raw, depth=True)
            elif connection.topic == rgb_topic and timestamp in wanted_rgb:
                rgbs[timestamp] = _decode_image(reader, connection, timestamp, raw, depth=False)

    frames = []
    for t in sorted(plan):
        info_t = _nearest(info_times, t)
        info = infos[info_t]
        depth = depths[t]
        if depth.shape != (info["height"], info["width"]):
            raise BadInputError(
                f"depth on {depth_topic!r} at t={t} ns is {depth.shape[1]}x{depth.shape[0]} but "
                f"CameraInfo on {info_topic!r} says {info['width']}x{info['height']}"
            )
        rgb_t = plan[t]
        frames.append(
            RGBDFrame(
                timestamp_ns=t,
                depth=depth,
                K=info["K"],
                frame_id=info["frame_id"],
                rgb=None if rgb_t is None else rgbs[rgb_t],
                rgb_timestamp_ns=rgb_t,
                info_timestamp_ns=info_t,
                camera_info=info,
            )
        )
    return frames


def _decode_image(reader, connection, timestamp: int, raw, depth: bool) -> np.ndarray:
    msg = deserialize_message(reader, connection, timestamp, raw)
    encodings = DEPTH_ENCODINGS if depth else COLOR_ENCODINGS
    if msg.encoding not in encodings:
        what = "depth" if depth else "colour"
        raise UnsupportedFormatError(
            f"{connection.topic} at t={timestamp} ns: {what} images must be one of {list(encodings)}, "
            f"got {msg.encoding!r}"
        )
    try:
        return image_to_numpy(msg)
    except BadInputError as err:
        raise BadInputError(f"{connection.topic} at t={timestamp} ns: {err}") from err


# ---------------------------------------------------------------------------------------------
# numpy -> bag


@dataclass
class BagMessage:
    """One message for :func:`write_bag`.

    payload: a PointCloud or (N, 3) / (H, W, 3) float points (-> PointCloud2); (H, W, 3) uint8
    RGB or (H, W) uint8 (-> Image rgb8 / mono8); (H, W) float32 depth in metres (-> Image
    32FC1, or 16UC1 in mm with ``encoding="16UC1"``); a dict with K, width, height and
    optionally D, distortion_model (-> CameraInfo). ``encoding`` overrides the image
    encoding (rgb8, bgr8, rgba8, bgra8, mono8, 16UC1, 32FC1); a uint8 image is then stored
    as given (e.g. already BGR for bgr8).
    """

    topic: str
    timestamp_ns: int
    payload: Any
    frame_id: str = "camera"
    encoding: str | None = None


def _header(types, timestamp_ns: int, frame_id: str):
    Time = types["builtin_interfaces/msg/Time"]
    Header = types["std_msgs/msg/Header"]
    return Header(
        stamp=Time(
            sec=int(timestamp_ns // 1_000_000_000), nanosec=int(timestamp_ns % 1_000_000_000)
        ),
        frame_id=frame_id,
    )


def _image_message(types, header, img: np.ndarray, encoding: str | None):
    img = np.asarray(img)
    if encoding is None:
        if img.dtype == np.uint8:
            encoding = "rgb8" if img.ndim == 3 else "mono8"
        elif img.dtype == np.uint16:
            encoding = "16UC1"
        elif img.dtype.kind == "f":
            encoding = "32FC1"
        else:
            raise BadInputError(
                f"cannot pick an image encoding for dtype {img.dtype}; pass encoding="
            )
    if encoding not in _BYTES_PER_PIXEL:
        raise UnsupportedFormatError(
            f"image encoding {encoding!r} is not supported; use one of {list(_BYTES_PER_PIXEL)}"
        )
    channels = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4}.get(encoding, 1)
    expected_ndim = 3 if channels > 1 else 2
    if img.ndim != expected_ndim or (channels > 1 and img.shape[2] != channels) or img.size == 0:
        raise BadInputError(
            f"{encoding} images need shape {'(H, W)' if channels == 1 else f'(H, W, {channels})'}, got {img.shape}"
        )
    if encoding in COLOR_ENCODINGS:
        if img.dtype != np.uint8:
            raise BadInputError(f"{encoding} images must be uint8, got {img.dtype}")
        pixels = img
    elif encoding == "16UC1":
        if img.dtype == np.uint16:
            pixels = img.astype("<u2")
        else:
            metres = np.where(np.isfinite(img), img, 0.0).astype(np.float64)
            mm = np.rint(metres * 1000.0)
            if mm.min() < 0 or mm.max() > 65535:
                raise BadInputError("depth for 16UC1 must lie within 0..65.535 m")
            pixels = mm.astype("<u2")
    else:
        if img.dtype.kind != "f":
            raise BadInputError(f"32FC1 depth must be float metres, got {img.dtype}")
        pixels = img.astype("<f4")
    h, w = img.shape[:2]
    data = np.frombuffer(np.ascontiguousarray(pixels).tobytes(), dtype=np.uint8).copy()
    return types[IMAGE](
        header=header,
        height=h,
        width=w,
        encoding=encoding,
        is_bigendian=0,
        step=w * _BYTES_PER_PIXEL[encoding],
        data=data,
    )


def _camera_info_message(types, header, info: dict):
    try:
        K = check_intrinsics(info["K"])
        width, height = int(info["width"]), int(info["height"])
    except KeyError as err:
        raise BadInputError(
            f"a CameraInfo dict needs K, width and height; {err} is missing"
        ) from err
    D = np.asarray(info.get("D", np.zeros(5)), dtype=np.float64).reshape(-1)
    model = info.get("distortion_model", "plumb_bob" if len(D) in (4, 5, 8) else "")
    P = np.zeros((3, 4))
    P[:, :3] = K
    Roi = types["sensor_msgs/msg/RegionOfInterest"]
    return types[CAMERA_INFO](
        header=header,
        height=height,
        width=width,
        distortion_model=model,
        d=D,
        k=K.reshape(-1).copy(),
        r=np.eye(3).reshape(-1),
        p=P.reshape(-1),
        binning_x=0,
        binning_y=0,
        roi=Roi(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False),
    )


def _to_ros_message(types, m: BagMessage):
    header = _header(types, m.timestamp_ns, m.frame_id)
    p = m.payload
    if isinstance(p, dict):
        return CAMERA_INFO, _camera_info_message(types, header, p)
    if isinstance(p, PointCloud):
        return POINTCLOUD2, array_to_pointcloud2(
            p,
            msg_factory=types[POINTCLOUD2],
            field_factory=types["sensor_msgs/msg/PointField"],
            header=header,
        )
    a = np.asarray(p)
    is_points = (
        a.dtype.kind == "f" and a.shape[-1:] == (3,) and a.ndim in (2, 3) and m.encoding is None
    )
    if is_points:
        return POINTCLOUD2, array_to_pointcloud2(
            a,
            msg_factory=types[POINTCLOUD2],
            field_factory=types["sensor_msgs/msg/PointField"],
            header=header,
        )
    if a.ndim in (2, 3):
        return IMAGE, _image_message(types, header, a, m.encoding)
    raise BadInputError(f"{m.topic}: cannot turn a payload of shape {a.shape} into a message")


def write_bag(
    path: str | Path,
    messages: Iterable[BagMessage | tuple],
    storage: str = "sqlite3",
) -> Path:
    """Write numpy payloads as a rosbag2 folder (storage "sqlite3" -> .db3, or "mcap").

    messages: :class:`BagMessage` items, or tuples (topic, timestamp_ns, payload[, frame_id]).
    Each topic keeps one message type. The bag is written under a temporary name next to
    ``path`` and renamed, so a failure leaves nothing behind; ``path`` must not exist yet.
    """
    from rosbags.rosbag2 import StoragePlugin, Writer

    plugins = {"sqlite3": StoragePlugin.SQLITE3, "mcap": StoragePlugin.MCAP}
    if storage not in plugins:
        raise UnsupportedFormatError(f"storage must be one of {list(plugins)}, got {storage!r}")
    path = as_path(path, "bag path")
    if path.exists():
        raise BadInputError(f"{path} exists already; bags are never overwritten, choose a new path")
    store = _default_typestore()
    types = store.types
    # Bag files are named after their folder: atomic_directory keeps the name.
    with atomic_directory(path) as tmp_bag:
        connections: dict[str, tuple[str, Any]] = {}
        with Writer(tmp_bag, version=9, storage_plugin=plugins[storage]) as writer:
            for item in messages:
                m = item if isinstance(item, BagMessage) else BagMessage(*item)
                if m.timestamp_ns < 0:
                    raise BadInputError(
                        f"{m.topic}: timestamp must be >= 0 ns, got {m.timestamp_ns}"
                    )
                msgtype, msg = _to_ros_message(types, m)
                if m.topic not in connections:
                    connections[m.topic] = (
                        msgtype,
                        writer.add_connection(m.topic, msgtype, typestore=store),
                    )
                elif connections[m.topic][0] != msgtype:
                    raise BadInputError(
                        f"topic {m.topic!r} already carries {connections[m.topic][0]}, cannot add a {msgtype}"
                    )
                writer.write(
                    connections[m.topic][1], int(m.timestamp_ns), store.serialize_cdr(msg, msgtype)
                )
    return path


__all__ = [
    "BagMessage",
    "BagTopic",
    "RGBDFrame",
    "camera_info_to_dict",
    "image_to_numpy",
    "iter_messages",
    "list_topics",
    "message_to_numpy",
    "read_frames",
    "write_bag",
]
