"""The view orientation node over a real ROS 2 middleware, in one process.

The node is given a small estimator with ViewPoseEstimator's ``predict`` that returns a real
SO3GridDistribution concentrated about a known rotation, more or less tightly depending on
the image's brightness (building the real network takes ~25 s here). The node's orientation,
covariance and modes must be those of that distribution, with the input's stamp and frame.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rclpy")

from geometry_msgs.msg import PoseArray, PoseWithCovarianceStamped
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image

from posekit.geometry.rigid_np import rotation_about_axis
from posekit.geometry.so3_grid import so3_healpix_grid
from posekit.view.distribution import SO3GridDistribution
from ros_nodes.messages import MessageFactory, image_message, make_header, matrix_from_pose
from ros_nodes.node_base import reliability_qos
from ros_nodes.testing import RosGraph
from ros_nodes.view_pose_node import ViewPoseNode

R_TRUE = rotation_about_axis((1.0, 2.0, 0.5), 1.1)
LEVEL = 2


class ConcentratedViewEstimator:
    """``predict(image)``: p(R) proportional to exp(kappa * trace(R_TRUE^T R)), kappa growing
    with the image's mean brightness (a bright image = a confident view)."""

    def predict(self, image):
        kappa = 1.0 + 40.0 * float(np.asarray(image).mean()) / 255.0
        grid = so3_healpix_grid(LEVEL)
        logits = kappa * np.einsum("ij,nij->n", R_TRUE, grid)
        return SO3GridDistribution.from_logits(logits, LEVEL)


def _image_msg(brightness: int, stamp_ns: int, encoding="rgb8"):
    factory = MessageFactory.rclpy()
    pixels = np.full((32, 32, 3), brightness, np.uint8)
    if encoding == "16UC1":
        pixels = np.full((32, 32), 1000, np.uint16)
    return image_message(factory, make_header(factory, stamp_ns, "crop_camera"), pixels, encoding)


def test_view_node_orientation_covariance_and_modes():
    with RosGraph() as graph:
        node = graph.add(ViewPoseNode(
            estimator=ConcentratedViewEstimator(), context=graph.context,
            parameter_overrides=[Parameter("top_modes", value=3), Parameter("input_queue_depth", value=10)]))
        probe = graph.node("view_probe")
        pub = probe.create_publisher(Image, "image", reliability_qos("reliable", 10))
        got, modes = [], []
        probe.create_subscription(PoseWithCovarianceStamped, "orientation", got.append, 10)
        probe.create_subscription(PoseArray, "modes", modes.append, 10)
        assert graph.wait_for(lambda: pub.get_subscription_count() > 0
                              and probe.count_publishers("orientation") > 0, 10.0)

        pub.publish(_image_msg(0, 5, encoding="16UC1"))  # a depth image: skipped, logged once
        pub.publish(_image_msg(250, 1_000_000_001))      # bright: concentrated
        assert graph.wait_for(lambda: len(got) >= 1 and len(modes) >= 1, 10.0)
        pub.publish(_image_msg(5, 2_000_000_002))        # dark: spread out
        assert graph.wait_for(lambda: len(got) >= 2, 10.0)

        assert node.bad_messages.total == 1 and "16UC1" in next(iter(node.bad_messages.counts))
        sharp, broad = got
        assert sharp.header.frame_id == "crop_camera"
        assert (sharp.header.stamp.sec, sharp.header.stamp.nanosec) == (1, 1)
        expected = ConcentratedViewEstimator().predict(np.full((32, 32, 3), 250, np.uint8))
        R_node = matrix_from_pose(sharp.pose.pose)[:3, :3]
        np.testing.assert_allclose(R_node, expected.mode(), atol=1e-6)
        # The mode is the grid rotation nearest the truth (level 2 spacing ~15 degrees).
        angle = np.degrees(np.arccos(np.clip((np.trace(R_TRUE.T @ R_node) - 1) / 2, -1, 1)))
        assert angle < 15.0
        cov = np.asarray(sharp.pose.covariance).reshape(6, 6)
        np.testing.assert_allclose(cov[3:, 3:], expected.rotation_covariance(), atol=1e-9)
        assert cov[0, 0] >= 1e5  # position unknown from one view
        broad_cov = np.asarray(broad.pose.covariance).reshape(6, 6)[3:, 3:]
        assert np.trace(broad_cov) > 5 * np.trace(cov[3:, 3:])
        assert len(modes[0].poses) >= 1
        np.testing.assert_allclose(matrix_from_pose(modes[0].poses[0])[:3, :3], R_node, atol=1e-6)


def test_distribution_picture_every_nth_frame():
    from ros_nodes.parameters import COMMON_PARAMETERS, validate_parameters
    from ros_nodes.view_processing import PARAMETERS, ViewFrame, ViewPosePipeline

    params = validate_parameters((*COMMON_PARAMETERS, *PARAMETERS), {"publish_plot": True, "plot_every_n": 2})
    pipeline = ViewPosePipeline(params, estimator=ConcentratedViewEstimator())
    factory = MessageFactory.rosbags()
    published = []
    for i in range(3):
        result = pipeline.estimate(ViewFrame(i, "crop", np.full((32, 32, 3), 200, np.uint8)))
        published.append(pipeline.messages(factory, result).get("distribution_image"))
    assert published[1] is None and published[0] is not None and published[2] is not None
    picture = published[0]
    assert picture.encoding == "rgb8" and len(picture.data) == picture.height * picture.width * 3
    assert picture.header.frame_id == "crop" and picture.width > 100
    assert np.asarray(picture.data).std() > 10  # a drawing, not a blank image


class RecordingViewEstimator(ConcentratedViewEstimator):
    """ConcentratedViewEstimator that records how it was called (bbox, K, obj_id)."""

    def __init__(self):
        self.calls = []
        self.last_input_image = np.zeros((16, 16, 3), np.uint8)

    def predict(self, image, **kwargs):
        self.calls.append({"shape": np.asarray(image).shape, **kwargs})
        return super().predict(image)


def _detections_msg(stamp_ns, boxes):
    """Detection2DArray of (class_id, (cx, cy, w, h)) pixels."""
    from vision_msgs.msg import Detection2D, Detection2DArray, ObjectHypothesisWithPose

    factory = MessageFactory.rclpy()
    msg = Detection2DArray(header=make_header(factory, stamp_ns, "color_optical"))
    for class_id, (cx, cy, w, h) in boxes:
        det = Detection2D()
        det.bbox.center.position.x, det.bbox.center.position.y = float(cx), float(cy)
        det.bbox.size_x, det.bbox.size_y = float(w), float(h)
        if class_id:
            hyp = ObjectHypothesisWithPose()
            hyp.hypothesis.class_id, hyp.hypothesis.score = class_id, 0.9
            det.results.append(hyp)
        msg.detections.append(det)
    return msg


def test_view_node_crops_the_detection_box_of_its_object_with_camera_info():
    from sensor_msgs.msg import CameraInfo
    from vision_msgs.msg import Detection2DArray

    from ros_nodes.messages import camera_info_message

    factory = MessageFactory.rclpy()
    K = np.array([[150.0, 0, 79.5], [0, 150.0, 59.5], [0, 0, 1]])
    est = RecordingViewEstimator()
    with RosGraph() as graph:
        node = graph.add(ViewPoseNode(
            estimator=est, context=graph.context,
            parameter_overrides=[Parameter("crop", value="detections"), Parameter("obj_id", value=5),
                                 Parameter("max_sync_offset_ms", value=5.0), Parameter("input_queue_depth", value=10)]))
        probe = graph.node("view_det_probe")
        qos = reliability_qos("reliable", 10)
        pub_image = probe.create_publisher(Image, "image", qos)
        pub_info = probe.create_publisher(CameraInfo, "camera_info", 10)
        pub_det = probe.create_publisher(Detection2DArray, "detections_2d", qos)
        got = []
        probe.create_subscription(PoseWithCovarianceStamped, "orientation", got.append, 10)
        assert graph.wait_for(lambda: all(p.get_subscription_count() for p in (pub_image, pub_info, pub_det))
                              and probe.count_publishers("orientation") > 0, 10.0)

        def image(stamp):
            return image_message(factory, make_header(factory, stamp, "color_optical"),
                                 np.full((120, 160, 3), 200, np.uint8), "rgb8")

        pub_image.publish(image(1_000))  # before any CameraInfo: refused, logged
        assert graph.wait_for(lambda: node.bad_messages.total == 1, 10.0)
        pub_info.publish(camera_info_message(factory, make_header(factory, 0, "color_optical"), K, 160, 120))
        graph.wait_for(lambda: False, 0.3)
        # the class-7 box is larger, but the node's object is 5; the class-less box is smaller
        boxes = [("7", (40, 40, 60, 60)), ("5", (100.0, 70.0, 30.0, 20.0)), ("", (20, 20, 10, 10))]
        pub_image.publish(image(2_000_000_000))
        pub_det.publish(_detections_msg(2_001_000_000, boxes))
        assert graph.wait_for(lambda: len(got) >= 1, 10.0)
        call = est.calls[-1]
        assert call["shape"] == (120, 160, 3) and call["obj_id"] == 5
        np.testing.assert_allclose(call["bbox"], (85.0, 60.0, 30.0, 20.0))
        np.testing.assert_allclose(call["K"], K)
        assert got[0].header.frame_id == "color_optical"
        # detections 50 ms away are not paired (max_sync_offset_ms 5); a frame without object 5 is skipped
        pub_image.publish(image(3_000_000_000))
        pub_det.publish(_detections_msg(3_050_000_000, boxes))
        pub_image.publish(image(4_000_000_000))
        pub_det.publish(_detections_msg(4_000_000_000, [("7", (40, 40, 60, 60))]))
        assert graph.wait_for(lambda: node.bad_messages.total == 2, 10.0)
        assert len(got) == 1 and len(est.calls) == 1
        assert any("no detection of object" in k for k in node.bad_messages.counts)


def test_pick_box_prefers_the_objects_largest_box():
    from posekit.errors import BadInputError
    from ros_nodes.view_processing import pick_box

    boxes = [("5", (0, 0, 10, 10)), ("5", (5, 5, 25, 30)), ("", (0, 0, 4, 4)), ("7", (0, 0, 100, 100))]
    assert pick_box(boxes, 5) == (5, 5, 20, 25)
    assert pick_box(boxes, -1) == (0, 0, 100, 100)
    assert pick_box([("", (1, 2, 4, 6))], 9) == (1, 2, 3, 4)
    with pytest.raises(BadInputError, match="no detection of object 3"):
        pick_box([("7", (0, 0, 1, 1))], 3)
