"""Training examples rendered on the fly: a partial, noisy, imperfectly segmented view of an object.

Each example renders one object (procedural by default, or a BOP models folder) at a random
rotation and 0.4-1.2 m from a Kinect-like camera anywhere in its 640x480 field of view,
through a crop window around the object (so off-centre viewing directions occur), with
optional background surface and occluder, and the calibrated sensor model
(:class:`posekit.data.sensor.DepthSensorModel`). The object mask is then made imperfect
(dilated into the background, eroded, stray pixels) as a real segmenter would, and the
observed cloud is back-projected from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from posekit.data.meshes import procedural_mesh
from posekit.data.render import render_scene
from posekit.data.sensor import DepthSensorModel
from posekit.errors import BadInputError, ComputationError
from posekit.geometry.rigid_np import make_pose, random_rotation_np
from posekit.io.bop import symmetry_transformations
from posekit.io.depth import normals_from_depth
from posekit.io.mesh import Mesh
from posekit.registration.clouds import (
    ModelCloud,
    model_cloud_from_mesh,
    normalise_observed,
    observed_cloud,
    state_from_pose,
)

FX_640 = 572.4  # Kinect-like focal length at 640x480 (as posekit.data.scenes)


@dataclass
class ViewDataConfig:
    """How training views are drawn (the ``data:`` section of configs/registration.yaml)."""

    models: str = "procedural"  # or a BOP models folder (never the evaluation objects)
    n_meshes: int = 96  # procedural meshes in the training pool
    mesh_seed: int = 0  # procedural mesh i has seed mesh_seed + i
    n_observed: int = 512
    n_model: int = 1024
    crop: int = 160  # px, square render window around the object
    distance: tuple[float, float] = (0.4, 1.2)  # m
    background_prob: float = 0.7
    occluder_prob: float = 0.5
    dilate_prob: float = 0.3
    dilate_px: tuple[int, int] = (1, 4)
    erode_prob: float = 0.2
    stray_fraction: float = 0.03  # up to this fraction of observed points from anywhere in the crop
    sensor_noise: bool = True
    noise_scale: tuple[float, float] = (0.7, 2.0)  # range of the sensor noise multiplier
    min_pixels: int = 60
    max_symmetries: int = 16
    min_visible: float = 0.25  # of the object's unoccluded pixels
    reuse: int = 2  # examples (point subsets) cut from each rendered view
    cache_views: int = 0  # >0: render this many views up front and draw examples from them
    cache_seed: int = 0


@dataclass
class ViewExample:
    """Normalised inputs and ground truth of one example (see posekit.registration.clouds)."""

    obs: np.ndarray  # (N, 3) normalised observed points
    obs_normals: np.ndarray
    model: np.ndarray  # (M, 3) normalised model points
    model_normals: np.ndarray
    H0: np.ndarray  # (4, 4) ground-truth state
    symmetries: np.ndarray  # (S, 4, 4) normalised model symmetries, padded with identity
    extras: dict = field(default_factory=dict)


class ViewSampler:
    """Draws :class:`ViewExample` from a pool of object models."""

    def __init__(self, config: ViewDataConfig | None = None):
        self.config = cfg = config or ViewDataConfig()
        self.models: list[ModelCloud] = []
        if cfg.models == "procedural":
            for i in range(cfg.n_meshes):
                mesh, info = procedural_mesh(cfg.mesh_seed + i)
                self.models.append(model_cloud_from_mesh(
                    mesh, 4 * cfg.n_model, seed=i, symmetries=symmetry_transformations(info, 0.05),
                    obj_id=i + 1, diameter=info.diameter))
        else:
            from pathlib import Path

            from posekit.io.bop import read_models_info
            from posekit.io.mesh import read_mesh

            folder = Path(cfg.models)
            infos = read_models_info(folder / "models_info.json")
            for obj_id, info in sorted(infos.items()):
                mesh = read_mesh(folder / f"obj_{obj_id:06d}.ply", scale=0.001)
                self.models.append(model_cloud_from_mesh(
                    mesh, 4 * cfg.n_model, seed=obj_id, symmetries=symmetry_transformations(info, 0.05),
                    obj_id=obj_id, diameter=info.diameter))
        if not self.models:
            raise BadInputError(f"no training models in {cfg.models!r}")
        self.sensor = DepthSensorModel()
        self._occluders = [procedural_mesh(10_000_000 + i)[0] for i in range(8)]
        self._cache: list[dict] = []
        if cfg.cache_views > 0:
            self._fill_cache(cfg.cache_views, np.random.default_rng(cfg.cache_seed))

    def _fill_cache(self, n: int, rng: np.random.Generator) -> None:
        """Render ``n`` views once (rendering costs more than a training step on a small CPU);
        examples then differ by their point subsets, diffusion steps and anchors."""
        from tqdm import tqdm

        for _ in tqdm(range(n), desc="render training views", leave=False, dynamic_ncols=True):
            view = self.example(rng).extras["view"]
            # Keep at most 4 x n_observed points per view: enough for distinct subsets, small in memory.
            if len(view["pts"]) > 4 * self.config.n_observed:
                keep = rng.choice(len(view["pts"]), 4 * self.config.n_observed, replace=False)
                view = {**view, "pts": view["pts"][keep], "nrm": view["nrm"][keep]}
            self._cache.append(view)

    def example(self, rng: np.random.Generator, model_index: int | None = None) -> ViewExample:
        """One example; resampled internally until the object shows at least ``min_pixels``."""
        for _ in range(20):
            ex = self._try_example(rng, model_index)
            if ex is not None:
                return ex
        raise ComputationError("could not render a usable training view in 20 tries; check ViewDataConfig")

    def batch(self, rng: np.random.Generator, batch_size: int) -> list[ViewExample]:
        """batch_size examples, ``reuse`` different point subsets of each rendered view."""
        out: list[ViewExample] = []
        if self._cache:
            for i in rng.integers(len(self._cache), size=batch_size):
                out.append(self._example_from_view(self._cache[int(i)], rng))
            return out
        while len(out) < batch_size:
            view = self.example(rng)
            out.append(view)
            for _ in range(max(self.config.reuse, 1) - 1):
                if len(out) < batch_size:
                    out.append(self._example_from_view(view.extras["view"], rng))
        return out

    def _try_example(self, rng: np.random.Generator, model_index: int | None) -> ViewExample | None:
        cfg = self.config
        mi = int(rng.integers(len(self.models))) if model_index is None else int(model_index)
        model = self.models[mi]
        mesh = model.mesh
        # Object pose: random rotation, centre anywhere in the 640x480 view at the drawn distance.
        z = rng.uniform(*cfg.distance)
        u, v = rng.uniform(80, 560), rng.uniform(60, 420)
        centre_cam = np.array([(u - 319.5) / FX_640 * z, (v - 239.5) / FX_640 * z, z])
        R = random_rotation_np(rng)
        T_cam_model = make_pose(R, centre_cam - R @ model.centre)
        # Crop window of cfg.crop px around the projected centre: shift the principal point.
        c = cfg.crop
        K = np.array([[FX_640, 0, 319.5 - (u - c / 2)], [0, FX_640, 239.5 - (v - c / 2)], [0, 0, 1.0]])
        meshes, poses = [mesh], [T_cam_model]
        if rng.random() < cfg.background_prob:  # a surface behind the object (table, wall, shelf)
            n = rng.normal(size=3)
            n[2] = -abs(n[2]) - 0.5
            n /= np.linalg.norm(n)
            plane_point = centre_cam - n * (model.radius * rng.uniform(0.9, 1.5))
            meshes.append(_plane_mesh(4 * model.radius + 0.3))
            poses.append(make_pose(_rotation_z_to(n), plane_point))
        if rng.random() < cfg.occluder_prob:  # something between camera and object
            occ = self._occluders[int(rng.integers(len(self._occluders)))]
            s = model.radius * rng.uniform(0.8, 2.0) / max(occ.diameter / 2, 1e-6)
            occ = Mesh(occ.vertices * s, occ.faces, None, None, "occluder")
            offset = rng.normal(size=2) * model.radius * 1.2
            p = centre_cam * (1 - rng.uniform(2.0, 4.0) * model.radius / z)
            p[:2] += offset
            meshes.append(occ)
            poses.append(make_pose(random_rotation_np(rng), p))
        res = render_scene(meshes, poses, K, c, c)
        exact = res.instance == 0
        full = int(exact.sum())
        if full < cfg.min_pixels:
            return None
        depth = res.depth
        if cfg.sensor_noise:
            scale = rng.uniform(*cfg.noise_scale)
            noisy = self.sensor.apply(depth, K, res.normals, rng)
            depth = np.where(noisy > 0, depth + scale * (noisy - depth), 0.0).astype(np.float32)
        mask = self._imperfect_mask(exact, depth, rng)
        valid = mask & (depth > 0)
        if valid.sum() < cfg.min_pixels:
            return None
        # Visible fraction: pixels of the object itself vs its silhouette when alone.
        alone = render_scene([mesh], [T_cam_model], K, c, c).instance == 0
        visible = float(exact.sum()) / max(int(alone.sum()), 1)
        if visible < cfg.min_visible:
            return None
        normals = normals_from_depth(depth, K)
        vv, uu = np.nonzero(valid)
        zz = depth[vv, uu].astype(np.float64)
        pts = np.stack([(uu - K[0, 2]) / K[0, 0] * zz, (vv - K[1, 2]) / K[1, 1] * zz, zz], 1)
        nrm = normals[vv, uu].astype(np.float64)
        bad = np.linalg.norm(nrm, axis=1) < 0.5  # no normal at depth edges: point to the camera
        nrm[bad] = -pts[bad] / np.linalg.norm(pts[bad], axis=1, keepdims=True)
        return self._example_from_view({"pts": pts, "nrm": nrm, "T_cam_model": T_cam_model, "visible": visible,
                                        "model_index": mi}, rng)

    def _example_from_view(self, view: dict, rng: np.random.Generator) -> ViewExample:
        cfg = self.config
        mi, T_cam_model, visible = view["model_index"], view["T_cam_model"], view["visible"]
        model = self.models[mi]
        obs_pts, obs_nrm = observed_cloud(view["pts"], view["nrm"], cfg.n_observed, rng)
        obs_n, mu = normalise_observed(obs_pts, model.radius)
        idx = rng.choice(len(model.points), cfg.n_model, replace=False)
        model_pts = ((model.points[idx] - model.centre) / model.radius).astype(np.float32)
        syms = model.normalised_symmetries()[: cfg.max_symmetries]
        syms = np.concatenate([syms, np.repeat(np.eye(4)[None], cfg.max_symmetries - len(syms), 0)])
        return ViewExample(obs_n, obs_nrm, model_pts, model.normals[idx].astype(np.float32),
                           state_from_pose(T_cam_model, mu, model), syms.astype(np.float32),
                           {"T_cam_model": T_cam_model, "mu": mu, "visible": visible, "model_index": mi,
                            "obs_cam": obs_pts, "view": view})

    def _imperfect_mask(self, exact: np.ndarray, depth: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        import cv2

        cfg = self.config
        mask = exact.astype(np.uint8)
        if rng.random() < cfg.dilate_prob:
            k = int(rng.integers(cfg.dilate_px[0], cfg.dilate_px[1] + 1))
            mask = cv2.dilate(mask, np.ones((2 * k + 1, 2 * k + 1), np.uint8))
        elif rng.random() < cfg.erode_prob:
            eroded = cv2.erode(mask, np.ones((3, 3), np.uint8))
            if eroded.sum() >= cfg.min_pixels:
                mask = eroded
        mask = mask.astype(bool)
        if cfg.stray_fraction > 0:
            n_stray = int(rng.uniform(0, cfg.stray_fraction) * mask.sum())
            if n_stray:
                ys, xs = np.nonzero(depth > 0)
                pick = rng.choice(len(ys), size=min(n_stray, len(ys)), replace=False)
                mask[ys[pick], xs[pick]] = True
        return mask


def _plane_mesh(size: float) -> Mesh:
    h = size / 2
    v = np.array([[-h, -h, 0], [h, -h, 0], [h, h, 0], [-h, h, 0]], dtype=np.float64)
    return Mesh(v, np.array([[0, 1, 2], [0, 2, 3]]), None, None, "plane")


def _rotation_z_to(n: np.ndarray) -> np.ndarray:
    """A rotation taking +z to the unit vector n."""
    z = n / np.linalg.norm(n)
    a = np.array([1.0, 0, 0]) if abs(z[0]) < 0.9 else np.array([0, 1.0, 0])
    x = np.cross(a, z)
    x /= np.linalg.norm(x)
    return np.stack([x, np.cross(z, x), z], 1)
