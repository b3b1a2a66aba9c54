"""posekit.io.depth: back-projection convention, depth file units, validation."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from posekit.errors import BadInputError, CorruptFileError, MissingFileError, UnsupportedFormatError
from posekit.io.depth import (
    check_depth_units,
    check_intrinsics,
    depth_to_points,
    read_depth_image,
    write_depth_image,
)

K = np.array([[500.0, 0.0, 4.0], [0.0, 400.0, 3.0], [0.0, 0.0, 1.0]])


def _project(points, K):
    uvw = points @ K.T
    return uvw[:, :2] / uvw[:, 2:]


def test_back_projection_matches_projection_and_pixel_centres():
    rng = np.random.default_rng(0)
    depth = rng.uniform(0.5, 2.0, (6, 8)).astype(np.float32)
    depth[2, 5] = 0.0
    depth[4, 1] = np.nan
    pts, pix = depth_to_points(depth, K, return_pixels=True)
    assert pts.shape == (46, 3) and pts.dtype == np.float32
    # Re-projecting lands exactly on the integer pixel the depth came from (OpenCV/BOP centres).
    np.testing.assert_allclose(_project(pts.astype(np.float64), K), pix, atol=1e-4)
    np.testing.assert_allclose(pts[:, 2], depth[pix[:, 1], pix[:, 0]])
    # The principal point pixel (u=cx, v=cy) lies on the optical axis.
    i = np.flatnonzero((pix[:, 0] == 4) & (pix[:, 1] == 3))[0]
    np.testing.assert_allclose(pts[i, :2], [0.0, 0.0], atol=1e-7)
    # One worked example: pixel (u=7, v=0) at z=2 -> x = (7-4)*2/500, y = (0-3)*2/400.
    d = np.zeros((6, 8), np.float32)
    d[0, 7] = 2.0
    np.testing.assert_allclose(depth_to_points(d, K), [[0.012, -0.015, 2.0]], rtol=1e-6)


def test_skewed_intrinsics_are_inverted_exactly():
    Ks = K.copy()
    Ks[0, 1] = 3.0
    depth = np.full((6, 8), 1.5, np.float32)
    pts, pix = depth_to_points(depth, Ks, return_pixels=True)
    np.testing.assert_allclose(_project(pts.astype(np.float64), Ks), pix, atol=1e-4)


def test_organized_mask_and_range():
    depth = np.full((6, 8), 1.0, np.float32)
    depth[0, 0] = 0.0
    depth[1, 1] = 5.0
    mask = np.ones((6, 8), bool)
    mask[5, 7] = False
    org = depth_to_points(depth, K, mask=mask, organized=True, depth_range=(0.1, 3.0))
    assert org.shape == (6, 8, 3)
    invalid = np.isnan(org).any(axis=2)
    assert set(zip(*np.nonzero(invalid))) == {(0, 0), (1, 1), (5, 7)}
    flat = depth_to_points(depth, K, mask=mask.astype(np.uint8), depth_range=(0.1, 3.0))
    np.testing.assert_array_equal(flat, org[~invalid])


@pytest.mark.parametrize(
    "bad_K, msg",
    [
        (np.eye(2), "shape"),
        (np.diag([-500.0, 400.0, 1.0]), "positive focal"),
        (np.array([[500, 0, 4], [0, 400, 3], [0, 1, 1.0]]), "last row"),
        (np.full((3, 3), np.nan), "NaN"),
    ],
)
def test_bad_intrinsics(bad_K, msg):
    with pytest.raises(BadInputError, match=msg):
        depth_to_points(np.ones((2, 2), np.float32), bad_K)


def test_check_intrinsics_accepts_flat_ros_k():
    np.testing.assert_array_equal(check_intrinsics(K.reshape(-1).tolist()), K)


def test_bad_depth_and_mask():
    with pytest.raises(BadInputError, match="mm -> m"):
        depth_to_points(np.ones((4, 4), np.uint16), K)
    with pytest.raises(BadInputError, match=r"\(H, W\)"):
        depth_to_points(np.ones((4, 4, 3), np.float32), K)
    with pytest.raises(BadInputError, match="mask shape"):
        depth_to_points(np.ones((4, 4), np.float32), K, mask=np.ones((4, 5), bool))
    with pytest.raises(BadInputError, match="0 and 1"):
        depth_to_points(np.ones((4, 4), np.float32), K, mask=np.full((4, 4), 3))
    with pytest.raises(BadInputError, match="depth_range"):
        depth_to_points(np.ones((4, 4), np.float32), K, depth_range=(2.0, 1.0))


@pytest.mark.parametrize("suffix", [".png", ".tiff"])
def test_uint16_mm_file_reads_as_metres(tmp_path, suffix):
    rng = np.random.default_rng(2)
    mm = rng.integers(0, 5000, (5, 7)).astype(np.uint16)
    path = tmp_path / f"d{suffix}"
    assert cv2.imwrite(str(path), mm)
    depth = read_depth_image(path)
    assert depth.dtype == np.float32 and depth.shape == (5, 7)
    np.testing.assert_allclose(depth, mm / 1000.0, rtol=1e-6)
    # BOP depth_scale: mm per stored unit.
    np.testing.assert_allclose(read_depth_image(path, depth_scale=0.1), mm / 10000.0, rtol=1e-6)


def test_float_tiff_is_metres_and_invalid_becomes_zero(tmp_path):
    d = np.array([[0.5, np.nan], [-1.0, 2.25]], np.float32)
    path = tmp_path / "f.tiff"
    assert cv2.imwrite(str(path), d)
    np.testing.assert_array_equal(read_depth_image(path), [[0.5, 0.0], [0.0, 2.25]])
    with pytest.raises(BadInputError, match="16-bit images only"):
        read_depth_image(path, depth_scale=0.1)


def test_write_then_read_roundtrip(tmp_path):
    d = np.array([[0.0, 1.2345], [np.nan, 3.0]], np.float32)
    path = write_depth_image(d, tmp_path / "w.png", depth_scale=0.1)
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert raw.dtype == np.uint16
    np.testing.assert_array_equal(raw, [[0, 12345], [0, 30000]])
    np.testing.assert_allclose(
        read_depth_image(path, depth_scale=0.1), [[0, 1.2345], [0, 3.0]], atol=1e-6
    )
    with pytest.raises(BadInputError, match="does not fit 16 bits"):
        write_depth_image(np.full((2, 2), 70.0, np.float32), tmp_path / "far.png")
    assert not (tmp_path / "far.png").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.png"]


def test_bad_depth_files(tmp_path):
    with pytest.raises(MissingFileError):
        read_depth_image(tmp_path / "none.png")
    (tmp_path / "d.jpg").write_bytes(b"x")
    with pytest.raises(UnsupportedFormatError):
        read_depth_image(tmp_path / "d.jpg")
    (tmp_path / "junk.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(CorruptFileError):
        read_depth_image(tmp_path / "junk.png")
    cv2.imwrite(str(tmp_path / "rgb.png"), np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(BadInputError, match="colour image"):
        read_depth_image(tmp_path / "rgb.png")
    cv2.imwrite(str(tmp_path / "gray8.png"), np.zeros((4, 4), np.uint8))
    with pytest.raises(UnsupportedFormatError, match="uint8"):
        read_depth_image(tmp_path / "gray8.png")


def test_check_depth_units():
    rng = np.random.default_rng(5)
    metres = rng.uniform(0.6, 1.8, (10, 10)).astype(np.float32)
    metres[0, :5] = 0.0
    median = check_depth_units(metres)
    assert median == pytest.approx(np.median(metres[metres > 0]))
    assert check_depth_units(metres * 1000, expected="mm") == pytest.approx(median * 1000, rel=1e-5)
    with pytest.raises(BadInputError, match="looks like millimetres, multiply by 0.001"):
        check_depth_units(metres * 1000)
    with pytest.raises(BadInputError, match="looks like metres, multiply by 1000"):
        check_depth_units(metres, expected="mm")
    with pytest.raises(BadInputError, match="no valid"):
        check_depth_units(np.zeros((3, 3)))
    with pytest.raises(BadInputError, match="plausible"):
        check_depth_units(metres * 1e6)
