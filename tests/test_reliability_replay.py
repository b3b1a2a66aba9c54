"""`posekit replay` and the bag readers on damaged bags: a posekit error, never rosbags' own."""

from __future__ import annotations

import os
import shutil

import pytest

from posekit.cli import main
from posekit.errors import PosekitError
from posekit.io import rosbag

pytest.importorskip("rosbags")


@pytest.fixture(scope="module")
def good_bag(tmp_path_factory):
    from test_ros_replay import _write_scene_bag

    bag = tmp_path_factory.mktemp("bags") / "good"
    _write_scene_bag(bag, n_frames=2)
    return bag


def _damaged(good, tmp_path, name):
    if name.startswith("ros1"):
        path = tmp_path / f"{name}.bag"
        path.write_bytes({"ros1-garbage": b"#ROSBAG V2.0\n" + os.urandom(100), "ros1-empty": b"",
                          "ros1-foreign": b"not a bag at all"}[name])
        return path
    bag = tmp_path / name
    shutil.copytree(good, bag)
    db = next(bag.glob("*.db3"))
    data = db.read_bytes()
    if name == "truncated":
        db.write_bytes(data[: len(data) // 2])
    elif name == "empty-db":
        db.write_bytes(b"")
    elif name == "garbage":
        db.write_bytes(os.urandom(5000))
    elif name == "bit-flips":
        flipped = bytearray(data)
        for i in range(200, len(flipped), 97):
            flipped[i] ^= 0xFF
        db.write_bytes(bytes(flipped))
    elif name == "bad-metadata":
        (bag / "metadata.yaml").write_text("rosbag2_bagfile_information: {version: 99}\n")
    elif name == "no-metadata":
        (bag / "metadata.yaml").unlink()
    elif name == "empty-folder":
        shutil.rmtree(bag)
        bag.mkdir()
    return bag


CASES = ["truncated", "empty-db", "garbage", "bit-flips", "bad-metadata", "no-metadata", "empty-folder",
         "ros1-garbage", "ros1-empty", "ros1-foreign"]


@pytest.mark.parametrize("name", CASES)
def test_replay_of_a_damaged_bag_is_a_clean_error(good_bag, tmp_path, capsys, name):
    bag = _damaged(good_bag, tmp_path, name)
    rc = main(["replay", "--bag", str(bag), "--engine", "object", "--out", str(tmp_path / "out"),
               "--no-progress"])
    assert rc == 1
    assert "posekit replay: error:" in capsys.readouterr().err


@pytest.mark.parametrize("name", CASES)
def test_bag_readers_on_a_damaged_bag(good_bag, tmp_path, name):
    bag = _damaged(good_bag, tmp_path, name)
    for read in (rosbag.list_topics, lambda b: list(rosbag.iter_messages(b)),
                 lambda b: rosbag.read_frames(b, "/camera/depth", "/camera/info")):
        try:
            read(bag)
        except PosekitError:
            pass  # a clean refusal; some damage (bit flips in unused pages) may still read
