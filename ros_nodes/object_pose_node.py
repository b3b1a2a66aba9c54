"""ROS 2 node: 6D object poses with posekit.ObjectPoseEstimator.

Inputs (relative names, remap them): ``points`` (sensor_msgs/PointCloud2, segmented), or
``depth`` (sensor_msgs/Image 16UC1 mm or 32FC1 m) + ``camera_info`` (sensor_msgs/CameraInfo),
with ``mask`` (mono8 Image) or ``detections_2d`` (vision_msgs/Detection2DArray) when
``segmentation`` asks for them. Outputs: ``detections`` (vision_msgs/Detection3DArray),
``pose/object_<id>`` (geometry_msgs/PoseStamped), ``/tf`` (a frame ``object_<id>`` per object)
and ``markers`` (visualization_msgs/MarkerArray); every output carries the input's stamp and
frame id.

    python -m ros_nodes.object_pose_node --ros-args --params-file configs/ros/object_pose_node.yaml
"""

from __future__ import annotations

import sys
from typing import Any

from geometry_msgs.msg import PoseStamped
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from tf2_msgs.msg import TFMessage
from vision_msgs.msg import Detection2DArray, Detection3DArray
from visualization_msgs.msg import MarkerArray

from ros_nodes.node_base import TF_QOS, PosekitNode, reliability_qos, run_node
from ros_nodes.object_processing import (
    NODE_NAME,
    PARAMETERS,
    ObjectFrame,
    ObjectFrameAssembler,
    ObjectPosePipeline,
    check_settings,
    node_inputs,
)

INPUT_TYPES = {"points": PointCloud2, "depth": Image, "camera_info": CameraInfo, "mask": Image,
               "detections_2d": Detection2DArray, "image": Image}


class ObjectPoseNode(PosekitNode):
    PARAMETERS = PARAMETERS
    ENGINE = "object pose (posekit.ObjectPoseEstimator)"

    def __init__(self, estimator: Any = None, view: Any = None, **kwargs: Any) -> None:
        # Set before the base class configures the node (autostart) in its __init__.
        self._estimator, self._view = estimator, view
        super().__init__(kwargs.pop("node_name", NODE_NAME), **kwargs)

    def check_parameters(self, params: dict[str, Any]) -> None:
        check_settings(params)

    def build_pipeline(self, params: dict[str, Any]) -> ObjectPosePipeline:
        pipeline = ObjectPosePipeline(params, estimator=self._estimator, view=self._view)
        # The pipeline's settings follow live parameter updates; the assembler reads them.
        self.assembler = ObjectFrameAssembler(pipeline.params)
        return pipeline

    def create_interfaces(self, params: dict[str, Any]) -> None:
        self.add_publisher("detections", Detection3DArray, "detections")
        for key in self.pipeline.output_topics():
            if key.startswith("pose/"):
                self.add_publisher(key, PoseStamped, key)
        self.add_publisher("tf", TFMessage, "/tf", TF_QOS)
        self.add_publisher("markers", MarkerArray, "markers")
        sensor_qos = reliability_qos(params["input_reliability"], params["input_queue_depth"])
        for name in node_inputs(params):
            self.add_subscription(INPUT_TYPES[name], name, self.guarded(name, self.assembled(name)),
                                  10 if name == "camera_info" else sensor_qos)

    # -- worker ------------------------------------------------------------------------------

    def process(self, frame: ObjectFrame) -> dict[str, Any]:
        result = self.pipeline.estimate(frame)
        self.failures += sum(not e.success for e in result.estimates)
        return self.pipeline.messages(self.factory, result)


def main(args: list[str] | None = None) -> int:
    return run_node(ObjectPoseNode, args)


if __name__ == "__main__":
    sys.exit(main())
