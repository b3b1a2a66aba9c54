"""``posekit register`` on real files on disk, every input path: a 16-bit depth PNG in mm with
K or a camera JSON, a mask PNG, a box, nothing (scene search), a scene cloud, an observed cloud;
and every model file type through the one model loader."""

from __future__ import annotations

import json

import numpy as np
import pytest

from posekit.cli import main
from posekit.data.meshes import procedural_mesh
from posekit.data.render import render_scene
from posekit.data.scenes import default_intrinsics
from posekit.geometry.rigid_np import make_pose, rotation_about_axis
from posekit.io.bop import write_camera, write_depth, write_mask
from posekit.io.depth import depth_to_points
from posekit.io.mesh import Mesh, read_object_model, write_mesh
from posekit.io.pointcloud import PointCloud, write_point_cloud

W, H = 320, 240
K = default_intrinsics(W, H)


def _adds(T_est, T_gt, pts):
    from scipy.spatial import cKDTree

    return float(cKDTree(pts @ T_gt[:3, :3].T + T_gt[:3, 3]).query(pts @ T_est[:3, :3].T + T_est[:3, 3])[0].mean())


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """A box-like object standing on a table, with a second object touching it, written as a
    Kinect-style depth PNG (mm), a mask PNG and a camera JSON."""
    root = tmp_path_factory.mktemp("register_files")
    mesh, info = procedural_mesh(424_242, family="box", diameter_range=(0.12, 0.15))
    other, _ = procedural_mesh(424_243, family="can", diameter_range=(0.10, 0.12))
    R = rotation_about_axis([0.3, 1.0, 0.1], 2.2)
    T = make_pose(R, np.array([0.0, 0.02, 0.7]) - R @ mesh.vertices.mean(0))
    T_other = make_pose(np.eye(3), [0.11, 0.03, 0.72])
    h = 1.0
    table = Mesh(np.array([[-h, -h, 0], [h, -h, 0], [h, h, 0], [-h, h, 0]], float), np.array([[0, 1, 2], [0, 2, 3]]))
    T_table = make_pose(rotation_about_axis([1.0, 0.0, 0.0], np.pi * 0.95), [0, 0.05, 0.8])
    res = render_scene([mesh, other, table], [T, T_other, T_table], K, W, H)
    write_depth(root / "depth.png", res.depth)  # uint16 millimetres, as a Kinect writes
    write_mask(root / "mask.png", res.visible_mask(0))
    write_camera(root / "camera.json", K, W, H, depth_scale=1.0)
    write_mesh(mesh, root / "model.ply")
    pts = mesh.sample_points(3000, seed=1)
    write_point_cloud(PointCloud(pts.astype(np.float32)), root / "model_cloud.ply")
    write_point_cloud(PointCloud(pts.astype(np.float32)), root / "model.pcd")
    np.save(root / "model.npy", pts.astype(np.float32))
    obs = depth_to_points(res.depth, K, mask=res.visible_mask(0))
    write_point_cloud(PointCloud(obs), root / "observed.pcd")
    write_point_cloud(PointCloud(depth_to_points(res.depth, K)), root / "scene.ply")
    rows, cols = np.nonzero(res.visible_mask(0))
    bbox = [cols.min() - 8, rows.min() - 8, cols.max() + 8, rows.max() + 8]
    return root, T, mesh.sample_points(400, seed=2), info.diameter, bbox


@pytest.mark.parametrize("inputs", [
    ["--depth", "{r}/depth.png", "--K", "{fx}", "{fy}", "{cx}", "{cy}", "--mask", "{r}/mask.png"],
    ["--depth", "{r}/depth.png", "--camera", "{r}/camera.json", "--mask", "{r}/mask.png"],
    ["--depth", "{r}/depth.png", "--camera", "{r}/camera.json", "--bbox", "{b0}", "{b1}", "{b2}", "{b3}"],
    ["--depth", "{r}/depth.png", "--camera", "{r}/camera.json"],
    ["--observed", "{r}/observed.pcd"],
    ["--scene", "{r}/scene.ply"],
], ids=["depth+K+mask", "depth+camera+mask", "depth+bbox", "depth-only", "observed", "scene"])
def test_every_input_path_runs_on_files_and_finds_the_pose(scene, tmp_path, inputs, capsys):
    root, T, pts, diameter, bbox = scene
    fmt = {"r": root, "fx": K[0, 0], "fy": K[1, 1], "cx": K[0, 2], "cy": K[1, 2],
           **{f"b{i}": v for i, v in enumerate(bbox)}}
    argv = ["register", "--model", str(root / "model.ply"), *[a.format(**fmt) for a in inputs],
            "--out", str(tmp_path / "pose.json"), "--png", str(tmp_path / "overlay.png")]
    assert main(argv) == 0, capsys.readouterr()
    out = json.loads((tmp_path / "pose.json").read_text())
    T_est = np.eye(4)
    T_est[:3, :3], T_est[:3, 3] = out["R"], out["t"]
    assert _adds(T_est, T, pts) < 0.1 * diameter, out
    assert 0.3 < out["score"] < 1.0 and set(out["score_terms"]) == {"coverage", "support", "violations"}
    assert (tmp_path / "overlay.png").read_bytes()[:4] == b"\x89PNG"


def test_depth_scale_means_millimetres_per_unit(scene, tmp_path, capsys):
    root, *_ = scene
    # the PNG is in mm: declaring 0.1 mm per unit makes the scene 10x too near: refused or far off
    rc = main(["register", "--model", str(root / "model.ply"), "--depth", str(root / "depth.png"), "--camera",
               str(root / "camera.json"), "--mask", str(root / "mask.png"), "--depth-scale", "0.1",
               "--out", str(tmp_path / "p.json")])
    out = capsys.readouterr()
    assert rc != 0 or json.loads((tmp_path / "p.json").read_text())["score"] < 0.3, out


@pytest.mark.parametrize("name", ["model.ply", "model_cloud.ply", "model.pcd", "model.npy"])
def test_one_model_loader_for_every_file_type(scene, name):
    from posekit.registration.estimator import ObjectPoseEstimator

    root, *_ , diameter, _ = scene
    model = read_object_model(root / name)
    assert isinstance(model, Mesh) == (name == "model.ply")
    est = ObjectPoseEstimator.from_pretrained("registration-procedural")
    prepared = est.prepare_model(root / name)
    assert prepared.diameter == pytest.approx(diameter, rel=0.1)
    assert prepared.surface_t.shape[1] == 3 and prepared.spacing > 0


@pytest.fixture(scope="module")
def colour(scene):
    """A colour image registered to the scene's depth (the object painted, the rest grey)."""
    from posekit.io.bop import read_mask, write_rgb

    root = scene[0]
    rgb = np.full((H, W, 3), 90, np.uint8)
    rgb[read_mask(root / "mask.png") > 0] = (200, 40, 30)
    write_rgb(root / "rgb.png", rgb)
    write_rgb(root / "rgb_small.png", rgb[::2, ::2])
    return root / "rgb.png"


def test_rgb_view_prior_runs_from_files(scene, colour, tmp_path, capsys):
    """RGB-D from files: the shipped view-lmo model seeds the chains (its stage is timed) and the
    command gives what the API gives on the same arrays (so the image was read as RGB and the
    object id, depth units and K reached the engine as they should). This box is no LM-O object,
    so the prior is no use here and the pose is not checked."""
    from posekit.io.bop import read_mask
    from posekit.io.depth import read_depth_image
    from posekit.registration.estimator import ObjectPoseEstimator
    from posekit.view.estimator import ViewPoseEstimator, load_image

    root = scene[0]
    argv = ["register", "--model", str(root / "model.ply"), "--depth", str(root / "depth.png"),
            "--camera", str(root / "camera.json"), "--mask", str(root / "mask.png"), "--rgb", str(colour),
            "--view", "view-lmo", "--obj-id", "5", "--view-starts", "4", "--out", str(tmp_path / "pose.json")]
    assert main(argv) == 0, capsys.readouterr()
    out = json.loads((tmp_path / "pose.json").read_text())
    assert out["stage_ms"]["view"] > 0 and out["obj_id"] == 5
    est = ObjectPoseEstimator.from_pretrained()
    api = est.estimate(est.prepare_model(read_object_model(root / "model.ply"), obj_id=5),
                       depth=read_depth_image(root / "depth.png"), K=K, mask=read_mask(root / "mask.png") > 0,
                       rgb=load_image(colour), view=ViewPoseEstimator.from_pretrained("view-lmo"), view_starts=4)
    np.testing.assert_allclose(out["R"], api.R, atol=1e-6)
    np.testing.assert_allclose(out["t"], api.t, atol=1e-6)


@pytest.mark.parametrize("extra, message", [
    (["--view", "view-lmo", "--obj-id", "5"], "needs both --rgb"),
    (["--rgb", "{r}/rgb.png", "--view", "view-lmo"], "give --obj-id"),
    (["--rgb", "{r}/rgb.png", "--view", "view-lmo", "--obj-id", "3"], "not one of this model's objects"),
    (["--rgb", "{r}/rgb_small.png", "--view", "view-lmo", "--obj-id", "5"], "registered to the depth image"),
], ids=["no-rgb", "no-obj-id", "unknown-obj", "wrong-size"])
def test_rgb_view_prior_bad_arguments_get_clear_errors(scene, colour, extra, message, capsys):
    root = scene[0]
    argv = ["register", "--model", str(root / "model.ply"), "--depth", str(root / "depth.png"),
            "--camera", str(root / "camera.json"), "--mask", str(root / "mask.png"),
            *[a.format(r=root) for a in extra]]
    assert main(argv) != 0
    assert message in capsys.readouterr().err


def test_obj_id_from_bop_model_file_names():
    from posekit.io.bop import obj_id_from_model_path

    assert obj_id_from_model_path("models/obj_000005.ply") == 5
    assert obj_id_from_model_path("obj_12.ply") == 12
    assert obj_id_from_model_path("milk.pcd") is None
