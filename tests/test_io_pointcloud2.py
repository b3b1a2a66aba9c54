"""posekit.io.pointcloud2: PointCloud2 <-> numpy on a stand-in message class and rosbags' classes."""

from __future__ import annotations

import array

import numpy as np
import pytest
from pointcloud2_standin import Cloud, Field, Header

from posekit.errors import BadInputError
from posekit.io.pointcloud import PointCloud
from posekit.io.pointcloud2 import (
    POINTFIELD_DTYPES,
    array_to_pointcloud2,
    pack_rgb,
    pointcloud2_to_array,
    pointcloud2_to_pointcloud,
    pointcloud2_to_structured,
    unpack_rgb,
)


def _message(
    values: dict, layout: dict, point_step: int, height: int, width: int, big=False, row_pad=0
):
    """Hand-pack a message: layout name -> (offset, datatype, count); values name -> (H*W[, count])."""
    order = ">" if big else "<"
    row_step = width * point_step + row_pad
    buf = bytearray(row_step * height)
    for name, (offset, datatype, count) in layout.items():
        dt = POINTFIELD_DTYPES[datatype].newbyteorder(order)
        v = np.asarray(values[name]).reshape(height * width, count)
        for i in range(height * width):
            r, c = divmod(i, width)
            start = r * row_step + c * point_step + offset
            buf[start : start + dt.itemsize * count] = v[i].astype(dt).tobytes()
    fields = [Field(n, o, d, c) for n, (o, d, c) in layout.items()]
    return Cloud(
        height, width, fields, big, point_step, row_step, np.frombuffer(bytes(buf), np.uint8)
    )


@pytest.mark.parametrize("big", [False, True])
def test_all_datatypes_offsets_endianness_and_padding(big):
    rng = np.random.default_rng(0)
    h, w = 2, 3
    n = h * w
    layout, values, offset = {}, {}, 1  # start at 1: misaligned offsets must work
    for datatype, dt in POINTFIELD_DTYPES.items():
        name = f"f{datatype}"
        layout[name] = (offset, datatype, 1)
        if dt.kind == "f":
            values[name] = rng.normal(size=n).astype(dt)
        else:
            info = np.iinfo(dt)
            values[name] = rng.integers(info.min, info.max, n, dtype=dt, endpoint=True)
        offset += dt.itemsize + 1
    layout["vec"] = (offset, 7, 3)  # FLOAT32 x 3
    values["vec"] = rng.normal(size=(n, 3)).astype(np.float32)
    point_step = offset + 12 + 5  # trailing padding in each point
    msg = _message(values, layout, point_step, h, w, big=big, row_pad=7)

    s = pointcloud2_to_structured(msg)
    assert s.shape == (n,)
    for name, want in values.items():
        np.testing.assert_array_equal(s[name].reshape(want.shape), want)
        assert s.dtype[name].base.byteorder in ("=", "|")  # native order after conversion
    assert pointcloud2_to_structured(msg, organized=True).shape == (h, w)
    cols = pointcloud2_to_array(msg, fields=("f8", "vec"), skip_nans=False)
    np.testing.assert_array_equal(
        cols, np.column_stack([values["f8"], values["vec"]]).astype(np.float32)
    )


def _xyz_msg(xyz, extra=None, h=1):
    layout = {"x": (0, 7, 1), "y": (4, 7, 1), "z": (8, 7, 1)}
    values = {"x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2]}
    step = 16
    if extra:
        for name, (off, dt, count, v) in extra.items():
            layout[name] = (off, dt, count)
            values[name] = v
        step = max(
            off + POINTFIELD_DTYPES[dt].itemsize * count for off, dt, count, _ in extra.values()
        )
        step = max(step, 16)
    return _message(values, layout, step, h, len(xyz) // h)


def test_nan_points_skipped_or_kept_organized():
    xyz = np.arange(24, dtype=np.float32).reshape(8, 3)
    xyz[[2, 5], 1] = np.nan
    msg = _xyz_msg(xyz, h=2)
    np.testing.assert_array_equal(pointcloud2_to_array(msg), xyz[[0, 1, 3, 4, 6, 7]])
    org = pointcloud2_to_array(msg, organized=True)
    assert org.shape == (2, 4, 3)
    np.testing.assert_array_equal(org.reshape(-1, 3), xyz)
    assert len(pointcloud2_to_array(msg, skip_nans=False)) == 8
    pc = pointcloud2_to_pointcloud(msg)
    assert len(pc) == 6 and pc.dropped_invalid == 2
    with pytest.raises(BadInputError, match="2 of 8"):
        pointcloud2_to_pointcloud(msg, skip_nans=False)


@pytest.mark.parametrize("name, datatype", [("rgb", 7), ("rgb", 6), ("rgba", 6), ("rgba", 7)])
def test_packed_colours(name, datatype):
    rng = np.random.default_rng(1)
    xyz = rng.normal(size=(5, 3)).astype(np.float32)
    rgb = rng.integers(0, 256, (5, 3)).astype(np.uint32)
    bits = (np.uint32(0x80) << 24) | (rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2]
    packed = bits.view(np.float32) if datatype == 7 else bits
    msg = _xyz_msg(xyz, {name: (12, datatype, 1, packed)})
    pc = pointcloud2_to_pointcloud(msg)
    np.testing.assert_array_equal(np.rint(pc.colors * 255), rgb)
    np.testing.assert_array_equal(unpack_rgb(packed), rgb)


def test_separate_rgb_fields_and_normals():
    xyz = np.eye(3, dtype=np.float32) + 1
    rgb = np.array([[255, 0, 0], [0, 128, 0], [0, 0, 51]], np.uint8)
    nrm = np.eye(3, dtype=np.float32)
    extra = {
        "r": (12, 2, 1, rgb[:, 0]),
        "g": (13, 2, 1, rgb[:, 1]),
        "b": (14, 2, 1, rgb[:, 2]),
        "normal_x": (16, 7, 1, nrm[:, 0]),
        "normal_y": (20, 7, 1, nrm[:, 1]),
        "normal_z": (24, 7, 1, nrm[:, 2]),
    }
    pc = pointcloud2_to_pointcloud(_xyz_msg(xyz, extra))
    np.testing.assert_allclose(pc.colors, rgb / 255.0, atol=1e-7)
    np.testing.assert_array_equal(pc.normals, nrm)


def test_pack_unpack_rgb_inverse():
    rgb = np.array([[1, 2, 3], [255, 254, 0]], np.uint8)
    np.testing.assert_array_equal(unpack_rgb(pack_rgb(rgb)), rgb)
    np.testing.assert_array_equal(unpack_rgb(pack_rgb(rgb / 255.0)), rgb)
    with pytest.raises(BadInputError):
        pack_rgb(np.full((2, 3), 2.0))


def test_roundtrip_with_standin_class():
    rng = np.random.default_rng(4)
    xyz = rng.normal(size=(7, 3)).astype(np.float32)
    cols = rng.integers(0, 256, (7, 3)).astype(np.uint8)
    msg = array_to_pointcloud2(
        xyz, cols, msg_factory=Cloud, field_factory=Field, header=Header("x")
    )
    assert (msg.height, msg.width, msg.point_step, msg.row_step) == (1, 7, 16, 112)
    assert isinstance(msg.data, np.ndarray) and msg.is_dense and msg.header.frame_id == "x"
    pc = pointcloud2_to_pointcloud(msg)
    np.testing.assert_array_equal(pc.points, xyz)
    np.testing.assert_array_equal(np.rint(pc.colors * 255), cols)
    # Without a header the stand-in's default is used.
    assert (
        array_to_pointcloud2(xyz, msg_factory=Cloud, field_factory=Field).header.frame_id == "cam"
    )


def test_organized_and_nan_roundtrip_with_array_container():
    xyz = np.arange(18, dtype=np.float32).reshape(2, 3, 3)
    xyz[1, 2] = np.nan
    msg = array_to_pointcloud2(xyz, msg_factory=Cloud, field_factory=Field, data_container="array")
    assert (
        isinstance(msg.data, array.array) and (msg.height, msg.width) == (2, 3) and not msg.is_dense
    )
    np.testing.assert_array_equal(pointcloud2_to_array(msg, organized=True), xyz)


def test_pointcloud_input_uses_its_colours():
    pc = PointCloud(np.ones((2, 3)), colors=np.array([[1.0, 0, 0], [0, 0, 1.0]]))
    msg = array_to_pointcloud2(pc, msg_factory=Cloud, field_factory=Field, data_container="bytes")
    assert isinstance(msg.data, bytes)
    np.testing.assert_array_equal(pointcloud2_to_pointcloud(msg).colors, pc.colors)


def test_rosbags_message_classes_roundtrip_through_cdr():
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_HUMBLE)
    T = store.types
    header = T["std_msgs/msg/Header"](
        stamp=T["builtin_interfaces/msg/Time"](sec=3, nanosec=9), frame_id="cam"
    )
    rng = np.random.default_rng(6)
    xyz = rng.normal(size=(9, 3)).astype(np.float32)
    cols = rng.integers(0, 256, (9, 3)).astype(np.uint8)
    msg = array_to_pointcloud2(
        xyz,
        cols,
        msg_factory=T["sensor_msgs/msg/PointCloud2"],
        field_factory=T["sensor_msgs/msg/PointField"],
        header=header,
    )
    raw = store.serialize_cdr(msg, "sensor_msgs/msg/PointCloud2")
    back = store.deserialize_cdr(raw, "sensor_msgs/msg/PointCloud2")
    np.testing.assert_array_equal(pointcloud2_to_array(back), xyz)
    np.testing.assert_array_equal(np.rint(pointcloud2_to_pointcloud(back).colors * 255), cols)
    assert (
        back.fields[3].name == "rgb"
        and back.fields[3].datatype == T["sensor_msgs/msg/PointField"].FLOAT32
    )
    with pytest.raises(BadInputError, match="needs a header"):
        array_to_pointcloud2(
            xyz,
            msg_factory=T["sensor_msgs/msg/PointCloud2"],
            field_factory=T["sensor_msgs/msg/PointField"],
        )


def _good():
    return _xyz_msg(np.ones((4, 3), np.float32))


@pytest.mark.parametrize(
    "change, match",
    [
        (
            lambda m: setattr(m, "data", m.data[:-1]),
            r"63 bytes but row_step \* height = 64 \* 1 = 64",
        ),
        (lambda m: setattr(m, "row_step", 60), r"row_step 60 is smaller than width \* point_step"),
        (
            lambda m: setattr(m, "point_step", 10),
            "spans bytes 8..12 of each point but point_step is 10",
        ),
        (lambda m: setattr(m.fields[1], "datatype", 9), "unknown datatype 9"),
        (lambda m: setattr(m.fields[1], "name", "x"), "two fields named 'x'"),
        (lambda m: setattr(m, "fields", []), "no fields"),
    ],
)
def test_inconsistent_messages_say_which_numbers_disagree(change, match):
    msg = _good()
    pointcloud2_to_structured(msg)  # valid before the change
    change(msg)
    with pytest.raises(BadInputError, match=match):
        pointcloud2_to_structured(msg)


def test_bad_arguments():
    with pytest.raises(BadInputError, match="no field 'intensity'"):
        pointcloud2_to_array(_good(), fields=("x", "intensity"))
    with pytest.raises(BadInputError, match="not a PointCloud2"):
        pointcloud2_to_structured(object())
    with pytest.raises(BadInputError, match=r"\(N, 3\)"):
        array_to_pointcloud2(np.zeros((4, 2)), msg_factory=Cloud, field_factory=Field)
    with pytest.raises(BadInputError, match="colors shape"):
        array_to_pointcloud2(
            np.zeros((4, 3)), np.zeros((3, 3)), msg_factory=Cloud, field_factory=Field
        )
    all_nan = _xyz_msg(np.full((2, 3), np.nan, np.float32))
    with pytest.raises(BadInputError, match="no valid points"):
        pointcloud2_to_pointcloud(all_nan)
