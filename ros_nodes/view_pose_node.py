"""ROS 2 node: object orientation distribution from one image, with posekit.ViewPoseEstimator.

Input (relative name, remap it): ``image`` (sensor_msgs/Image rgb8/bgr8/rgba8/bgra8/mono8, a
crop centred on one object). Outputs: ``orientation`` (geometry_msgs/PoseWithCovarianceStamped:
the most likely R_cam_obj; rotation covariance from the distribution's spread about it,
position unknown), ``modes`` (geometry_msgs/PoseArray, the top modes) and, with
``publish_plot``, ``distribution_image`` (sensor_msgs/Image rgb8 for rviz). Outputs carry the
input's stamp and frame id. With ``crop: detections``: ``image`` is the full camera image,
with ``camera_info`` (sensor_msgs/CameraInfo) and ``detections_2d``
(vision_msgs/Detection2DArray); the box of ``obj_id`` is cropped as in training.

    python -m ros_nodes.view_pose_node --ros-args --params-file configs/ros/view_pose_node.yaml
"""

from __future__ import annotations

import sys
from typing import Any

from geometry_msgs.msg import PoseArray, PoseWithCovarianceStamped
from sensor_msgs.msg import CameraInfo, Image
from vision_msgs.msg import Detection2DArray

from ros_nodes.node_base import PosekitNode, reliability_qos, run_node
from ros_nodes.view_processing import (
    NODE_NAME,
    PARAMETERS,
    ViewFrameAssembler,
    ViewPosePipeline,
    check_settings,
    node_inputs,
)

INPUT_TYPES = {"image": Image, "camera_info": CameraInfo, "detections_2d": Detection2DArray}


class ViewPoseNode(PosekitNode):
    PARAMETERS = PARAMETERS
    ENGINE = "view orientation (posekit.ViewPoseEstimator)"

    def __init__(self, estimator: Any = None, **kwargs: Any) -> None:
        self._estimator = estimator  # before the base class configures the node (autostart)
        super().__init__(kwargs.pop("node_name", NODE_NAME), **kwargs)

    def check_parameters(self, params: dict[str, Any]) -> None:
        check_settings(params)

    def build_pipeline(self, params: dict[str, Any]) -> ViewPosePipeline:
        pipeline = ViewPosePipeline(params, estimator=self._estimator)
        self.assembler = ViewFrameAssembler(pipeline.params)
        return pipeline

    def create_interfaces(self, params: dict[str, Any]) -> None:
        self.add_publisher("orientation", PoseWithCovarianceStamped, "orientation")
        self.add_publisher("modes", PoseArray, "modes")
        self.add_publisher("distribution_image", Image, "distribution_image")
        qos = reliability_qos(params["input_reliability"], params["input_queue_depth"])
        for name in node_inputs(params):
            self.add_subscription(INPUT_TYPES[name], name, self.guarded(name, self.assembled(name)),
                                  10 if name == "camera_info" else qos)

    def process(self, frame) -> dict[str, Any]:
        return self.pipeline.messages(self.factory, self.pipeline.estimate(frame))


def main(args: list[str] | None = None) -> int:
    return run_node(ViewPoseNode, args)


if __name__ == "__main__":
    sys.exit(main())
