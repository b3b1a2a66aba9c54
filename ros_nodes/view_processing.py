"""Per-frame processing of the view orientation node, shared by the live node and replay.

No rclpy here. One colour image (a crop centred on one object) -> the engine's distribution
over R_cam_obj -> the most likely orientation with a covariance from the distribution's
spread, the top modes, and optionally a picture of the distribution.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from posekit.errors import BadInputError, UnsupportedFormatError
from posekit.io.rosbag import COLOR_ENCODINGS, image_to_numpy
from ros_nodes import messages as m
from ros_nodes.parameters import ParameterSpec

NODE_NAME = "view_pose_node"
EXECUTABLE = "posekit-view-pose-node"

INPUT_TOPICS = {"image": "sensor_msgs/msg/Image"}
OUTPUT_TOPICS = {
    "orientation": "geometry_msgs/msg/PoseWithCovarianceStamped",
    "modes": "geometry_msgs/msg/PoseArray",
    "distribution_image": "sensor_msgs/msg/Image",
    "/diagnostics": "diagnostic_msgs/msg/DiagnosticArray",
}
# Variance (m^2) written for the position, which one image does not determine.
UNKNOWN_POSITION_VARIANCE = 1.0e6

PARAMETERS: tuple[ParameterSpec, ...] = (
    ParameterSpec("weights", "view-symsol", "shipped weights name or a .pt file", read_only=True),
    ParameterSpec("device", "cpu", "torch device", choices=("cpu", "cuda"), read_only=True),
    ParameterSpec("grid_level", -1, "HEALPix SO(3) grid level of the output distribution "
                  "(-1: the weights' evaluation level)", value_range=(-1, 5), read_only=True),
    ParameterSpec("obj_id", -1, "object id for weights trained on a dataset's objects (e.g. view-lmo); "
                  "-1 for weights without objects", value_range=(-1, 1_000_000)),
    ParameterSpec("top_modes", 4, "modes published on `modes`", value_range=(1, 32)),
    ParameterSpec("min_mode_separation_deg", 20.0, "least angle between published modes",
                  value_range=(0.0, 180.0)),
    ParameterSpec("publish_plot", False, "publish a picture of the distribution (slow: "
                  "matplotlib) on distribution_image"),
    ParameterSpec("plot_every_n", 5, "publish the picture every n-th frame",
                  value_range=(1, 1000)),
)


def node_inputs(params: dict[str, Any]) -> list[str]:
    return ["image"]


def check_settings(params: dict[str, Any]) -> None:
    """Nothing to check across the view parameters (each is checked by its spec)."""


@dataclass
class ViewFrame:
    stamp_ns: int
    frame_id: str
    image: np.ndarray  # (H, W, 3) uint8 RGB
    received_monotonic: float = 0.0


@dataclass
class ViewFrameResult:
    stamp_ns: int
    frame_id: str
    R_mode: np.ndarray
    covariance: np.ndarray  # (3, 3) rad^2, rotation vector about the mode, camera frame
    modes: list[tuple[np.ndarray, float]]
    time_ms: float
    image: np.ndarray
    distribution: Any = None

    def to_dict(self) -> dict[str, Any]:
        return {"stamp_ns": self.stamp_ns, "frame_id": self.frame_id,
                "R_mode": self.R_mode.tolist(), "covariance": self.covariance.tolist(),
                "modes": [{"R": R.tolist(), "mass": float(p)} for R, p in self.modes],
                "time_ms": self.time_ms}


class ViewPosePipeline:
    def __init__(self, params: dict[str, Any], estimator: Any = None) -> None:
        self.params = dict(params)
        if estimator is None:
            from posekit import ViewPoseEstimator

            level = params["grid_level"]
            estimator = ViewPoseEstimator.from_pretrained(
                params["weights"], device=params["device"], grid_level=None if level < 0 else level)
        self.estimator = estimator
        self.frames = 0

    def update_settings(self, updates: dict[str, Any]) -> None:
        self.params.update(updates)

    def estimate(self, frame: ViewFrame) -> ViewFrameResult:
        start = time.perf_counter()
        obj_id = int(self.params.get("obj_id", -1))
        dist = self.estimator.predict(frame.image, obj_id=obj_id) if obj_id >= 0 else self.estimator.predict(frame.image)
        R_mode = dist.mode()
        modes = dist.top_modes(int(self.params["top_modes"]),
                               float(self.params["min_mode_separation_deg"]))
        cov = dist.rotation_covariance(R_mode)
        self.frames += 1
        return ViewFrameResult(frame.stamp_ns, frame.frame_id, R_mode, cov, modes,
                               (time.perf_counter() - start) * 1e3, frame.image, dist)

    def messages(self, factory: m.MessageFactory, result: ViewFrameResult) -> dict[str, Any]:
        header = m.make_header(factory, result.stamp_ns, result.frame_id)
        T = np.eye(4)
        T[:3, :3] = result.R_mode
        covariance = np.zeros((6, 6))
        covariance[:3, :3] = np.eye(3) * UNKNOWN_POSITION_VARIANCE
        covariance[3:, 3:] = result.covariance
        out = {
            "orientation": factory.new(
                "geometry_msgs/msg/PoseWithCovarianceStamped", header=header,
                pose=factory.new("geometry_msgs/msg/PoseWithCovariance",
                                 pose=m.pose_message(factory, T), covariance=covariance.reshape(-1)),
            ),
            "modes": factory.new("geometry_msgs/msg/PoseArray", header=header, poses=[
                m.pose_message(factory, np.block([[R, np.zeros((3, 1))], [np.zeros((1, 3)), 1.0]]))
                for R, _ in result.modes
            ]),
        }
        if self.params["publish_plot"] and (self.frames - 1) % int(self.params["plot_every_n"]) == 0:
            out["distribution_image"] = m.image_message(
                factory, header, render_distribution(result), "rgb8")
        return out

    def output_topics(self) -> dict[str, str]:
        return {k: v for k, v in OUTPUT_TOPICS.items() if not k.startswith("/")}


def render_distribution(result: ViewFrameResult) -> np.ndarray:
    """(H, W, 3) uint8 RGB picture of the distribution next to the input image."""
    import cv2

    from posekit.view.distribution import plot_so3_distribution

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "distribution.png"
        plot_so3_distribution(result.distribution, path, image=result.image)
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return np.ascontiguousarray(bgr[:, :, ::-1])


class ViewFrameAssembler:
    def __init__(self, params: dict[str, Any]) -> None:
        self.params = params

    def on_image(self, msg) -> ViewFrame:
        if str(msg.encoding) not in COLOR_ENCODINGS:
            raise UnsupportedFormatError(
                f"image encoding {msg.encoding!r} is not a colour encoding; use one of {list(COLOR_ENCODINGS)}")
        image = image_to_numpy(msg)
        if min(image.shape[:2]) < 8:
            raise BadInputError(f"image is {image.shape[1]}x{image.shape[0]} pixels; too small for a view")
        return ViewFrame(m.stamp_ns(msg.header), str(msg.header.frame_id), image)
