"""Per-frame processing of the object pose node, shared by the live node and offline replay.

No rclpy here: frames are arrays (:class:`ObjectFrame`), the engine is
:class:`posekit.ObjectPoseEstimator`, and the output messages are built with a
:class:`~ros_nodes.messages.MessageFactory` (rclpy classes in the node, rosbags classes in
replay), so a bag replayed offline gives the messages the node would have published.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from posekit.errors import BadInputError, MissingFileError
from ros_nodes import messages as m
from ros_nodes.parameters import ParameterSpec

NODE_NAME = "object_pose_node"
EXECUTABLE = "posekit-object-pose-node"

# Topic names relative to the node's namespace (remap them), and their types. The node
# subscribes only to the inputs its input_mode and segmentation need; pose/<frame> has one
# topic per model (object_frame_prefix + id).
INPUT_TOPICS = {
    "points": "sensor_msgs/msg/PointCloud2",
    "depth": "sensor_msgs/msg/Image",
    "camera_info": "sensor_msgs/msg/CameraInfo",
    "mask": "sensor_msgs/msg/Image",
    "detections_2d": "vision_msgs/msg/Detection2DArray",
    "image": "sensor_msgs/msg/Image",
}
OUTPUT_TOPICS = {
    "detections": "vision_msgs/msg/Detection3DArray",
    "pose/<object_frame_prefix><id>": "geometry_msgs/msg/PoseStamped",
    "/tf": "tf2_msgs/msg/TFMessage",
    "markers": "visualization_msgs/msg/MarkerArray",
    "/diagnostics": "diagnostic_msgs/msg/DiagnosticArray",
}

PARAMETERS: tuple[ParameterSpec, ...] = (
    ParameterSpec("model_files", ["procedural:7"], "object meshes (PLY/OBJ/STL/OFF), or "
                  "procedural:SEED for a posekit procedural object", read_only=True),
    ParameterSpec("model_ids", [1], "object id of each model file (class_id in the "
                  "detections, label value in mask images)", value_range=(1, 65535),
                  read_only=True),
    ParameterSpec("model_scale", 1.0, "multiplies model file coordinates to get metres "
                  "(0.001 for BOP models in millimetres)", value_range=(1e-6, 1e3),
                  read_only=True),
    ParameterSpec("weights", "registration-procedural", "shipped weights name or a .pt file",
                  read_only=True),
    ParameterSpec("device", "cpu", "torch device", choices=("cpu", "cuda"), read_only=True),
    ParameterSpec("num_hypotheses", 0, "diffusion chains (pose hypotheses) per object; 0: the "
                  "weights' setting, as the model card measured it", value_range=(0, 64), read_only=True),
    ParameterSpec("refine_icp", "default", "point-to-plane ICP refinement: default (as the "
                  "weights' config says), on or off", choices=("default", "on", "off"),
                  read_only=True),
    ParameterSpec("input_mode", "pointcloud", "pointcloud: a segmented PointCloud2; depth: "
                  "a depth Image + CameraInfo", choices=("pointcloud", "depth"), read_only=True),
    ParameterSpec("segmentation", "none", "depth mode only: none (tabletop fallback), mask "
                  "(mono8 mask or label Image) or detections (vision_msgs/Detection2DArray)",
                  choices=("none", "mask", "detections"), read_only=True),
    ParameterSpec("view_weights", "", "RGB-D: a view model that knows the objects' model_ids (e.g. view-lmo); "
                  "the colour image on image (registered to depth, same size) then seeds the chains. Empty: "
                  "depth only", read_only=True),
    ParameterSpec("view_starts", 8, "with view_weights: chains seeded from the image per object",
                  value_range=(1, 64), read_only=True),
    ParameterSpec("cloud_is_scene", False, "pointcloud mode: the cloud is a whole tabletop "
                  "scene, not the object's points (plane removal and clustering find the object)",
                  read_only=True),
    ParameterSpec("max_points", 20000, "larger clouds are randomly subsampled to this many points "
                  "before the engine (which uses a few hundred)", value_range=(100, 10_000_000)),
    ParameterSpec("depth_min", 0.1, "nearest depth used, metres", value_range=(0.0, 50.0)),
    ParameterSpec("depth_max", 3.0, "farthest depth used, metres", value_range=(0.01, 50.0)),
    ParameterSpec("min_score", 0.0, "estimates scoring below are not published",
                  value_range=(0.0, 1.0)),
    ParameterSpec("max_sync_offset_ms", 50.0, "largest stamp difference when pairing depth "
                  "with a mask or detections, milliseconds", value_range=(0.0, 1000.0)),
    ParameterSpec("publish_tf", True, "publish a TF frame per object on /tf"),
    ParameterSpec("publish_markers", True, "publish the posed models as a MarkerArray"),
    ParameterSpec("object_frame_prefix", "object_", "TF child frame and pose topic of object "
                  "ID: PREFIX + ID", read_only=True),
    ParameterSpec("marker_max_triangles", 2000, "triangles per model in the markers",
                  value_range=(12, 100000), read_only=True),
)


def node_inputs(params: dict[str, Any]) -> list[str]:
    """The input topics the node subscribes to with these parameters."""
    if params["input_mode"] == "pointcloud":
        return ["points"]
    extra = {"mask": ["mask"], "detections": ["detections_2d"]}.get(params["segmentation"], [])
    if params.get("view_weights"):
        extra.append("image")
    return ["camera_info", "depth", *extra]


@dataclass
class ObjectFrame:
    """One input frame. Either ``points`` (N, 3) float32 metres, or ``depth`` (H, W) float32
    metres with ``K`` (3, 3), optionally ``labels`` (H, W) uint8 (mask or label image) or
    ``boxes`` [(class_id, (x0, y0, x1, y1))], and ``rgb`` (H, W, 3) uint8 registered to the depth
    image (the view prior's input). All in the camera frame ``frame_id``."""

    stamp_ns: int
    frame_id: str
    points: np.ndarray | None = None
    depth: np.ndarray | None = None
    K: np.ndarray | None = None
    labels: np.ndarray | None = None
    boxes: list | None = None
    rgb: np.ndarray | None = None
    received_monotonic: float = 0.0


@dataclass
class ObjectEstimate:
    obj_id: int
    success: bool
    reason: str
    T_cam_model: np.ndarray | None
    score: float
    time_ms: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "obj_id": self.obj_id, "success": self.success, "reason": self.reason,
            "T_cam_model": None if self.T_cam_model is None else self.T_cam_model.tolist(),
            "score": self.score, "time_ms": self.time_ms,
        }


@dataclass
class ObjectFrameResult:
    stamp_ns: int
    frame_id: str
    estimates: list[ObjectEstimate] = field(default_factory=list)
    time_ms: float = 0.0


@dataclass
class _Model:
    obj_id: int
    prepared: Any
    bbox_center: np.ndarray
    bbox_size: np.ndarray
    triangles: np.ndarray
    marker_points: dict = field(default_factory=dict)


def load_mesh(spec: str, scale: float):
    """A model in metres: a mesh or cloud file (times ``scale``; :func:`posekit.io.mesh.read_object_model`,
    the loader the API and CLI use) or ``procedural:SEED``."""
    from posekit.io.mesh import read_object_model

    if spec.startswith("procedural:"):
        from posekit.data.meshes import procedural_mesh

        try:
            seed = int(spec.split(":", 1)[1])
        except ValueError as err:
            raise BadInputError(f"model {spec!r}: write procedural:SEED with an integer seed") from err
        return procedural_mesh(seed)[0]
    path = Path(spec).expanduser()
    if not path.is_file():
        raise MissingFileError(f"model file not found: {path} (parameter model_files)")
    return read_object_model(path, scale=scale)


def marker_triangles(mesh, max_triangles: int) -> np.ndarray:
    """(F*3, 3) triangle corners of the mesh, decimated to at most ``max_triangles`` faces
    (none for a point-cloud model)."""
    if not hasattr(mesh, "faces"):
        return np.zeros((0, 3))
    vertices, faces = mesh.vertices, mesh.faces
    if len(faces) > max_triangles:
        simplified = mesh.to_open3d().simplify_quadric_decimation(int(max_triangles))
        vertices, faces = np.asarray(simplified.vertices), np.asarray(simplified.triangles)
    return vertices[faces].reshape(-1, 3)


def check_settings(params: dict[str, Any]) -> None:
    """Checks across parameters (each one alone is checked by its ParameterSpec)."""
    if len(params["model_files"]) == 0:
        raise BadInputError("parameter model_files is empty: name at least one object model")
    if len(params["model_files"]) != len(params["model_ids"]):
        raise BadInputError(
            f"parameters model_files ({len(params['model_files'])}) and model_ids "
            f"({len(params['model_ids'])}) must have the same length"
        )
    if len(set(params["model_ids"])) != len(params["model_ids"]):
        raise BadInputError(f"parameter model_ids has duplicates: {params['model_ids']}")
    if params["depth_min"] >= params["depth_max"]:
        raise BadInputError(
            f"depth_min ({params['depth_min']}) must be below depth_max ({params['depth_max']})"
        )
    if params["input_mode"] == "pointcloud" and params["segmentation"] != "none":
        raise BadInputError(
            "segmentation applies to input_mode depth; a PointCloud2 input is already segmented"
        )
    if params.get("view_weights") and (params["input_mode"] != "depth" or params["segmentation"] == "none"):
        raise BadInputError(
            "view_weights (the RGB prior) needs input_mode depth with segmentation mask or detections: "
            "the image is cropped where the object is"
        )


class ObjectFrameAssembler:
    """Input messages -> :class:`ObjectFrame`, the same for the live node and for replay.

    Each ``on_<input>`` decodes a message (rclpy or rosbags; BadInputError /
    UnsupportedFormatError for bad ones) and returns a complete frame or None. Depth frames
    wait for their mask or 2D detections, and for their colour image when the view prior is on
    (stamps within max_sync_offset_ms); the newest matched frame wins and older unmatched ones
    are dropped, never queued.
    """

    def __init__(self, params: dict[str, Any]) -> None:
        self.params = params
        self.camera_info: dict | None = None
        self._depth: deque = deque(maxlen=4)
        # (stamp, frame attribute, value) per kind of side input a depth frame waits for
        self._side: dict[str, deque] = {"segmentation": deque(maxlen=4), "image": deque(maxlen=4)}

    def _needed(self) -> list[str]:
        kinds = [] if self.params["segmentation"] == "none" else ["segmentation"]
        return kinds + (["image"] if self.params.get("view_weights") else [])

    @property
    def depth_range(self) -> tuple[float, float]:
        return float(self.params["depth_min"]), float(self.params["depth_max"])

    def on_points(self, msg) -> ObjectFrame:
        points = m.cloud_points(msg, self.depth_range)
        return ObjectFrame(m.stamp_ns(msg.header), str(msg.header.frame_id), points=points)

    def on_camera_info(self, msg) -> None:
        self.camera_info = m.camera_intrinsics(msg)

    def on_depth(self, msg) -> ObjectFrame | None:
        if self.camera_info is None:
            raise BadInputError("depth image before any CameraInfo on camera_info: waiting for one")
        depth = m.depth_image(msg)
        info = self.camera_info
        if depth.shape != (info["height"], info["width"]):
            raise BadInputError(
                f"depth image is {depth.shape[1]}x{depth.shape[0]} but CameraInfo says "
                f"{info['width']}x{info['height']}"
            )
        frame = ObjectFrame(m.stamp_ns(msg.header), str(msg.header.frame_id), depth=depth,
                            K=info["K"])
        if not self._needed():
            return frame
        self._depth.append(frame)
        return self._pair()

    def on_mask(self, msg) -> ObjectFrame | None:
        self._side["segmentation"].append((m.stamp_ns(msg.header), "labels", m.mask_image(msg)))
        return self._pair()

    def on_detections_2d(self, msg) -> ObjectFrame | None:
        self._side["segmentation"].append((m.stamp_ns(msg.header), "boxes", m.detection2d_boxes(msg)))
        return self._pair()

    def on_image(self, msg) -> ObjectFrame | None:
        self._side["image"].append((m.stamp_ns(msg.header), "rgb", m.colour_image(msg)))
        return self._pair()

    def _pair(self) -> ObjectFrame | None:
        tolerance = float(self.params["max_sync_offset_ms"]) * 1e6
        needed = self._needed()
        for frame in reversed(self._depth):
            matches = [min(self._side[kind], key=lambda s: abs(s[0] - frame.stamp_ns), default=None)
                       for kind in needed]
            if all(mt is not None and abs(mt[0] - frame.stamp_ns) <= tolerance for mt in matches):
                for _, name, value in matches:
                    setattr(frame, name, value)
                self._depth.clear()
                for queue in self._side.values():
                    queue.clear()
                return frame
        return None


class ObjectPosePipeline:
    """Frames in, pose estimates and output messages out.

    ``estimator``: an object with ``prepare_model(mesh, obj_id)`` and ``estimate(model, ...)``
    as :class:`posekit.ObjectPoseEstimator`; by default loaded from the ``weights``, ``device``
    and ``num_hypotheses`` parameters. ``view``: the RGB prior's
    :class:`posekit.view.ViewPoseEstimator`; by default loaded from ``view_weights`` (none when
    that is empty); it must know every model id.
    """

    def __init__(self, params: dict[str, Any], estimator: Any = None, view: Any = None) -> None:
        check_settings(params)
        self.params = dict(params)
        if estimator is None:
            from posekit import ObjectPoseEstimator

            estimator = ObjectPoseEstimator.from_pretrained(
                params["weights"], device=params["device"],
                num_hypotheses=params["num_hypotheses"] or None,
                refine_icp={"default": None, "on": True, "off": False}[params["refine_icp"]],
            )
        self.estimator = estimator
        if view is None and params.get("view_weights"):
            from posekit.view.estimator import ViewPoseEstimator

            view = ViewPoseEstimator.from_pretrained(params["view_weights"], device=params["device"])
        self.view = view
        if view is not None:
            for obj_id in params["model_ids"]:
                view.object_index(int(obj_id))  # a clear error for an object the view model does not know
        self.models: list[_Model] = []
        for spec, obj_id in zip(params["model_files"], params["model_ids"]):
            mesh = load_mesh(spec, params["model_scale"])
            corners = mesh.vertices if hasattr(mesh, "vertices") else mesh.points
            lo, hi = corners.min(0), corners.max(0)
            self.models.append(_Model(
                obj_id=int(obj_id),
                prepared=estimator.prepare_model(mesh, obj_id=int(obj_id)),
                bbox_center=(lo + hi) / 2, bbox_size=hi - lo,
                triangles=marker_triangles(mesh, params["marker_max_triangles"]),
            ))

    def update_settings(self, updates: dict[str, Any]) -> None:
        """Apply run-time parameter changes (the ones that are not read-only)."""
        check_settings({**self.params, **updates})
        self.params.update(updates)  # in place: the frame assembler shares this dict

    @property
    def depth_range(self) -> tuple[float, float]:
        return float(self.params["depth_min"]), float(self.params["depth_max"])

    def frame_name(self, obj_id: int) -> str:
        return f"{self.params['object_frame_prefix']}{obj_id}"

    # -- estimation ------------------------------------------------------------------------

    def estimate(self, frame: ObjectFrame) -> ObjectFrameResult:
        """Run the engine on every model; BadInputError when the frame has nothing usable."""
        start = time.perf_counter()
        result = ObjectFrameResult(frame.stamp_ns, frame.frame_id)
        near, far = self.depth_range
        depth = None
        if frame.points is not None:
            points = np.asarray(frame.points, dtype=np.float32)
            points = points[np.isfinite(points).all(1) & (points[:, 2] >= near) & (points[:, 2] <= far)]
            if len(points) < 3:
                raise BadInputError(f"cloud has {len(points)} points within depth {near}..{far} m")
            limit = int(self.params["max_points"])
            if len(points) > limit:
                rng = np.random.default_rng(frame.stamp_ns % (2**32))
                points = points[np.sort(rng.choice(len(points), limit, replace=False))]
        else:
            if frame.depth is None or frame.K is None:
                raise BadInputError("a frame needs points, or depth and K")
            depth = np.where((frame.depth >= near) & (frame.depth <= far), frame.depth, 0.0)
            depth = depth.astype(np.float32)
            if not (depth > 0).any():
                raise BadInputError(f"depth image has no pixel within {near}..{far} m")
        for model in self.models:
            if depth is None:
                res = (self.estimator.estimate_scene(model.prepared, points)
                       if self.params["cloud_is_scene"] else
                       self.estimator.estimate(model.prepared, points))
            else:
                kwargs = self._segmentation_for(model, frame, depth)
                if kwargs is None:
                    continue
                if self.view is not None:
                    if frame.rgb is None:
                        raise BadInputError("the view prior is on but the frame has no colour image")
                    kwargs.update(rgb=frame.rgb, view=self.view, view_starts=int(self.params["view_starts"]))
                res = self.estimator.estimate(model.prepared, depth=depth,
                                              K=np.asarray(frame.K, dtype=np.float64), **kwargs)
            T = np.asarray(res.T_cam_model, dtype=np.float64) if res.success else None
            result.estimates.append(ObjectEstimate(
                model.obj_id, bool(res.success), str(res.reason), T, float(res.score),
                float(res.time_ms),
            ))
        result.time_ms = (time.perf_counter() - start) * 1e3
        return result

    def _segmentation_for(self, model: _Model, frame: ObjectFrame, depth) -> dict | None:
        """mask= / bbox= for one model (empty: tabletop fallback), or None when the frame's
        segmentation does not contain this model."""
        mode = self.params["segmentation"]
        if mode == "mask":
            if frame.labels is None:
                raise BadInputError("segmentation is mask but the frame has no mask")
            labels = frame.labels
            ids = {mm.obj_id for mm in self.models}
            is_label_image = len(ids) > 1 and bool(ids & set(np.unique(labels).tolist()))
            # A label image selects each model's id; a plain mask selects every model.
            mask = labels == model.obj_id if is_label_image else labels > 0
            if mask.shape != depth.shape:
                raise BadInputError(f"mask is {mask.shape[::-1]} but depth is {depth.shape[::-1]}")
            if not (mask & (depth > 0)).any():
                return None
            return {"mask": mask}
        if mode == "detections":
            if frame.boxes is None:
                raise BadInputError("segmentation is detections but the frame has none")
            boxes = [b for c, b in frame.boxes if c in ("", str(model.obj_id))]
            if not boxes:
                return None
            return {"bbox": tuple(round(v) for v in boxes[0])}
        return {}

    # -- messages --------------------------------------------------------------------------

    def published(self, result: ObjectFrameResult) -> list[ObjectEstimate]:
        """The estimates that are published: successful ones scoring at least min_score."""
        return [e for e in result.estimates
                if e.success and e.score >= float(self.params["min_score"])]

    def messages(self, factory: m.MessageFactory, result: ObjectFrameResult) -> dict[str, Any]:
        """{"detections": Detection3DArray, "pose/<frame>": PoseStamped, "tf": TFMessage,
        "markers": MarkerArray}; the header is the input frame's stamp and frame id."""
        header = m.make_header(factory, result.stamp_ns, result.frame_id)
        good = self.published(result)
        by_id = {model.obj_id: model for model in self.models}
        objects = [{
            "class_id": str(e.obj_id), "score": e.score, "T": e.T_cam_model,
            "bbox_center": by_id[e.obj_id].bbox_center, "bbox_size": by_id[e.obj_id].bbox_size,
            "id": self.frame_name(e.obj_id),
        } for e in good]
        out: dict[str, Any] = {"detections": m.detection3d_array(factory, header, objects)}
        for e in good:
            out[f"pose/{self.frame_name(e.obj_id)}"] = m.pose_stamped(factory, header, e.T_cam_model)
        if self.params["publish_tf"] and good:
            out["tf"] = m.tf_message(factory, [
                m.transform_stamped(factory, header, self.frame_name(e.obj_id), e.T_cam_model)
                for e in good
            ])
        if self.params["publish_markers"]:
            markers = []
            for e in good:
                model = by_id[e.obj_id]
                markers.append(m.triangle_marker(
                    factory, header, "posekit_objects", e.obj_id, e.T_cam_model,
                    model.triangles, points_cache=model.marker_points,
                ))
            out["markers"] = m.marker_array(factory, markers)
        return out

    def output_topics(self) -> dict[str, str]:
        """{output key: message type} of every output this pipeline can produce."""
        topics = {"detections": "vision_msgs/msg/Detection3DArray",
                  "tf": "tf2_msgs/msg/TFMessage",
                  "markers": "visualization_msgs/msg/MarkerArray"}
        for model in self.models:
            topics[f"pose/{self.frame_name(model.obj_id)}"] = "geometry_msgs/msg/PoseStamped"
        return topics
