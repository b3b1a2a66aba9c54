"""Malformed sensor_msgs/PointCloud2 messages (posekit.io.pointcloud2, no ROS needed).

Every field of a valid message is set to odd values (sizes, offsets, datatypes, endianness,
data of the wrong length or type) and the data bytes are flipped and cut; the conversion must
give a sane cloud or a posekit error.
"""

from __future__ import annotations

import copy

import fuzzing
import numpy as np
import pytest
from fuzzing import byte_flips, check_cloud, probe, truncations
from pointcloud2_standin import Cloud, Field

# Warnings are part of the outcome being probed (e.g. UnitsWarning for a cloud in mm).
pytestmark = pytest.mark.filterwarnings("ignore::posekit.errors.UnitsWarning", "ignore::UserWarning")

ODD_INTS = [0, -1, 1, 3, 7, 11, 13, 1 << 31, 10 ** 12]


def _valid(n=20):
    rng = np.random.default_rng(2)
    rec = np.zeros(n, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("rgb", "<f4")])
    for i, a in enumerate("xyz"):
        rec[a] = rng.random(n) + (0, 0, 1)[i]
    rec["rgb"] = (rng.integers(0, 1 << 24, n).astype("<u4")).view("<f4")
    fields = [Field("x", 0, 7), Field("y", 4, 7), Field("z", 8, 7), Field("rgb", 12, 7)]
    return Cloud(1, n, fields, False, 16, 16 * n, rec.tobytes())


def _variants(full: bool):
    base = _valid()
    rng = np.random.default_rng(4)
    for attr in ("height", "width", "point_step", "row_step"):
        for v in (ODD_INTS if full else ODD_INTS[:4]):
            m = copy.deepcopy(base)
            setattr(m, attr, v)
            yield f"{attr}={v}", m
    for i in range(4):
        for attr, values in (("offset", ODD_INTS), ("datatype", [0, 1, 2, 8, 9, 99, -1]), ("count", [0, 2, 3, -1])):
            for v in (values if full else values[:2]):
                m = copy.deepcopy(base)
                setattr(m.fields[i], attr, v)
                yield f"field {i} {attr}={v}", m
    for label, fields in (("no fields", []), ("no z", base.fields[:2] + base.fields[3:]),
                          ("duplicate x", base.fields + [Field("x", 0, 7)]), ("names None", [Field(None, 0, 7)] * 3)):
        m = copy.deepcopy(base)
        m.fields = fields
        yield label, m
    m = copy.deepcopy(base)
    m.is_bigendian = True
    yield "big endian", m
    for data_label, data in (("data None", None), ("data str", "abc"), ("data list", list(base.data[:32])),
                             ("data float array", np.zeros(80, np.float32)), *truncations(base.data),
                             *byte_flips(base.data, rng, 12 if full else 3)):
        m = copy.deepcopy(base)
        m.data = data
        yield data_label, m


@pytest.mark.parametrize("full", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["fast", "full"])
def test_fuzz_pointcloud2(full):
    from posekit.io.pointcloud2 import pointcloud2_to_array, pointcloud2_to_pointcloud

    kind = "PointCloud2 messages"
    for label, msg in _variants(full):
        probe(kind, label, lambda m=msg: pointcloud2_to_pointcloud(m), check_cloud)
        probe(kind, f"{label} (array)", lambda m=msg: pointcloud2_to_array(m))
    found = fuzzing.failures(kind)
    assert found == [], "\n".join(found[:30])
