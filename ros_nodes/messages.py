"""ROS 2 messages <-> numpy for the posekit nodes, without importing rclpy at module level.

The same builders serve the live nodes (rclpy message classes) and offline replay (rosbags
message classes, written to a bag with no ROS install): :class:`MessageFactory` hides the one
difference, that rosbags messages need every field. Decoding works on either kind of message
(attribute access only) and reuses :mod:`posekit.io.pointcloud2` and :mod:`posekit.io.rosbag`.

Conventions: poses ``T_a_b`` (4, 4) map points of frame b into frame a; quaternions XYZW, as
geometry_msgs/Quaternion; stamps in integer nanoseconds; every output carries the input's
header (stamp and frame id).
"""

from __future__ import annotations

import array
import importlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from posekit.errors import BadInputError, UnsupportedFormatError
from posekit.io.pointcloud2 import array_to_pointcloud2, pointcloud2_to_array
from posekit.io.rosbag import (
    COLOR_ENCODINGS,
    DEPTH_ENCODINGS,
    bag_paths,  # noqa: F401 (re-exported for replay)
    camera_info_to_dict,
    image_to_numpy,
    normalized_msgtype,  # noqa: F401
)

INTERFACES_DIR = Path(__file__).resolve().parent / "interfaces"

_NUMPY_OF_ROS = {
    "bool": np.bool_, "byte": np.uint8, "octet": np.uint8, "char": np.uint8,
    "uint8": np.uint8, "int8": np.int8, "uint16": np.uint16, "int16": np.int16,
    "uint32": np.uint32, "int32": np.int32, "uint64": np.uint64, "int64": np.int64,
    "float32": np.float32, "float64": np.float64,
}


class MessageFactory:
    """Build ROS messages by type name ("geometry_msgs/msg/Pose") for rclpy or for rosbags.

    ``MessageFactory.rclpy()`` imports the generated Python classes; fields not given keep
    their ROS defaults. ``MessageFactory.rosbags(store)`` uses a rosbags typestore, whose
    dataclasses need every field: missing ones are filled with ROS defaults (0, "", empty
    sequences, default sub-messages) and primitive arrays become numpy arrays.
    """

    def __init__(self, resolve: Callable[[str], type], fielddefs: dict | None = None) -> None:
        self._resolve = resolve
        self._fielddefs = fielddefs
        self._classes: dict[str, type] = {}

    @classmethod
    def rclpy(cls) -> MessageFactory:
        def resolve(typename: str) -> type:
            package, kind, name = typename.split("/")
            return getattr(importlib.import_module(f"{package}.{kind}"), name)

        return cls(resolve)

    @classmethod
    def rosbags(cls, store=None) -> MessageFactory:
        """A factory on a rosbags typestore with posekit's interface packages registered."""
        store = store if store is not None else rosbags_typestore()
        return cls(lambda typename: store.types[typename], store.fielddefs)

    @property
    def is_rosbags(self) -> bool:
        return self._fielddefs is not None

    def cls(self, typename: str) -> type:
        if typename not in self._classes:
            self._classes[typename] = self._resolve(typename)
        return self._classes[typename]

    def new(self, typename: str, **fields: Any):
        if self._fielddefs is None:
            return self.cls(typename)(**{k: _for_rclpy(v) for k, v in fields.items()})
        _, defs = self._fielddefs[typename]
        kwargs = {}
        for name, desc in defs:
            kwargs[name] = (
                _for_rosbags(fields.pop(name), desc) if name in fields else self._default(desc)
            )
        if fields:
            raise BadInputError(f"{typename} has no field(s) {sorted(fields)}")
        return self.cls(typename)(**kwargs)

    def _default(self, desc):
        kind, spec = desc
        kind = int(kind)
        if kind == 1:  # BASE
            base = spec[0]
            return "" if base == "string" else (False if base == "bool" else 0)
        if kind == 2:  # NAME
            return self.new(spec)
        inner, size = spec
        if int(inner[0]) == 1 and inner[1][0] != "string":
            return np.zeros(size if kind == 3 else 0, dtype=_NUMPY_OF_ROS[inner[1][0]])
        if kind == 3:
            return [self._default(inner) for _ in range(size)]
        return []


def _for_rclpy(value):
    if isinstance(value, np.ndarray):
        if value.dtype == np.uint8:
            return array.array("B", value.tobytes())
        return value.tolist()
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return value


def _for_rosbags(value, desc):
    kind, spec = desc
    if int(kind) in (3, 4) and int(spec[0][0]) == 1 and spec[0][1][0] != "string":
        dtype = _NUMPY_OF_ROS[spec[0][1][0]]
        if isinstance(value, (bytes, bytearray, memoryview, array.array)):
            return np.frombuffer(bytes(value), dtype=dtype).copy()
        return np.asarray(value, dtype=dtype)
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return value


def interface_definitions() -> dict[str, str]:
    """{"vision_msgs/msg/Detection3D": msg text, ...} of the packages in ros_nodes/interfaces."""
    defs = {}
    for path in sorted(INTERFACES_DIR.glob("*/msg/*.msg")):
        defs[f"{path.parents[1].name}/msg/{path.stem}"] = path.read_text()
    return defs


def rosbags_typestore():
    """The typestore posekit.io.rosbag uses, plus vision_msgs, tf2_msgs and posekit_msgs."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_HUMBLE)
    types = {}
    for name, text in interface_definitions().items():
        if name not in store.types:
            types.update(get_types_from_msg(text, name))
    store.register(types)
    return store


# ---------------------------------------------------------------------------------------------
# headers and poses


def stamp_ns(header) -> int:
    """header.stamp as integer nanoseconds."""
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def make_header(factory: MessageFactory, stamp: int, frame_id: str):
    """A std_msgs/Header with ``stamp`` nanoseconds and ``frame_id``."""
    time = factory.new(
        "builtin_interfaces/msg/Time", sec=int(stamp // 1_000_000_000),
        nanosec=int(stamp % 1_000_000_000),
    )
    return factory.new("std_msgs/msg/Header", stamp=time, frame_id=str(frame_id))


def quaternion_xyzw(R: np.ndarray) -> np.ndarray:
    """(3, 3) rotation -> (4,) unit quaternion XYZW with w >= 0."""
    from scipy.spatial.transform import Rotation

    q = Rotation.from_matrix(np.asarray(R, dtype=np.float64)).as_quat()
    return q if q[3] >= 0 else -q


def rotation_from_xyzw(q) -> np.ndarray:
    """(4,) quaternion XYZW (normalised here) -> (3, 3) rotation."""
    from scipy.spatial.transform import Rotation

    q = np.asarray(q, dtype=np.float64)
    if not np.isfinite(q).all() or np.linalg.norm(q) < 1e-9:
        raise BadInputError(f"quaternion must be finite and non-zero, got {q}")
    return Rotation.from_quat(q).as_matrix()


def pose_message(factory: MessageFactory, T: np.ndarray):
    """geometry_msgs/Pose of a (4, 4) transform."""
    T = np.asarray(T, dtype=np.float64)
    q = quaternion_xyzw(T[:3, :3])
    x, y, z = (float(v) for v in T[:3, 3])
    return factory.new(
        "geometry_msgs/msg/Pose",
        position=factory.new("geometry_msgs/msg/Point", x=x, y=y, z=z),
        orientation=factory.new(
            "geometry_msgs/msg/Quaternion", x=float(q[0]), y=float(q[1]), z=float(q[2]),
            w=float(q[3]),
        ),
    )


def matrix_from_pose(pose) -> np.ndarray:
    """(4, 4) transform of a geometry_msgs/Pose (or Transform: translation + rotation)."""
    if hasattr(pose, "position"):
        p, q = pose.position, pose.orientation
    else:
        p, q = pose.translation, pose.rotation
    T = np.eye(4)
    T[:3, :3] = rotation_from_xyzw([q.x, q.y, q.z, q.w])
    T[:3, 3] = (p.x, p.y, p.z)
    return T


def transform_stamped(factory: MessageFactory, header, child_frame_id: str, T: np.ndarray):
    """geometry_msgs/TransformStamped: T_parent_child with parent = header.frame_id."""
    pose = pose_message(factory, T)
    p = pose.position
    return factory.new(
        "geometry_msgs/msg/TransformStamped",
        header=header,
        child_frame_id=child_frame_id,
        transform=factory.new(
            "geometry_msgs/msg/Transform",
            translation=factory.new("geometry_msgs/msg/Vector3", x=p.x, y=p.y, z=p.z),
            rotation=pose.orientation,
        ),
    )


def vector3(factory: MessageFactory, v) -> Any:
    x, y, z = (float(a) for a in v)
    return factory.new("geometry_msgs/msg/Vector3", x=x, y=y, z=z)


# ---------------------------------------------------------------------------------------------
# inputs: message -> arrays (raise BadInputError / UnsupportedFormatError on bad messages)


def cloud_points(msg, depth_range: tuple[float, float] | None = None) -> np.ndarray:
    """(N, 3) float32 finite points (metres) of a PointCloud2, optionally within a depth range.

    Raises BadInputError for malformed messages and for clouds with no usable point.
    """
    if int(msg.height) * int(msg.width) == 0:
        raise BadInputError("PointCloud2 is empty (height * width = 0)")
    points = pointcloud2_to_array(msg, ("x", "y", "z"), skip_nans=True)
    if len(points) == 0:
        raise BadInputError("PointCloud2 has no finite points (all NaN/inf)")
    if depth_range is not None:
        near, far = depth_range
        n_finite = len(points)
        points = points[(points[:, 2] >= near) & (points[:, 2] <= far)]
        if len(points) == 0:
            raise BadInputError(
                f"none of the {n_finite} points of the PointCloud2 lies within the depth range "
                f"{near}..{far} m (parameters depth_min, depth_max)"
            )
    return points


def depth_image(msg) -> np.ndarray:
    """(H, W) float32 metres (0 = missing) of a 16UC1 (mm) or 32FC1 (m) depth Image."""
    if str(msg.encoding) not in DEPTH_ENCODINGS:
        raise UnsupportedFormatError(
            f"depth image encoding {msg.encoding!r} is not supported; use one of {list(DEPTH_ENCODINGS)}"
        )
    return image_to_numpy(msg)


def colour_image(msg) -> np.ndarray:
    """(H, W, 3) uint8 RGB of a colour Image (rgb8, bgr8, rgba8, bgra8 or mono8)."""
    if str(msg.encoding) not in COLOR_ENCODINGS:
        raise UnsupportedFormatError(
            f"image encoding {msg.encoding!r} is not a colour encoding; use one of {list(COLOR_ENCODINGS)}")
    return image_to_numpy(msg)


def mask_image(msg) -> np.ndarray:
    """(H, W) uint8 values of a mono8 / 8UC1 mask or label Image (0 = background)."""
    if str(msg.encoding) not in ("mono8", "8UC1"):
        raise UnsupportedFormatError(f"mask images must be mono8 or 8UC1, got {msg.encoding!r}")
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    data = msg.data
    buf = (
        np.ascontiguousarray(data, dtype=np.uint8).reshape(-1)
        if isinstance(data, np.ndarray) else np.frombuffer(bytes(data), dtype=np.uint8)
    )
    if h <= 0 or w <= 0 or step < w or len(buf) != step * h:
        raise BadInputError(
            f"mask image is {w}x{h} with step {step} but has {len(buf)} bytes"
        )
    return np.ascontiguousarray(buf.reshape(h, step)[:, :w])


def camera_intrinsics(msg) -> dict:
    """CameraInfo -> {K (3, 3), width, height, frame_id, ...}; BadInputError for a zero K."""
    return camera_info_to_dict(msg)


def detection2d_boxes(msg) -> list[tuple[str, tuple[float, float, float, float]]]:
    """vision_msgs/Detection2DArray -> [(class_id, (x0, y0, x1, y1) pixels), ...].

    The class id is the best-scoring hypothesis' (empty when a detection has none).
    """
    boxes = []
    for det in msg.detections:
        b = det.bbox
        cx, cy = float(b.center.position.x), float(b.center.position.y)
        sx, sy = float(b.size_x), float(b.size_y)
        if not np.isfinite([cx, cy, sx, sy]).all() or sx <= 0 or sy <= 0:
            raise BadInputError(f"Detection2D box has centre ({cx}, {cy}) and size {sx}x{sy}")
        class_id = ""
        if len(det.results):
            class_id = str(max(det.results, key=lambda r: r.hypothesis.score).hypothesis.class_id)
        boxes.append((class_id, (cx - sx / 2, cy - sy / 2, cx + sx / 2, cy + sy / 2)))
    return boxes


# ---------------------------------------------------------------------------------------------
# outputs: arrays -> messages


def pointcloud2_message(factory: MessageFactory, header, points: np.ndarray):
    """sensor_msgs/PointCloud2 of (N, 3) float points (metres)."""
    return array_to_pointcloud2(
        np.asarray(points, dtype=np.float32),
        msg_factory=lambda **kw: factory.new("sensor_msgs/msg/PointCloud2", **kw),
        field_factory=lambda **kw: factory.new("sensor_msgs/msg/PointField", **kw),
        header=header,
        data_container="numpy",
    )


def image_message(factory: MessageFactory, header, pixels: np.ndarray, encoding: str):
    """sensor_msgs/Image of (H, W, 3) uint8 rgb8 or bgr8 (channels as given), (H, W) uint8 mono8, uint16 16UC1 or float32 32FC1."""
    pixels = np.ascontiguousarray(pixels)
    bytes_per_pixel = {"rgb8": 3, "bgr8": 3, "mono8": 1, "8UC1": 1, "16UC1": 2, "32FC1": 4}[encoding]
    h, w = pixels.shape[:2]
    little = pixels.astype(pixels.dtype.newbyteorder("<"))
    return factory.new(
        "sensor_msgs/msg/Image", header=header, height=h, width=w, encoding=encoding,
        is_bigendian=0, step=w * bytes_per_pixel,
        data=np.frombuffer(little.tobytes(), dtype=np.uint8),
    )


def camera_info_message(factory: MessageFactory, header, K: np.ndarray, width: int, height: int):
    """sensor_msgs/CameraInfo of a pinhole camera without distortion."""
    K = np.asarray(K, dtype=np.float64)
    P = np.zeros((3, 4))
    P[:, :3] = K
    return factory.new(
        "sensor_msgs/msg/CameraInfo", header=header, height=int(height), width=int(width),
        distortion_model="plumb_bob", d=np.zeros(5), k=K.reshape(-1), r=np.eye(3).reshape(-1),
        p=P.reshape(-1),
    )


def detection3d_array(factory: MessageFactory, header, objects: Sequence[dict]):
    """vision_msgs/Detection3DArray, one Detection3D per object.

    Each object is a dict with ``class_id`` (str), ``score`` (0..1), ``T`` (4, 4) pose
    T_frame_model, ``bbox_center`` (3,) box centre in the model frame and ``bbox_size`` (3,)
    metres; ``id`` optional. As in NVIDIA's FoundationPose/DOPE nodes, the hypothesis pose is
    the model frame's pose and the box is the model's oriented bounding box.
    """
    detections = []
    for obj in objects:
        T = np.asarray(obj["T"], dtype=np.float64)
        T_box = T.copy()
        T_box[:3, 3] = T[:3, :3] @ np.asarray(obj["bbox_center"], dtype=np.float64) + T[:3, 3]
        hypothesis = factory.new(
            "vision_msgs/msg/ObjectHypothesisWithPose",
            hypothesis=factory.new(
                "vision_msgs/msg/ObjectHypothesis", class_id=str(obj["class_id"]),
                score=float(obj["score"]),
            ),
            pose=factory.new(
                "geometry_msgs/msg/PoseWithCovariance", pose=pose_message(factory, T),
                covariance=np.zeros(36),
            ),
        )
        detections.append(factory.new(
            "vision_msgs/msg/Detection3D",
            header=header,
            results=[hypothesis],
            bbox=factory.new(
                "vision_msgs/msg/BoundingBox3D", center=pose_message(factory, T_box),
                size=vector3(factory, obj["bbox_size"]),
            ),
            id=str(obj.get("id", "")),
        ))
    return factory.new("vision_msgs/msg/Detection3DArray", header=header, detections=detections)


def pose_stamped(factory: MessageFactory, header, T: np.ndarray):
    return factory.new("geometry_msgs/msg/PoseStamped", header=header, pose=pose_message(factory, T))


def tf_message(factory: MessageFactory, transforms: Sequence):
    return factory.new("tf2_msgs/msg/TFMessage", transforms=list(transforms))


def color_rgba(factory: MessageFactory, rgba) -> Any:
    r, g, b, a = (float(c) for c in rgba)
    return factory.new("std_msgs/msg/ColorRGBA", r=r, g=g, b=b, a=a)


def triangle_marker(
    factory: MessageFactory, header, ns: str, marker_id: int, T: np.ndarray,
    triangles: np.ndarray, rgba=(0.2, 0.8, 0.3, 0.8), lifetime_s: float = 1.0,
    points_cache: dict | None = None,
):
    """visualization_msgs/Marker TRIANGLE_LIST: ``triangles`` (F*3, 3) corners in the model
    frame, posed by T_frame_model. ``points_cache`` (a dict kept with the model) saves
    rebuilding the Point messages of the same triangles on every frame."""
    key = id(factory)
    points = None if points_cache is None else points_cache.get(key)
    if points is None:
        points = [
            factory.new("geometry_msgs/msg/Point", x=float(p[0]), y=float(p[1]), z=float(p[2]))
            for p in np.asarray(triangles, dtype=np.float64)
        ]
        if points_cache is not None:
            points_cache[key] = points
    sec = int(lifetime_s)
    return factory.new(
        "visualization_msgs/msg/Marker",
        header=header, ns=ns, id=int(marker_id), type=11, action=0,  # TRIANGLE_LIST, ADD
        pose=pose_message(factory, T), scale=vector3(factory, (1.0, 1.0, 1.0)),
        color=color_rgba(factory, rgba), points=points,
        lifetime=factory.new(
            "builtin_interfaces/msg/Duration", sec=sec, nanosec=int((lifetime_s - sec) * 1e9)
        ),
    )


def marker_array(factory: MessageFactory, markers: Sequence):
    return factory.new("visualization_msgs/msg/MarkerArray", markers=list(markers))
