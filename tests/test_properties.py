"""Property-based tests (hypothesis) of the geometry core and the unit/format conversions."""

from __future__ import annotations

import math

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from pointcloud2_standin import Cloud, Field

from posekit.geometry import se3_compose, se3_exp, se3_inverse, se3_log, transform_points
from posekit.io import bop
from posekit.io.pointcloud2 import (
    FLOAT32,
    FLOAT64,
    INT16,
    POINTFIELD_DTYPES,
    UINT8,
    array_to_pointcloud2,
    pointcloud2_to_array,
    pointcloud2_to_structured,
)

FAST = settings(max_examples=50, deadline=None)
finite = st.floats(-10.0, 10.0, allow_nan=False, allow_infinity=False)


@st.composite
def twists(draw, max_angle=math.pi - 1e-3):
    """(omega, v) with |omega| < max_angle, float64."""
    axis = np.array(draw(st.lists(finite, min_size=3, max_size=3)))
    norm = np.linalg.norm(axis)
    axis = axis / norm if norm > 1e-6 else np.array([0.0, 0.0, 1.0])
    angle = draw(st.floats(0.0, max_angle))
    v = np.array(draw(st.lists(st.floats(-5, 5), min_size=3, max_size=3)))
    return torch.as_tensor(np.concatenate([axis * angle, v]), dtype=torch.float64)


@FAST
@given(twists())
def test_se3_log_inverts_exp(xi):
    np.testing.assert_allclose(se3_log(se3_exp(xi)).numpy(), xi.numpy(), atol=1e-6)


@FAST
@given(twists(), twists(), twists())
def test_compose_is_associative_and_inverse_cancels(a, b, c):
    A, B, C = se3_exp(a), se3_exp(b), se3_exp(c)
    left = se3_compose(se3_compose(A, B), C)
    right = se3_compose(A, se3_compose(B, C))
    np.testing.assert_allclose(left.numpy(), right.numpy(), atol=1e-9)
    np.testing.assert_allclose(se3_compose(A, se3_inverse(A)).numpy(), np.eye(4), atol=1e-9)
    np.testing.assert_allclose(se3_inverse(se3_compose(A, B)).numpy(),
                               se3_compose(se3_inverse(B), se3_inverse(A)).numpy(), atol=1e-9)


@FAST
@given(twists(), arrays(np.float64, st.tuples(st.integers(1, 20), st.just(3)), elements=finite))
def test_transform_points_matches_homogeneous_product(xi, pts):
    T = se3_exp(xi)
    homogeneous = np.concatenate([pts, np.ones((len(pts), 1))], axis=1) @ T.numpy().T
    out = transform_points(T, torch.as_tensor(pts)).numpy()
    np.testing.assert_allclose(out, homogeneous[:, :3], atol=1e-9)


# ----------------------------------------------------------------------------- PointCloud2




@FAST
@given(arrays(np.float32, st.tuples(st.integers(1, 30), st.just(3)),
              elements=st.floats(-100, 100, width=32)),
       st.booleans(), st.sampled_from(["numpy", "bytes", "array"]))
def test_pointcloud2_round_trip(points, with_colors, container):
    rng = np.random.default_rng(len(points))
    colors = rng.integers(0, 256, (len(points), 3), dtype=np.uint8) if with_colors else None
    msg = array_to_pointcloud2(points, colors, msg_factory=Cloud, field_factory=Field,
                               data_container=container)
    np.testing.assert_array_equal(pointcloud2_to_array(msg), points)
    if with_colors:
        from posekit.io.pointcloud2 import unpack_rgb

        np.testing.assert_array_equal(unpack_rgb(pointcloud2_to_structured(msg)["rgb"]), colors)


@st.composite
def field_layouts(draw):
    """Random fields (x, y, z of one dtype + extra fields) at padded offsets, either byte order."""
    xyz_type = draw(st.sampled_from([FLOAT32, FLOAT64, INT16]))
    extras = draw(st.lists(st.tuples(st.sampled_from([UINT8, INT16, FLOAT32, FLOAT64]), st.integers(1, 3)),
                           max_size=3))
    layout, offset = {}, 0
    for name, (dtype, count) in [("x", (xyz_type, 1)), ("y", (xyz_type, 1)), ("z", (xyz_type, 1))] + [
        (f"f{i}", e) for i, e in enumerate(extras)
    ]:
        offset += draw(st.integers(0, 3))  # padding between fields
        layout[name] = (offset, dtype, count)
        offset += POINTFIELD_DTYPES[dtype].itemsize * count
    point_step = offset + draw(st.integers(0, 4))
    return layout, point_step, draw(st.booleans()), draw(st.integers(1, 3)), draw(st.integers(1, 6)), \
        draw(st.integers(0, 5))


@FAST
@given(field_layouts(), st.integers(0, 2**31))
def test_pointcloud2_unpacks_any_field_layout(layout_spec, seed):
    layout, point_step, big, height, width, row_pad = layout_spec
    rng = np.random.default_rng(seed)
    order = ">" if big else "<"
    row_step = width * point_step + row_pad
    buf = bytearray(row_step * height)
    values = {}
    for name, (offset, datatype, count) in layout.items():
        dt = POINTFIELD_DTYPES[datatype]
        v = (rng.integers(-100, 100, (height * width, count))).astype(dt)
        values[name] = v
        for i in range(height * width):
            r, c = divmod(i, width)
            start = r * row_step + c * point_step + offset
            buf[start:start + dt.itemsize * count] = v[i].astype(dt.newbyteorder(order)).tobytes()
    fields = [Field(n, o, d, k) for n, (o, d, k) in layout.items()]
    msg = Cloud(height, width, fields, big, point_step, row_step, bytes(buf))
    s = pointcloud2_to_structured(msg)
    for name, v in values.items():
        np.testing.assert_array_equal(s[name].reshape(len(s), -1), v)
    xyz = pointcloud2_to_array(msg, skip_nans=False)
    np.testing.assert_array_equal(xyz, np.concatenate([values[n] for n in "xyz"], axis=1).astype(np.float32))


# ----------------------------------------------------------------------------- BOP units


@FAST
@given(twists())
def test_bop_pose_mm_round_trip(xi):
    T = se3_exp(xi).numpy()
    R_rowwise, t_mm = bop.pose_to_bop(T)
    np.testing.assert_allclose(t_mm, T[:3, 3] * 1000.0, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(np.reshape(R_rowwise, (3, 3)), T[:3, :3], atol=0)
    np.testing.assert_allclose(bop.pose_from_bop(R_rowwise, t_mm), T, atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(twists(), st.integers(0, 999), st.integers(1, 30),
                          st.floats(0, 1), st.floats(-1, 100)), min_size=1, max_size=8))
def test_results_csv_round_trip(tmp_path_factory, rows):
    path = tmp_path_factory.mktemp("csv") / "results.csv"
    estimates = []
    for i, (xi, im_id, obj_id, score, time) in enumerate(rows):
        T = se3_exp(xi).numpy()
        T[2, 3] += 6.0  # in front of the camera, beyond the 20 mm "looks like metres" guard
        estimates.append(bop.PoseEstimate(i, im_id, obj_id, score, T[:3, :3], T[:3, 3], time))
    bop.write_results_csv(path, estimates)
    back = bop.read_results_csv(path)
    assert len(back) == len(estimates)
    for a, b in zip(estimates, back):
        assert (a.scene_id, a.im_id, a.obj_id, a.score, a.time) == (b.scene_id, b.im_id, b.obj_id, b.score, b.time)
        np.testing.assert_array_equal(b.R, a.R)
        np.testing.assert_allclose(b.t, a.t, rtol=1e-15, atol=1e-15)
