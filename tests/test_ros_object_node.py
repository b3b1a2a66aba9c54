"""The object pose node over a real ROS 2 middleware (Fast DDS), in one process.

Each test builds an isolated graph (own Context and domain id, discovery on this host), runs
the node on a SingleThreadedExecutor with its inference worker, publishes real messages and
checks what comes back: poses against ground truth, stamps and frame ids carried through,
TF, markers, /diagnostics, parameter validation and a burst of malformed messages.

These tests give the node a small estimator with ObjectPoseEstimator's methods that recovers
the pose by Kabsch on the model's surface samples (the published cloud keeps their order), so
the plumbing is checked to 1e-5; tests/test_ros_end_to_end.py runs the real engine.
"""

from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("rclpy")
vision_msgs = pytest.importorskip("vision_msgs.msg", reason="run ros_nodes/interfaces/build.py")

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from rcl_interfaces.srv import SetParameters
from rclpy.parameter import Parameter
from sensor_msgs.msg import PointCloud2, PointField
from std_msgs.msg import Header
from test_ros_replay import N_SAMPLES, KabschEstimator
from tf2_msgs.msg import TFMessage
from visualization_msgs.msg import MarkerArray

from posekit.geometry.rigid_np import make_pose, random_rotation_np
from posekit.io.pointcloud2 import array_to_pointcloud2
from ros_nodes.messages import matrix_from_pose
from ros_nodes.node_base import reliability_qos
from ros_nodes.object_pose_node import ObjectPoseNode
from ros_nodes.object_processing import load_mesh
from ros_nodes.testing import RosGraph


def object_params(**overrides):
    values = {"model_files": ["procedural:3"], "model_ids": [1], "depth_min": 0.05,
              "depth_max": 4.0}
    values.update(overrides)
    return [Parameter(k, value=v) for k, v in values.items()]


class Probe:
    """A test node: publishes clouds on ``points`` and collects every output of the node."""

    def __init__(self, graph: RosGraph, obj_frame="object_1"):
        self.node = graph.node("probe")
        self.cloud_pub = self.node.create_publisher(PointCloud2, "points", reliability_qos("reliable", 50))
        self.got = {"detections": [], "pose": [], "tf": [], "markers": [], "diagnostics": []}
        sub = self.node.create_subscription
        sub(vision_msgs.Detection3DArray, "detections", self.got["detections"].append, 10)
        sub(PoseStamped, f"pose/{obj_frame}", self.got["pose"].append, 10)
        sub(TFMessage, "/tf", self.got["tf"].append, 10)
        sub(MarkerArray, "markers", self.got["markers"].append, 10)
        sub(DiagnosticArray, "/diagnostics", self.got["diagnostics"].append, 10)

    def wait_connected(self, graph, timeout=10.0):
        assert graph.wait_for(lambda: self.cloud_pub.get_subscription_count() > 0, timeout)
        assert graph.wait_for(
            lambda: self.node.count_publishers("detections") > 0
            and self.node.count_publishers("/tf") > 0, timeout)
        time.sleep(0.3)  # let the reverse direction of discovery settle too

    def publish_points(self, points, stamp_ns, frame_id="camera_optical_frame"):
        header = Header(frame_id=frame_id)
        header.stamp.sec, header.stamp.nanosec = divmod(int(stamp_ns), 1_000_000_000)
        self.cloud_pub.publish(array_to_pointcloud2(
            points, msg_factory=PointCloud2, field_factory=PointField, header=header))


def _scene(seed=0):
    rng = np.random.default_rng(seed)
    model_points = load_mesh("procedural:3", 1.0).sample_points(N_SAMPLES, seed=1)
    T = make_pose(random_rotation_np(rng), rng.uniform([-0.2, -0.2, 0.6], [0.2, 0.2, 1.2]))
    return T, (model_points @ T[:3, :3].T + T[:3, 3]).astype(np.float32)


@pytest.fixture
def graph():
    with RosGraph() as g:
        yield g


def test_pose_stamp_frame_tf_and_markers(graph):
    node = graph.add(ObjectPoseNode(estimator=KabschEstimator(), context=graph.context,
                                    parameter_overrides=object_params()))
    probe = Probe(graph)
    probe.wait_connected(graph)
    T_gt, cloud = _scene(seed=1)
    stamp = 1_700_000_123_456_789_012
    probe.publish_points(cloud, stamp)
    assert graph.wait_for(lambda: probe.got["detections"] and probe.got["tf"] and probe.got["pose"]
                          and probe.got["markers"], 10.0), f"outputs received: { {k: len(v) for k, v in probe.got.items()} }"

    dets = probe.got["detections"][0]
    assert dets.header.frame_id == "camera_optical_frame"
    assert (dets.header.stamp.sec, dets.header.stamp.nanosec) == divmod(stamp, 1_000_000_000)
    assert len(dets.detections) == 1
    det = dets.detections[0]
    hyp = det.results[0]
    assert hyp.hypothesis.class_id == "1" and hyp.hypothesis.score > 0.99
    T_det = matrix_from_pose(hyp.pose.pose)
    np.testing.assert_allclose(T_det, T_gt, atol=1e-5)
    # The box is the model's oriented bounding box, centred in the model frame.
    mesh = load_mesh("procedural:3", 1.0)
    lo, hi = mesh.vertices.min(0), mesh.vertices.max(0)
    np.testing.assert_allclose([det.bbox.size.x, det.bbox.size.y, det.bbox.size.z], hi - lo, atol=1e-9)
    np.testing.assert_allclose(matrix_from_pose(det.bbox.center)[:3, 3],
                               T_gt[:3, :3] @ ((lo + hi) / 2) + T_gt[:3, 3], atol=1e-5)

    pose = probe.got["pose"][0]
    assert pose.header.frame_id == "camera_optical_frame"
    np.testing.assert_allclose(matrix_from_pose(pose.pose), T_gt, atol=1e-5)

    tf = probe.got["tf"][0].transforms[0]
    assert tf.header.frame_id == "camera_optical_frame" and tf.child_frame_id == "object_1"
    assert (tf.header.stamp.sec, tf.header.stamp.nanosec) == divmod(stamp, 1_000_000_000)
    np.testing.assert_allclose(matrix_from_pose(tf.transform), T_gt, atol=1e-5)

    marker = probe.got["markers"][0].markers[0]
    assert marker.type == marker.TRIANGLE_LIST and len(marker.points) % 3 == 0
    corners = np.array([[p.x, p.y, p.z] for p in marker.points])
    # Marker points are model-frame corners of the (possibly decimated) mesh.
    assert np.all(corners >= lo - 1e-6) and np.all(corners <= hi + 1e-6)
    np.testing.assert_allclose(matrix_from_pose(marker.pose), T_gt, atol=1e-5)

    assert graph.wait_for(lambda: probe.got["diagnostics"], 3.0)
    values = {kv.key: kv.value for kv in probe.got["diagnostics"][-1].status[0].values}
    assert int(values["frames_processed"]) == 1 and int(values["bad_messages"]) == 0
    assert float(values["latency_ms_p50"]) > 0
    assert node.processed.count == 1


def _bad_clouds(good: PointCloud2):
    """Malformed and unusable clouds, each a different kind of problem."""
    def variant(**changes):
        msg = PointCloud2(header=good.header, height=good.height, width=good.width,
                          fields=list(good.fields), is_bigendian=good.is_bigendian,
                          point_step=good.point_step, row_step=good.row_step,
                          data=good.data, is_dense=good.is_dense)
        for k, v in changes.items():
            setattr(msg, k, v)
        return msg

    nan_cloud = np.full((50, 3), np.nan, dtype=np.float32)
    far_cloud = np.full((50, 3), 40.0, dtype=np.float32)
    return [
        variant(width=good.width + 7),                                    # size mismatch
        variant(point_step=4),                                            # fields past point_step
        variant(fields=[PointField(name="x", offset=0, datatype=42, count=1)]),  # bad datatype
        variant(fields=[PointField(name="intensity", offset=0, datatype=7, count=1)]),  # no xyz
        variant(height=0, width=0, row_step=0, data=[]),                  # empty cloud
        array_to_pointcloud2(nan_cloud, msg_factory=PointCloud2, field_factory=PointField,
                             header=good.header),                        # all NaN
        array_to_pointcloud2(far_cloud, msg_factory=PointCloud2, field_factory=PointField,
                             header=good.header),                        # out of depth range
    ]


def test_bad_message_burst_then_good_message_answered(graph):
    # A deep input queue so that the burst reaches the node whole.
    node = graph.add(ObjectPoseNode(estimator=KabschEstimator(), context=graph.context,
                                    parameter_overrides=object_params(input_queue_depth=50)))
    probe = Probe(graph)
    probe.wait_connected(graph)
    T_gt, cloud = _scene(seed=2)
    header = Header(frame_id="cam")
    good = array_to_pointcloud2(cloud, msg_factory=PointCloud2, field_factory=PointField, header=header)
    bad = _bad_clouds(good)
    for _ in range(3):  # each kind three times: logged once, counted three times
        for msg in bad:
            probe.cloud_pub.publish(msg)
    assert graph.wait_for(lambda: node.bad_messages.total >= 3 * len(bad), 10.0), node.bad_messages.counts
    probe.publish_points(cloud, 5_000_000_000, frame_id="cam")
    assert graph.wait_for(lambda: probe.got["detections"], 10.0)
    np.testing.assert_allclose(
        matrix_from_pose(probe.got["detections"][-1].detections[0].results[0].pose.pose), T_gt, atol=1e-5)
    assert node.bad_messages.total == 3 * len(bad)
    assert len(node.bad_messages.counts) == len(bad), sorted(node.bad_messages.counts)
    assert all(count == 3 for count in node.bad_messages.counts.values())
    assert node.processed.count == 1


def _set_parameters(graph, node_name, params):
    client_node = graph.node("param_client")
    client = client_node.create_client(SetParameters, f"/{node_name}/set_parameters")
    assert client.wait_for_service(timeout_sec=5.0)
    future = client.call_async(SetParameters.Request(parameters=[p.to_parameter_msg() for p in params]))
    assert graph.wait_for(future.done, 5.0)
    return future.result().results


def test_parameters_validated_read_only_and_live_updates(graph):
    node = graph.add(ObjectPoseNode(estimator=KabschEstimator(), context=graph.context,
                                    parameter_overrides=object_params()))
    results = _set_parameters(graph, "object_pose_node", [Parameter("min_score", value=1.5)])
    assert not results[0].successful and "out of range" in results[0].reason
    results = _set_parameters(graph, "object_pose_node", [Parameter("num_hypotheses", value=8)])
    assert not results[0].successful  # read-only: needs a reconfigure
    results = _set_parameters(graph, "object_pose_node", [Parameter("depth_max", value=0.01)])
    assert not results[0].successful and "depth_min" in results[0].reason
    results = _set_parameters(graph, "object_pose_node", [Parameter("min_score", value=0.999999)])
    assert results[0].successful and node.pipeline.params["min_score"] == pytest.approx(0.999999)
    descriptor = node.describe_parameter("depth_max")
    assert descriptor.floating_point_range[0].to_value == 50.0
    assert node.describe_parameter("model_files").read_only

    # A score threshold above every estimate publishes an empty Detection3DArray, no TF.
    probe = Probe(graph)
    probe.wait_connected(graph)
    _, cloud = _scene(seed=3)
    probe.publish_points(cloud + np.float32(0.002), 7)  # a 2 mm offset lowers the score
    assert graph.wait_for(lambda: probe.got["detections"], 10.0)
    assert len(probe.got["detections"][0].detections) == 0
    time.sleep(0.2)
    assert probe.got["tf"] == []


@pytest.mark.parametrize("overrides, message", [
    ({"model_ids": [1, 2]}, "same length"),
    ({"depth_min": 2.0, "depth_max": 1.0}, "depth_min"),
    ({"model_files": ["/nonexistent/model.ply"]}, "model file not found"),
    ({"segmentation": "mask"}, "segmentation applies to input_mode depth"),
    ({"view_weights": "view-lmo"}, "view_weights"),
    ({"input_mode": "depth", "segmentation": "mask", "view_weights": "view-lmo", "model_ids": [3]},
     "not one of this model's objects"),
])
def test_invalid_configuration_fails_with_a_clear_message(graph, overrides, message):
    with pytest.raises(SystemExit, match=message):
        ObjectPoseNode(estimator=KabschEstimator(), context=graph.context,
                       parameter_overrides=object_params(**overrides))


class MaskCentroidEstimator:
    """Depth-mode stand-in: the pose is the identity rotation at the centroid of the masked
    depth pixels, back-projected with K (so mask, depth units and K all have to be right)."""

    def prepare_model(self, mesh, obj_id=1):
        return SimpleNamespace(obj_id=obj_id)

    def estimate(self, model, observed=None, *, depth=None, K=None, mask=None, bbox=None, **kwargs):
        from posekit.io.depth import depth_to_points

        if mask is None:
            return SimpleNamespace(success=False, reason="no mask", T_cam_model=None, score=0.0, time_ms=0.0)
        points = depth_to_points(depth, K, mask=mask)
        return SimpleNamespace(success=True, reason="", T_cam_model=make_pose(np.eye(3), points.mean(0)),
                               score=1.0, time_ms=0.0)


def test_depth_mask_pairing_16uc1_and_label_images(graph):
    from sensor_msgs.msg import CameraInfo, Image

    from ros_nodes import messages as m
    from ros_nodes.object_processing import ObjectFrameAssembler  # noqa: F401 (the code under test)

    factory = m.MessageFactory.rclpy()
    node = graph.add(ObjectPoseNode(
        estimator=MaskCentroidEstimator(), context=graph.context, parameter_overrides=object_params(
            model_files=["procedural:3", "procedural:4"], model_ids=[2, 9], input_mode="depth",
            segmentation="mask", max_sync_offset_ms=5.0, input_queue_depth=10)))
    probe = graph.node("depth_probe")
    dets = []
    probe.create_subscription(vision_msgs.Detection3DArray, "detections", dets.append, 10)
    qos = reliability_qos("reliable", 10)
    pub_info = probe.create_publisher(CameraInfo, "camera_info", 10)
    pub_depth = probe.create_publisher(Image, "depth", qos)
    pub_mask = probe.create_publisher(Image, "mask", qos)
    assert graph.wait_for(lambda: all(p.get_subscription_count() for p in (pub_info, pub_depth, pub_mask)), 10.0)
    time.sleep(0.3)

    h, w = 48, 64
    K = np.array([[60.0, 0, 31.5], [0, 60.0, 23.5], [0, 0, 1]])
    depth_mm = np.zeros((h, w), np.uint16)
    depth_mm[10:20, 5:15] = 800       # object 2 at 0.8 m
    depth_mm[30:40, 40:60] = 1250     # object 9 at 1.25 m
    labels = np.zeros((h, w), np.uint8)
    labels[10:20, 5:15] = 2
    labels[30:40, 40:60] = 9

    def header(stamp):
        return m.make_header(factory, stamp, "depth_optical")

    pub_depth.publish(m.image_message(factory, header(1_000), depth_mm, "16UC1"))  # before any CameraInfo
    time.sleep(0.3)
    pub_info.publish(m.camera_info_message(factory, header(1_000), K, w, h))
    time.sleep(0.3)
    # A mask 50 ms away from its depth image is not paired (max_sync_offset_ms is 5).
    pub_depth.publish(m.image_message(factory, header(2_000_000_000), depth_mm, "16UC1"))
    pub_mask.publish(m.image_message(factory, header(2_050_000_000), labels, "mono8"))
    time.sleep(0.5)
    assert dets == []
    pub_mask.publish(m.image_message(factory, header(3_001_000_000), labels, "mono8"))
    pub_depth.publish(m.image_message(factory, header(3_000_000_000), depth_mm, "16UC1"))
    assert graph.wait_for(lambda: dets, 10.0)
    assert (dets[0].header.stamp.sec, dets[0].header.stamp.nanosec) == (3, 0)
    assert "waiting for one" in " ".join(node.bad_messages.counts)
    by_class = {d.results[0].hypothesis.class_id: m.matrix_from_pose(d.results[0].pose.pose) for d in dets[0].detections}
    assert set(by_class) == {"2", "9"}
    for obj_id, rows, cols, z in (("2", slice(10, 20), slice(5, 15), 0.8), ("9", slice(30, 40), slice(40, 60), 1.25)):
        v, u = np.mgrid[rows, cols]
        expected = np.array([(u.mean() - K[0, 2]) * z / K[0, 0], (v.mean() - K[1, 2]) * z / K[1, 1], z])
        np.testing.assert_allclose(by_class[obj_id][:3, 3], expected, atol=1e-5)


def test_lifecycle_without_autostart(graph):
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState, GetState

    node = graph.add(ObjectPoseNode(estimator=KabschEstimator(), context=graph.context,
                                    parameter_overrides=object_params(autostart=False)))
    assert node.pipeline is None  # nothing loaded until configured
    client_node = graph.node("lifecycle_client")
    change = client_node.create_client(ChangeState, "/object_pose_node/change_state")
    get = client_node.create_client(GetState, "/object_pose_node/get_state")
    assert change.wait_for_service(timeout_sec=5.0) and get.wait_for_service(timeout_sec=5.0)

    def transition(tid):
        future = change.call_async(ChangeState.Request(transition=Transition(id=tid)))
        assert graph.wait_for(future.done, 10.0)
        assert future.result().success
        future = get.call_async(GetState.Request())
        assert graph.wait_for(future.done, 5.0)
        return future.result().current_state.label

    assert transition(Transition.TRANSITION_CONFIGURE) == "inactive" and node.pipeline is not None
    probe = Probe(graph)
    probe.wait_connected(graph)
    T_gt, cloud = _scene(seed=4)
    probe.publish_points(cloud, 11)
    time.sleep(0.5)
    assert probe.got["detections"] == []  # configured but inactive: inputs are ignored
    assert transition(Transition.TRANSITION_ACTIVATE) == "active"
    probe.publish_points(cloud, 12)
    assert graph.wait_for(lambda: probe.got["detections"], 10.0)
    np.testing.assert_allclose(
        matrix_from_pose(probe.got["detections"][0].detections[0].results[0].pose.pose), T_gt, atol=1e-5)
    assert transition(Transition.TRANSITION_DEACTIVATE) == "inactive"
    assert transition(Transition.TRANSITION_CLEANUP) == "unconfigured" and node.pipeline is None


class ColourView:
    """A view model stand-in: the distribution peaks at a rotation about z by the object's mean
    red value in degrees (so the test knows which colour image the node paired with a depth)."""

    def object_index(self, obj_id):
        from posekit.errors import BadInputError

        if obj_id != 2:
            raise BadInputError(f"obj_id {obj_id} is not one of this model's objects [2]")
        return 0

    def predict(self, image, *, obj_id=None, bbox=None, mask=None, K=None):
        from posekit.geometry.so3_grid import rot_z, so3_healpix_grid
        from posekit.view.distribution import SO3GridDistribution

        assert obj_id == 2 and mask is not None and K is not None
        target = rot_z(np.radians(float(image[mask][:, 0].mean())))
        grid = so3_healpix_grid(1)
        cos = (np.einsum("nij,ij->n", grid, target) - 1) / 2
        return SO3GridDistribution.from_logits(40.0 * cos, 1)


class ViewSeededEstimator(MaskCentroidEstimator):
    """The pose's rotation is the first start rotation the engine's own seeding function takes
    from the image (posekit.view.seeding), its position the mask centroid; records the call."""

    def __init__(self):
        self.calls = []

    def estimate(self, model, observed=None, *, depth=None, K=None, mask=None, bbox=None, rgb=None, view=None,
                 view_starts=8, **kwargs):
        from posekit.view.seeding import start_rotations_from_image

        self.calls.append({"rgb": rgb, "view": view, "view_starts": view_starts})
        res = super().estimate(model, depth=depth, K=K, mask=mask)
        starts, _ = start_rotations_from_image(view, rgb, model.obj_id, K, mask=mask, k=view_starts)
        res.T_cam_model = make_pose(starts[0], res.T_cam_model[:3, 3])
        return res


def test_rgbd_view_prior_pairs_the_colour_image_with_its_depth(graph):
    from sensor_msgs.msg import CameraInfo, Image

    from ros_nodes import messages as m

    factory = m.MessageFactory.rclpy()
    estimator, view = ViewSeededEstimator(), ColourView()
    node = graph.add(ObjectPoseNode(
        estimator=estimator, view=view, context=graph.context, parameter_overrides=object_params(
            model_ids=[2], input_mode="depth", segmentation="mask", view_weights="injected", view_starts=3,
            max_sync_offset_ms=5.0, input_queue_depth=10)))
    assert node.pipeline.view is view
    probe = graph.node("rgbd_probe")
    dets = []
    probe.create_subscription(vision_msgs.Detection3DArray, "detections", dets.append, 10)
    qos = reliability_qos("reliable", 10)
    pubs = {name: probe.create_publisher(Image, name, qos) for name in ("depth", "mask", "image")}
    pub_info = probe.create_publisher(CameraInfo, "camera_info", 10)
    assert graph.wait_for(lambda: all(p.get_subscription_count() for p in (pub_info, *pubs.values())), 10.0)
    time.sleep(0.3)

    h, w = 48, 64
    K = np.array([[60.0, 0, 31.5], [0, 60.0, 23.5], [0, 0, 1]])
    depth_mm = np.zeros((h, w), np.uint16)
    depth_mm[10:30, 20:40] = 900
    mask = np.zeros((h, w), np.uint8)
    mask[10:30, 20:40] = 255

    def colour(red):
        rgb = np.full((h, w, 3), 30, np.uint8)
        rgb[10:30, 20:40] = (red, 10, 200)
        return rgb

    def header(stamp):
        return m.make_header(factory, stamp, "rgbd_optical")

    pub_info.publish(m.camera_info_message(factory, header(1), K, w, h))
    time.sleep(0.3)
    pubs["image"].publish(m.image_message(factory, header(3_000_000_000), np.zeros((h, w), np.float32), "32FC1"))
    pubs["depth"].publish(m.image_message(factory, header(3_000_000_000), depth_mm, "16UC1"))
    pubs["mask"].publish(m.image_message(factory, header(3_000_000_000), mask, "mono8"))
    pubs["image"].publish(m.image_message(factory, header(3_050_000_000), colour(40), "rgb8"))  # 50 ms off
    time.sleep(0.5)
    assert dets == [] and estimator.calls == []  # no colour image close enough in time: no estimate
    assert graph.wait_for(lambda: node.bad_messages.total >= 1, 5.0)  # the depth-encoded "colour" image
    bgr = colour(120)[..., ::-1].copy()  # sent as bgr8: the node must hand the engine RGB
    pubs["image"].publish(m.image_message(factory, header(3_002_000_000), bgr, "bgr8"))
    assert graph.wait_for(lambda: dets, 10.0)
    call = estimator.calls[-1]
    assert call["view"] is view and call["view_starts"] == 3
    np.testing.assert_array_equal(call["rgb"], colour(120))
    R = m.matrix_from_pose(dets[0].detections[0].results[0].pose.pose)[:3, :3]
    expected = view.predict(colour(120), obj_id=2, mask=mask > 0, K=K).top_modes(1)[0][0]
    np.testing.assert_allclose(R, expected, atol=1e-5)
    assert np.degrees(np.arccos(np.clip(R[0, 0], -1, 1))) == pytest.approx(120, abs=15)
