"""posekit.io.rosbag: bags written with rosbags (.db3 and .mcap) read back exactly."""

from __future__ import annotations

import numpy as np
import pytest

from posekit.errors import BadInputError, CorruptFileError, MissingFileError, UnsupportedFormatError
from posekit.io.pointcloud import PointCloud
from posekit.io.rosbag import (
    BagMessage,
    image_to_numpy,
    iter_messages,
    list_topics,
    read_frames,
    write_bag,
)

K = np.array([[525.0, 0.0, 3.5], [0.0, 520.0, 2.5], [0.0, 0.0, 1.0]])
H, W = 6, 8


def _scene(seed=0):
    rng = np.random.default_rng(seed)
    depth_m = (rng.integers(0, 4000, (3, H, W)) / 1000.0).astype(np.float32)
    rgb = rng.integers(0, 256, (3, H, W, 3), dtype=np.uint8)
    cloud = PointCloud(rng.normal(size=(10, 3)), colors=rng.integers(0, 256, (10, 3)) / 255.0)
    return depth_m, rgb, cloud


def _messages(depth_m, rgb, cloud):
    info = {"K": K, "width": W, "height": H, "D": np.array([0.1, -0.2, 0.0, 0.0, 0.01])}
    msgs = [BagMessage("/cam/info", 1_000, info, frame_id="cam_optical")]
    for i in range(3):
        t = 1_000_000_000 + i * 100_000_000
        msgs.append(BagMessage("/cam/depth", t, depth_m[i], encoding="16UC1"))
        msgs.append(BagMessage("/cam/rgb", t + 5_000_000, rgb[i]))
    msgs.append(("/points", 2_000_000_000, cloud))
    return msgs


@pytest.fixture(params=["sqlite3", "mcap"])
def bag(request, tmp_path):
    depth_m, rgb, cloud = _scene()
    path = write_bag(
        tmp_path / f"bag_{request.param}", _messages(depth_m, rgb, cloud), storage=request.param
    )
    return path, depth_m, rgb, cloud, request.param


def test_storage_files_and_topics(bag):
    path, *_, storage = bag
    suffix = ".db3" if storage == "sqlite3" else ".mcap"
    assert sorted(p.name for p in path.iterdir()) == sorted(["metadata.yaml", path.name + suffix])
    topics = {t.name: (t.msgtype, t.message_count) for t in list_topics(path)}
    assert topics == {
        "/cam/info": ("sensor_msgs/msg/CameraInfo", 1),
        "/cam/depth": ("sensor_msgs/msg/Image", 3),
        "/cam/rgb": ("sensor_msgs/msg/Image", 3),
        "/points": ("sensor_msgs/msg/PointCloud2", 1),
    }
    # A file inside the bag folder works as well.
    assert len(list_topics(next(path.glob("*" + suffix)))) == 4


def test_iter_messages_values_are_exact(bag):
    path, depth_m, rgb, cloud, _ = bag
    got = list(iter_messages(path))
    assert [ts for _, ts, _ in got] == sorted(ts for _, ts, _ in got)
    by_topic: dict = {}
    for topic, ts, payload in got:
        by_topic.setdefault(topic, []).append((ts, payload))
    ((t_info, info),) = by_topic["/cam/info"]
    assert t_info == 1_000 and info["frame_id"] == "cam_optical" and info["stamp_ns"] == 1_000
    np.testing.assert_array_equal(info["K"], K)
    np.testing.assert_array_equal(info["D"], [0.1, -0.2, 0.0, 0.0, 0.01])
    assert (info["width"], info["height"], info["distortion_model"]) == (W, H, "plumb_bob")
    for i, (ts, d) in enumerate(by_topic["/cam/depth"]):
        assert ts == 1_000_000_000 + i * 100_000_000 and d.dtype == np.float32
        # 16UC1 stores whole millimetres; the scene was drawn in whole millimetres.
        np.testing.assert_allclose(d, depth_m[i], atol=1e-7)
    for i, (_, img) in enumerate(by_topic["/cam/rgb"]):
        np.testing.assert_array_equal(img, rgb[i])
    ((_, pc),) = by_topic["/points"]
    np.testing.assert_array_equal(pc.points, cloud.points)
    np.testing.assert_allclose(pc.colors, cloud.colors, atol=0.5 / 255)

    only = list(iter_messages(path, topics=["/points"]))
    assert [t for t, _, _ in only] == ["/points"]


def test_image_encodings(tmp_path):
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    rgba = np.concatenate([rgb, np.full((H, W, 1), 7, np.uint8)], axis=2)
    gray = rgb[:, :, 0].copy()
    depth32 = rng.uniform(0.3, 3.0, (H, W)).astype(np.float32)
    depth32[0, 0] = np.nan
    msgs = [
        BagMessage("/bgr8", 1, rgb[:, :, ::-1], encoding="bgr8"),
        BagMessage("/rgba8", 2, rgba, encoding="rgba8"),
        BagMessage("/bgra8", 3, rgba[:, :, [2, 1, 0, 3]], encoding="bgra8"),
        BagMessage("/mono8", 4, gray),
        BagMessage("/d32", 5, depth32),
        BagMessage("/d16raw", 6, np.full((H, W), 1234, np.uint16)),
    ]
    path = write_bag(tmp_path / "enc", msgs)
    got = {t: p for t, _, p in iter_messages(path)}
    for topic in ("/bgr8", "/rgba8", "/bgra8"):
        np.testing.assert_array_equal(got[topic], rgb, err_msg=topic)
    np.testing.assert_array_equal(got["/mono8"], np.repeat(gray[:, :, None], 3, axis=2))
    want = depth32.copy()
    want[0, 0] = 0.0
    np.testing.assert_array_equal(got["/d32"], want)
    np.testing.assert_allclose(got["/d16raw"], 1.234, rtol=1e-6)


class _Img:
    def __init__(self, encoding, h, w, step, data, big=0):
        self.encoding, self.height, self.width, self.step, self.data, self.is_bigendian = (
            encoding,
            h,
            w,
            step,
            data,
            big,
        )


def test_image_to_numpy_row_padding_endianness_and_errors():
    mm = np.array([[1000, 2000], [3000, 65535]], np.uint16)
    rows = [mm[r].astype(">u2").tobytes() + b"\x00\x00" for r in range(2)]  # 2 pad bytes
    d = image_to_numpy(_Img("16UC1", 2, 2, 6, np.frombuffer(b"".join(rows), np.uint8), big=1))
    np.testing.assert_allclose(d, mm / 1000.0, rtol=1e-7)
    with pytest.raises(UnsupportedFormatError, match="yuv422"):
        image_to_numpy(_Img("yuv422", 2, 2, 4, b"\x00" * 8))
    with pytest.raises(BadInputError, match=r"7 bytes but step \* height = 4 \* 2 = 8"):
        image_to_numpy(_Img("mono8", 2, 2, 4, b"\x00" * 7))
    with pytest.raises(BadInputError, match="step 5 is smaller"):
        image_to_numpy(_Img("rgb8", 2, 2, 5, b"\x00" * 10))


def test_read_frames_pairs_nearest(bag):
    path, depth_m, rgb, *_ = bag
    frames = read_frames(path, "/cam/depth", "/cam/info", "/cam/rgb")
    assert [f.timestamp_ns for f in frames] == [1_000_000_000, 1_100_000_000, 1_200_000_000]
    for i, f in enumerate(frames):
        assert f.rgb_timestamp_ns == f.timestamp_ns + 5_000_000 and f.info_timestamp_ns == 1_000
        np.testing.assert_allclose(f.depth, depth_m[i], atol=1e-7)
        np.testing.assert_array_equal(f.rgb, rgb[i])
        np.testing.assert_array_equal(f.K, K)
        assert f.frame_id == "cam_optical"
    # Colour more than 1 ms away: every frame is skipped.
    assert (
        read_frames(path, "/cam/depth", "/cam/info", "/cam/rgb", max_rgb_offset_ns=1_000_000) == []
    )
    assert all(f.rgb is None for f in read_frames(path, "/cam/depth", "/cam/info"))


def test_read_frames_checks_sizes_and_types(tmp_path):
    info = {"K": K, "width": W + 1, "height": H}
    path = write_bag(
        tmp_path / "b", [("/info", 0, info), ("/depth", 1, np.ones((H, W), np.float32))]
    )
    with pytest.raises(BadInputError, match=f"{W}x{H} but CameraInfo .* says {W + 1}x{H}"):
        read_frames(path, "/depth", "/info")
    with pytest.raises(BadInputError, match="expected sensor_msgs/msg/CameraInfo"):
        read_frames(path, "/depth", "/depth")
    colour_as_depth = write_bag(
        tmp_path / "c",
        [
            ("/info", 0, {"K": K, "width": W, "height": H}),
            ("/depth", 1, np.zeros((H, W, 3), np.uint8)),
        ],
    )
    with pytest.raises(UnsupportedFormatError, match="depth images must be one of"):
        read_frames(colour_as_depth, "/depth", "/info")


def test_missing_corrupt_and_unknown(tmp_path, bag):
    path = bag[0]
    with pytest.raises(MissingFileError):
        list_topics(tmp_path / "nope")
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(CorruptFileError, match="metadata.yaml"):
        list_topics(tmp_path / "empty_dir")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(UnsupportedFormatError):
        list_topics(tmp_path / "x.txt")
    data_file = next(p for p in path.iterdir() if p.name != "metadata.yaml")
    blob = data_file.read_bytes()
    data_file.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(CorruptFileError):
        list(iter_messages(path))
    with pytest.raises(BadInputError, match="not in the bag"):
        list(iter_messages(_fresh_bag(tmp_path), topics=["/nope"]))


def _fresh_bag(tmp_path):
    return write_bag(tmp_path / "fresh", [("/d", 5, np.ones((2, 2), np.float32))])


def test_unsupported_message_types(tmp_path):
    from rosbags.rosbag2 import Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_HUMBLE)
    path = tmp_path / "tf"
    String = store.types["std_msgs/msg/String"]
    with Writer(path, version=9) as w:
        c = w.add_connection("/chatter", "std_msgs/msg/String", typestore=store)
        w.write(c, 1, store.serialize_cdr(String(data="hi"), "std_msgs/msg/String"))
    assert list(iter_messages(path)) == []  # unconverted types are skipped when not asked for
    with pytest.raises(UnsupportedFormatError, match="std_msgs/msg/String"):
        list(iter_messages(path, topics=["/chatter"]))


def test_write_bag_refuses_bad_input_and_leaves_nothing(tmp_path):
    with pytest.raises(BadInputError, match="exists already"):
        write_bag(_fresh_bag(tmp_path), [])
    target = tmp_path / "half"
    with pytest.raises(BadInputError, match="already carries"):
        write_bag(target, [("/a", 1, np.ones((2, 2), np.float32)), ("/a", 2, np.ones((3, 3)))])
    with pytest.raises(UnsupportedFormatError):
        write_bag(target, [("/a", 1, np.ones((2, 2), np.float32))], storage="bag1")
    with pytest.raises(BadInputError, match="needs K"):
        write_bag(target, [("/i", 1, {"width": 2, "height": 2})])
    with pytest.raises(BadInputError, match="16UC1"):
        write_bag(
            target, [BagMessage("/d", 1, np.full((2, 2), 70.0, np.float32), encoding="16UC1")]
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fresh"]
