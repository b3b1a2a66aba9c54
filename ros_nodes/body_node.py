"""ROS 2 node: SMPL-format body fitting to point clouds with posekit.BodyFitter.

Input (relative name, remap it): ``points`` (sensor_msgs/PointCloud2 of one person).
Outputs: ``/tf`` (a frame ``body_<joint>`` per joint, as a tree from the input frame),
``joints`` (geometry_msgs/PoseArray, the 24 joint frames in the input frame),
``mesh`` (visualization_msgs/Marker TRIANGLE_LIST of the fitted body) and
``body_parameters`` (posekit_msgs/BodyParameters: pose, betas, translation, joints). Outputs
carry the input's stamp and frame id.

    python -m ros_nodes.body_node --ros-args --params-file configs/ros/body_node.yaml
"""

from __future__ import annotations

import sys
from typing import Any

from geometry_msgs.msg import PoseArray
from posekit_msgs.msg import BodyParameters
from sensor_msgs.msg import PointCloud2
from tf2_msgs.msg import TFMessage
from visualization_msgs.msg import Marker

from ros_nodes.body_processing import (
    NODE_NAME,
    PARAMETERS,
    BodyFrameAssembler,
    BodyPipeline,
    check_settings,
)
from ros_nodes.node_base import TF_QOS, PosekitNode, reliability_qos, run_node


class BodyNode(PosekitNode):
    PARAMETERS = PARAMETERS
    ENGINE = "body fitting (posekit.BodyFitter)"

    def __init__(self, fitter: Any = None, **kwargs: Any) -> None:
        self._fitter = fitter  # before the base class configures the node (autostart)
        super().__init__(kwargs.pop("node_name", NODE_NAME), **kwargs)

    def check_parameters(self, params: dict[str, Any]) -> None:
        check_settings(params)

    def build_pipeline(self, params: dict[str, Any]) -> BodyPipeline:
        pipeline = BodyPipeline(params, fitter=self._fitter)
        self.assembler = BodyFrameAssembler(pipeline.params)
        return pipeline

    def create_interfaces(self, params: dict[str, Any]) -> None:
        self.add_publisher("joints", PoseArray, "joints")
        self.add_publisher("body_parameters", BodyParameters, "body_parameters")
        self.add_publisher("mesh", Marker, "mesh")
        self.add_publisher("tf", TFMessage, "/tf", TF_QOS)
        qos = reliability_qos(params["input_reliability"], params["input_queue_depth"])
        self.add_subscription(PointCloud2, "points", self.guarded("points", self.on_points), qos)

    def on_points(self, msg: PointCloud2) -> None:
        self.submit(self.assembler.on_points(msg))

    def process(self, frame) -> dict[str, Any]:
        result = self.pipeline.estimate(frame)
        outputs = self.pipeline.messages(self.factory, result)
        if not outputs:
            self.failures += 1
        return outputs


def main(args: list[str] | None = None) -> int:
    return run_node(BodyNode, args)


if __name__ == "__main__":
    sys.exit(main())
