"""posekit.io.pointcloud: reading/writing every format, NaN handling, corrupt files, unit checks."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from posekit.errors import (
    BadInputError,
    CorruptFileError,
    MissingFileError,
    UnsafeFileError,
    UnsupportedFormatError,
)
from posekit.io.pointcloud import (
    PointCloud,
    check_metric_units,
    read_point_cloud,
    write_point_cloud,
)


@pytest.fixture
def cloud():
    rng = np.random.default_rng(3)
    pts = rng.uniform(-0.2, 0.2, (50, 3)).astype(np.float32) + np.float32([0, 0, 0.8])
    cols = rng.uniform(0, 1, (50, 3)).astype(np.float32)
    nrm = rng.normal(size=(50, 3)).astype(np.float32)
    nrm /= np.linalg.norm(nrm, axis=1, keepdims=True)
    return PointCloud(pts, cols, nrm)


@pytest.mark.parametrize("suffix", [".ply", ".pcd", ".npz"])
def test_roundtrip_keeps_points_colors_normals(tmp_path, cloud, suffix):
    path = write_point_cloud(cloud, tmp_path / f"c{suffix}")
    back = read_point_cloud(path)
    np.testing.assert_allclose(back.points, cloud.points, atol=1e-6)
    # PLY/PCD store 8-bit colours.
    np.testing.assert_allclose(back.colors, cloud.colors, atol=0.5 / 255 + 1e-6)
    np.testing.assert_allclose(back.normals, cloud.normals, atol=1e-6)
    assert back.points.dtype == np.float32 and back.dropped_invalid == 0


@pytest.mark.parametrize("suffix", [".xyz", ".npy"])
def test_roundtrip_points_only_formats(tmp_path, cloud, suffix):
    back = read_point_cloud(write_point_cloud(cloud.points, tmp_path / f"c{suffix}"))
    np.testing.assert_allclose(back.points, cloud.points, atol=1e-6)
    assert back.colors is None


def test_ascii_ply_and_scale(tmp_path, cloud):
    path = write_point_cloud(cloud, tmp_path / "a.ply", ascii=True)
    assert path.read_bytes().startswith(b"ply\nformat ascii")
    back = read_point_cloud(path, scale=0.001)
    np.testing.assert_allclose(back.points, cloud.points * 0.001, rtol=1e-5)


def _pcd_header(fields, sizes, types, width, height, data):
    n = width * height
    return (
        "# .PCD v0.7\nVERSION 0.7\n"
        f"FIELDS {' '.join(fields)}\nSIZE {' '.join(map(str, sizes))}\n"
        f"TYPE {' '.join(types)}\nCOUNT {' '.join('1' for _ in fields)}\n"
        f"WIDTH {width}\nHEIGHT {height}\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS {n}\nDATA {data}\n"
    ).encode()


def _lzf_literal(raw: bytes) -> bytes:
    """LZF stream made only of literal runs (<= 32 bytes each): valid input for any LZF decoder."""
    out = bytearray()
    for i in range(0, len(raw), 32):
        chunk = raw[i : i + 32]
        out.append(len(chunk) - 1)
        out += chunk
    return bytes(out)


def _organized_cloud(h=4, w=5):
    """(h*w, 3) float32 grid with NaN rows (missing depth) and packed colours, as a sensor gives it."""
    rng = np.random.default_rng(0)
    xyz = rng.uniform(-1, 1, (h * w, 3)).astype(np.float32)
    nan_rows = np.array([1, 7, 8, 19])
    xyz[nan_rows] = np.nan
    rgb = rng.integers(0, 256, (h * w, 3)).astype(np.uint32)
    packed = (rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2]
    return xyz, rgb, packed, nan_rows


def test_binary_compressed_organized_pcd_drops_nans(tmp_path):
    h, w = 4, 5
    xyz, rgb, packed, nan_rows = _organized_cloud(h, w)
    # binary_compressed stores each field as one column block, LZF-compressed.
    raw = (
        xyz[:, 0].tobytes()
        + xyz[:, 1].tobytes()
        + xyz[:, 2].tobytes()
        + packed.astype("<u4").tobytes()
    )
    comp = _lzf_literal(raw)
    body = struct.pack("<II", len(comp), len(raw)) + comp
    path = tmp_path / "org.pcd"
    path.write_bytes(
        _pcd_header(
            ["x", "y", "z", "rgb"], [4] * 4, ["F", "F", "F", "U"], w, h, "binary_compressed"
        )
        + body
    )

    pc = read_point_cloud(path)
    keep = np.setdiff1d(np.arange(h * w), nan_rows)
    assert pc.dropped_invalid == len(nan_rows)
    np.testing.assert_array_equal(pc.points, xyz[keep])
    np.testing.assert_allclose(pc.colors * 255, rgb[keep], atol=1e-3)

    with pytest.raises(BadInputError, match=f"{len(nan_rows)} of {h * w} points are NaN"):
        read_point_cloud(path, drop_invalid=False)


def test_ascii_pcd_with_nan(tmp_path):
    xyz, _, _, nan_rows = _organized_cloud()
    lines = "\n".join(" ".join("nan" if np.isnan(v) else repr(float(v)) for v in p) for p in xyz)
    path = tmp_path / "a.pcd"
    path.write_bytes(
        _pcd_header(["x", "y", "z"], [4] * 3, ["F", "F", "F"], 5, 4, "ascii") + lines.encode()
    )
    pc = read_point_cloud(path)
    assert len(pc) == 20 - len(nan_rows) and pc.dropped_invalid == len(nan_rows)


def test_all_nan_cloud_is_bad_input(tmp_path):
    np.save(tmp_path / "nan.npy", np.full((4, 3), np.nan, np.float32))
    with pytest.raises(BadInputError, match="all 4 points"):
        read_point_cloud(tmp_path / "nan.npy")


def test_npy_with_extra_columns_uses_first_three(tmp_path):
    a = np.arange(20, dtype=np.float64).reshape(4, 5)
    np.save(tmp_path / "p.npy", a)
    np.testing.assert_array_equal(
        read_point_cloud(tmp_path / "p.npy").points, a[:, :3].astype(np.float32)
    )


@pytest.mark.parametrize("bad", [np.zeros((4, 2)), np.zeros(6), np.array(["a", "b", "c"])])
def test_npy_wrong_shape_or_dtype(tmp_path, bad):
    np.save(tmp_path / "b.npy", bad)
    with pytest.raises(BadInputError):
        read_point_cloud(tmp_path / "b.npy")


def test_npy_object_array_is_refused_without_unpickling(tmp_path):
    np.save(tmp_path / "o.npy", np.array([[1, 2, 3], None], dtype=object), allow_pickle=True)
    with pytest.raises(UnsafeFileError):
        read_point_cloud(tmp_path / "o.npy")


def test_npz_needs_points_key_and_takes_uint8_colours(tmp_path):
    np.savez(tmp_path / "nokey.npz", xyz=np.zeros((3, 3)))
    with pytest.raises(BadInputError, match="'points'"):
        read_point_cloud(tmp_path / "nokey.npz")
    cols = np.array([[255, 0, 51]] * 3, np.uint8)
    np.savez(tmp_path / "ok.npz", points=np.eye(3), colors=cols)
    np.testing.assert_allclose(
        read_point_cloud(tmp_path / "ok.npz").colors[0], [1.0, 0.0, 0.2], atol=1e-6
    )


@pytest.mark.parametrize("suffix", [".ply", ".pcd", ".npy", ".xyz"])
def test_empty_cloud_is_bad_input(tmp_path, suffix):
    path = tmp_path / f"e{suffix}"
    if suffix == ".ply":
        path.write_text(
            "ply\nformat ascii 1.0\nelement vertex 0\nproperty float x\nproperty float y\nproperty float z\nend_header\n"
        )
    elif suffix == ".pcd":
        path.write_bytes(_pcd_header(["x", "y", "z"], [4] * 3, ["F"] * 3, 0, 1, "ascii"))
    elif suffix == ".npy":
        np.save(path, np.zeros((0, 3), np.float32))
    else:
        path.write_text("")
    with pytest.raises(BadInputError, match="empty"):
        read_point_cloud(path)


def test_truncated_and_garbage_files_are_corrupt(tmp_path, cloud):
    for suffix in (".ply", ".pcd"):
        good = write_point_cloud(cloud, tmp_path / f"g{suffix}").read_bytes()
        cut = tmp_path / f"cut{suffix}"
        cut.write_bytes(good[: len(good) - 300])
        with pytest.raises(CorruptFileError):
            read_point_cloud(cut)
        junk = tmp_path / f"junk{suffix}"
        junk.write_bytes(b"\x00garbage\xff" * 40)
        with pytest.raises(CorruptFileError):
            read_point_cloud(junk)
    # An ASCII PLY whose second vertex lacks z: open3d would hand back uninitialised memory.
    short = tmp_path / "short.ply"
    short.write_text(
        "ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\n"
        "property float z\nend_header\n1 2 3\n4 5\n"
    )
    with pytest.raises(CorruptFileError):
        read_point_cloud(short)
    (tmp_path / "bad.xyz").write_text("1 2 3\n4 five 6\n")
    with pytest.raises(CorruptFileError):
        read_point_cloud(tmp_path / "bad.xyz")
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(CorruptFileError):
        read_point_cloud(tmp_path / "bad.npz")


def test_missing_and_unsupported(tmp_path):
    with pytest.raises(MissingFileError):
        read_point_cloud(tmp_path / "nope.ply")
    (tmp_path / "c.las").write_bytes(b"x")
    with pytest.raises(UnsupportedFormatError):
        read_point_cloud(tmp_path / "c.las")
    with pytest.raises(UnsupportedFormatError):
        write_point_cloud(np.zeros((2, 3)), tmp_path / "c.las")
    np.save(tmp_path / "ok.npy", np.ones((2, 3)))
    with pytest.raises(BadInputError, match="scale"):
        read_point_cloud(tmp_path / "ok.npy", scale=-1)


def test_pointcloud_validation():
    with pytest.raises(BadInputError, match=r"\(N, 3\)"):
        PointCloud(np.zeros((4, 2)))
    with pytest.raises(BadInputError, match="empty"):
        PointCloud(np.zeros((0, 3)))
    with pytest.raises(BadInputError, match="NaN"):
        PointCloud(np.array([[0, 0, np.nan]]))
    with pytest.raises(BadInputError, match="divide uint8"):
        PointCloud(np.zeros((2, 3)), colors=np.zeros((2, 3), np.uint8))
    with pytest.raises(BadInputError, match="colors"):
        PointCloud(np.zeros((2, 3)), colors=np.full((2, 3), 2.0))
    with pytest.raises(BadInputError, match="normals"):
        PointCloud(np.zeros((2, 3)), normals=np.zeros((3, 3)))


def test_write_is_atomic_on_failure(tmp_path):
    target = tmp_path / "c.ply"
    with pytest.raises(BadInputError):
        write_point_cloud(np.array([[np.nan, 0, 0]]), target)
    assert list(tmp_path.iterdir()) == []
    write_point_cloud(np.ones((3, 3)), target)
    assert [p.name for p in tmp_path.iterdir()] == ["c.ply"]


def test_check_metric_units():
    rng = np.random.default_rng(1)
    pts_m = rng.uniform(-0.1, 0.1, (100, 3))
    extent = check_metric_units(pts_m)
    assert extent == pytest.approx((pts_m.max(0) - pts_m.min(0)).max())
    with pytest.raises(BadInputError, match="millimetres, multiply by 0.001"):
        check_metric_units(pts_m * 1000)
    with pytest.raises(BadInputError, match="multiply by 1000"):
        check_metric_units(pts_m * 0.001, expected_extent_m=(0.01, 1.0))
    with pytest.raises(BadInputError, match="outside"):
        check_metric_units(pts_m * 1e7)
    with pytest.raises(BadInputError):
        check_metric_units(np.zeros((0, 3)))
