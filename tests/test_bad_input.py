"""Bad input gets a clear posekit error and loses nothing: a table-driven sweep of the public API.

Each case calls one public entry point with one kind of bad input (empty, NaN/inf, wrong shape,
wrong dtype, wrong units, corrupt or missing file) and names the PosekitError subclass and a
fragment of the message it must raise. Writers must leave no file and no temporary file.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from posekit import viz
from posekit.cli import main
from posekit.config import load_config
from posekit.data import meshes as procedural
from posekit.data import render
from posekit.errors import (
    BadInputError,
    CorruptFileError,
    MissingFileError,
    PosekitError,
    UnsafeFileError,
    UnsupportedFormatError,
)
from posekit.eval import pose_error as pe
from posekit.geometry import rigid_np, se3_exp, se3_log, transform_points, weighted_kabsch
from posekit.io import bop, depth, mesh, pointcloud, rosbag, weights

K = np.array([[500.0, 0, 16], [0, 500.0, 12], [0, 0, 1]])
K_ZERO_F = np.array([[0.0, 0, 16], [0, 500.0, 12], [0, 0, 1]])
R_NOT_ROT = np.diag([2.0, 1.0, 1.0])
REFLECTION = np.diag([1.0, 1.0, -1.0])
T_IN_FRONT = np.array([0.0, 0.0, 0.5])
PTS = np.random.default_rng(0).uniform(-0.05, 0.05, (20, 3))
DEPTH_M = np.full((24, 32), 0.8, np.float32)
TRI = mesh.Mesh(np.array([[0, 0, 0], [0.05, 0, 0], [0, 0.05, 0]]), [[0, 1, 2]])


def _pose(R=None, t=T_IN_FRONT):
    """4x4 with an unchecked rotation block (identity by default), for feeding bad poses."""
    R = np.eye(3) if R is None else R
    return np.block([[R, t[:, None]], [np.zeros((1, 3)), np.ones((1, 1))]])


# (id, callable, expected error class, message fragment)
ARRAY_CASES = [
    # depth images and back-projection
    ("d2p-empty", lambda: depth.depth_to_points(np.zeros((0, 0), np.float32), K), BadInputError, "empty"),
    ("d2p-1d", lambda: depth.depth_to_points(np.zeros(3, np.float32), K), BadInputError, "(H, W)"),
    ("d2p-str", lambda: depth.depth_to_points(np.array([["a"]]), K), BadInputError, "float metres"),
    ("d2p-complex", lambda: depth.depth_to_points(np.ones((2, 2), complex), K), BadInputError, "float metres"),
    ("d2p-K-zero-f", lambda: depth.depth_to_points(DEPTH_M, K_ZERO_F), BadInputError, "focal"),
    ("d2p-K-str", lambda: depth.depth_to_points(DEPTH_M, "K"), BadInputError, "3x3"),
    ("d2p-K-nan", lambda: depth.depth_to_points(DEPTH_M, np.full((3, 3), np.nan)), BadInputError, "NaN"),
    ("d2p-mm", lambda: depth.depth_to_points(DEPTH_M * 1000, K), BadInputError, "millimetres"),
    ("d2p-range-short", lambda: depth.depth_to_points(DEPTH_M, K, depth_range=(1.0,)), BadInputError, "depth_range"),
    ("depth-units-mm", lambda: depth.check_depth_units(DEPTH_M * 1000), BadInputError, "millimetres"),
    ("depth-units-m-as-mm", lambda: depth.check_depth_units(DEPTH_M, "mm"), BadInputError, "metres"),
    ("depth-units-nan", lambda: depth.check_depth_units(np.full((2, 2), np.nan)), BadInputError, "no valid"),
    # point clouds
    ("pc-empty", lambda: pointcloud.PointCloud(np.zeros((0, 3))), BadInputError, "empty"),
    ("pc-N2", lambda: pointcloud.PointCloud(np.zeros((4, 2))), BadInputError, "(N, 3)"),
    ("pc-3", lambda: pointcloud.PointCloud(np.zeros(3)), BadInputError, "(N, 3)"),
    ("pc-str", lambda: pointcloud.PointCloud(np.array([["a", "b", "c"]])), BadInputError, "real numbers"),
    ("pc-complex", lambda: pointcloud.PointCloud(np.ones((2, 3), complex)), BadInputError, "real numbers"),
    ("pc-object", lambda: pointcloud.PointCloud(np.array([[1, 2, "x"]], dtype=object)), BadInputError, "real numbers"),
    ("pc-nan", lambda: pointcloud.PointCloud(np.full((2, 3), np.nan)), BadInputError, "NaN"),
    ("pc-colors-255", lambda: pointcloud.PointCloud(np.ones((2, 3)), np.full((2, 3), 255.0)), BadInputError, "[0, 1]"),
    ("pc-scale-str", lambda: pointcloud.PointCloud(np.ones((2, 3))).scaled("a"), BadInputError, "scale"),
    ("pc-units-mm", lambda: pointcloud.check_metric_units(PTS * 3000), BadInputError, "millimetres"),
    ("pc-units-str", lambda: pointcloud.check_metric_units(np.array([["a", "b", "c"]])), BadInputError, "real numbers"),
    # numpy geometry
    ("axis-N2", lambda: rigid_np.rotation_about_axis([1, 2], 0.3), BadInputError, "(3,)"),
    ("axis-str", lambda: rigid_np.rotation_about_axis("abc", 0.3), BadInputError, "real numbers"),
    ("angle-nan", lambda: rigid_np.rotation_about_axis([0, 0, 1], np.nan), BadInputError, "NaN"),
    ("make-pose-2x2", lambda: rigid_np.make_pose(np.eye(2)), BadInputError, "(3, 3)"),
    ("make-pose-t2", lambda: rigid_np.make_pose(None, [1, 2]), BadInputError, "3 elements"),
    ("make-pose-nan", lambda: rigid_np.make_pose(np.full((3, 3), np.nan)), BadInputError, "NaN"),
    ("transform-N2", lambda: rigid_np.transform_points_np(np.ones((4, 2)), np.eye(3)), BadInputError, "(N, 3)"),
    ("project-K-zero", lambda: rigid_np.project_points_np(PTS, K_ZERO_F), BadInputError, "focal"),
    ("project-N2", lambda: rigid_np.project_points_np(np.ones((4, 2)), K), BadInputError, "(N, 3)"),
    # torch geometry: shapes only, BadInputError (a ValueError)
    ("se3-exp-5", lambda: se3_exp(torch.zeros(5)), BadInputError, "6 components"),
    ("se3-log-3x3", lambda: se3_log(torch.eye(3)), BadInputError, "4x4"),
    ("transform-torch-N2", lambda: transform_points(torch.eye(4), torch.zeros(4, 2)), BadInputError, "Nx3"),
    ("kabsch-2pts", lambda: weighted_kabsch(torch.zeros(2, 3), torch.zeros(2, 3)), BadInputError, "3 point pairs"),
    # pose errors
    ("add-pts-N2", lambda: pe.add(np.eye(3), T_IN_FRONT, np.eye(3), T_IN_FRONT, np.ones((4, 2))), BadInputError, "(N, 3)"),
    ("add-pts-empty", lambda: pe.add(np.eye(3), T_IN_FRONT, np.eye(3), T_IN_FRONT, np.zeros((0, 3))), BadInputError, "empty"),
    ("add-pts-nan", lambda: pe.add(np.eye(3), T_IN_FRONT, np.eye(3), T_IN_FRONT, np.full((4, 3), np.nan)), BadInputError, "NaN"),
    ("add-R-str", lambda: pe.add("abc", T_IN_FRONT, np.eye(3), T_IN_FRONT, PTS), BadInputError, "R_est"),
    ("add-R-not-rotation", lambda: pe.add(R_NOT_ROT, T_IN_FRONT, np.eye(3), T_IN_FRONT, PTS), BadInputError, "not a rotation"),
    ("re-reflection", lambda: pe.re(REFLECTION, np.eye(3)), BadInputError, "not a rotation"),
    ("te-shape", lambda: pe.te([1, 2], [1, 2, 3]), BadInputError, "3 elements"),
    ("mspd-K-zero", lambda: pe.mspd(np.eye(3), T_IN_FRONT, np.eye(3), T_IN_FRONT, K_ZERO_F, PTS, []), BadInputError, "focal"),
    ("mspd-K-nan", lambda: pe.mspd(np.eye(3), T_IN_FRONT, np.eye(3), T_IN_FRONT, np.full((3, 3), np.nan), PTS, []), BadInputError, "NaN"),
    ("mssd-sym-dict", lambda: pe.mssd(np.eye(3), T_IN_FRONT, np.eye(3), T_IN_FRONT, PTS, [{"R": np.eye(3)}]), BadInputError, "'t'"),
    ("mssd-sym-str", lambda: pe.mssd(np.eye(3), T_IN_FRONT, np.eye(3), T_IN_FRONT, PTS, ["ab"]), BadInputError, "symmetry 0"),
    ("dist-1d", lambda: pe.depth_to_distance(np.ones(3), K), BadInputError, "(H, W)"),
    ("vsd-no-taus", lambda: pe.vsd_from_depths(DEPTH_M, DEPTH_M, DEPTH_M, K, 0.015, [], True, 0.1), BadInputError, "taus"),
    ("vsd-delta-nan", lambda: pe.vsd_from_depths(DEPTH_M, DEPTH_M, DEPTH_M, K, np.nan, [0.1], True, 0.1), BadInputError, "delta"),
    ("vsd-depth-mm", lambda: pe.vsd_from_depths(DEPTH_M, DEPTH_M, DEPTH_M * 1000, K, 0.015, [0.1], True, 0.1), BadInputError, "millimetres"),
    ("vsd-depth-nan", lambda: pe.vsd_from_depths(DEPTH_M, DEPTH_M, np.full_like(DEPTH_M, np.nan), K, 0.015, [0.1], True, 0.1), BadInputError, "NaN"),
    # rendering and meshes
    ("render-K-zero", lambda: render.render_depth(TRI, _pose(), K_ZERO_F, 32, 24), BadInputError, "focal"),
    ("render-pose-not-rotation", lambda: render.render_depth(TRI, _pose(R_NOT_ROT), K, 32, 24), BadInputError, "not a rotation"),
    ("render-pose-3x3", lambda: render.render_depth(TRI, np.eye(3), K, 32, 24), BadInputError, "(4, 4)"),
    ("render-size-str", lambda: render.render_depth(TRI, _pose(), K, "w", 24), BadInputError, "image size"),
    ("render-no-mesh", lambda: render.render_scene([], [], K, 32, 24), BadInputError, "at least one mesh"),
    ("mesh-str", lambda: mesh.Mesh("abc", [[0, 1, 2]]), BadInputError, "real numbers"),
    ("mesh-faces-float", lambda: mesh.Mesh(np.eye(3), [[0, 1, 2.5]]), BadInputError, "integer"),
    ("mesh-faces-out", lambda: mesh.Mesh(np.eye(3), [[0, 1, 3]]), BadInputError, "do not exist"),
    ("mesh-colors-255", lambda: mesh.Mesh(np.eye(3), [[0, 1, 2]], colors=np.full((3, 3), 255.0)), BadInputError, "[0, 1]"),
    ("mesh-normals-nan", lambda: mesh.Mesh(np.eye(3), [[0, 1, 2]], normals=np.full((3, 3), np.nan)), BadInputError, "NaN"),
    ("mesh-transform-3x3", lambda: TRI.transformed(np.eye(3)), BadInputError, "(4, 4)"),
    ("mesh-sample-negative", lambda: TRI.sample_points(-1), BadInputError, "positive integer"),
    ("procedural-zero", lambda: procedural.procedural_models(0), BadInputError, "at least one"),
    ("procedural-family", lambda: procedural.procedural_mesh(0, family="nope"), BadInputError, "unknown shape family"),
    # BOP conversions
    ("bop-R8", lambda: bop.pose_from_bop([1, 0, 0, 0, 1, 0, 0, 0], [0, 0, 1]), BadInputError, "9 numbers"),
    ("bop-R-str", lambda: bop.pose_from_bop("abc", [0, 0, 1]), BadInputError, "real numbers"),
    ("bop-R-not-rotation", lambda: bop.pose_from_bop(R_NOT_ROT.ravel(), [0, 0, 500]), BadInputError, "not a rotation"),
    ("bop-to-3x3", lambda: bop.pose_to_bop(np.eye(3)), BadInputError, "(4, 4)"),
    ("bop-sym-zero-axis", lambda: bop.symmetry_transformations(
        {"symmetries_continuous": [{"axis": [0, 0, 0], "offset": [0, 0, 0]}]}), BadInputError, "axis"),
]


@pytest.mark.parametrize("call, error, fragment", [c[1:] for c in ARRAY_CASES], ids=[c[0] for c in ARRAY_CASES])
def test_array_input(call, error, fragment):
    with pytest.raises(error) as info:
        call()
    assert fragment in str(info.value)


# ----------------------------------------------------------------------------- corrupt files

_PLY_HEAD = b"ply\nformat binary_little_endian 1.0\nelement vertex 100\nproperty float x\nproperty float y\nproperty float z\nend_header\n"
_PCD_HEAD = "VERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH 10\nHEIGHT 1\nPOINTS 10\n"

# (id, file name, content, reader, error, fragment)
FILE_CASES = [
    ("ply-truncated", "a.ply", _PLY_HEAD + b"\0" * 30, pointcloud.read_point_cloud, CorruptFileError, "corrupt"),
    ("ply-garbage", "b.ply", b"\x00\x01garbage", pointcloud.read_point_cloud, CorruptFileError, "not a PLY"),
    ("pcd-ascii-truncated", "a.pcd", (_PCD_HEAD + "DATA ascii\n1 2 3\n").encode(), pointcloud.read_point_cloud,
     CorruptFileError, "only 1"),
    ("pcd-binary-truncated", "b.pcd", (_PCD_HEAD + "DATA binary\n").encode() + b"\0" * 36, pointcloud.read_point_cloud,
     CorruptFileError, "only 3"),
    ("npz-garbage", "a.npz", b"garbage!", pointcloud.read_point_cloud, CorruptFileError, "not an .npz"),
    ("npy-truncated", "a.npy", b"\x93NUMPY\x01\x00", pointcloud.read_point_cloud, CorruptFileError, "numpy"),
    ("xyz-text", "a.xyz", b"a b c\n", pointcloud.read_point_cloud, CorruptFileError, "XYZ"),
    ("cloud-suffix", "a.obj", b"v 0 0 0\n", pointcloud.read_point_cloud, UnsupportedFormatError, ".obj"),
    ("png-truncated", "a.png", b"\x89PNG\r\n\x1a\n\0\0", depth.read_depth_image, CorruptFileError, "decoded"),
    ("tiff-truncated", "a.tiff", b"II*\x00\x08\x00", depth.read_depth_image, CorruptFileError, "decoded"),
    ("png-empty", "e.png", b"", depth.read_depth_image, CorruptFileError, "decoded"),
    ("rgb-truncated", "rgb.png", b"\x89PNG\r\n", bop.read_rgb, CorruptFileError, "decoded"),
    ("mesh-truncated", "m.ply", b"ply\nformat ascii 1.0\nelement vertex 3\n", mesh.read_mesh, CorruptFileError, "truncated"),
    ("json-truncated", "scene_gt.json", b'{"0": [{"obj_id": 1', bop.read_scene_gt, CorruptFileError, "not valid JSON"),
    ("json-gt-not-list", "scene_gt.json", b'{"0": 5}', bop.read_scene_gt, CorruptFileError, "list of GT"),
    ("json-camera-zero-f", "scene_camera.json", b'{"0": {"cam_K": [0,0,1,0,0,1,0,0,1], "depth_scale": 1}}',
     bop.read_scene_camera, CorruptFileError, "focal"),
    ("json-camera-negative-scale", "scene_camera.json", b'{"0": {"cam_K": [500,0,1,0,500,1,0,0,1], "depth_scale": -1}}',
     bop.read_scene_camera, CorruptFileError, "depth_scale"),
    ("camera-zero-f", "camera.json", b'{"fx": 0, "fy": 0, "cx": 1, "cy": 1, "width": 4, "height": 4}',
     bop.read_camera, CorruptFileError, "focal"),
    ("models-info-negative", "models_info.json", b'{"1": {"diameter": -3}}', bop.read_models_info, CorruptFileError,
     "diameter"),
    ("models-info-sym", "models_info.json", b'{"1": {"diameter": 3, "symmetries_discrete": [[1, 2]]}}',
     bop.read_models_info, CorruptFileError, "malformed"),
    ("targets-not-list", "t.json", b'{"a": 1}', bop.read_test_targets, CorruptFileError, "scene_id"),
    ("csv-wrong-header", "r.csv", b"scene,im,obj,score,R,t,time\n", bop.read_results_csv, CorruptFileError, "header"),
    ("csv-3-fields", "r.csv", b"1,2,3\n", bop.read_results_csv, CorruptFileError, "7 comma-separated"),
    ("csv-R8", "r.csv", f"{bop.RESULTS_HEADER}\n1,0,1,0.9,1 0 0 0 1 0 0 0,0 0 500,-1\n".encode(),
     bop.read_results_csv, CorruptFileError, "R needs 9"),
    ("csv-non-numeric", "r.csv", f"{bop.RESULTS_HEADER}\n1,x,1,0.9,1 0 0 0 1 0 0 0 1,0 0 500,-1\n".encode(),
     bop.read_results_csv, CorruptFileError, ":2:"),
    ("csv-nan", "r.csv", f"{bop.RESULTS_HEADER}\n1,0,1,nan,1 0 0 0 1 0 0 0 1,0 0 500,-1\n".encode(),
     bop.read_results_csv, CorruptFileError, "NaN"),
    ("csv-metres", "r.csv", f"{bop.RESULTS_HEADER}\n1,0,1,0.9,1 0 0 0 1 0 0 0 1,0 0 0.5,-1\n".encode(),
     bop.read_results_csv, CorruptFileError, "metres"),
    ("csv-binary", "r.csv", b"\xff\xfe\x00garbage", bop.read_results_csv, CorruptFileError, "UTF-8"),
    ("csv-empty", "r.csv", b"", bop.read_results_csv, CorruptFileError, "empty"),
    ("npz-weights-truncated", "w.npz", b"PK\x03\x04abc", weights.load_npz, CorruptFileError, "damaged"),
    ("pt-empty", "e.pt", b"", weights.load_weights, CorruptFileError, "not a PyTorch checkpoint"),
]


@pytest.mark.parametrize("name, content, reader, error, fragment", [c[1:] for c in FILE_CASES],
                         ids=[c[0] for c in FILE_CASES])
def test_corrupt_file(tmp_path, name, content, reader, error, fragment):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(error) as info:
        reader(path)
    assert fragment in str(info.value)


def test_checkpoint_cut_in_half(tmp_path):
    path = tmp_path / "full.pt"
    weights.save_weights({"w": torch.ones(64)}, path)
    half = tmp_path / "half.pt"
    half.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CorruptFileError, match="half.pt"):
        weights.load_weights(half)


def test_pickle_npz_is_refused_not_called_corrupt(tmp_path):
    path = tmp_path / "cloud.npy"
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(UnsafeFileError):
        pointcloud.read_point_cloud(path)


def test_rosbag_folder_without_metadata(tmp_path):
    (tmp_path / "bag").mkdir()
    (tmp_path / "bag" / "bag_0.db3").write_bytes(b"SQLite format 3\x00junk")
    with pytest.raises(CorruptFileError, match="metadata.yaml"):
        rosbag.list_topics(tmp_path / "bag")
    with pytest.raises(MissingFileError):
        rosbag.list_topics(tmp_path / "nobag")


@pytest.mark.parametrize("reader, name", [
    (pointcloud.read_point_cloud, "x.ply"), (depth.read_depth_image, "d.png"), (mesh.read_mesh, "m.ply"),
    (bop.read_models_info, "models_info.json"), (bop.read_scene_gt, "scene_gt.json"),
    (bop.read_results_csv, "r.csv"), (weights.load_weights, "w.pt"),
])
def test_missing_file(tmp_path, reader, name):
    with pytest.raises(MissingFileError, match=name):
        reader(tmp_path / name)


def test_config_errors(tmp_path):
    from dataclasses import dataclass

    @dataclass
    class Cfg:
        n: int = 1

    with pytest.raises(MissingFileError):
        load_config(Cfg, tmp_path / "none.yaml")
    (tmp_path / "bad.yaml").write_text("n: [1\n")
    with pytest.raises(CorruptFileError, match="YAML"):
        load_config(Cfg, tmp_path / "bad.yaml")
    with pytest.raises(BadInputError, match="unknown key"):
        load_config(Cfg, overrides=["m=2"])
    with pytest.raises(BadInputError, match="expected int"):
        load_config(Cfg, overrides=["n=abc"])


# ----------------------------------------------------------------------------- writers leave nothing


def _est(**kw):
    base = {"scene_id": 1, "im_id": 0, "obj_id": 1, "score": 1.0, "R": np.eye(3), "t": T_IN_FRONT}
    return bop.PoseEstimate(**{**base, **kw})


WRITER_CASES = [
    ("depth-mm", "d.png", lambda p: depth.write_depth_image(DEPTH_M * 1000, p), BadInputError, "millimetres"),
    ("depth-str", "d.png", lambda p: depth.write_depth_image(np.array([["a"]]), p), BadInputError, "float"),
    ("depth-scale-str", "d.png", lambda p: depth.write_depth_image(DEPTH_M, p, depth_scale="a"), BadInputError,
     "depth_scale"),
    ("bop-depth-nan", "d.png", lambda p: bop.write_depth(p, np.full((2, 2), np.nan)), BadInputError, "NaN"),
    ("bop-depth-str", "d.png", lambda p: bop.write_depth(p, np.array([["a"]])), BadInputError, "real numbers"),
    ("rgb-float", "r.png", lambda p: bop.write_rgb(p, np.ones((2, 2, 3))), BadInputError, "uint8"),
    ("rgb-empty", "r.png", lambda p: bop.write_rgb(p, np.zeros((0, 0, 3), np.uint8)), BadInputError, "empty"),
    ("rgb-suffix", "r.foo", lambda p: bop.write_rgb(p, np.zeros((2, 2, 3), np.uint8)), BadInputError, ".foo"),
    ("mask-str", "m.png", lambda p: bop.write_mask(p, np.array([["a", "b"]])), BadInputError, "dtype"),
    ("mask-empty", "m.png", lambda p: bop.write_mask(p, np.zeros((0, 0), bool)), BadInputError, "empty"),
    ("camera-K-zero", "c.json", lambda p: bop.write_camera(p, K_ZERO_F, 4, 4), BadInputError, "focal"),
    ("camera-K-str", "c.json", lambda p: bop.write_camera(p, "K", 4, 4), BadInputError, "3x3"),
    ("json-nan", "n.json", lambda p: bop.save_json(p, {1: float("nan")}), BadInputError, "JSON"),
    ("json-object", "n.json", lambda p: bop.save_json(p, {1: object()}), BadInputError, "JSON"),
    ("gt-not-rotation", "gt.json", lambda p: bop.write_scene_gt(p, {0: [bop.BopGt(1, _pose(R_NOT_ROT))]}),
     BadInputError, "not a rotation"),
    ("csv-R-2x2", "r.csv", lambda p: bop.write_results_csv(p, [_est(), _est(R=np.eye(2))]), BadInputError, "(3, 3)"),
    ("csv-R-not-rotation", "r.csv", lambda p: bop.write_results_csv(p, [_est(R=R_NOT_ROT)]), BadInputError,
     "not a rotation"),
    ("csv-t-mm", "r.csv", lambda p: bop.write_results_csv(p, [_est(t=np.array([0, 0, 800.0]))]), BadInputError,
     "millimetres"),
    ("csv-score-str", "r.csv", lambda p: bop.write_results_csv(p, [_est(score="x")]), BadInputError, "score"),
    ("csv-time-nan", "r.csv", lambda p: bop.write_results_csv(p, [_est(time=float("nan"))]), BadInputError, "time"),
    ("csv-id-float", "r.csv", lambda p: bop.write_results_csv(p, [_est(im_id=1.5)]), BadInputError, "im_id"),
    ("cloud-empty", "c.ply", lambda p: pointcloud.write_point_cloud(np.zeros((0, 3)), p), BadInputError, "empty"),
    ("cloud-nan", "c.pcd", lambda p: pointcloud.write_point_cloud(np.full((2, 3), np.nan), p), BadInputError, "NaN"),
    ("cloud-suffix", "c.foo", lambda p: pointcloud.write_point_cloud(np.ones((2, 3)), p), UnsupportedFormatError,
     ".foo"),
    ("mesh-suffix", "m.foo", lambda p: mesh.write_mesh(TRI, p), UnsupportedFormatError, ".foo"),
    ("mesh-scale-nan", "m.ply", lambda p: mesh.write_mesh(TRI, p, scale=np.nan), BadInputError, "positive number"),
    ("weights-object", "w.pt", lambda p: weights.save_weights({"a": object()}, p), BadInputError, "pickle"),
    ("weights-list", "w.pt", lambda p: weights.save_weights([1], p), BadInputError, "dict"),
]


@pytest.mark.parametrize("name, write, error, fragment", [c[1:] for c in WRITER_CASES],
                         ids=[c[0] for c in WRITER_CASES])
def test_writer_leaves_nothing(tmp_path, name, write, error, fragment):
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(error) as info:
        write(out / name)
    assert fragment in str(info.value)
    assert list(out.iterdir()) == []


def test_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "r.csv"
    bop.write_results_csv(path, [_est()])
    before = path.read_bytes()
    with pytest.raises(BadInputError):
        bop.write_results_csv(path, [_est(R=R_NOT_ROT)])
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.csv"]


def test_viz_rejects_bad_intrinsics():
    img = np.zeros((24, 32, 3), np.uint8)
    with pytest.raises(BadInputError, match="focal"):
        viz.draw_model_silhouette(img, PTS, K_ZERO_F, _pose())


def test_every_error_is_a_posekit_error():
    for _, call, error, _ in ARRAY_CASES[:5]:
        with pytest.raises(PosekitError):
            call()
        assert issubclass(error, PosekitError)


# ----------------------------------------------------------------------------- CLI


def _dataset(tmp_path):
    root = tmp_path / "ds"
    (root / "test" / "000001").mkdir(parents=True)
    (root / "models").mkdir()
    return root


CLI_CASES = [
    ("synth-missing-models", lambda d: ["synth", "bop", "--models", str(d / "nope"), "--out", str(d / "o")], 1,
     "models_info.json"),
    ("synth-negative-images", lambda d: ["synth", "bop", "--models", "procedural", "--out", str(d / "o"),
                                         "--images", "-1", "--quiet"], 1, "image"),
    ("synth-zero-width", lambda d: ["synth", "bop", "--models", "procedural", "--out", str(d / "o"),
                                    "--width", "0", "--images", "1", "--quiet"], 1, "width must be"),
    ("synth-three-counts", lambda d: ["synth", "bop", "--models", "procedural", "--out", str(d / "o"),
                                      "--objects-per-scene", "1", "2", "3", "--quiet"], 1, "objects-per-scene"),
    ("synth-zero-objects", lambda d: ["synth", "bop", "--models", "procedural", "--out", str(d / "o"),
                                      "--procedural-objects", "0", "--images", "1", "--quiet"], 1, "at least one"),
    ("synth-images-not-int", lambda d: ["synth", "bop", "--models", "procedural", "--out", str(d / "o"),
                                        "--images", "many"], 2, "invalid int"),
    ("eval-missing-dataset", lambda d: ["eval", "bop", "--dataset", str(d / "nope"), "--results", str(d / "r.csv")], 1,
     "not found"),
    ("eval-missing-results", lambda d: ["eval", "bop", "--dataset", str(_dataset(d)), "--results",
                                        str(d / "r.csv")], 1, "results file not found"),
    ("eval-binary-results", lambda d: ["eval", "bop", "--dataset", str(_dataset(d)), "--results",
                                       str(_write(d / "r.csv", b"\xff\xfe\x00"))], 1, "UTF-8"),
    ("eval-R8", lambda d: ["eval", "bop", "--dataset", str(_dataset(d)), "--results",
                           str(_write(d / "r.csv", f"{bop.RESULTS_HEADER}\n1,0,1,1,1 0 0 0 1 0 0 0,0 0 9,-1\n"
                                      .encode()))], 1, "R needs 9"),
    ("eval-bad-split", lambda d: ["eval", "bop", "--dataset", str(_dataset(d)), "--results", str(d / "r.csv"),
                                  "--split", "../../elsewhere"], 1, "split"),
    ("eval-no-dataset-arg", lambda d: ["eval", "bop", "--results", "r.csv"], 2, "--dataset"),
]


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("make_argv, code, fragment", [c[1:] for c in CLI_CASES], ids=[c[0] for c in CLI_CASES])
def test_cli_bad_arguments(tmp_path, capsys, make_argv, code, fragment):
    argv = make_argv(tmp_path)
    if code == 2:
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2
    else:
        assert main(argv) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert fragment in lines[-1]
    if code == 1:
        assert len(lines) == 1 and lines[0].startswith("posekit ")
    # A failed synth run writes no file (it may leave the empty output folder it created).
    assert not [p for p in (tmp_path / "o").rglob("*") if p.is_file()]
