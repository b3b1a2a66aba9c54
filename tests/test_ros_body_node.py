"""The body node over a real ROS 2 middleware, in one process, with the real BodyFitter code.

The fitter is built from an untrained network (no shipped weights are needed): the test checks
that what the node publishes is exactly what ``BodyFitter.fit`` returns for the same cloud
(joints, TF tree, body parameters, mesh), with the input's stamp and frame, and that a cloud
that is not person-sized is skipped without stopping the node.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rclpy")
posekit_msgs = pytest.importorskip("posekit_msgs.msg", reason="run ros_nodes/interfaces/build.py")

import torch
from geometry_msgs.msg import PoseArray
from sensor_msgs.msg import PointCloud2
from tf2_msgs.msg import TFMessage
from visualization_msgs.msg import Marker

from posekit.body.clouds import make_body_batch
from posekit.body.fitter import BodyFitter
from posekit.body.model import load_body_model
from posekit.body.network import BodyNet, BodyNetConfig
from posekit.body.skeleton import JOINT_NAMES, PARENTS
from ros_nodes import messages as m
from ros_nodes.body_node import BodyNode
from ros_nodes.node_base import reliability_qos
from ros_nodes.testing import RosGraph


@pytest.fixture(scope="module")
def fitter_and_cloud():
    torch.manual_seed(0)
    config = BodyNetConfig()
    body = load_body_model(None, n_betas=config.n_betas)
    batch = make_body_batch(body, np.random.default_rng(0), 1, n_points=2000, translation=0.0)
    cloud = batch.points[0].numpy() + np.array([0.0, 0.0, 2.5], np.float32)
    return BodyFitter(BodyNet(config), body), cloud


def test_body_node_publishes_the_fit_as_tf_joints_parameters_and_mesh(fitter_and_cloud):
    fitter, cloud = fitter_and_cloud
    expected = fitter.fit(cloud)
    factory = m.MessageFactory.rclpy()
    with RosGraph() as graph:
        node = graph.add(BodyNode(fitter=fitter, context=graph.context))
        probe = graph.node("body_probe")
        got = {"joints": [], "params": [], "tf": [], "mesh": []}
        probe.create_subscription(PoseArray, "joints", got["joints"].append, 10)
        probe.create_subscription(posekit_msgs.BodyParameters, "body_parameters", got["params"].append, 10)
        probe.create_subscription(TFMessage, "/tf", got["tf"].append, 10)
        probe.create_subscription(Marker, "mesh", got["mesh"].append, 10)
        pub = probe.create_publisher(PointCloud2, "points", reliability_qos("reliable", 5))
        assert graph.wait_for(lambda: pub.get_subscription_count() and probe.count_publishers("joints"), 10.0)
        header = m.make_header(factory, 3_000_000_004, "lidar")
        # A 1 cm blob is not a person: the fitter refuses it, the node logs it and skips it.
        pub.publish(m.pointcloud2_message(factory, header, np.full((500, 3), 0.01, np.float32) + [0, 0, 1]))
        assert graph.wait_for(lambda: node.bad_messages.total == 1, 30.0)
        pub.publish(m.pointcloud2_message(factory, header, cloud))
        assert graph.wait_for(lambda: all(got.values()), 30.0), {k: len(v) for k, v in got.items()}
        assert node.bad_messages.total == 1

    joints = got["joints"][0]
    assert joints.header.frame_id == "lidar" and (joints.header.stamp.sec, joints.header.stamp.nanosec) == (3, 4)
    positions = np.array([[p.position.x, p.position.y, p.position.z] for p in joints.poses])
    np.testing.assert_allclose(positions, expected.joints, atol=1e-5)
    np.testing.assert_allclose(m.matrix_from_pose(joints.poses[5])[:3, :3], expected.global_rotations[5], atol=1e-5)

    params = got["params"][0]
    assert list(params.joint_names) == list(JOINT_NAMES)
    np.testing.assert_allclose(params.global_orient, expected.axis_angle[0], atol=1e-6)
    np.testing.assert_allclose(np.reshape(params.body_pose, (-1, 3)), expected.axis_angle[1:], atol=1e-6)
    np.testing.assert_allclose(params.betas, expected.betas, atol=1e-6)
    np.testing.assert_allclose([params.translation.x, params.translation.y, params.translation.z],
                               expected.translation, atol=1e-6)
    assert params.score == pytest.approx(expected.confidence)

    # The TF tree composes back to each joint's frame in the input frame.
    tf = {t.child_frame_id: t for t in got["tf"][0].transforms}
    assert tf["body_pelvis"].header.frame_id == "lidar"
    for j in (JOINT_NAMES.index("left_wrist"), JOINT_NAMES.index("head")):
        T, k = np.eye(4), j
        while k >= 0:
            t = tf[f"body_{JOINT_NAMES[k]}"]
            assert t.header.frame_id == ("lidar" if PARENTS[k] < 0 else f"body_{JOINT_NAMES[PARENTS[k]]}")
            T = m.matrix_from_pose(t.transform) @ T
            k = PARENTS[k]
        np.testing.assert_allclose(T[:3, 3], expected.joints[j], atol=1e-5)

    mesh = got["mesh"][0]
    corners = np.array([[p.x, p.y, p.z] for p in mesh.points])
    assert mesh.type == Marker.TRIANGLE_LIST and 0 < len(corners) <= 3 * 4000 and len(corners) % 3 == 0
    # Every corner is a vertex of the fitted mesh.
    d = np.min(np.linalg.norm(corners[:200, None] - expected.vertices[None], axis=2), axis=1)
    assert d.max() < 1e-5
