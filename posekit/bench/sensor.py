"""Sensor benchmark: statistics of real depth frames vs posekit's simulated sensor vs peers.

Renders a scene like the real Kinect frames (a floor plane seen from 0.75 m height at 50 deg
pitch, boxes and a procedural object at 0.6-1.7 m), passes the perfect depth through

* ``posekit_sensor``: :class:`posekit.data.sensor.DepthSensorModel` (the defaults),
* ``gaussian_1mm``: the naive peer, i.i.d. N(0, 1 mm) depth noise, no holes,
* ``clean``: no noise at all,

and measures each, and the real frames (``real``) when given, with
:func:`posekit.data.sensor_calibration.measure_sensor`. The model fitted to each set of
frames (:func:`~posekit.data.sensor_calibration.fit_sensor_model`) is reported for
``real`` and ``posekit_sensor``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from posekit.data.sensor import DepthSensorModel
from posekit.data.sensor_calibration import SensorStats, fit_sensor_model, measure_sensor
from posekit.errors import BadInputError, MissingFileError

# Depth bins (centres, metres) shown in the table.
TABLE_DEPTHS = (0.7, 0.9, 1.1, 1.3)
# Intrinsics of the real Kinect frames (PCL test data).
KINECT_FX, KINECT_CX, KINECT_CY = 525.0, 320.0, 240.0
METHODS = ("real", "posekit_sensor", "gaussian_1mm", "clean")


def kinect_intrinsics(width: int = 640, height: int = 480) -> np.ndarray:
    """K (3, 3) of the Kinect frames, scaled to width x height."""
    s = width / 640.0
    return np.array([[KINECT_FX * s, 0.0, KINECT_CX * s], [0.0, KINECT_FX * s, KINECT_CY * height / 480.0],
                     [0.0, 0.0, 1.0]])


def _floor_mesh(size: float = 8.0):
    from posekit.io.mesh import Mesh

    s = size / 2
    v = np.array([[-s, -s, 0.0], [s, -s, 0.0], [s, s, 0.0], [-s, s, 0.0]])
    return Mesh(v, np.array([[0, 1, 2], [0, 2, 3]]), None, None, "floor")


def render_tabletop(seed: int, width: int, height: int, K: np.ndarray):
    """Perfect depth (H, W) float32 metres and normals (H, W, 3) of a floor-and-boxes scene.

    Camera 0.75 m above the floor at about 50 deg pitch (floor depths about 0.7-1.6 m), a
    large and a small box and one procedural object near the image centre.
    """
    from posekit.data.meshes import box_mesh, procedural_mesh
    from posekit.data.render import render_scene
    from posekit.data.scenes import look_at_camera
    from posekit.geometry.rigid_np import make_pose, rotation_about_axis
    from posekit.io.mesh import Mesh

    rng = np.random.default_rng(seed)
    elev = math.radians(rng.uniform(46, 54))
    azim = math.radians(-90 + rng.uniform(-15, 15))
    height_m = 0.75
    dist = height_m / math.sin(elev)
    eye = np.array([dist * math.cos(elev) * math.cos(azim), dist * math.cos(elev) * math.sin(azim), height_m])
    T_cam_world = look_at_camera(eye, np.zeros(3))
    meshes, poses = [_floor_mesh()], [T_cam_world]
    for size, xy in (((0.30, 0.12, 0.22), (-0.12, 0.02)), ((0.14, 0.18, 0.10), (0.16, 0.0))):
        v, f = box_mesh(size)
        yaw = rng.uniform(-0.4, 0.4)
        xy = np.asarray(xy) + rng.normal(0, 0.02, 2)
        meshes.append(Mesh(v, f, None, None, "box"))
        poses.append(T_cam_world @ make_pose(rotation_about_axis((0, 0, 1), yaw), (*xy, size[2] / 2)))
    obj, _ = procedural_mesh(int(rng.integers(1 << 30)))
    lift = -obj.vertices[:, 2].min()
    meshes.append(obj)
    poses.append(T_cam_world @ make_pose(np.eye(3), (rng.uniform(-0.05, 0.05), rng.uniform(0.15, 0.25), lift)))
    res = render_scene(meshes, poses, K, width, height)
    return res.depth, res.normals


def read_frames(frames: str | Path | Sequence[str | Path]) -> list[np.ndarray]:
    """Depth frames (metres) from a folder (its ``*_depth.tiff/tif/png``, sorted) or a list of files."""
    from posekit.io.depth import read_depth_image

    items = [frames] if isinstance(frames, (str, Path)) else list(frames)
    paths: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.is_file() and q.suffix.lower() in (".tiff", ".tif", ".png")
                           and q.stem.endswith("_depth"))
            if not found:
                raise MissingFileError(f"{p}: no *_depth.tiff/.tif/.png files; pass the depth images themselves")
            paths += found
        else:
            paths.append(p)
    if not paths:
        raise BadInputError("no depth frames given")
    depths = [read_depth_image(p) for p in paths]
    if len({d.shape for d in depths}) != 1:
        raise BadInputError(f"depth frames differ in size: {sorted({d.shape for d in depths})}")
    return depths


def summary(stats: SensorStats) -> dict:
    """The benchmark's headline numbers of one method (mm, 1/m, fractions, px, deg)."""
    return {
        "residual_21_mm": {f"{z:.1f}": _finite(stats.residual_mm_at(z, 21)) for z in TABLE_DEPTHS},
        "residual_5_mm": {f"{z:.1f}": _finite(stats.residual_mm_at(z, 5)) for z in TABLE_DEPTHS},
        "depth_level_step": stats.inverse_depth_step,
        "hole_fraction": stats.hole_fraction,
        "random_hole_fraction": stats.random_hole_fraction,
        "shadow_right_fraction": _finite(stats.shadow_right_fraction),
        "shadow_width_px": _finite(stats.shadow_width_px),
        "n_jump_holes": stats.n_jump_holes,
        "grazing_p99_deg": _finite(stats.grazing_deg.get("p99", math.nan)),
    }


def _finite(x: float):
    return float(x) if x is not None and math.isfinite(x) else None


def _model_dict(model: DepthSensorModel) -> dict:
    from dataclasses import asdict

    d = asdict(model)
    d["invalid_border"] = list(d["invalid_border"])
    return {k: (v if not isinstance(v, float) or math.isfinite(v) else None) for k, v in d.items()}


def run_sensor_benchmark(frames: str | Path | Sequence | None = None, *, quick: bool = False, seed: int = 0,
                         n_frames: int | None = None, K_real: np.ndarray | None = None,
                         sensor: DepthSensorModel | None = None, fit: bool = True) -> tuple[dict, dict]:
    """Run the benchmark. Returns (result JSON dict, images {method: one depth frame}).

    frames: real depth frames (folder or files, see :func:`read_frames`) or None for
    synthetic only; quick: 320x240 images and 2 frames (else 640x480 and 3); K_real:
    intrinsics of the real frames (default: the Kinect's 525/320/240); sensor: the model
    under test (default: the defaults of DepthSensorModel).
    """
    from tqdm import tqdm

    sensor = sensor or DepthSensorModel()
    width, height = (320, 240) if quick else (640, 480)
    n_frames = n_frames or (2 if quick else 3)
    K = kinect_intrinsics(width, height)
    frames_by_method: dict[str, list[np.ndarray]] = {}
    Ks: dict[str, np.ndarray] = {}
    if frames is not None:
        frames_by_method["real"] = read_frames(frames)
        Ks["real"] = np.asarray(K_real, dtype=np.float64) if K_real is not None else kinect_intrinsics(
            frames_by_method["real"][0].shape[1], frames_by_method["real"][0].shape[0])
    rng = np.random.default_rng(seed)
    synth = {"posekit_sensor": [], "gaussian_1mm": [], "clean": []}
    for i in tqdm(range(n_frames), desc="render", leave=False):
        depth, normals = render_tabletop(seed * 1000 + i, width, height, K)
        synth["clean"].append(depth)
        synth["posekit_sensor"].append(sensor.apply(depth, K, normals, rng=rng))
        noisy = depth + rng.normal(0.0, 1e-3, depth.shape).astype(np.float32)
        synth["gaussian_1mm"].append(np.where(depth > 0, noisy, 0.0).astype(np.float32))
    for name, fr in synth.items():
        frames_by_method[name] = fr
        Ks[name] = K

    methods = {}
    for name in [m for m in METHODS if m in frames_by_method]:
        stats = measure_sensor(frames_by_method[name], Ks[name])
        entry = {**summary(stats), "stats": stats.to_dict()}
        if fit and name in ("real", "posekit_sensor"):
            entry["fitted_model"] = _model_dict(fit_sensor_model(stats, seed=seed))
        methods[name] = entry
    result = {
        "benchmark": "sensor",
        "settings": {
            "quick": quick, "seed": seed, "n_frames": n_frames, "width": width, "height": height,
            "K_synthetic": K.tolist(), "K_real": Ks["real"].tolist() if "real" in Ks else None,
            "real_frames": len(frames_by_method.get("real", [])), "sensor_model": _model_dict(sensor),
            "table_depths_m": list(TABLE_DEPTHS),
        },
        "methods": methods,
    }
    images = {name: fr[0] for name, fr in frames_by_method.items()}
    return result, images


def format_table(result: dict) -> str:
    """Fixed-width table: one row per statistic, one column per method."""
    methods = list(result["methods"])
    rows: list[tuple[str, list]] = []
    for patch in (21, 5):
        for z in TABLE_DEPTHS:
            rows.append((f"residual {patch}x{patch} @{z:.1f} m [mm]",
                         [result["methods"][m][f"residual_{patch}_mm"][f"{z:.1f}"] for m in methods]))
    for key, label, scale in (("depth_level_step", "inverse-depth step [1e-3/m]", 1e3),
                              ("hole_fraction", "hole fraction [%]", 100.0),
                              ("random_hole_fraction", "isolated holes [1e-5]", 1e5),
                              ("shadow_right_fraction", "jump holes right of near", 1.0),
                              ("shadow_width_px", "median shadow width [px]", 1.0),
                              ("n_jump_holes", "hole runs at jumps", 1.0),
                              ("grazing_p99_deg", "grazing angle p99 [deg]", 1.0)):
        rows.append((label, [None if result["methods"][m][key] is None else result["methods"][m][key] * scale
                             for m in methods]))
    w = max(len(r[0]) for r in rows) + 2
    lines = ["".ljust(w) + "".join(f"{m:>16}" for m in methods), "-" * (w + 16 * len(methods))]
    for label, values in rows:
        lines.append(label.ljust(w) + "".join(f"{'-':>16}" if v is None else f"{v:>16.3f}" for v in values))
    return "\n".join(lines)


def write_figure(result: dict, images: dict[str, np.ndarray], path: str | Path) -> Path:
    """PNG: residual vs depth per method (21x21 solid, 5x5 dashed) and one depth frame of each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from posekit.io.atomic import atomic_path
    from posekit.viz import depth_to_colour

    names = [m for m in METHODS if m in result["methods"]]
    fig = plt.figure(figsize=(4.0 * max(len(names), 2), 7.5))
    ax = fig.add_subplot(2, 1, 1)
    for i, name in enumerate(names):
        stats = result["methods"][name]["stats"]
        colour = f"C{i}"
        for key, style in (("residual_21_mm", "-"), ("residual_5_mm", "--")):
            ys = [np.nan if y is None else y for y in stats[key]]
            ax.plot(stats["depth_bins"], ys, style, marker="o", color=colour,
                    label=f"{name} {'21x21' if '21' in key else '5x5'}")
    ax.set_xlabel("depth [m]")
    ax.set_ylabel("plane-fit residual std [mm]")
    ax.set_title("Local plane-fit residual vs depth")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    valid = np.concatenate([img[img > 0] for img in images.values()])
    lo, hi = (float(np.percentile(valid, 1)), float(np.percentile(valid, 99))) if valid.size else (None, None)
    for i, name in enumerate(names):
        a = fig.add_subplot(2, len(names), len(names) + i + 1)
        a.imshow(depth_to_colour(images[name], lo, hi))
        a.set_title(name, fontsize=9)
        a.axis("off")
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
    return path
