"""Fuzz every file reader with mutated files: 0 uncaught non-posekit errors, 0 silently wrong results.

Seed files of every format posekit reads are written by posekit (or the library it wraps),
then mutated: truncated, bytes flipped (anywhere and in the header), header numbers replaced
by odd values, header tokens swapped (wrong dtypes, data kinds, fields), and arrays of wrong
dtypes and shapes. Each mutant goes through the public reader (tests/fuzzing.py classifies
the outcome). The fast slice runs in the normal suite; the full sweep is marked slow.
"""

from __future__ import annotations

import itertools
import json

import fuzzing
import numpy as np
import pytest
from fuzzing import check_cloud, check_depth, check_image, check_mesh, mutations, probe

# Warnings are part of the outcome being probed (e.g. UnitsWarning for a cloud in mm).
pytestmark = pytest.mark.filterwarnings("ignore::posekit.errors.UnitsWarning", "ignore::UserWarning")


RNG_SEED = 14
FAST = {"n_flips": 2, "n_numbers": 1, "swaps": False}
FULL = {"n_flips": 12, "n_numbers": 8, "swaps": True}

PLY_SWAPS = {b"float": (b"double", b"uchar", b"int", b"foo"),
             b"binary_little_endian": (b"binary_big_endian", b"ascii"),
             b"format ascii": (b"format binary_little_endian",),
             b"element vertex": (b"element face", b"element vertices")}
PCD_SWAPS = {b"TYPE F F F": (b"TYPE I F F", b"TYPE U F F", b"TYPE X F F"),
             b"SIZE 4 4 4": (b"SIZE 8 4 4", b"SIZE 2 4 4", b"SIZE 4 4"),
             b"DATA binary_compressed": (b"DATA binary", b"DATA ascii", b"DATA lzf"),
             b"DATA binary\n": (b"DATA ascii\n", b"DATA binary_compressed\n"),
             b"DATA ascii": (b"DATA binary", b"DATA binary_compressed"),
             b"FIELDS x y z": (b"FIELDS x y", b"FIELDS y x z", b"FIELDS x y z w"),
             b"COUNT 1 1 1": (b"COUNT 2 1 1", b"COUNT 0 1 1")}
NPY_SWAPS = {b"'<f4'": (b"'<f8'", b"'<i4'", b"'|O'", b"'<U1'", b"'>f4'", b"'<c8'", b"'|b1'", b"'<f2'"),
             b"False": (b"True",)}


def _header_end(kind: str, data: bytes) -> int:
    if kind == "ply":
        return data.find(b"end_header") + len(b"end_header\n")
    if kind == "pcd":
        i = data.find(b"\nDATA")
        return data.find(b"\n", i + 1) + 1
    if kind == "npy":
        return 10 + int.from_bytes(data[8:10], "little")
    if kind in ("png",):
        return 33
    return min(len(data), 512)


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    """{name: (path, kind)} of small valid files of every format."""
    import cv2
    import open3d as o3d
    import torch

    from posekit.data.meshes import procedural_mesh
    from posekit.io import bop
    from posekit.io.mesh import write_mesh
    from posekit.io.pointcloud import PointCloud, write_point_cloud
    from posekit.io.weights import save_weights

    d = tmp_path_factory.mktemp("seeds")
    rng = np.random.default_rng(0)
    pts = (rng.random((60, 3)) * 0.2 + [0, 0, 0.8]).astype(np.float32)
    cloud = PointCloud(pts, colors=rng.random((60, 3)).astype(np.float32),
                       normals=np.tile([0, 0, 1.0], (60, 1)).astype(np.float32))
    out = {}
    out["cloud.ply"] = (write_point_cloud(cloud, d / "cloud.ply"), "ply")
    out["cloud_ascii.ply"] = (write_point_cloud(cloud, d / "cloud_ascii.ply", ascii=True), "ply")
    out["cloud_binary.pcd"] = (write_point_cloud(cloud, d / "cloud_binary.pcd"), "pcd")
    out["cloud_ascii.pcd"] = (write_point_cloud(cloud, d / "cloud_ascii.pcd", ascii=True), "pcd")
    o3d.io.write_point_cloud(str(d / "cloud_lzf.pcd"), cloud.to_open3d(), compressed=True)
    out["cloud_lzf.pcd"] = (d / "cloud_lzf.pcd", "pcd")
    out["cloud.xyz"] = (write_point_cloud(cloud, d / "cloud.xyz"), "xyz")
    out["cloud.npy"] = (write_point_cloud(cloud, d / "cloud.npy"), "npy")
    out["cloud.npz"] = (write_point_cloud(cloud, d / "cloud.npz"), "npz")
    mesh, _ = procedural_mesh(2)
    for name in ("mesh.ply", "mesh_ascii.ply", "mesh.obj", "mesh.stl", "mesh.off"):
        path = d / name.replace("_ascii", "")
        if "ascii" in name:
            path = d / "mesh_ascii.ply"
        out[name] = (write_mesh(mesh, path, ascii="ascii" in name), "ply" if name.endswith(".ply") else "text")
    depth = (rng.uniform(0.5, 2.0, (24, 32)) * 1000).astype(np.uint16)
    cv2.imwrite(str(d / "depth.png"), depth)
    out["depth.png"] = (d / "depth.png", "png")
    cv2.imwrite(str(d / "depth.tif"), depth)
    out["depth.tif"] = (d / "depth.tif", "bin")
    rgb = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    cv2.imwrite(str(d / "image.png"), rgb)
    out["image.png"] = (d / "image.png", "png")
    cv2.imwrite(str(d / "image.jpg"), rgb)
    out["image.jpg"] = (d / "image.jpg", "bin")
    T = np.eye(4)
    T[:3, 3] = (0.01, 0.02, 0.7)
    bop.write_scene_gt(d / "scene_gt.json", {0: [bop.BopGt(1, T)], 1: [bop.BopGt(2, T)]})
    bop.write_scene_camera(d / "scene_camera.json", {0: bop.SceneCamera(np.array(
        [[500.0, 0, 16], [0, 500, 12], [0, 0, 1]]), 1.0, T)})
    bop.write_scene_gt_info(d / "scene_gt_info.json", {0: [bop.BopGtInfo([1, 2, 3, 4], [1, 2, 3, 3], 12, 10, 9, 0.75)]})
    bop.write_models_info(d / "models_info.json", {1: bop.ModelInfo.from_mesh(mesh)})
    bop.write_camera(d / "camera.json", np.array([[500.0, 0, 16], [0, 500, 12], [0, 0, 1]]), 32, 24)
    bop.write_test_targets(d / "test_targets.json", [bop.BopTarget(1, 0, 1, 1)])
    bop.write_results_csv(d / "results.csv", [bop.PoseEstimate(1, 0, 1, 0.9, T[:3, :3], T[:3, 3], 0.1)])
    for name in ("scene_gt.json", "scene_camera.json", "scene_gt_info.json", "models_info.json",
                 "camera.json", "test_targets.json"):
        out[name] = (d / name, "json")
    out["results.csv"] = (d / "results.csv", "text")
    save_weights({"w": torch.arange(12, dtype=torch.float32).reshape(3, 4), "b": torch.zeros(3)},
                 d / "weights.pt", metadata={"engine": "test", "config": {"a": 1}})
    out["weights.pt"] = (d / "weights.pt", "bin")
    np.savez(d / "arrays.npz", v=np.ones((4, 3)), f=np.arange(6).reshape(2, 3))
    out["arrays.npz"] = (d / "arrays.npz", "bin")
    return out


def _readers():
    """{seed name: (fuzz kind, reader(path), check)}."""
    from posekit.io import bop, weights
    from posekit.io.depth import read_depth_image
    from posekit.io.image import read_image
    from posekit.io.mesh import read_mesh
    from posekit.io.pointcloud import read_point_cloud

    cloud = ("point cloud", read_point_cloud, check_cloud)
    mesh = ("mesh", read_mesh, check_mesh)
    return {
        "cloud.ply": cloud, "cloud_ascii.ply": cloud, "cloud_binary.pcd": cloud, "cloud_ascii.pcd": cloud,
        "cloud_lzf.pcd": cloud, "cloud.xyz": cloud, "cloud.npy": cloud, "cloud.npz": cloud,
        "mesh.ply": mesh, "mesh_ascii.ply": mesh, "mesh.obj": mesh, "mesh.stl": mesh, "mesh.off": mesh,
        "depth.png": ("depth image", read_depth_image, check_depth),
        "depth.tif": ("depth image", read_depth_image, check_depth),
        "image.png": ("image", read_image, check_image),
        "image.jpg": ("image", read_image, check_image),
        "scene_gt.json": ("bop json", bop.read_scene_gt, None),
        "scene_camera.json": ("bop json", bop.read_scene_camera, None),
        "scene_gt_info.json": ("bop json", bop.read_scene_gt_info, None),
        "models_info.json": ("bop json", bop.read_models_info, None),
        "camera.json": ("bop json", bop.read_camera, None),
        "test_targets.json": ("bop json", bop.read_test_targets, None),
        "results.csv": ("bop results csv", bop.read_results_csv, None),
        "weights.pt": ("weights", weights.load_weights, None),
        "arrays.npz": ("weights", weights.load_npz, None),
    }


READERS = _readers()


def _fuzz_file(seeds, tmp_path, name, settings, rng) -> str:
    path, kind = seeds[name]
    fuzz_kind, reader, check = READERS[name]
    data = path.read_bytes()
    swaps = {"ply": PLY_SWAPS, "pcd": PCD_SWAPS, "npy": NPY_SWAPS}.get(kind) if settings["swaps"] else None
    variants = mutations(data, _header_end(kind, data), rng, settings["n_flips"], settings["n_numbers"], swaps)
    if not settings["swaps"]:
        variants = [v for v in variants if not v[0].startswith("truncate") or v[0] in
                    ("truncate 50%", "truncate 95%", "truncate -1 byte")]
    for i, (label, content) in enumerate(variants):
        target = tmp_path / f"m{i}{path.suffix}"
        target.write_bytes(content)
        probe(fuzz_kind, f"{name} {label}", lambda t=target: reader(t), check)
    return fuzz_kind


def _assert_no_failures(kinds):
    found = [f"[{k}] {f}" for k in sorted(set(kinds)) for f in fuzzing.failures(k)]
    assert found == [], "fuzzing found uncaught or silently wrong outcomes:\n" + "\n".join(found[:40])


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", sorted(READERS))
def test_fuzz_reader_fast(seeds, tmp_path, name):
    kind = _fuzz_file(seeds, tmp_path, name, FAST, np.random.default_rng([RNG_SEED, len(name)]))
    _assert_no_failures([kind])


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_fuzz_readers_full(seeds, tmp_path):
    kinds = []
    for j, name in enumerate(sorted(READERS)):
        sub = tmp_path / f"r{j}"
        sub.mkdir()
        kinds.append(_fuzz_file(seeds, sub, name, FULL, np.random.default_rng([RNG_SEED, j, 1])))
    _assert_no_failures(kinds)


# ----------------------------------------------------------------------------- wrong dtypes / shapes

NPY_DTYPES = ["<f2", "<f4", "<f8", ">f8", "<i1", "<i8", "<u8", "|b1", "<c8", "<U3", "|S4", "|V12", "O",
              [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]]
NPY_SHAPES = [(0, 3), (5,), (5, 2), (5, 3), (5, 3, 1), (3, 5), (1, 3), (2, 4), ()]


def _npy_cases(full: bool):
    dtypes, shapes = (NPY_DTYPES, NPY_SHAPES) if full else (NPY_DTYPES[::3], NPY_SHAPES[::2])
    return list(itertools.product(range(len(dtypes)), shapes)), dtypes


@pytest.mark.parametrize("full", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["fast", "full"])
def test_fuzz_point_cloud_arrays_of_wrong_dtypes_and_shapes(tmp_path, full):
    from posekit.io.pointcloud import PointCloud, read_point_cloud

    cases, dtypes = _npy_cases(full)
    for i, (d, shape) in enumerate(cases):
        dtype = np.dtype(dtypes[d])
        a = np.zeros(shape, dtype=dtype)
        if dtype.kind in "fiu" and a.size:
            a[...] = np.arange(a.size).reshape(shape) % 7
        path = tmp_path / f"a{i}.npy"
        np.save(path, a, allow_pickle=True)
        probe("point cloud (dtypes)", f"npy {dtype} {shape}", lambda p=path: read_point_cloud(p), check_cloud)
        np.savez(tmp_path / f"a{i}.npz", points=a) if dtype != object else np.savez(
            tmp_path / f"a{i}.npz", points=np.array([None, 1], dtype=object))
        probe("point cloud (dtypes)", f"npz {dtype} {shape}",
              lambda p=tmp_path / f"a{i}.npz": read_point_cloud(p), check_cloud)
        probe("point cloud (dtypes)", f"PointCloud {dtype} {shape}", lambda a=a: PointCloud(a), check_cloud)
    _assert_no_failures(["point cloud (dtypes)"])


@pytest.mark.parametrize("full", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["fast", "full"])
def test_fuzz_depth_images_of_wrong_dtypes(tmp_path, full):
    import cv2

    from posekit.io.depth import read_depth_image

    rng = np.random.default_rng(3)
    images = {
        "u8 grey": rng.integers(0, 256, (8, 9), dtype=np.uint8),
        "u8 rgb": rng.integers(0, 256, (8, 9, 3), dtype=np.uint8),
        "u16 rgb": rng.integers(0, 65535, (8, 9, 3), dtype=np.uint16),
        "u16 zeros": np.zeros((8, 9), np.uint16),
        "u16 metres": np.full((8, 9), 2, np.uint16),
        "u16 max": np.full((8, 9), 65535, np.uint16),
        "f32 nan": np.full((8, 9), np.nan, np.float32),
        "f32 inf": np.full((8, 9), np.inf, np.float32),
        "f32 negative": np.full((8, 9), -1.0, np.float32),
        "f32 mm": np.full((8, 9), 1500.0, np.float32),
        "f64": np.full((8, 9), 1.0, np.float64),
        "i32": np.full((8, 9), 1000, np.int32),
        "u16 1x1": np.full((1, 1), 900, np.uint16),
    }
    if not full:
        images = dict(list(images.items())[::3])
    for label, image in images.items():
        for suffix in (".png", ".tif"):
            path = tmp_path / f"{label.replace(' ', '_')}{suffix}"
            if not cv2.imwrite(str(path), image):
                continue  # a format that cannot hold this dtype
            for scale in ((1.0, 0.1, 0.0, -1.0, float("nan")) if full else (1.0, 0.0)):
                probe("depth image (dtypes)", f"{label}{suffix} scale={scale}",
                      lambda p=path, s=scale: read_depth_image(p, depth_scale=s), check_depth)
    _assert_no_failures(["depth image (dtypes)"])


JSON_VALUES = [None, "x", -1, 0, 1e308, [], {}, True, [1, 2], float("nan"), "1e999", -1e-300]


def _json_leaves(node, path=()):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _json_leaves(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _json_leaves(v, (*path, i))
    yield path


def _json_set(node, path, value):
    if not path:
        return value
    node = json.loads(json.dumps(node))
    parent = node
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    return node


def _json_delete(node, path):
    node = json.loads(json.dumps(node))
    parent = node
    for key in path[:-1]:
        parent = parent[key]
    del parent[path[-1]]
    return node


@pytest.mark.parametrize("full", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["fast", "full"])
def test_fuzz_bop_json_values(seeds, tmp_path, full):
    rng = np.random.default_rng(5)
    for name in ("scene_gt.json", "scene_camera.json", "scene_gt_info.json", "models_info.json",
                 "camera.json", "test_targets.json"):
        _, reader, _ = READERS[name]
        doc = json.loads(seeds[name][0].read_text())
        leaves = list(_json_leaves(doc))
        picks = leaves if full else [leaves[int(i)] for i in rng.integers(len(leaves), size=3)]
        for j, leaf in enumerate(picks):
            values = JSON_VALUES if full else [JSON_VALUES[int(rng.integers(len(JSON_VALUES)))]]
            variants = [(f"{leaf}={v!r}", _json_set(doc, leaf, v)) for v in values]
            if leaf:
                variants.append((f"del {leaf}", _json_delete(doc, leaf)))
            for k, (label, mutated) in enumerate(variants):
                path = tmp_path / f"{name}.{j}.{k}.json"
                path.write_text(json.dumps(mutated))
                probe("bop json (values)", f"{name} {label}", lambda p=path, r=reader: r(p))
    _assert_no_failures(["bop json (values)"])
