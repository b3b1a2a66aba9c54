"""The generated interface packages (ros_nodes/interfaces): wire-compatible with upstream, the
same types for rclpy (live nodes) and rosbags (replay), and a build that is idempotent."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from ros_nodes.interfaces.build import PACKAGES, build_interfaces, is_installed
from ros_nodes.messages import interface_definitions, rosbags_typestore

# RIHS01 type hashes of upstream packages (vision_msgs 4.x, tf2_msgs of Jazzy/Kilted): a
# subscriber on a robot with the distribution's packages only matches these.
UPSTREAM_HASHES = {
    "vision_msgs/msg/Detection3DArray":
        "RIHS01_793f5eab9595ac1c0da07873cc859db42eae51f0ee76056db8562515d830e018",
}


def _generated_hash(typename: str) -> str:
    package, _, name = typename.split("/")
    path = Path(sys.prefix) / "share" / package / "msg" / f"{name}.json"
    if not path.is_file():
        pytest.skip(f"{path} not generated: run ros_nodes/interfaces/build.py")
    return json.loads(path.read_text())["type_hashes"][0]["hash_string"]


def test_generated_types_match_upstream_and_rosbags():
    store = rosbags_typestore()
    for typename, upstream in UPSTREAM_HASHES.items():
        assert _generated_hash(typename) == upstream
    # tf2_msgs/TFMessage as rosbags knows it from the Kilted distribution.
    from rosbags.typesys import Stores, get_typestore

    kilted = get_typestore(Stores.ROS2_KILTED)
    assert _generated_hash("tf2_msgs/msg/TFMessage") == kilted.hash_rihs01("tf2_msgs/msg/TFMessage")
    # The .msg files registered in rosbags (replay) hash like the rosidl-generated types (nodes).
    for typename in interface_definitions():
        if typename.startswith("tf2_msgs"):
            continue  # rosbags' Humble store keeps its own, identical TFMessage
        assert store.hash_rihs01(typename) == _generated_hash(typename), typename


def test_every_package_is_importable_and_the_build_is_idempotent():
    pytest.importorskip("rclpy")
    for package in PACKAGES:
        __import__(f"{package}.msg")
    from vision_msgs.msg import Detection3DArray  # noqa: F401

    if not is_installed(Path(sys.prefix)):
        pytest.skip("interfaces built by another prefix or stamp out of date")
    start = time.perf_counter()
    assert build_interfaces(quiet=True) == []
    assert time.perf_counter() - start < 2.0
