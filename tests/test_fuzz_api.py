"""Hypothesis strategies over the public arguments of posekit's readers, writers and checks.

Every call must return a sane value or raise a posekit error; anything else is a finding
(tests/fuzzing.py counts the outcomes). The fast slice draws a few dozen examples per
function; the slow sweep a few hundred.
"""

from __future__ import annotations

import fuzzing
import numpy as np
import pytest
from fuzzing import check_cloud, probe
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

# Warnings are part of the outcome being probed (e.g. UnitsWarning for a cloud in mm).
pytestmark = pytest.mark.filterwarnings("ignore::posekit.errors.UnitsWarning", "ignore::UserWarning")

FAST = settings(max_examples=25, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))
FULL = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))

DTYPES = st.sampled_from(["f4", "f8", "f2", "i4", "u1", "b1", "c8", "U2", "O"])
anything = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=6),
                     st.binary(max_size=6), st.lists(st.floats(), max_size=4))


@st.composite
def arrays(draw, max_dims=3, max_side=6):
    dtype = draw(DTYPES)
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=max_dims, min_side=0, max_side=max_side))
    if dtype == "O":
        return np.array([draw(anything) for _ in range(int(np.prod(shape)))] or [None], dtype=object)
    return draw(hnp.arrays(dtype, shape))


@st.composite
def points_like(draw):
    """Mostly (N, 3) floats with odd values; sometimes any array or object."""
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return draw(anything)
    if kind == 1:
        return draw(arrays())
    n = draw(st.integers(0, 8))
    values = st.floats(allow_nan=True, allow_infinity=True, width=64) if kind == 2 else \
        st.floats(-1e3, 1e3)
    return draw(hnp.arrays("f8", (n, 3), elements=values))


TMP: dict = {}  # the current test's tmp_path (hypothesis cannot take fixtures per example)


def _finish(kind):
    found = fuzzing.failures(kind)
    assert found == [], "\n".join(found[:30])


def _run(kind, label, call, check=None):
    probe(kind, label, call, check)


# ------------------------------------------------------------------ the properties, one per API

def prop_point_cloud(points, colors, normals):
    from posekit.io.pointcloud import PointCloud

    _run("api PointCloud", f"{type(points).__name__}", lambda: PointCloud(points, colors, normals), check_cloud)


def prop_read_point_cloud(name, scale, drop):
    tmp = TMP["dir"]
    from posekit.io.pointcloud import read_point_cloud

    path = name
    if isinstance(name, str) and name:
        path = tmp / (name.replace("/", "_").replace("\x00", "") or "x")
        if len(name) % 2:
            np.save(path.with_suffix(".npy"), np.ones((4, 3)))
            path = path.with_suffix(".npy")
    _run("api read_point_cloud", repr(name)[:30], lambda: read_point_cloud(path, scale, drop), check_cloud)


def prop_write_point_cloud(points, suffix):
    tmp = TMP["dir"]
    from posekit.io.pointcloud import write_point_cloud

    _run("api write_point_cloud", f"{suffix}", lambda: write_point_cloud(points, tmp / f"out{suffix}"))


def prop_depth_to_points(depth, K, mask, depth_range):
    from posekit.io.depth import depth_to_points

    def check(points):
        return None if np.isfinite(points).all() else "non-finite points"

    _run("api depth_to_points", "", lambda: depth_to_points(depth, K, mask, depth_range=depth_range), check)


def prop_checks(value):
    from posekit import validation as v
    from posekit.io import bop

    for name, fn in [("intrinsics", v.check_intrinsics), ("pose", v.check_pose), ("rotation", v.check_rotation),
                     ("translation", v.check_translation), ("points", v.check_points),
                     ("positive", lambda x: v.check_positive(x, "x")), ("depth", v.check_depth_metres),
                     ("pose_from_bop", lambda x: bop.pose_from_bop(x, x)), ("path", v.as_path)]:
        _run("api validation", name, lambda fn=fn: fn(value))


def prop_mesh(vertices, faces):
    from posekit.io.mesh import Mesh, points_diameter

    def check(mesh):
        d = mesh.diameter
        return None if np.isfinite(d) and d >= 0 else f"diameter {d}"

    _run("api Mesh", "", lambda: Mesh(vertices, faces), check)
    _run("api Mesh", "points_diameter", lambda: points_diameter(vertices),
         lambda d: None if np.isfinite(d) and d >= 0 else f"diameter {d}")


def prop_overrides(items):
    from posekit.config import load_config
    from posekit.data.scenes import SynthConfig

    _run("api config overrides", repr(items)[:40], lambda: load_config(SynthConfig, None, items))


def prop_pcd_header(fields, sizes, types, counts, data, payload):
    tmp = TMP["dir"]
    from posekit.io.pointcloud import read_point_cloud

    head = (f"VERSION 0.7\nFIELDS {' '.join(fields)}\nSIZE {' '.join(sizes)}\nTYPE {' '.join(types)}\n"
            f"COUNT {' '.join(counts)}\nWIDTH 4\nHEIGHT 1\nPOINTS 4\nDATA {data}\n").encode()
    path = tmp / "h.pcd"
    path.write_bytes(head + payload)
    _run("api PCD headers", head.decode(errors="replace")[:60], lambda: read_point_cloud(path), check_cloud)


def prop_lzf(data, size):
    from posekit.io.pcd import lzf_decompress

    _run("api lzf_decompress", "", lambda: lzf_decompress(data, size))


def prop_device(value):
    from posekit.device import resolve_device

    _run("api resolve_device", repr(value)[:20], lambda: resolve_device(value))


def prop_bop_dataset(root, split):
    tmp = TMP["dir"]
    from posekit.io.bop import BopDataset

    def use():
        ds = BopDataset(tmp if root == "tmp" else root, split=split)
        return ds.targets()

    _run("api BopDataset", repr((root, split))[:40], use)


# ------------------------------------------------------------------ fast and full runs

PROPERTIES = {
    "PointCloud": (given(points_like(), st.one_of(st.none(), points_like()), st.one_of(st.none(), points_like())),
                   prop_point_cloud),
    "read_point_cloud": (given(st.one_of(anything, st.text(max_size=10)), anything, anything),
                         prop_read_point_cloud),
    "write_point_cloud": (given(points_like(), st.sampled_from([".ply", ".pcd", ".xyz", ".npy", ".npz", ".txt", ""])),
                          prop_write_point_cloud),
    "depth_to_points": (given(st.one_of(arrays(), hnp.arrays("f4", (4, 5), elements=st.floats(width=32))),
                              st.one_of(anything, arrays(2, 3), st.just(np.array([[500.0, 0, 2], [0, 500, 2], [0, 0, 1]]))),
                              st.one_of(st.none(), arrays(2, 5)), st.one_of(st.none(), anything)),
                        prop_depth_to_points),
    "validation": (given(st.one_of(anything, arrays(), hnp.arrays("f8", st.sampled_from([(3, 3), (4, 4), (3,), (9,)])))),
                   prop_checks),
    "Mesh": (given(points_like(), st.one_of(anything, arrays(2, 4))), prop_mesh),
    "config overrides": (given(st.lists(st.text(max_size=20), max_size=3)), prop_overrides),
    "PCD headers": (given(st.lists(st.sampled_from(["x", "y", "z", "rgb", "w", "_", "x"]), min_size=1, max_size=5),
                          st.lists(st.sampled_from(["1", "2", "4", "8", "0", "-1", "x"]), min_size=1, max_size=5),
                          st.lists(st.sampled_from(["F", "I", "U", "X"]), min_size=1, max_size=5),
                          st.lists(st.sampled_from(["1", "2", "0", "3"]), min_size=1, max_size=5),
                          st.sampled_from(["ascii", "binary", "binary_compressed", "binary_weird", ""]),
                          st.binary(max_size=200)),
                    prop_pcd_header),
    "lzf_decompress": (given(st.binary(max_size=64), st.integers(0, 200)), prop_lzf),
    "resolve_device": (given(st.one_of(anything, st.sampled_from(["cpu", "cuda", "cuda:0", "cuda:-1", "mps",
                                                                  "meta", "cpu:0", "vulkan"]))),
                       prop_device),
    "BopDataset": (given(st.one_of(anything, st.just("tmp")), st.one_of(anything, st.text(max_size=5))),
                   prop_bop_dataset),
}


@pytest.mark.parametrize("name", sorted(PROPERTIES))
def test_fuzz_api_fast(tmp_path, name):
    decorate, prop = PROPERTIES[name]
    TMP["dir"] = tmp_path
    FAST(decorate(prop))()
    _finish(f"api {name}")


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", sorted(PROPERTIES))
def test_fuzz_api_full(tmp_path, name):
    decorate, prop = PROPERTIES[name]
    TMP["dir"] = tmp_path
    FULL(decorate(prop))()
    _finish(f"api {name}")
