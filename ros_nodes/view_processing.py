"""Per-frame processing of the view orientation node, shared by the live node and replay.

No rclpy here. One colour image (a crop centred on one object) -> the engine's distribution
over R_cam_obj -> the most likely orientation with a covariance from the distribution's
spread, the top modes, and optionally a picture of the distribution.

With ``crop: detections`` the image is the full camera image: it is paired with the
Detection2DArray of the same stamp, and the engine crops around the box of ``obj_id`` with
the CameraInfo's K (:meth:`posekit.ViewPoseEstimator.predict` with ``bbox=`` and ``K=``: the
crop camera of training, the distribution converted to the camera frame).
"""

from __future__ import annotations

import tempfile
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from posekit.errors import BadInputError
from ros_nodes import messages as m
from ros_nodes.parameters import ParameterSpec

NODE_NAME = "view_pose_node"
EXECUTABLE = "posekit-view-pose-node"

INPUT_TOPICS = {"image": "sensor_msgs/msg/Image", "camera_info": "sensor_msgs/msg/CameraInfo",
                "detections_2d": "vision_msgs/msg/Detection2DArray"}
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
    ParameterSpec("crop", "image", "image: the input is a crop centred on one object; detections: a full "
                  "camera image, cropped around the Detection2D box of obj_id (class id = obj_id, or any box "
                  "without a class) with the CameraInfo's K", choices=("image", "detections"), read_only=True),
    ParameterSpec("max_sync_offset_ms", 50.0, "largest stamp difference when pairing an image with its "
                  "detections", value_range=(0.0, 1000.0)),
    ParameterSpec("top_modes", 4, "modes published on `modes`", value_range=(1, 32)),
    ParameterSpec("min_mode_separation_deg", 20.0, "least angle between published modes",
                  value_range=(0.0, 180.0)),
    ParameterSpec("publish_plot", False, "publish a picture of the distribution (slow: "
                  "matplotlib) on distribution_image"),
    ParameterSpec("plot_every_n", 5, "publish the picture every n-th frame",
                  value_range=(1, 1000)),
)


def node_inputs(params: dict[str, Any]) -> list[str]:
    """The input topics the node subscribes to with these parameters."""
    return ["image"] if params.get("crop", "image") == "image" else ["camera_info", "image", "detections_2d"]


def check_settings(params: dict[str, Any]) -> None:
    """Nothing to check across the view parameters (each is checked by its spec)."""


@dataclass
class ViewFrame:
    stamp_ns: int
    frame_id: str
    image: np.ndarray  # (H, W, 3) uint8 RGB
    received_monotonic: float = 0.0
    K: np.ndarray | None = None  # (3, 3) with crop: detections
    boxes: list | None = None  # [(class_id, (x0, y0, x1, y1) px)] with crop: detections


def pick_box(boxes: list, obj_id: int) -> tuple[float, float, float, float]:
    """``(x, y, w, h)`` of the largest box whose class id is ``obj_id`` (or that has no class
    id); any class when ``obj_id`` < 0. BadInputError when there is none."""
    wanted = [b for c, b in boxes if obj_id < 0 or c in ("", str(obj_id))]
    if not wanted:
        classes = sorted({c for c, _ in boxes})
        raise BadInputError(f"no detection of object {obj_id} in this frame (classes: {classes}); nothing to crop")
    x0, y0, x1, y1 = max(wanted, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]))
    return (x0, y0, x1 - x0, y1 - y0)


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
        kwargs: dict[str, Any] = {"obj_id": obj_id} if obj_id >= 0 else {}
        if frame.boxes is not None:
            kwargs.update(bbox=pick_box(frame.boxes, obj_id), K=frame.K)
        dist = self.estimator.predict(frame.image, **kwargs)
        R_mode = dist.mode()
        modes = dist.top_modes(int(self.params["top_modes"]),
                               float(self.params["min_mode_separation_deg"]))
        cov = dist.rotation_covariance(R_mode)
        self.frames += 1
        shown = getattr(self.estimator, "last_input_image", None) if frame.boxes is not None else None
        return ViewFrameResult(frame.stamp_ns, frame.frame_id, R_mode, cov, modes,
                               (time.perf_counter() - start) * 1e3, frame.image if shown is None else shown, dist)

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
    """Input messages -> :class:`ViewFrame`, the same for the live node and for replay.

    ``crop: image``: every colour image is a frame. ``crop: detections``: an image waits for
    the Detection2DArray of its stamp (within max_sync_offset_ms) and takes the latest
    CameraInfo's K; the newest matched pair wins, older unmatched ones are dropped.
    """

    def __init__(self, params: dict[str, Any]) -> None:
        self.params = params
        self.camera_info: dict | None = None
        self._images: deque = deque(maxlen=4)
        self._boxes: deque = deque(maxlen=4)

    def on_camera_info(self, msg) -> None:
        self.camera_info = m.camera_intrinsics(msg)

    def on_image(self, msg) -> ViewFrame | None:
        image = m.colour_image(msg)
        if min(image.shape[:2]) < 8:
            raise BadInputError(f"image is {image.shape[1]}x{image.shape[0]} pixels; too small for a view")
        frame = ViewFrame(m.stamp_ns(msg.header), str(msg.header.frame_id), image)
        if self.params.get("crop", "image") == "image":
            return frame
        info = self.camera_info
        if info is None:
            raise BadInputError("image before any CameraInfo on camera_info: waiting for one (crop: detections)")
        if image.shape[:2] != (info["height"], info["width"]):
            raise BadInputError(f"image is {image.shape[1]}x{image.shape[0]} but CameraInfo says "
                                f"{info['width']}x{info['height']}")
        frame.K = info["K"]
        self._images.append(frame)
        return self._pair()

    def on_detections_2d(self, msg) -> ViewFrame | None:
        self._boxes.append((m.stamp_ns(msg.header), m.detection2d_boxes(msg)))
        return self._pair()

    def _pair(self) -> ViewFrame | None:
        tolerance = float(self.params["max_sync_offset_ms"]) * 1e6
        for frame in reversed(self._images):
            match = min(self._boxes, key=lambda b: abs(b[0] - frame.stamp_ns), default=None)
            if match is not None and abs(match[0] - frame.stamp_ns) <= tolerance:
                frame.boxes = match[1]
                self._images.clear()
                self._boxes.clear()
                return frame
        return None
