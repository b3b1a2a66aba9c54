"""Readers refuse what they cannot read exactly (issue 14): PCD, PLY, NPY, units, outliers, paths."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from posekit.errors import BadInputError, CorruptFileError, UnitsWarning, UnsupportedFormatError
from posekit.io.mesh import Mesh, points_diameter, read_mesh, write_mesh
from posekit.io.pcd import lzf_decompress, read_pcd_header
from posekit.io.pointcloud import PointCloud, read_point_cloud, write_point_cloud
from posekit.validation import MAX_PLAUSIBLE_COORDINATE_M, check_points

RNG = np.random.default_rng(0)
POINTS = RNG.random((40, 3)) * 0.2 + [0.0, 0.0, 0.8]


def pcd_bytes(data: str, payload: bytes, fields="x y z", size="4 4 4", typ="F F F", count="1 1 1",
              n=40, points=None) -> bytes:
    header = (f"# .PCD v0.7\nVERSION 0.7\nFIELDS {fields}\nSIZE {size}\nTYPE {typ}\nCOUNT {count}\n"
              f"WIDTH {n}\nHEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS {n if points is None else points}\n"
              f"DATA {data}\n")
    return header.encode() + payload


def lzf_literals(raw: bytes) -> bytes:
    """A valid LZF stream made of literal runs only (at most 32 bytes each)."""
    out = bytearray()
    for i in range(0, len(raw), 32):
        chunk = raw[i:i + 32]
        out += bytes([len(chunk) - 1]) + chunk
    return bytes(out)


def compressed_payload(columns: list[np.ndarray]) -> bytes:
    raw = b"".join(c.tobytes() for c in columns)  # PCD stores field after field
    packed = lzf_literals(raw)
    return np.array([len(packed), len(raw)], "<u4").tobytes() + packed


@pytest.mark.parametrize("kind", ["ascii", "binary", "binary_compressed"])
@pytest.mark.parametrize("dtype", ["<f4", "<f8"])
def test_pcd_of_every_data_kind_and_float_size_reads_exactly(tmp_path, kind, dtype):
    pts = POINTS.astype(dtype)
    size = str(np.dtype(dtype).itemsize)
    if kind == "ascii":
        payload = "\n".join(" ".join(repr(float(v)) for v in p) for p in pts).encode() + b"\n"
    elif kind == "binary":
        payload = pts.tobytes()
    else:
        payload = compressed_payload([np.ascontiguousarray(pts[:, i]) for i in range(3)])
    path = tmp_path / "c.pcd"
    path.write_bytes(pcd_bytes(kind, payload, size=" ".join([size] * 3)))
    cloud = read_point_cloud(path)
    np.testing.assert_allclose(cloud.points, pts.astype(np.float32), rtol=0, atol=0)


def test_pcd_packed_colours_and_extra_fields(tmp_path):
    rgb = RNG.integers(0, 256, (40, 3))
    packed = (rgb[:, 0] << 16 | rgb[:, 1] << 8 | rgb[:, 2]).astype("<u4")
    rec = np.zeros(40, dtype=[("x", "<f8"), ("y", "<f8"), ("z", "<f8"), ("intensity", "<u2"),
                              ("rgb", "<f4")])
    for i, a in enumerate("xyz"):
        rec[a] = POINTS[:, i]
    rec["intensity"] = 7
    rec["rgb"] = packed.view("<f4")
    path = tmp_path / "c.pcd"
    path.write_bytes(pcd_bytes("binary", rec.tobytes(), fields="x y z intensity rgb", size="8 8 8 2 4",
                               typ="F F F U F", count="1 1 1 1 1"))
    cloud = read_point_cloud(path)
    np.testing.assert_allclose(cloud.points, POINTS.astype(np.float32))
    np.testing.assert_allclose(cloud.colors * 255, rgb, atol=1e-3)


def test_pcd_written_by_open3d_compressed(tmp_path):
    import open3d as o3d

    pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(POINTS))
    pc.colors = o3d.utility.Vector3dVector(RNG.random((40, 3)))
    o3d.io.write_point_cloud(str(tmp_path / "c.pcd"), pc, compressed=True)
    assert read_pcd_header(tmp_path / "c.pcd").data == "binary_compressed"
    cloud = read_point_cloud(tmp_path / "c.pcd")
    np.testing.assert_allclose(cloud.points, POINTS.astype(np.float32))
    np.testing.assert_allclose(cloud.colors, np.asarray(pc.colors), atol=1 / 255)


def test_lzf_back_references():
    # "abc" literal, then a back reference of length 6 at distance 3 (overlapping copy).
    stream = bytes([2]) + b"abc" + bytes([(4 << 5) | 0, 2])
    assert lzf_decompress(stream, 9) == b"abcabcabc"
    with pytest.raises(ValueError):
        lzf_decompress(stream, 10)  # another size than announced
    with pytest.raises(ValueError):
        lzf_decompress(bytes([(1 << 5), 9]), 3)  # reference before the start


BAD_PCDS = [
    ("garbage-ascii", pcd_bytes("ascii", b"abc def ghi\n" * 40), CorruptFileError, "not a number"),
    ("short-ascii-lines", pcd_bytes("ascii", b"1 2\n" * 40), CorruptFileError, "3 numbers"),
    ("truncated-ascii", pcd_bytes("ascii", b"1 2 3\n" * 20), CorruptFileError, "only 20"),
    ("unknown-data", pcd_bytes("binary_weird", POINTS.astype("<f4").tobytes()), UnsupportedFormatError,
     "binary_weird"),
    ("truncated-binary", pcd_bytes("binary", POINTS.astype("<f4").tobytes()[:300]), CorruptFileError,
     "truncated"),
    ("compressed-wrong-size", pcd_bytes("binary_compressed", np.array([5, 99], "<u4").tobytes() + b"\x04abcde"),
     CorruptFileError, "need 480"),
    ("compressed-truncated", pcd_bytes("binary_compressed", compressed_payload(
        [np.ascontiguousarray(POINTS[:, i].astype("<f4")) for i in range(3)])[:200]), CorruptFileError, "truncated"),
    ("no-data-line", b"# .PCD\nFIELDS x y z\n", CorruptFileError, "DATA"),
    ("size-type-mismatch", pcd_bytes("binary", b"", size="4 4"), CorruptFileError, "SIZE"),
    ("float16", pcd_bytes("binary", b"", size="2 2 2"), UnsupportedFormatError, "SIZE 2"),
    ("no-z", pcd_bytes("binary", b"", fields="x y w"), UnsupportedFormatError, "'z'"),
    ("points-vs-width", pcd_bytes("binary", POINTS.astype("<f4").tobytes(), points=41), CorruptFileError,
     "WIDTH"),
    ("bad-count", pcd_bytes("binary", b"", count="1 1 x"), CorruptFileError, "COUNT"),
]


@pytest.mark.parametrize("content,error,fragment", [c[1:] for c in BAD_PCDS], ids=[c[0] for c in BAD_PCDS])
def test_bad_pcd_is_refused(tmp_path, content, error, fragment):
    (tmp_path / "c.pcd").write_bytes(content)
    with pytest.raises(error, match=fragment):
        read_point_cloud(tmp_path / "c.pcd")


@pytest.mark.parametrize("ascii", [False, True], ids=["binary", "ascii"])
@pytest.mark.parametrize("what", ["mesh", "cloud"])
def test_ply_truncated_to_95_percent_is_refused(tmp_path, ascii, what):
    from posekit.data.meshes import procedural_mesh

    mesh, _ = procedural_mesh(3)
    path = tmp_path / "m.ply"
    if what == "mesh":
        write_mesh(mesh, path, ascii=ascii)
    else:
        write_point_cloud(mesh.vertices.astype(np.float32), path, ascii=ascii)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.95)])
    with pytest.raises(CorruptFileError, match="truncated|parsed"):
        read_mesh(path) if what == "mesh" else read_point_cloud(path)


def test_transposed_npy_is_refused(tmp_path):
    np.save(tmp_path / "t.npy", POINTS.T)
    with pytest.raises(BadInputError, match="transposed"):
        read_point_cloud(tmp_path / "t.npy")
    np.save(tmp_path / "ok.npy", POINTS)
    assert len(read_point_cloud(tmp_path / "ok.npy")) == 40


def test_cloud_in_millimetres_warns(tmp_path):
    np.save(tmp_path / "mm.npy", POINTS * 1000 * 0.5)  # 100 "m" across: millimetres
    with pytest.warns(UnitsWarning, match="scale=0.001"):
        read_point_cloud(tmp_path / "mm.npy")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnitsWarning)
        read_point_cloud(tmp_path / "mm.npy", scale=0.001)  # converted: no warning
        np.save(tmp_path / "m.npy", POINTS)
        read_point_cloud(tmp_path / "m.npy")


@pytest.mark.parametrize("outlier", [1e30, -1e30, np.nan, np.inf, 2 * MAX_PLAUSIBLE_COORDINATE_M])
def test_outliers_are_dropped_or_refused(tmp_path, outlier):
    pts = POINTS.copy()
    pts[::5, 1] = outlier  # 8 of 40 points
    np.save(tmp_path / "o.npy", pts)
    cloud = read_point_cloud(tmp_path / "o.npy")
    assert cloud.dropped_invalid == 8 and len(cloud) == 32
    assert np.abs(cloud.points).max() < 10
    with pytest.raises(BadInputError, match="8 of 40"):
        read_point_cloud(tmp_path / "o.npy", drop_invalid=False)
    with pytest.raises(BadInputError):
        PointCloud(pts)
    with pytest.raises(BadInputError):
        check_points(pts)


@pytest.mark.parametrize("bad", [None, 3, 2.5, b"cloud.ply", ["a.ply"], "", np.zeros(3)])
def test_non_path_arguments_to_readers(bad):
    from posekit.config import load_config
    from posekit.data.scenes import SceneConfig
    from posekit.io import bop, depth, rosbag, weights

    readers = [read_point_cloud, read_mesh, depth.read_depth_image, weights.load_weights,
               weights.load_npz, weights.load_pickle, bop.load_json, bop.read_results_csv,
               bop.BopDataset, rosbag.list_topics]
    if bad is not None:  # load_config(cls, None) means: the defaults
        readers.append(lambda p: load_config(SceneConfig, p))
    for reader in readers:
        with pytest.raises(BadInputError, match="path|name"):
            reader(bad)


def test_diameter_is_exact_and_computed_once(monkeypatch):
    from itertools import combinations

    import posekit.io.mesh as mesh_module

    pts = RNG.normal(size=(300, 3)) * [0.1, 0.05, 0.02]
    brute = max(np.linalg.norm(a - b) for a, b in combinations(pts, 2))
    assert points_diameter(pts) == pytest.approx(brute, rel=1e-12)
    flat = np.c_[RNG.random((50, 2)), np.zeros(50)]
    assert points_diameter(flat) == pytest.approx(
        max(np.linalg.norm(a - b) for a, b in combinations(flat, 2)), rel=1e-12)
    line = np.outer(np.linspace(0, 2, 20), [1.0, 0, 0])
    assert points_diameter(line) == pytest.approx(2.0)
    assert points_diameter(np.zeros((1, 3))) == 0.0
    calls = []
    real = mesh_module.points_diameter
    monkeypatch.setattr(mesh_module, "points_diameter", lambda p: calls.append(1) or real(p))
    mesh = Mesh(pts, [[0, 1, 2]])
    assert mesh.diameter == mesh.diameter == pytest.approx(brute)
    assert len(calls) == 1
    with pytest.raises(BadInputError):
        points_diameter(np.full((4, 3), np.nan))


def _png_header_only(width: int, height: int) -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def test_image_too_large_to_decode_is_a_posekit_error(tmp_path):
    from posekit.io.image import read_image

    path = tmp_path / "huge.png"
    path.write_bytes(_png_header_only(100_000, 100_000))
    with pytest.raises(BadInputError, match="too large"):
        read_image(path)


def test_16_bit_grey_png_is_scaled_not_clipped(tmp_path):
    import cv2

    from posekit.io.image import read_image

    grey16 = (np.arange(1024).reshape(16, 64) * 64).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "g.png"), grey16)
    image = read_image(tmp_path / "g.png")
    assert image.dtype == np.uint8 and image.shape == (16, 64)
    np.testing.assert_allclose(image, grey16 / 257.0, atol=0.5)
    assert len(np.unique(image)) > 200  # a gradient, not 0/255
    rgb = RNG.integers(0, 256, (5, 6, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "c.png"), rgb[:, :, ::-1])
    np.testing.assert_array_equal(read_image(tmp_path / "c.png"), rgb)
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(CorruptFileError):
        read_image(tmp_path / "bad.png")


def _binary_ply(faces_blob: bytes, n_faces: int = 2) -> bytes:
    vertices = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [0.5, 0.5, 1]], "<f4")
    head = (b"ply\nformat binary_little_endian 1.0\nelement vertex 5\nproperty float x\nproperty float y\n"
            b"property float z\nelement face %d\nproperty list uchar int vertex_indices\n"
            b"property list uchar float texcoord\nend_header\n" % n_faces)
    return head + vertices.tobytes() + faces_blob


def _face(indices, n_tex):
    import struct

    return (struct.pack(f"<B{len(indices)}i", len(indices), *indices)
            + struct.pack(f"<B{n_tex}f", n_tex, *range(n_tex)))


def test_binary_ply_structure_is_checked_before_open3d(tmp_path):
    path = tmp_path / "m.ply"
    path.write_bytes(_binary_ply(_face([0, 1, 2, 3], 8) + _face([0, 1, 4], 6)))  # a quad and a triangle
    assert len(read_mesh(path).faces) == 3
    path.write_bytes(_binary_ply(_face([0, 1, 2, 3], 8) + _face([0, 1, 4], 6))[:-5])
    with pytest.raises(CorruptFileError, match="truncated"):
        read_mesh(path)
    path.write_bytes(_binary_ply(_face([0, 1, 2, 9], 8) + _face([0, 1, 4], 6)))
    with pytest.raises(CorruptFileError, match="index vertex 9"):
        read_mesh(path)
    # An ASCII body under a binary header crashed open3d (segmentation fault) before the check.
    from posekit.data.meshes import procedural_mesh

    write_mesh(procedural_mesh(2)[0], path, ascii=True)
    path.write_bytes(path.read_bytes().replace(b"format ascii", b"format binary_little_endian", 1))
    with pytest.raises(CorruptFileError):
        read_mesh(path)
    with pytest.raises(CorruptFileError):
        read_point_cloud(path)
