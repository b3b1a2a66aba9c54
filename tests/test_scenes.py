"""Synthetic BOP scenes (posekit.data.scenes), the sensor model and the `synth bop` command."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from posekit.data.meshes import box_mesh
from posekit.data.render import render_depth, render_scene
from posekit.data.scenes import gt_info_for_object, look_at_camera, synthesize_bop_dataset
from posekit.data.sensor import DepthSensorModel, projector_shadow
from posekit.io.bop import BopDataset
from posekit.io.mesh import Mesh

W, H = 160, 120


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    summary = synthesize_bop_dataset("procedural", out, n_scenes=1, n_images=2, seed=5, width=W, height=H,
                                     objects_per_scene=(4, 4), n_procedural_objects=4, progress=False)
    return out, summary


def test_dataset_reads_back_with_consistent_gt(tiny):
    out, summary = tiny
    assert summary.n_images == 2 and summary.images_per_second > 0
    for name in ("camera.json", "test_targets_bop19.json", "models/models_info.json"):
        assert (out / name).is_file()
    ds = BopDataset(out)
    K, w, h, _ = ds.camera()
    assert (w, h) == (W, H)
    assert ds.scene_ids == [0] and ds.image_ids(0) == [0, 1]
    for im_id in (0, 1):
        im = ds.load_image(0, im_id, masks=True)
        assert im.rgb.shape == (H, W, 3) and im.depth.shape == (H, W)
        assert len(im.gt) == 4
        meshes = [ds.model(g.obj_id) for g in im.gt]
        # Re-render the GT: full masks are each object alone, visible masks the instance map.
        res = render_scene(meshes + [], [g.T_cam_model for g in im.gt], K, W, H, full_masks=True)
        for gt_id, (g, info) in enumerate(zip(im.gt, im.gt_info)):
            full = res.full_masks[gt_id]
            # The re-rendered model is the mm PLY read back: allow a few silhouette pixels.
            assert (full != im.masks[gt_id]).sum() <= max(3, 0.01 * full.sum())
            assert not (im.masks_visib[gt_id] & ~im.masks[gt_id]).any()
            assert 0.0 <= info.visib_fract <= 1.0
            assert info.px_count_visib == im.masks_visib[gt_id].sum()
            assert info.px_count_all >= im.masks[gt_id].sum()
            if info.px_count_all:
                assert info.visib_fract == pytest.approx(info.px_count_visib / info.px_count_all)
            assert info.px_count_valid == int((im.depth[im.masks[gt_id]] > 0).sum())
            if info.px_count_visib:
                ys, xs = np.nonzero(im.masks_visib[gt_id])
                assert info.bbox_visib == [xs.min(), ys.min(), xs.max() - xs.min(), ys.max() - ys.min()]
        # Sensor depth agrees with the rendered surface where it is valid (noise of mm).
        clean = render_scene(meshes, [g.T_cam_model for g in im.gt], K, W, H).depth
        both = (clean > 0) & (im.depth > 0)
        assert np.median(np.abs(clean[both] - im.depth[both])) < 0.005
    targets = json.loads((out / "test_targets_bop19.json").read_text())
    assert targets and all(set(t) == {"scene_id", "im_id", "obj_id", "inst_count"} for t in targets)


def test_same_seed_same_dataset(tiny, tmp_path):
    out, _ = tiny
    synthesize_bop_dataset("procedural", tmp_path, n_scenes=1, n_images=1, seed=5, width=W, height=H,
                           objects_per_scene=(4, 4), n_procedural_objects=4, progress=False)
    a, b = BopDataset(out).load_image(0, 0), BopDataset(tmp_path).load_image(0, 0)
    np.testing.assert_array_equal(a.rgb, b.rgb)
    np.testing.assert_array_equal(a.depth, b.depth)
    for ga, gb in zip(a.gt, b.gt):
        np.testing.assert_array_equal(ga.T_cam_model, gb.T_cam_model)


def test_occluded_object_has_lower_visible_fraction():
    K = np.array([[150.0, 0, 79.5], [0, 150.0, 59.5], [0, 0, 1]])
    v, f = box_mesh((0.1, 0.1, 0.1))
    box = Mesh(v, f)
    front, back = np.eye(4), np.eye(4)
    front[:3, 3] = (0.03, 0.0, 0.6)
    back[:3, 3] = (0.0, 0.0, 0.9)
    res = render_scene([box, box], [front, back], K, W, H)
    infos = [gt_info_for_object(box, T, K, W, H, res.instance == i, res.depth * 1000)[0]
             for i, T in enumerate([front, back])]
    assert infos[0].visib_fract == 1.0
    assert 0.0 < infos[1].visib_fract < 0.6
    assert infos[1].px_count_all == (render_depth(box, back, K, W, H) > 0).sum()
    # A truncated object: its full box extends past the image and px_count_all counts it all.
    side = np.eye(4)
    side[:3, 3] = (0.33, 0.0, 0.6)
    res = render_scene([box], [side], K, W, H)
    info, full = gt_info_for_object(box, side, K, W, H, res.instance == 0, res.depth * 1000)
    assert info.px_count_all > full.sum() and info.visib_fract < 1.0
    assert info.bbox_obj[0] + info.bbox_obj[2] > W - 1


def test_look_at_camera_is_opencv():
    T = look_at_camera(np.array([0.0, -1.0, 0.5]), np.zeros(3))
    np.testing.assert_allclose(T[:3, :3] @ T[:3, :3].T, np.eye(3), atol=1e-12)
    assert np.linalg.det(T[:3, :3]) == pytest.approx(1.0)
    target_cam = T[:3, :3] @ np.zeros(3) + T[:3, 3]
    np.testing.assert_allclose(target_cam[:2], 0, atol=1e-12)
    assert target_cam[2] == pytest.approx(np.hypot(1.0, 0.5))
    up_cam = T[:3, :3] @ np.array([0, 0, 1.0])
    assert up_cam[1] < 0  # world up is image up (y down)


def test_sensor_noise_grows_as_modelled():
    model = DepthSensorModel(inverse_depth_step=0, round_to_mm=False, lateral_px=0, shadow_baseline=0,
                             edge_dropout=0, random_dropout=0, correlated_fraction=0)
    K = np.array([[500.0, 0, 99.5], [0, 500.0, 99.5], [0, 0, 1]])
    normals = np.zeros((200, 200, 3))
    normals[..., 2] = -1
    stds = {}
    for z in (1.0, 2.0):
        clean = np.full((200, 200), z)
        noisy = model.apply(clean, K, normals, rng=0)
        assert (noisy > 0).all()
        stds[z] = float(np.std(noisy.astype(np.float64) - z))
    expected = model.axial_sigma(2.0) / model.axial_sigma(1.0)
    assert stds[2.0] / stds[1.0] == pytest.approx(float(expected), rel=0.08)
    assert stds[1.0] == pytest.approx(float(model.axial_sigma(1.0)), rel=0.1)


def test_sensor_quantises_drops_grazing_and_shadows():
    K = np.array([[500.0, 0, 99.5], [0, 500.0, 99.5], [0, 0, 1]])
    model = DepthSensorModel(lateral_px=0, random_dropout=0, edge_dropout=0)
    clean = np.full((200, 200), 1.2)
    normals = np.zeros((200, 200, 3))
    normals[..., 2] = -1
    noisy = model.apply(clean, K, normals, rng=1)
    levels = np.unique(noisy[noisy > 0])
    assert len(levels) > 3 and np.all(np.abs(levels * 1000 - np.round(levels * 1000)) < 1e-3)  # whole mm
    assert np.diff(levels).min() >= 0.003  # inverse-depth step at 1.2 m is ~4.5 mm
    grazing = normals.copy()
    grazing[..., :] = (np.sin(np.radians(88)), 0, -np.cos(np.radians(88)))
    narrow = np.array([[20000.0, 0, 99.5], [0, 20000.0, 99.5], [0, 0, 1]])  # every ray ~ along z
    p_drop = (88 - model.grazing_start_deg) / (model.grazing_end_deg - model.grazing_start_deg)
    assert (model.apply(clean, narrow, grazing, rng=1) == 0).mean() == pytest.approx(p_drop, abs=0.05)
    # A near box in front of a wall: holes appear on one side only, width ~ fx b (1/zn - 1/zf).
    scene = np.full((50, 200), 2.0)
    scene[:, 80:120] = 1.0
    shadow = projector_shadow(scene, 500.0, -0.017)
    expected_width = 500 * 0.017 * (1 / 1.0 - 1 / 2.0)
    cols = np.flatnonzero(shadow[0])
    assert cols.min() >= 120 and abs(len(cols) - expected_width) <= 1.5
    assert not shadow[:, :120].any()
    assert model.apply(np.zeros((10, 10)), K, rng=0).max() == 0


def test_sensor_shadows_only_behind_occluding_edges():
    from posekit.data.sensor import jump_shadow, row_discontinuities

    # A wall at 2 m, a box at 1 m, and a ramp receding steeply (5 cm per pixel) but continuously.
    scene = np.full((20, 200), 2.0)
    scene[:, 40:80] = 1.0
    scene[:, 120:160] = 1.0 + 0.05 * np.arange(40)
    jumps = row_discontinuities(scene, 0.02)
    assert jumps[0, 79] and not jumps[0, 121:158].any()
    baseline, fill = -0.03, 1.0
    shadow = jump_shadow(scene, 500.0, baseline, jumps, fill)
    cols = np.flatnonzero(shadow[0])
    expected = round(500 * 0.03 * (1 / 1.0 - 1 / 2.0) - fill)  # 6.5 - 1 -> 6 or 7 px
    assert cols.min() == 80 and abs(len(cols) - expected) <= 1
    assert not shadow[:, 81 + expected:].any()  # nothing on the continuous ramp
    model = DepthSensorModel(lateral_px=0, random_dropout=0, edge_dropout=0, shadow_baseline=baseline,
                             shadow_fill_px=fill)
    K = np.array([[500.0, 0, 99.5], [0, 500.0, 9.5], [0, 0, 1]])
    normals = np.zeros((20, 200, 3))
    normals[..., 2] = -1
    out = model.apply(scene, K, normals, rng=0)
    assert (out[:, 80:80 + len(cols)] == 0).all() and (out[:, 120:160] > 0).all()


def test_cli_synth_bop(tmp_path, capsys):
    from posekit.cli import synth

    parser = argparse.ArgumentParser(prog="posekit")
    synth.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["synth", "bop", "--models", "procedural", "--out", str(tmp_path), "--scenes", "1",
                              "--images", "1", "--width", "80", "--height", "60", "--objects-per-scene", "2",
                              "--procedural-objects", "2", "--quiet"])
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    assert "wrote 1 images" in printed and "images/s" in printed
    assert len(BopDataset(tmp_path).load_image(0, 0).gt) == 2
