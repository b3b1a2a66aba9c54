"""End to end over a real ROS 2 middleware with the real object engine and shipped weights.

A synthetic tabletop scene written by ``posekit synth`` (BOP format: table, one procedural
object resting on it, a random camera, Kinect-like depth noise) is read back; the test
publishes it as 16UC1 depth +
CameraInfo + mask, and as a segmented PointCloud2, to the object pose node, and checks the
Detection3DArray, PoseStamped and TF that come back against the ground truth (ADI within 10 %
of the object's diameter, the BOP/LineMOD criterion).
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rclpy")
vision_msgs = pytest.importorskip("vision_msgs.msg", reason="run ros_nodes/interfaces/build.py")

from geometry_msgs.msg import PoseStamped
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from tf2_msgs.msg import TFMessage

from posekit import pretrained
from posekit.data.scenes import synthesize_bop_dataset
from posekit.eval.pose_error import adi
from posekit.io.bop import BopDataset, model_filename
from posekit.io.depth import depth_to_points
from ros_nodes import messages as m
from ros_nodes.node_base import reliability_qos
from ros_nodes.object_pose_node import ObjectPoseNode
from ros_nodes.testing import RosGraph

pytestmark = pytest.mark.skipif(
    "registration-procedural" not in pretrained.available("registration"),
    reason="needs the shipped registration-procedural weights (posekit/pretrained)")


@pytest.fixture(scope="module")
def synth_scene(tmp_path_factory):
    """One image of one procedural object on a table, written by posekit synth (BOP format,
    Kinect-like depth noise) and read back: depth (m), visible mask, K, T_cam_model, the model
    file (PLY, millimetres) and its mesh in metres."""
    root = tmp_path_factory.mktemp("synth")
    synthesize_bop_dataset("procedural", root, n_scenes=1, n_images=1, seed=3, objects_per_scene=1,
                           n_procedural_objects=1, progress=False)
    ds = BopDataset(root)
    scene = ds.scene_ids()[0] if callable(ds.scene_ids) else ds.scene_ids[0]
    image = ds.load_image(scene, ds.image_ids(scene)[0], rgb=False, masks=True)
    gt = image.gt[0]
    model_file = root / "models" / model_filename(gt.obj_id)
    return (image.depth.astype(np.float32), image.masks_visib[0], image.K, gt.T_cam_model, gt.obj_id,
            model_file, ds.model(gt.obj_id))


def _pose_ok(T_est, T_gt, mesh) -> float:
    pts = mesh.sample_points(500, seed=0)
    err = adi(T_est[:3, :3], T_est[:3, 3], T_gt[:3, :3], T_gt[:3, 3], pts)
    assert err < 0.1 * mesh.diameter, f"ADI {err * 1000:.1f} mm for a {mesh.diameter * 1000:.0f} mm object"
    return err


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["depth", "pointcloud"])
def test_object_node_poses_a_synthetic_scene(mode, synth_scene):
    factory = m.MessageFactory.rclpy()
    depth, mask, K, T_gt, obj_id, model_file, mesh = synth_scene
    with RosGraph() as graph:
        graph.add(ObjectPoseNode(context=graph.context, parameter_overrides=[
            Parameter("model_files", value=[str(model_file)]), Parameter("model_scale", value=0.001),
            Parameter("model_ids", value=[int(obj_id)]),
            Parameter("input_mode", value=mode),
            Parameter("segmentation", value="mask" if mode == "depth" else "none")]))
        probe = graph.node("e2e_probe")
        got = {"det": [], "pose": [], "tf": []}
        probe.create_subscription(vision_msgs.Detection3DArray, "detections", got["det"].append, 10)
        probe.create_subscription(PoseStamped, f"pose/object_{obj_id}", got["pose"].append, 10)
        probe.create_subscription(TFMessage, "/tf", got["tf"].append, 10)
        qos = reliability_qos("reliable", 2)
        header = m.make_header(factory, 1_234_000_000_567, "camera_color_optical_frame")
        if mode == "depth":
            pubs = [probe.create_publisher(CameraInfo, "camera_info", 10),
                    probe.create_publisher(Image, "depth", qos), probe.create_publisher(Image, "mask", qos)]
            msgs = [m.camera_info_message(factory, header, K, depth.shape[1], depth.shape[0]),
                    m.image_message(factory, header, np.rint(depth * 1000).astype(np.uint16), "16UC1"),
                    m.image_message(factory, header, mask.astype(np.uint8) * 255, "mono8")]
        else:
            points = depth_to_points(depth, K, mask=mask)
            pubs = [probe.create_publisher(PointCloud2, "points", qos)]
            msgs = [m.pointcloud2_message(factory, header, points)]
        assert graph.wait_for(lambda: all(p.get_subscription_count() for p in pubs), 10.0)
        for _ in range(3):  # CameraInfo first: a depth image before any is skipped (and logged)
            pubs[0].publish(msgs[0])
            graph.wait_for(lambda: False, 0.3)
            for pub, msg in zip(pubs[1:], msgs[1:]):
                pub.publish(msg)
            if graph.wait_for(lambda: got["det"] and got["pose"] and got["tf"], 60.0):
                break
        assert got["det"] and got["pose"] and got["tf"], {k: len(v) for k, v in got.items()}

    det = got["det"][0]
    assert det.header.frame_id == "camera_color_optical_frame"
    assert (det.header.stamp.sec, det.header.stamp.nanosec) == (1234, 567)
    hyp = det.detections[0].results[0]
    assert hyp.hypothesis.class_id == str(obj_id) and 0.0 <= hyp.hypothesis.score <= 1.0
    T_det = m.matrix_from_pose(hyp.pose.pose)
    _pose_ok(T_det, T_gt, mesh)
    np.testing.assert_allclose(m.matrix_from_pose(got["pose"][0].pose), T_det, atol=1e-9)
    tf = got["tf"][0].transforms[0]
    assert tf.child_frame_id == f"object_{obj_id}" and tf.header.frame_id == "camera_color_optical_frame"
    np.testing.assert_allclose(m.matrix_from_pose(tf.transform), T_det, atol=1e-9)
