"""Per-frame processing of the body node, shared by the live node and replay (no rclpy here).

A PointCloud2 of one person -> :class:`posekit.BodyFitter` -> joints as a TF tree and a
PoseArray, the fitted mesh as a TRIANGLE_LIST marker, and the SMPL-format parameters as
posekit_msgs/BodyParameters. Joint frames: joint j's frame has the joint's fitted position
and its global orientation (``BodyFit.global_rotations``); TF publishes each relative to its
parent joint (the pelvis relative to the input frame), so rviz shows the skeleton as a tree.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from posekit.errors import BadInputError
from ros_nodes import messages as m
from ros_nodes.parameters import ParameterSpec

NODE_NAME = "body_node"
EXECUTABLE = "posekit-body-node"

INPUT_TOPICS = {"points": "sensor_msgs/msg/PointCloud2"}
OUTPUT_TOPICS = {
    "joints": "geometry_msgs/msg/PoseArray",
    "body_parameters": "posekit_msgs/msg/BodyParameters",
    "mesh": "visualization_msgs/msg/Marker",
    "/tf": "tf2_msgs/msg/TFMessage",
    "/diagnostics": "diagnostic_msgs/msg/DiagnosticArray",
}

PARAMETERS: tuple[ParameterSpec, ...] = (
    ParameterSpec("weights", "body-default", "shipped weights name or a .pt file", read_only=True),
    ParameterSpec("body_model", "", "SMPL-format body model file (.npz); empty: the model the "
                  "weights were trained on", read_only=True),
    ParameterSpec("device", "cpu", "torch device", choices=("cpu", "cuda"), read_only=True),
    ParameterSpec("refine", False, "polish the network's fit by optimisation (slower)"),
    ParameterSpec("up", [0.0, 0.0, 0.0], "direction away from the floor in the cloud's frame (x, y, z), "
                  "if known (head-down fits are then rejected); all zeros: unknown"),
    ParameterSpec("depth_min", 0.1, "nearest point used (z), metres", value_range=(0.0, 50.0)),
    ParameterSpec("depth_max", 6.0, "farthest point used (z), metres", value_range=(0.01, 50.0)),
    ParameterSpec("min_confidence", 0.0, "fits below this confidence are not published",
                  value_range=(0.0, 1.0)),
    ParameterSpec("joint_frame_prefix", "body_", "TF frame of joint NAME: PREFIX + NAME",
                  read_only=True),
    ParameterSpec("publish_tf", True, "publish the joints as a TF tree on /tf"),
    ParameterSpec("publish_mesh", True, "publish the fitted mesh as a TRIANGLE_LIST marker"),
    ParameterSpec("marker_max_triangles", 4000, "triangles of the mesh marker (evenly "
                  "subsampled faces)", value_range=(12, 100000), read_only=True),
)


def node_inputs(params: dict[str, Any]) -> list[str]:
    return ["points"]


def check_settings(params: dict[str, Any]) -> None:
    if params["depth_min"] >= params["depth_max"]:
        raise BadInputError(
            f"depth_min ({params['depth_min']}) must be below depth_max ({params['depth_max']})")
    up = list(params.get("up") or [0.0, 0.0, 0.0])
    if len(up) != 3 or not np.isfinite(up).all():
        raise BadInputError(f"up must be (x, y, z) (all zeros: unknown), got {up}")


@dataclass
class BodyFrame:
    stamp_ns: int
    frame_id: str
    points: np.ndarray
    received_monotonic: float = 0.0


@dataclass
class BodyFrameResult:
    stamp_ns: int
    frame_id: str
    fit: Any  # posekit.body.fitter.BodyFit
    time_ms: float

    def to_dict(self) -> dict[str, Any]:
        return {"stamp_ns": self.stamp_ns, "frame_id": self.frame_id, "time_ms": self.time_ms,
                "fit": self.fit.to_dict()}


def joint_frames(fit) -> np.ndarray:
    """(24, 4, 4) T_frame_joint: global orientation and position of each joint."""
    T = np.tile(np.eye(4), (len(fit.joints), 1, 1))
    T[:, :3, :3] = fit.global_rotations
    T[:, :3, 3] = fit.joints
    return T


class BodyPipeline:
    def __init__(self, params: dict[str, Any], fitter: Any = None) -> None:
        check_settings(params)
        self.params = dict(params)
        if fitter is None:
            from posekit import BodyFitter

            fitter = BodyFitter.from_pretrained(params["weights"], body_model=params["body_model"] or None,
                                                device=params["device"])
        self.fitter = fitter
        self.model_name = str(getattr(fitter, "metadata", {}).get("name", "") or params["weights"])
        self._faces: np.ndarray | None = None

    def update_settings(self, updates: dict[str, Any]) -> None:
        check_settings({**self.params, **updates})
        self.params.update(updates)

    @property
    def depth_range(self) -> tuple[float, float]:
        return float(self.params["depth_min"]), float(self.params["depth_max"])

    def estimate(self, frame: BodyFrame) -> BodyFrameResult:
        start = time.perf_counter()
        up = np.asarray(self.params.get("up") or [0.0, 0.0, 0.0], dtype=np.float64)
        up = up if np.abs(up).max() > 0 else None
        fit = self.fitter.fit(frame.points, up=up)
        if self.params["refine"]:
            fit = self.fitter.refine(frame.points, fit, up=up)
        return BodyFrameResult(frame.stamp_ns, frame.frame_id, fit, (time.perf_counter() - start) * 1e3)

    def marker_faces(self, faces: np.ndarray) -> np.ndarray:
        """Evenly spaced subset of at most marker_max_triangles faces (fixed per body model)."""
        if self._faces is None or len(self._faces) == 0:
            n = int(self.params["marker_max_triangles"])
            step = max(1, int(np.ceil(len(faces) / n)))
            self._faces = np.asarray(faces)[::step]
        return self._faces

    def messages(self, factory: m.MessageFactory, result: BodyFrameResult) -> dict[str, Any]:
        fit = result.fit
        header = m.make_header(factory, result.stamp_ns, result.frame_id)
        if fit.confidence < float(self.params["min_confidence"]):
            return {}
        names = [f"{self.params['joint_frame_prefix']}{n}" for n in _joint_names()]
        T = joint_frames(fit)
        out: dict[str, Any] = {
            "joints": factory.new("geometry_msgs/msg/PoseArray", header=header,
                                  poses=[m.pose_message(factory, t) for t in T]),
            "body_parameters": factory.new(
                "posekit_msgs/msg/BodyParameters", header=header, model=self.model_name,
                global_orient=np.asarray(fit.axis_angle[0], dtype=np.float64),
                body_pose=np.asarray(fit.axis_angle[1:], dtype=np.float64).reshape(-1),
                betas=np.asarray(fit.betas, dtype=np.float64),
                translation=m.vector3(factory, fit.translation),
                joint_names=list(_joint_names()),
                joints=[factory.new("geometry_msgs/msg/Point", x=float(p[0]), y=float(p[1]), z=float(p[2]))
                        for p in fit.joints],
                score=float(fit.confidence),
            ),
        }
        if self.params["publish_tf"]:
            from posekit.body.skeleton import PARENTS

            transforms = []
            for j, parent in enumerate(PARENTS):
                if parent < 0:
                    transforms.append(m.transform_stamped(factory, header, names[j], T[j]))
                else:
                    child_header = m.make_header(factory, result.stamp_ns, names[parent])
                    transforms.append(m.transform_stamped(
                        factory, child_header, names[j], np.linalg.inv(T[parent]) @ T[j]))
            out["tf"] = m.tf_message(factory, transforms)
        if self.params["publish_mesh"]:
            triangles = np.asarray(fit.vertices)[self.marker_faces(fit.faces)].reshape(-1, 3)
            out["mesh"] = m.triangle_marker(factory, header, "posekit_body", 0, np.eye(4), triangles,
                                            rgba=(0.9, 0.6, 0.3, 0.8))
        return out

    def output_topics(self) -> dict[str, str]:
        return {"joints": "geometry_msgs/msg/PoseArray",
                "body_parameters": "posekit_msgs/msg/BodyParameters",
                "mesh": "visualization_msgs/msg/Marker", "tf": "tf2_msgs/msg/TFMessage"}


def _joint_names() -> tuple[str, ...]:
    from posekit.body.skeleton import JOINT_NAMES

    return JOINT_NAMES


class BodyFrameAssembler:
    def __init__(self, params: dict[str, Any]) -> None:
        self.params = params

    def on_points(self, msg) -> BodyFrame:
        near, far = float(self.params["depth_min"]), float(self.params["depth_max"])
        points = m.cloud_points(msg, (near, far))
        return BodyFrame(m.stamp_ns(msg.header), str(msg.header.frame_id), points)
