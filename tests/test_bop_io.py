"""BOP format reading/writing (posekit.io.bop): round trips, results CSV, symmetries, errors."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

from posekit.data.meshes import box_mesh, revolution_mesh
from posekit.errors import BadInputError, CorruptFileError, MissingFileError
from posekit.io import bop
from posekit.io.mesh import Mesh


def random_pose(rng) -> np.ndarray:
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    x, y, z, w = q
    T = np.eye(4)
    T[:3, :3] = [[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                 [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                 [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]]
    T[:3, 3] = rng.uniform(-0.3, 0.3, 3) + (0, 0, 1.0)
    return T


def write_tiny_dataset(root, rng, n_images=2, H=24, W=32):
    K = np.array([[50.0, 0, 15.5], [0, 51.0, 11.5], [0, 0, 1]])
    bop.write_camera(root / "camera.json", K, W, H, depth_scale=0.1)
    v, f = box_mesh((0.05, 0.04, 0.03))
    mesh = Mesh(v, f, colors=rng.random((len(v), 3)))
    bop.write_model(root / "models" / bop.model_filename(3), mesh)
    info = bop.ModelInfo.from_mesh(mesh, [np.diag([-1.0, -1.0, 1.0, 1.0])])
    bop.write_models_info(root / "models" / "models_info.json", {3: info})
    scene = root / "test" / "000007"
    gts, cams, infos, images = {}, {}, {}, {}
    for im_id in range(n_images):
        gts[im_id] = [bop.BopGt(3, random_pose(rng)), bop.BopGt(3, random_pose(rng))]
        cams[im_id] = bop.SceneCamera(K, 0.1, random_pose(rng))
        infos[im_id] = [bop.BopGtInfo([1, 2, 3, 4], [1, 2, 3, 3], 12, 10, 9, 0.75)] * 2
        rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
        depth = np.round(rng.uniform(0.5, 2.0, (H, W)) * 1e4) / 1e4  # 0.1 mm steps
        depth[0, :5] = 0
        masks = [rng.random((H, W)) < 0.3 for _ in range(2)]
        bop.write_rgb(scene / "rgb" / f"{im_id:06d}.png", rgb)
        bop.write_depth(scene / "depth" / f"{im_id:06d}.png", depth, depth_scale=0.1)
        for g, m in enumerate(masks):
            bop.write_mask(scene / "mask" / f"{im_id:06d}_{g:06d}.png", m)
            bop.write_mask(scene / "mask_visib" / f"{im_id:06d}_{g:06d}.png", m & (rng.random((H, W)) < 0.5))
        images[im_id] = (rgb, depth, masks)
    bop.write_scene_gt(scene / "scene_gt.json", gts)
    bop.write_scene_camera(scene / "scene_camera.json", cams)
    bop.write_scene_gt_info(scene / "scene_gt_info.json", infos)
    return K, mesh, info, gts, cams, images


def test_dataset_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    K, mesh, info, gts, cams, images = write_tiny_dataset(tmp_path, rng)
    ds = bop.BopDataset(tmp_path)
    assert ds.scene_ids == [7] and ds.image_ids(7) == [0, 1] and ds.obj_ids == [3]
    K2, W, H, scale = ds.camera()
    np.testing.assert_allclose(K2, K)
    assert (W, H, scale) == (32, 24, 0.1)
    np.testing.assert_allclose(ds.model(3).vertices, mesh.vertices, atol=1e-6)  # PLY stores mm as float
    np.testing.assert_allclose(ds.model(3).colors, np.round(mesh.colors * 255) / 255, atol=1e-9)
    mi = ds.models_info[3]
    assert mi.diameter == pytest.approx(info.diameter, abs=1e-12)
    np.testing.assert_allclose(mi.bbox_size, [0.05, 0.04, 0.03], atol=1e-12)
    np.testing.assert_allclose(mi.symmetries_discrete[0], np.diag([-1.0, -1, 1, 1]))
    for im_id, (rgb, depth, masks) in images.items():
        im = ds.load_image(7, im_id, masks=True)
        np.testing.assert_array_equal(im.rgb, rgb)
        assert im.depth.dtype == np.float32
        np.testing.assert_allclose(im.depth, depth, atol=1e-6)
        assert [g.obj_id for g in im.gt] == [3, 3]
        for g_read, g in zip(im.gt, gts[im_id]):
            np.testing.assert_allclose(g_read.T_cam_model, g.T_cam_model, atol=1e-6)
        np.testing.assert_allclose(im.camera.T_cam_world, cams[im_id].T_cam_world, atol=1e-6)
        for m_read, m in zip(im.masks, masks):
            np.testing.assert_array_equal(m_read, m)
        assert im.gt_info[0].visib_fract == 0.75 and im.gt_info[0].bbox_obj == [1, 2, 3, 4]
    targets = ds.targets()  # no test_targets file: every (image, object) with its count
    assert [(t.im_id, t.obj_id, t.inst_count) for t in targets] == [(0, 3, 2), (1, 3, 2)]
    bop.write_test_targets(tmp_path / "test_targets_bop19.json", targets[:1])
    assert len(bop.BopDataset(tmp_path).targets()) == 1


def test_json_layout_matches_bop(tmp_path):
    T = np.eye(4)
    T[:3, 3] = (0.1, -0.2, 0.75)
    bop.write_scene_gt(tmp_path / "g.json", {10: [bop.BopGt(5, T)], 2: []})
    raw = json.loads((tmp_path / "g.json").read_text())
    assert list(raw) == ["2", "10"]  # numeric order, string keys
    assert raw["10"][0]["cam_t_m2c"] == pytest.approx([100.0, -200.0, 750.0])
    assert raw["10"][0]["cam_R_m2c"] == [1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0]


def test_results_csv_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    ests = []
    for i in range(5):
        T = random_pose(rng)
        ests.append(bop.PoseEstimate(2, i, 1 + i % 2, float(rng.random()), T[:3, :3], T[:3, 3],
                                     0.25 if i < 3 else -1.0))
    path = bop.write_results_csv(tmp_path / "res_lmo-test.csv", ests)
    lines = path.read_text().splitlines()
    assert lines[0] == "scene_id,im_id,obj_id,score,R,t,time"
    assert len(lines[1].split(",")) == 7 and len(lines[1].split(",")[4].split()) == 9
    t_mm = [float(x) for x in lines[1].split(",")[5].split()]
    np.testing.assert_allclose(t_mm, ests[0].t * 1000)
    back = bop.read_results_csv(path)
    assert len(back) == 5
    for a, b in zip(ests, back):
        assert (a.scene_id, a.im_id, a.obj_id, a.score, a.time) == (b.scene_id, b.im_id, b.obj_id, b.score, b.time)
        np.testing.assert_allclose(b.R, a.R, atol=1e-12)
        np.testing.assert_allclose(b.t, a.t, atol=1e-12)


def _cube_rotations() -> list[np.ndarray]:
    out = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1, -1), repeat=3):
            R = np.zeros((3, 3))
            R[range(3), perm] = signs
            if np.linalg.det(R) > 0:
                out.append(R)
    return out


def test_symmetry_transformations_discrete_cube():
    rots = _cube_rotations()
    assert len(rots) == 24
    syms = []
    for R in rots:
        if np.allclose(R, np.eye(3)):
            continue
        T = np.eye(4)
        T[:3, :3] = R
        syms.append(T.reshape(-1).tolist())
    info = {"diameter": 173.2, "symmetries_discrete": syms}  # raw BOP entry, mm
    trans = bop.symmetry_transformations(info)
    assert trans.shape == (24, 4, 4)
    v, _ = box_mesh((0.1, 0.1, 0.1))
    for T in trans:
        moved = v @ T[:3, :3].T + T[:3, 3]
        d = np.linalg.norm(moved[:, None] - v[None], axis=-1).min(1)
        assert d.max() < 1e-12


def test_symmetry_transformations_continuous_cylinder_with_offset():
    r, h, off = 0.04, 0.1, np.array([0.01, -0.02, 0.0])
    v, f = revolution_mesh([(r, -h / 2), (r, h / 2)], segments=360)
    v = v + off  # axis through (10, -20, 0) mm
    flip = np.eye(4)
    flip[:3, :3] = np.diag([1.0, -1.0, -1.0])
    flip[:3, 3] = off - flip[:3, :3] @ off
    info = bop.ModelInfo(0.11, v.min(0), np.ptp(v, 0), [flip],
                         [bop.ContinuousSymmetry(np.array([0.0, 0, 1]), off)])
    trans = bop.symmetry_transformations(info, max_sym_disc_step=0.01)
    assert trans.shape == (2 * math.ceil(math.pi / 0.01), 4, 4)
    # Same count and values from the raw mm entry.
    raw = info.to_bop_dict()
    np.testing.assert_allclose(bop.symmetry_transformations(raw), trans, atol=1e-12)
    pts = Mesh(v, f).sample_points(2000, seed=0)

    def distance_to_exact_cylinder(p):
        rho = np.linalg.norm(p[:, :2] - off[:2], axis=1)
        side = np.where(np.abs(p[:, 2]) <= h / 2 + 1e-9, np.abs(rho - r), np.inf)
        cap = np.where(rho <= r + 1e-9, np.abs(np.abs(p[:, 2]) - h / 2), np.inf)
        return np.minimum(side, cap)

    sagitta = r * (1 - math.cos(math.pi / 360))  # tessellation error of the sampled mesh
    assert distance_to_exact_cylinder(pts).max() <= sagitta + 1e-12
    for T in trans:
        moved = pts @ T[:3, :3].T + T[:3, 3]
        assert distance_to_exact_cylinder(moved).max() <= sagitta + 1e-12
    # A transformation that is not a symmetry fails the same check.
    tilt = np.eye(4)
    tilt[:3, :3] = [[1, 0, 0], [0, math.cos(0.2), -math.sin(0.2)], [0, math.sin(0.2), math.cos(0.2)]]
    assert distance_to_exact_cylinder(pts @ tilt[:3, :3].T).max() > 1e-3
    assert not np.allclose(trans[1], trans[0])


def test_errors_name_the_file(tmp_path):
    with pytest.raises(MissingFileError, match="scene_gt.json"):
        bop.read_scene_gt(tmp_path / "scene_gt.json")
    (tmp_path / "scene_gt.json").write_text('{"0": [{"obj_id": 1,')
    with pytest.raises(CorruptFileError, match="scene_gt.json"):
        bop.read_scene_gt(tmp_path / "scene_gt.json")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(CorruptFileError, match="bad.png"):
        bop.read_depth(tmp_path / "bad.png")
    with pytest.raises(MissingFileError):
        bop.BopDataset(tmp_path / "nope")
    (tmp_path / "r.csv").write_text("scene_id,im_id,obj_id,score,R,t,time\n1,2,3,0.5,1 0 0,0 0 0,1\n")
    with pytest.raises(CorruptFileError, match="r.csv:2"):
        bop.read_results_csv(tmp_path / "r.csv")


def test_depth_in_metres_is_rejected(tmp_path):
    metres_as_png = np.full((4, 5), 1.2)  # written as if mm: all values ~1 "mm"
    bop.write_depth(tmp_path / "d.png", metres_as_png / 1000.0)
    with pytest.raises(BadInputError, match="metres"):
        bop.read_depth(tmp_path / "d.png")
    with pytest.raises(BadInputError, match="millimetres"):
        bop.write_depth(tmp_path / "e.png", np.full((4, 5), 850.0))
    assert not (tmp_path / "e.png").exists()
