"""Synthetic tabletop scenes written as BOP datasets (depth, RGB, masks, GT poses and GT info).

A scene is a set of objects resting on a table (world frame: table top is z = 0, z up):
each object stands on one face of its bounding box with a random yaw, placed without
overlapping footprints. Each image of the scene is seen from its own camera looking at
the objects from 0.4-1.2 m at 15-75 deg elevation. Depth goes through
:class:`posekit.data.sensor.DepthSensorModel`; RGB is shaded vertex colour.

GT info follows bop_toolkit ``scripts/calc_gt_info.py``: px_count_all and bbox_obj come
from the object rendered alone on a 3x larger canvas (so truncated parts count),
px_count_valid counts silhouette pixels with a sensor depth, bbox = [x, y, x_max - x_min,
y_max - y_min]. One difference, on purpose: ``mask_visib`` is the exact visible surface
from the renderer's instance map, not the depth-test estimate (tolerance 15 mm) BOP
uses for real images, which the sensor noise would blur.
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from posekit.data.meshes import procedural_models, write_bop_models
from posekit.data.render import render_depth, render_scene
from posekit.data.sensor import DepthSensorModel
from posekit.errors import BadInputError, MissingFileError
from posekit.geometry.rigid_np import make_pose, random_rotation_np, rotation_about_axis
from posekit.io.atomic import output_directory
from posekit.io.bop import (
    BopGt,
    BopGtInfo,
    ModelInfo,
    SceneCamera,
    model_filename,
    read_models_info,
    targets_from_gt,
    write_camera,
    write_depth,
    write_mask,
    write_rgb,
    write_scene_camera,
    write_scene_gt,
    write_scene_gt_info,
    write_test_targets,
    writing_dataset,
)
from posekit.io.mesh import Mesh, read_mesh

# The calibrated Kinect-like sensor (see posekit.data.sensor); read-only.
DEFAULT_SENSOR = DepthSensorModel()
# Kinect-like default intrinsics for 640x480 (scaled for other sizes).
DEFAULT_FX = 572.4
# Image sizes synth accepts: a renderer buffer of 8192^2 pixels is ~1 GB already.
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 8, 8192


@dataclass
class SceneConfig:
    """Tunable scene parameters (metres, degrees)."""

    camera_distance: tuple[float, float] = (0.4, 1.2)
    elevation_deg: tuple[float, float] = (15.0, 75.0)
    roll_deg: float = 10.0
    look_at_jitter: float = 0.03
    table_size: float = 2.0
    object_gap: float = -0.01  # negative: footprints (bounding circles) may overlap by 1 cm
    stable_pose_fraction: float = 0.8  # the rest lie in a random orientation on the table
    rgb_noise_std: float = 2.0
    background_rgb: tuple[int, int, int] = (70, 72, 80)


@dataclass
class SynthConfig:
    """Everything ``posekit synth bop`` can tune; ``configs/synth_bop.yaml`` holds these defaults.

    ``sensor_noise=False`` stores the perfect rendered depth instead of the sensor model's.
    """

    width: int = 640
    height: int = 480
    objects_per_scene: tuple[int, int] = (3, 6)
    n_procedural_objects: int = 8
    depth_scale: float = 1.0
    rgb_ext: str = ".png"
    sensor_noise: bool = True
    scene: SceneConfig = field(default_factory=SceneConfig)
    sensor: DepthSensorModel = field(default_factory=DepthSensorModel)


@dataclass
class SynthSummary:
    out_dir: Path
    n_scenes: int
    n_images: int
    n_objects: int
    seconds: float
    per_image: dict = field(default_factory=dict, repr=False)

    @property
    def images_per_second(self) -> float:
        return self.n_images / self.seconds if self.seconds > 0 else float("inf")


def default_intrinsics(width: int, height: int) -> np.ndarray:
    """K for a Kinect-like field of view at any resolution (fx = fy = 572.4 at 640 px wide)."""
    f = DEFAULT_FX * width / 640.0
    return np.array([[f, 0.0, (width - 1) / 2.0], [0.0, f, (height - 1) / 2.0], [0.0, 0.0, 1.0]])


def table_mesh(size: float, rng: np.random.Generator, cells: int = 48) -> Mesh:
    """A flat, vertex-coloured square (top face at z = 0, normal +z) with a wood/cloth-like pattern."""
    xs = np.linspace(-size / 2, size / 2, cells + 1)
    xx, yy = np.meshgrid(xs, xs)
    v = np.stack([xx, yy, np.zeros_like(xx)], -1).reshape(-1, 3)
    i, j = np.meshgrid(np.arange(cells), np.arange(cells), indexing="ij")
    a = i * (cells + 1) + j
    f = np.concatenate([np.stack([a, a + 1, a + cells + 2], -1).reshape(-1, 3),
                        np.stack([a, a + cells + 2, a + cells + 1], -1).reshape(-1, 3)])
    base = rng.uniform(0.25, 0.75, 3)
    freq = rng.uniform(3, 12)
    grain = 0.5 + 0.5 * np.sin(freq * xx.ravel() * 2 * math.pi / size * 4 + rng.uniform(0, 6)
                               + 0.6 * np.sin(yy.ravel() * 7))
    if rng.random() < 0.5:  # checker pattern
        grain = ((np.floor(xx.ravel() / 0.1) + np.floor(yy.ravel() / 0.1)) % 2).astype(float)
    colors = np.clip(base[None] * (0.75 + 0.35 * grain[:, None]) + rng.normal(0, 0.02, (len(v), 3)), 0, 1)
    return Mesh(v, f, colors, None, "table")


def _resting_rotation(rng: np.random.Generator, stable: bool) -> np.ndarray:
    """R_world_model: a bounding-box face down (one of 6) then a random yaw; or any rotation."""
    if not stable:
        return random_rotation_np(rng)
    face = int(rng.integers(6))
    axis, sign = face % 3, (1 if face < 3 else -1)
    down = np.zeros(3)
    down[axis] = sign
    # Rotate the model axis `down` onto world -z.
    target = np.array([0.0, 0.0, -1.0])
    c = float(down @ target)
    if c > 1 - 1e-9:
        R = np.eye(3)
    elif c < -1 + 1e-9:
        R = rotation_about_axis((1, 0, 0), math.pi)
    else:
        R = rotation_about_axis(np.cross(down, target), math.acos(c))
    return rotation_about_axis((0, 0, 1), rng.uniform(0, 2 * math.pi)) @ R


def place_objects(meshes: list[Mesh], rng: np.random.Generator, config: SceneConfig) -> list[np.ndarray]:
    """T_world_model (4, 4) for each mesh, resting on z = 0 with non-overlapping footprints."""
    poses, placed = [], []  # placed: (x, y, radius)
    spread = 0.05 + 0.03 * len(meshes)
    for mesh in meshes:
        R = _resting_rotation(rng, rng.random() < config.stable_pose_fraction)
        v = mesh.vertices @ R.T
        centre_xy = (v[:, :2].max(0) + v[:, :2].min(0)) / 2
        radius = float(np.linalg.norm(v[:, :2] - centre_xy, axis=1).max())
        for attempt in range(200):
            xy = rng.uniform(-spread, spread, 2) * (1 + attempt / 50)
            if all(np.hypot(*(xy - p[:2])) >= radius + p[2] + config.object_gap for p in placed):
                break
        placed.append((xy[0], xy[1], radius))
        poses.append(make_pose(R, (xy[0] - centre_xy[0], xy[1] - centre_xy[1], -v[:, 2].min())))
    return poses


def look_at_camera(eye: np.ndarray, target: np.ndarray, roll: float = 0.0) -> np.ndarray:
    """T_cam_world (4, 4) of an OpenCV camera (x right, y down, z forward) at eye looking at target,
    world z up; roll (radians) about the optical axis."""
    z = np.asarray(target, float) - np.asarray(eye, float)
    z /= np.linalg.norm(z)
    x = np.cross(z, (0.0, 0.0, 1.0))
    if np.linalg.norm(x) < 1e-6:  # looking straight down
        x = np.array([1.0, 0.0, 0.0])
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    R_world_cam = np.stack([x, y, z], axis=1) @ rotation_about_axis((0, 0, 1), roll)
    return make_pose(R_world_cam.T, -R_world_cam.T @ np.asarray(eye, float))


def sample_camera(rng: np.random.Generator, centre: np.ndarray, config: SceneConfig) -> np.ndarray:
    """T_cam_world looking at ``centre`` from a random distance, elevation, azimuth and roll."""
    dist = rng.uniform(*config.camera_distance)
    elev = math.radians(rng.uniform(*config.elevation_deg))
    azim = rng.uniform(0, 2 * math.pi)
    target = centre + rng.normal(0, config.look_at_jitter, 3) * (1, 1, 0.3)
    eye = target + dist * np.array([math.cos(elev) * math.cos(azim), math.cos(elev) * math.sin(azim),
                                    math.sin(elev)])
    return look_at_camera(eye, target, math.radians(rng.uniform(-config.roll_deg, config.roll_deg)))


def _bbox(xs: np.ndarray, ys: np.ndarray) -> list[int]:
    """bop_toolkit misc.calc_2d_bbox (unclipped): [x_min, y_min, x_max - x_min, y_max - y_min]."""
    return [int(xs.min()), int(ys.min()), int(xs.max() - xs.min()), int(ys.max() - ys.min())]


def gt_info_for_object(mesh: Mesh, T_cam_model: np.ndarray, K: np.ndarray, width: int, height: int,
                       mask_visib: np.ndarray, sensor_depth: np.ndarray) -> tuple[BopGtInfo, np.ndarray]:
    """GT info of one instance and its full (un-occluded, in-image) mask, as calc_gt_info.py does."""
    K_large = K.copy()
    K_large[0, 2] += width
    K_large[1, 2] += height
    large = render_depth(mesh, T_cam_model, K_large, 3 * width, 3 * height) > 0
    full = large[height:2 * height, width:2 * width]
    px_all = int(large.sum())
    px_visib = int(mask_visib.sum())
    px_valid = int((sensor_depth[full] > 0).sum())
    bbox_obj = bbox_visib = [-1, -1, -1, -1]
    if px_visib > 0:
        ys, xs = np.nonzero(large)
        bbox_obj = _bbox(xs - width, ys - height)
        ys, xs = np.nonzero(mask_visib)
        bbox_visib = _bbox(xs, ys)
    info = BopGtInfo(bbox_obj, bbox_visib, px_all, px_valid, px_visib, px_visib / px_all if px_all else 0.0)
    return info, full


def _load_models(models: str | Path, n_procedural: int, seed: int) -> dict[int, tuple[Mesh, ModelInfo]]:
    """{obj_id: (mesh metres, ModelInfo)} from a BOP models folder or procedural generation."""
    if str(models) == "procedural":
        return procedural_models(n_procedural, seed)
    src = Path(models)
    if not (src / "models_info.json").is_file():
        raise MissingFileError(f"{src} is not a BOP models folder: models_info.json is missing")
    infos = read_models_info(src / "models_info.json")
    if not infos:
        raise BadInputError(f"{src / 'models_info.json'} lists no objects")
    objs: dict[int, tuple[Mesh, ModelInfo]] = {}
    for obj_id, info in infos.items():
        path = src / model_filename(obj_id)
        objs[obj_id] = (read_mesh(path, scale=0.001), info)
    return objs


def _write_models(models: str | Path, objs: dict[int, tuple[Mesh, ModelInfo]], out_dir: Path) -> None:
    """Put the models into out_dir/models, so the output dataset is complete on its own."""
    dst = out_dir / "models"
    if str(models) == "procedural":
        write_bop_models(dst, objs)
        return
    src = Path(models)
    if src.resolve() != dst.resolve():
        output_directory(dst, "models folder")
        for obj_id in objs:
            shutil.copyfile(src / model_filename(obj_id), dst / model_filename(obj_id))
        shutil.copyfile(src / "models_info.json", dst / "models_info.json")


def synthesize_bop_dataset(
    models: str | Path,
    out_dir: str | Path,
    n_scenes: int = 1,
    n_images: int = 10,
    seed: int = 0,
    width: int = 640,
    height: int = 480,
    K: np.ndarray | None = None,
    objects_per_scene: int | tuple[int, int] = (3, 6),
    n_procedural_objects: int = 8,
    split: str = "test",
    sensor: DepthSensorModel | None = DEFAULT_SENSOR,
    depth_scale: float = 1.0,
    rgb_ext: str = ".png",
    config: SceneConfig | None = None,
    progress: bool = True,
    workers: int = 1,
) -> SynthSummary:
    """Write a BOP dataset of synthetic tabletop scenes to ``out_dir`` and return a summary.

    models: a BOP models folder (PLY in mm + models_info.json; copied into out_dir/models)
    or "procedural" (``n_procedural_objects`` meshes from :mod:`posekit.data.meshes`).
    Writes camera.json, test_targets_bop19.json and SPLIT/SCENEID/{scene_camera, scene_gt,
    scene_gt_info}.json, rgb/, depth/ (uint16, value * depth_scale = mm), mask/, mask_visib/.
    ``sensor=None`` stores the perfect rendered depth. Same seed, same dataset, whatever the
    number of ``workers`` (processes rendering images in parallel). While it is written, the
    folder holds :data:`~posekit.io.bop.INCOMPLETE_MARKER` (removed last), so a killed run
    leaves a folder that :class:`~posekit.io.bop.BopDataset` refuses.
    """
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise BadInputError(f"workers must be an integer >= 1, got {workers!r}")
    for name, size in (("width", width), ("height", height)):
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) \
                or not MIN_IMAGE_SIZE <= size <= MAX_IMAGE_SIZE:
            raise BadInputError(
                f"image {name} must be an integer from {MIN_IMAGE_SIZE} to {MAX_IMAGE_SIZE} pixels, got {size!r}")
    if n_scenes < 1 or n_images < 1:
        raise BadInputError(f"need at least one scene and one image, got {n_scenes} scenes, {n_images} images")
    if rgb_ext not in (".png", ".jpg"):
        raise BadInputError(f"rgb_ext must be .png or .jpg, got {rgb_ext!r}")
    if not isinstance(split, str) or not split or Path(split).name != split or split in (".", ".."):
        raise BadInputError(f"split must be a plain folder name such as 'test', got {split!r}")
    config = config or SceneConfig()
    out_dir = Path(out_dir)
    K = default_intrinsics(width, height) if K is None else np.asarray(K, dtype=np.float64)
    if isinstance(objects_per_scene, int):
        objects_per_scene = (objects_per_scene, objects_per_scene)
    # everything that can fail on the inputs fails before the first file is written
    objs = _load_models(models, n_procedural_objects, seed)
    output_directory(out_dir, "dataset folder")
    # Marked incomplete until the last file is written: a killed or failed run leaves a
    # folder that BopDataset refuses instead of a half-written dataset it would accept.
    with writing_dataset(out_dir):
        summary = _synthesize(models, objs, out_dir, n_scenes, n_images, seed, width, height, K,
                              objects_per_scene, split, sensor, depth_scale, rgb_ext, config,
                              progress, workers)
    return summary


def _synthesize(models, objs, out_dir, n_scenes, n_images, seed, width, height, K, objects_per_scene,
                split, sensor, depth_scale, rgb_ext, config, progress, workers) -> SynthSummary:
    from tqdm import tqdm

    obj_ids = sorted(objs)
    _write_models(models, objs, out_dir)
    write_camera(out_dir / "camera.json", K, width, height, depth_scale)

    start = time.perf_counter()
    shared = _ImageJobShared(objs, K, width, height, sensor, depth_scale, rgb_ext, config, out_dir / split)
    jobs: list[_ImageJob] = []
    for scene_id in range(n_scenes):
        rng = np.random.default_rng([int(seed), scene_id])
        n_obj = int(rng.integers(objects_per_scene[0], objects_per_scene[1] + 1))
        chosen = [int(o) for o in rng.choice(obj_ids, size=n_obj, replace=n_obj > len(obj_ids))]
        meshes = [objs[o][0] for o in chosen]
        T_world_models = place_objects(meshes, rng, config)
        table = table_mesh(config.table_size, rng)
        centre = np.mean([T[:3, 3] for T in T_world_models], axis=0)
        centre[2] = 0.5 * np.mean([np.ptp(m.vertices @ T[:3, :3].T[:, 2]) for m, T in zip(meshes, T_world_models)])
        light_dir = np.array([rng.uniform(-0.5, 0.5), rng.uniform(-0.8, -0.2), -1.0])
        jobs += [_ImageJob(int(seed), scene_id, im_id, chosen, T_world_models, table, centre, light_dir)
                 for im_id in range(n_images)]

    per_scene: dict[int, dict[int, tuple]] = {s_id: {} for s_id in range(n_scenes)}
    targets = []
    with tqdm(total=len(jobs), desc="synth bop", unit="img", disable=not progress) as bar:
        for scene_id, im_id, result in _run_jobs(jobs, shared, workers):
            per_scene[scene_id][im_id] = result
            bar.update(1)
            if len(per_scene[scene_id]) < n_images:
                continue
            # a scene is complete: write its JSON files and collect its BOP19 targets
            done = per_scene.pop(scene_id)
            scene_dir = out_dir / split / f"{scene_id:06d}"
            cams = {i: done[i][0] for i in sorted(done)}
            gts = {i: done[i][1] for i in sorted(done)}
            infos = {i: done[i][2] for i in sorted(done)}
            write_scene_camera(scene_dir / "scene_camera.json", cams)
            write_scene_gt(scene_dir / "scene_gt.json", gts)
            write_scene_gt_info(scene_dir / "scene_gt_info.json", infos)
            # BOP19 targets: instances with at least 10 % of their surface visible.
            visible = {i: [g for g, inf in zip(gts[i], infos[i]) if inf.visib_fract >= 0.1] for i in gts}
            targets += targets_from_gt(scene_id, visible)
    targets.sort(key=lambda t: (t.scene_id, t.im_id, t.obj_id))
    write_test_targets(out_dir / "test_targets_bop19.json", targets)
    seconds = time.perf_counter() - start
    return SynthSummary(out_dir, n_scenes, n_scenes * n_images, len(obj_ids), seconds)


@dataclass
class _ImageJobShared:
    """What every image of a synthesis run shares (sent once to each worker process)."""

    objs: dict
    K: np.ndarray
    width: int
    height: int
    sensor: DepthSensorModel | None
    depth_scale: float
    rgb_ext: str
    config: SceneConfig
    split_dir: Path


@dataclass
class _ImageJob:
    """One image to render: the scene layout plus the image's own random stream."""

    seed: int
    scene_id: int
    im_id: int
    chosen: list[int]
    T_world_models: list[np.ndarray]
    table: Mesh
    centre: np.ndarray
    light_dir: np.ndarray


_WORKER_SHARED: _ImageJobShared | None = None


def _init_worker(shared: _ImageJobShared) -> None:
    global _WORKER_SHARED
    _WORKER_SHARED = shared


def _render_job(job: _ImageJob) -> tuple[int, int, tuple]:
    """Render, add sensor noise, write rgb/depth/masks of one image; return its JSON entries."""
    sh = _WORKER_SHARED
    assert sh is not None, "worker not initialised"
    im_rng = np.random.default_rng([job.seed, job.scene_id, job.im_id])
    scene_dir = sh.split_dir / f"{job.scene_id:06d}"
    meshes = [sh.objs[o][0] for o in job.chosen]
    T_cam_world = sample_camera(im_rng, job.centre, sh.config)
    poses = [T_cam_world @ T for T in job.T_world_models]
    res = render_scene(meshes + [job.table], poses + [T_cam_world], sh.K, sh.width, sh.height, rgb=True,
                       light_dir=job.light_dir, background=sh.config.background_rgb)
    depth = res.depth if sh.sensor is None else sh.sensor.apply(res.depth, sh.K, res.normals, rng=im_rng)
    rgb = res.rgb.astype(np.float64) + im_rng.normal(0, sh.config.rgb_noise_std, res.rgb.shape)
    rgb = np.clip(np.round(rgb), 0, 255).astype(np.uint8)

    im_id = job.im_id
    write_rgb(scene_dir / "rgb" / f"{im_id:06d}{sh.rgb_ext}", rgb)
    write_depth(scene_dir / "depth" / f"{im_id:06d}.png", depth, sh.depth_scale)
    # The stored depth is what BOP users see: count valid pixels on the rounded values.
    stored_depth = np.round(depth * 1000.0 / sh.depth_scale)
    im_gt, im_info = [], []
    for gt_id, (obj_id, mesh, T) in enumerate(zip(job.chosen, meshes, poses)):
        visib = res.instance == gt_id
        info, full = gt_info_for_object(mesh, T, sh.K, sh.width, sh.height, visib, stored_depth)
        write_mask(scene_dir / "mask" / f"{im_id:06d}_{gt_id:06d}.png", full)
        write_mask(scene_dir / "mask_visib" / f"{im_id:06d}_{gt_id:06d}.png", visib)
        im_gt.append(BopGt(int(obj_id), T))
        im_info.append(info)
    return job.scene_id, im_id, (SceneCamera(sh.K, sh.depth_scale, T_cam_world), im_gt, im_info)


def _run_jobs(jobs: list[_ImageJob], shared: _ImageJobShared, workers: int):
    """Yield (scene_id, im_id, result) for each job, in this process or in ``workers`` processes.

    Worker processes are spawned, not forked (:func:`posekit.workers.worker_pool`).
    Each image has its own random stream, so the output does not depend on ``workers``.
    """
    if workers <= 1 or len(jobs) == 1:
        _init_worker(shared)
        for job in jobs:
            yield _render_job(job)
        return
    from posekit.workers import worker_pool

    # Workers die with this process: a killed run leaves no process writing into out_dir.
    with worker_pool(workers, _init_worker, (shared,)) as pool:
        yield from pool.map(_render_job, jobs, chunksize=1)


def synthesize_from_config(models: str | Path, out_dir: str | Path, n_scenes: int, n_images: int,
                           seed: int, cfg: SynthConfig, split: str = "test",
                           progress: bool = True, workers: int = 1) -> SynthSummary:
    """:func:`synthesize_bop_dataset` with every tunable taken from a :class:`SynthConfig`."""
    lo, hi = cfg.objects_per_scene
    if not 1 <= lo <= hi:
        raise BadInputError(f"objects_per_scene must be (min, max) with 1 <= min <= max, got {cfg.objects_per_scene}")
    return synthesize_bop_dataset(
        models, out_dir, n_scenes=n_scenes, n_images=n_images, seed=seed, width=cfg.width,
        height=cfg.height, objects_per_scene=(lo, hi), n_procedural_objects=cfg.n_procedural_objects,
        split=split, sensor=cfg.sensor if cfg.sensor_noise else None, depth_scale=cfg.depth_scale,
        rgb_ext=cfg.rgb_ext, config=cfg.scene, progress=progress, workers=workers,
    )
