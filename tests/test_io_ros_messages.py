"""PointCloud2 conversion with the real ROS 2 message classes (the `ros` extra), and CDR
bytes that rclpy and rosbags both understand: what a node publishes, a bag can replay."""

import numpy as np
from rclpy.serialization import deserialize_message, serialize_message
from rosbags.typesys import Stores, get_typestore
from sensor_msgs.msg import PointCloud2, PointField
from std_msgs.msg import Header

from posekit.io.pointcloud2 import (
    array_to_pointcloud2,
    pointcloud2_to_array,
    pointcloud2_to_pointcloud,
)


def _cloud(n=50, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 3)).astype(np.float32), rng.integers(0, 256, (n, 3)).astype(np.uint8)


def test_rclpy_message_round_trip():
    xyz, rgb = _cloud()
    header = Header(frame_id="camera_depth_optical_frame")
    msg = array_to_pointcloud2(xyz, rgb, msg_factory=PointCloud2, field_factory=PointField, header=header)
    assert isinstance(msg, PointCloud2)
    assert msg.width == 50 and msg.height == 1 and msg.point_step == 16 and msg.is_dense
    back = deserialize_message(serialize_message(msg), PointCloud2)
    np.testing.assert_array_equal(pointcloud2_to_array(back), xyz)
    np.testing.assert_array_equal(np.rint(pointcloud2_to_pointcloud(back).colors * 255), rgb)
    assert back.header.frame_id == "camera_depth_optical_frame"


def test_rclpy_bytes_read_by_rosbags_and_back():
    store = get_typestore(Stores.ROS2_HUMBLE)
    xyz, _ = _cloud(seed=1)
    organized = xyz.reshape(5, 10, 3).copy()
    organized[2, 3] = np.nan  # an invalid pixel, as organized depth clouds have
    msg = array_to_pointcloud2(organized, msg_factory=PointCloud2, field_factory=PointField, header=Header())
    assert not msg.is_dense and msg.height == 5 and msg.width == 10
    raw = bytes(serialize_message(msg))
    via_rosbags = store.deserialize_cdr(raw, "sensor_msgs/msg/PointCloud2")
    pts = pointcloud2_to_array(via_rosbags)
    assert pts.shape == (49, 3)  # the NaN point is skipped
    full = pointcloud2_to_array(via_rosbags, organized=True, skip_nans=False)
    assert full.shape == (5, 10, 3) and np.isnan(full[2, 3]).all()
    np.testing.assert_array_equal(np.delete(full.reshape(-1, 3), 23, axis=0), pts)
    # rosbags -> CDR -> rclpy gives the same message back
    cdr = bytes(store.serialize_cdr(via_rosbags, "sensor_msgs/msg/PointCloud2"))
    again = deserialize_message(cdr, PointCloud2)
    np.testing.assert_array_equal(pointcloud2_to_array(again), pts)
