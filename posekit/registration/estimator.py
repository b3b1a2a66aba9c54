"""``ObjectPoseEstimator``: 6D object pose by SE(3) diffusion registration, for objects never seen in training.

    est = posekit.ObjectPoseEstimator.from_pretrained("registration-procedural")
    model = est.prepare_model("obj.ply")                  # mesh (metres) or points
    result = est.estimate(model, observed_points)         # segmented object points, camera frame
    result = est.estimate(model, depth=depth, K=K, mask=mask)   # or bbox=..., or neither (tabletop)
    result.T_cam_model, result.score

Several hypotheses are drawn by running reverse diffusion chains from the best start
rotations of a coarse search (see :mod:`posekit.registration.diffusion`), scored by how well
the rendered model explains the measured depth (:mod:`posekit.registration.scoring`: the
image's own camera, or a virtual one for a bare cloud), optionally refined by point-to-plane
ICP (kept only when it scores higher), and the best is returned with that score.

Without a mask (a box, or nothing) the object is searched in the depth image: the dominant
plane is removed, object-sized crops around seed points all over the scene are ranked by a
cheap coarse fit, the most promising are registered, and the depth-rendering score picks
the answer (:meth:`ObjectPoseEstimator.estimate`). Inputs that cannot give a pose (empty
cloud, a mask that selects nothing, too few valid points) give a result with
``success=False`` and the reason; inputs that are plainly wrong (millimetres, wrong
shapes, a model of a few points) raise :class:`posekit.errors.BadInputError`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from posekit.errors import BadInputError
from posekit.geometry.normals import estimate_normals
from posekit.io.mesh import Mesh
from posekit.io.pointcloud import PointCloud
from posekit.registration.clouds import (
    ModelCloud,
    VisibleCentres,
    model_cloud_from_mesh,
    model_cloud_from_points,
    normalise_observed,
    observed_cloud,
    pose_from_state,
    single_view,
    subsample_indices,
)

DEFAULT_MODEL = "registration-procedural"


@dataclass
class InferenceConfig:
    """Test-time settings: the ``inference:`` section of the weights' config is their one home
    (API, CLI and ROS node use it unless told otherwise; defaults measured with
    ``posekit bench registration``)."""

    anchors: int = 24  # reverse diffusion chains (hypotheses) per object
    sample_steps: int = 5  # paper: T = 5 at test time; 0: no diffusion (ablation)
    match_iters: int = 2
    match_observed: int = 128  # points matched per chain step (192/384: 86.0 % at 542 ms; 128/256: 88.4 % at 328 ms
    match_model: int = 256  # on the quick LM-O gt bench, same run conditions)
    refine_icp: bool = True  # +8 points ADD(-S) on held-out procedural views (docs/models.md)
    coarse_rotations: int = 1024  # coarse rotation search before the chains (0: group anchors only)
    coarse_points: int = 64  # observed points used by the coarse search (64 vs 128: same ADD(-S), -30 % time)
    coarse_grid: int = 48  # voxels per side of the model's nearest-point table (the coarse search's distances)
    coarse_shift_steps: int = 3  # translation steps of ICP per coarse rotation (1 before session 7)
    coarse_visible_centre: bool = True  # a single view's translation starts at the camera-facing side's
    # centroid (VisibleCentres), not the model's centre. 190 full-size LM-O renders, gt masks, depth only: the
    # truth's rotation in the top 48 of 1024 for 56.6 % of targets (1 step, centres), 68.3 % (3 steps, centres),
    # 88.4 % (1 step, this), 94.2 % (3 steps, this)
    prune_after: int = 1  # chains' early exit: after this reverse step (0: never) only the prune_keep chains
    retry_below: float = 0.2  # an answer of the pruned chains scoring below this: all chains run once more and
    # the better answer is kept (136 held-out LM-O renders with detector masks: 77.9 % pruned, 82.4 % unpruned,
    # 83.8 % with this retry at 2.9x the FPFH peer's latency; 0.3: 85.3 % at 3.5x). Chains from a prior (the
    # RGB view's modes) that score below it are followed by the depth-only search instead (141 held-out
    # renders, view prior: gt 90.1 -> 93.6 %, detections 82.3 -> 84.4 %; 0.45: 93.6 / 87.2 % at 1.2-1.5x the time)
    prune_keep: int = 4  # closest to the model surface go on (24 -> 4: ADD(-S) 80.1 -> 86.8 %, chains 3x faster
    # on 136 held-out LM-O renders, seed 7; keep 3: 85.3 %, 6: 83.8 %, 8: 80.9 %; ranked by the coarse depth
    # score instead: 77.2 %)
    icp_candidates: int = 2  # best distinct hypotheses refined by ICP when refine_icp
    prior_icp_candidates: int = 4  # the same for chains from a prior (the RGB view's modes), which are few
    # (8, then 4 after the early exit): 190 full-size LM-O renders (Kinect noise, view-lmo 12,077 steps), 2 -> 4:
    # gt masks 94.2 -> 95.8 %, detections 94.7 -> 96.8 % ADD(-S), +7 ms median on the hits (the depth-only
    # search with 4: +1 / +3 targets for +23 % / +4 % median time, so it keeps 2)
    icp_max_points: int = 800  # observed points ICP uses at most (0: all; full-size LM-O: same ADD(-S), ICP 40 %
    # faster)
    icp_iterations: int = 30  # per stage of the open3d ICP (two stages: 6 % and 2 % of the diameter)
    icp_backend: str = "auto"  # torch: batched on the device (posekit.registration.refine); open3d: one by one
    # on the CPU (faster there: 15 ms per start vs 35 for the torch ICP with a KD-tree); auto: torch on CUDA,
    # open3d on the CPU
    prior_steps: int = 0  # chains from a prior (the RGB view's modes) run the last this many steps of the schedule
    # (0: all). 136 held-out LM-O renders (seed 7), view-lmo: all 5 steps 94.9 / 86.8 % (gt / detections masks), 4:
    # 94.9 / 88.2 % at 1-4 % less time, 3: 92.6 / 87.5 %; but on the full bench set (190, detections) 4 steps gave
    # 92.1 % against 94.2 % (AUROC 0.973 vs 0.985), so every step runs
    wide_below: float = 0.35  # an answer (depth search or prior) still below this after the retry: ICP from the
    wide_rotations: int = 4096  # wide_starts best distinct starts of a coarse search over wide_rotations rotations,
    wide_starts: int = 24  # the better-scoring answer kept (0: off; see docs/models.md, session 7)
    flip_candidates: bool = True  # also refine the best start turned 180 deg about the observed and model axes
    flip_below_score: float = 0.45  # ... when the best score is below this (right poses score 0.5-0.8)
    surface_samples: int = 8192  # model surface samples rendered by the depth score
    scene_seeds: int = 48  # scene search: crops ranked by the coarse fit ...
    scene_crops: int = 6  # ... and the best ones registered (3: 36 %, 6: 57 % on 14 quick LM-O targets)
    scene_prune: bool = False  # scene search: early exit of the chains in each crop too
    scene_max_points: int = 30000  # scene search: depth pixels used at most (strided)
    max_observed_points: int = 50000  # larger observed clouds are randomly subsampled first
    max_scene_points: int = 300000  # larger scene clouds are randomly subsampled first


MIN_MODEL_POINTS = 32
MIN_OBSERVED_POINTS = 24


@dataclass
class ObjectPoseResult:
    """One object's pose: ``T_cam_model`` (4x4, metres), its score in [0, 1], and why it failed if it did."""

    success: bool
    T_cam_model: np.ndarray
    score: float = 0.0
    reason: str = ""
    time_ms: float = 0.0
    n_observed: int = 0
    obj_id: int = 0
    hypotheses: list[dict] = field(default_factory=list)
    score_terms: dict = field(default_factory=dict)  # coverage, support, violations of the answer
    stage_ms: dict = field(default_factory=dict)  # time per stage: inputs, coarse_search, chains, scoring, refinement
    # (and view, wide_search when they ran)

    @property
    def R(self) -> np.ndarray:
        return self.T_cam_model[:3, :3]

    @property
    def t(self) -> np.ndarray:
        return self.T_cam_model[:3, 3]

    def to_dict(self) -> dict:
        return {"success": self.success, "reason": self.reason, "obj_id": self.obj_id,
                "R": self.R.tolist(), "t": self.t.tolist(), "score": self.score, "time_ms": self.time_ms,
                "n_observed": self.n_observed, "score_terms": self.score_terms, "stage_ms": self.stage_ms, "hypotheses": self.hypotheses}


class _StageClock:
    """Milliseconds spent per named stage (a stage met twice adds up)."""

    def __init__(self):
        self.ms: dict[str, float] = {}
        self._t = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.ms[stage] = self.ms.get(stage, 0.0) + 1e3 * (now - self._t)
        self._t = now


def _failed(reason: str, t0: float, obj_id: int = 0, n_observed: int = 0) -> ObjectPoseResult:
    return ObjectPoseResult(False, np.eye(4), 0.0, reason, (time.perf_counter() - t0) * 1e3, n_observed, obj_id)


@dataclass
class PreparedModel:
    """A model with its network features cached (see :meth:`ObjectPoseEstimator.prepare_model`)."""

    cloud: ModelCloud
    points_t: object  # (1, M, 3) normalised points, torch
    normals_t: object
    features_t: object  # (1, M, C)
    surface_t: object = None  # (S, 3) dense surface samples, model frame, metres (the depth score renders them)
    surface_normals_t: object = None  # (S, 3) outward unit normals
    spacing: float = 0.0  # metres between neighbouring surface samples
    nearest: object = None  # NearestGrid over the surface samples in normalised model units (coarse search)
    visible: object = None  # VisibleCentres of the surface samples (the coarse search's translation start)

    @property
    def obj_id(self) -> int:
        return self.cloud.obj_id

    @property
    def diameter(self) -> float:
        return self.cloud.diameter


class ObjectPoseEstimator:
    """Registration of an object model to an observed depth cloud by SE(3) diffusion (see module doc)."""

    def __init__(self, network, config: dict | None = None, device: str = "cpu", num_hypotheses: int | None = None,
                 sample_steps: int | None = None, refine_icp: bool | None = None, seed: int = 0,
                 name: str = "", match_iters: int | None = None):
        import torch

        from posekit.registration.train import DiffusionConfig

        self.config = dict(config or {})
        diffusion = DiffusionConfig(**self.config.get("diffusion", {}))
        data = self.config.get("data", {})
        inference = InferenceConfig(**self.config.get("inference", {}))
        self.device = torch.device(device)
        self.net = network.to(self.device).eval()
        # Test-time matching sizes may differ from training's (the network does not care).
        self.net.cfg.match_observed, self.net.cfg.match_model = inference.match_observed, inference.match_model
        # One reverse chain per start rotation; None: the weights' setting (the model card's).
        self.num_hypotheses = inference.anchors if num_hypotheses is None else num_hypotheses
        if not isinstance(self.num_hypotheses, (int, np.integer)) or isinstance(self.num_hypotheses, bool) \
                or self.num_hypotheses < 1:
            raise BadInputError(f"num_hypotheses must be an integer >= 1 (None: the weights' "
                                f"{inference.anchors}), got {num_hypotheses!r}")
        self.num_hypotheses = int(self.num_hypotheses)
        self.inference = inference
        steps = inference.sample_steps if sample_steps is None else int(sample_steps)
        if steps < 0:
            raise BadInputError(f"sample_steps must be >= 0, got {sample_steps}")
        # 0 steps: no reverse diffusion at all, the coarse search's starts go to scoring and ICP
        # directly (the ablation that shows what the diffusion adds).
        self.schedule = diffusion.schedule(steps) if steps > 0 else None
        self.n_observed = int(data.get("n_observed", 512))
        self.n_model = int(data.get("n_model", 1024))
        self.refine_icp = inference.refine_icp if refine_icp is None else bool(refine_icp)
        self.icp_candidates = max(1, int(inference.icp_candidates))
        self.coarse_rotations = int(inference.coarse_rotations)
        self.coarse_points = int(inference.coarse_points)
        self.seed = int(seed)
        self.name = name
        self.match_iters = int(match_iters or inference.match_iters)
        from posekit.registration.scoring import ScoreConfig

        self.score_config = ScoreConfig(**self.config.get("scoring", {}))

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path = DEFAULT_MODEL, device: str = "cpu", **kwargs):
        """Load shipped weights by name (``posekit.pretrained.available("registration")``) or a path."""
        from posekit import pretrained
        from posekit.device import resolve_device
        from posekit.io.weights import fit_state_dict
        from posekit.registration.denoiser import DenoiserConfig, RegistrationDenoiser

        device = resolve_device(device)  # a clear error for "cuda" without a GPU; no process group
        weights = pretrained.load(name_or_path, engine="registration")
        net = RegistrationDenoiser(DenoiserConfig(**weights.config.get("network", {})))
        fit_state_dict(net, weights.state_dict, source=weights.name)
        return cls(net, weights.config, device=device, name=weights.name, **kwargs)

    # -- models ---------------------------------------------------------------------------------

    def prepare_model(self, model, obj_id: int = 0, symmetries: np.ndarray | None = None,
                      diameter: float | None = None) -> PreparedModel:
        """A model ready to register: a :class:`Mesh`, a :class:`PointCloud`, points (M, 3), or a
        model file (mesh or cloud: :func:`posekit.io.mesh.read_object_model`), all in metres.

        Features and the surface samples of the depth score are computed once here; reuse the
        result for every frame. ``symmetries`` (S, 4, 4) T_model_model are only used for
        reporting; scoring needs none.
        """
        import torch

        if isinstance(model, PreparedModel):
            return model
        if isinstance(model, (str, Path)):
            from posekit.io.mesh import read_object_model

            model = read_object_model(model)
        if isinstance(model, ModelCloud):
            cloud = model
        elif isinstance(model, Mesh):
            cloud = self._cloud_from_mesh(model, obj_id, symmetries, diameter)
        else:
            normals = None
            if isinstance(model, PointCloud):
                model, normals = model.points, model.normals
            pts = np.asarray(model, dtype=np.float64)
            if pts.ndim != 2 or pts.shape[1] != 3:
                raise BadInputError(f"model points must be (M, 3), got shape {pts.shape}")
            finite = np.isfinite(pts).all(1)
            pts = pts[finite]
            if normals is not None:
                normals = np.asarray(normals, dtype=np.float64)[finite]
                ok = np.isfinite(normals).all(1) & (np.linalg.norm(normals, axis=1) > 0.5)
                normals = normals if ok.all() else None
            self._check_model_points(pts)
            cloud = model_cloud_from_points(pts, normals, n=self.n_model, seed=self.seed, symmetries=symmetries,
                                            obj_id=obj_id)
            cloud.source_points, cloud.source_normals = pts, normals
        pts_n, nrm = cloud.normalised()
        idx = np.random.default_rng(self.seed).permutation(len(pts_n))[: self.n_model]
        p = torch.from_numpy(pts_n[idx]).float().to(self.device)[None]
        n = torch.from_numpy(nrm[idx]).float().to(self.device)[None]
        with torch.no_grad():
            f = self.net.features(p, n)
        surface, surface_normals, spacing = self._surface(cloud)
        from posekit.geometry.neighbours import NearestGrid

        nearest = NearestGrid((surface - cloud.centre) / cloud.radius, int(self.inference.coarse_grid),
                              device=self.device)
        visible = VisibleCentres((surface - cloud.centre) / cloud.radius, surface_normals, device=self.device)
        return PreparedModel(cloud, p, n, f, torch.from_numpy(surface).float().to(self.device),
                             torch.from_numpy(surface_normals).float().to(self.device), spacing, nearest, visible)

    def _surface(self, cloud: ModelCloud) -> tuple[np.ndarray, np.ndarray, float]:
        """Dense surface samples (S, 3), normals and their spacing (m) for the depth score."""
        n = int(self.inference.surface_samples)
        if cloud.mesh is not None:
            pts, nrm = cloud.mesh.sample_points(n, seed=self.seed + 1, return_normals=True)
            tri = cloud.mesh.vertices[cloud.mesh.faces]
            area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1).sum()
            return pts, nrm, float(np.sqrt(area / n))
        from scipy.spatial import cKDTree

        src = cloud.points.astype(np.float64) if cloud.source_points is None else cloud.source_points
        nrm = cloud.source_normals
        if nrm is None:
            nrm = estimate_normals(src, towards="outward")
        rng = np.random.default_rng(self.seed + 1)
        idx = rng.choice(len(src), n, replace=False) if len(src) > n else np.arange(len(src))
        pts, nrm = src[idx], np.asarray(nrm)[idx]
        gap = cKDTree(pts).query(pts[:: max(1, len(pts) // 2000)], k=2)[0][:, 1]
        return pts, nrm, float(np.median(gap))

    def _check_model_points(self, pts: np.ndarray, count: bool = True) -> None:
        if count and len(pts) < MIN_MODEL_POINTS:
            raise BadInputError(f"the model has {len(pts)} valid points; registration needs at least "
                                f"{MIN_MODEL_POINTS} (pass a mesh or a denser cloud)")
        from posekit.io.pointcloud import check_metric_units

        check_metric_units(pts, (0.005, 3.0))

    def _cloud_from_mesh(self, mesh: Mesh, obj_id, symmetries, diameter) -> ModelCloud:
        self._check_model_points(np.asarray(mesh.vertices), count=False)  # a box has 8 vertices
        return model_cloud_from_mesh(mesh, 4 * self.n_model, seed=self.seed, symmetries=symmetries, obj_id=obj_id,
                                     diameter=diameter)

    # -- estimation -----------------------------------------------------------------------------

    def estimate(self, model, observed: np.ndarray | None = None, *, depth: np.ndarray | None = None,
                 K: np.ndarray | None = None, mask: np.ndarray | None = None, bbox=None,
                 depth_range: tuple[float, float] | None = None, return_hypotheses: bool = False,
                 observed_normals: np.ndarray | None = None, start_rotations: np.ndarray | None = None,
                 rgb: np.ndarray | None = None, view=None, view_starts: int = 8) -> ObjectPoseResult:
        """Pose of ``model`` in the camera frame from observed points or a depth image.

        observed (N, 3) metres: the object's points (segmented; stray background points are
        tolerated). Or depth (H, W) float32 metres + K (3, 3) with a mask (H, W) bool of the
        object (a detector's: dilated, with background and occluders inside, is fine), or a box
        bbox (x0, y0, x1, y1) pixels to search in, or neither: the object is searched in the whole
        image (plane removal, object-sized crops, coarse ranking, registration, depth score).

        ``start_rotations`` (k, 3, 3) R_cam_obj: start the k chains from these rotations (a prior
        from elsewhere) instead of the coarse search's. ``rgb`` (H, W, 3) uint8 with ``view`` (a
        :class:`posekit.view.ViewPoseEstimator` trained on this object's id): the image's
        orientation distribution gives ``view_starts`` such rotations
        (:func:`posekit.view.seeding.start_rotations_from_image`; needs depth, K and a mask or box).
        """
        t0 = time.perf_counter()
        model = self.prepare_model(model)
        obj_id = model.obj_id
        if (observed is None) == (depth is None):
            raise BadInputError("pass either observed points or depth (+ K, optional mask/bbox)")
        if depth is not None:
            depth, K, region, segmented, why = self._depth_region(depth, K, mask, bbox, depth_range)
            if why:
                return _failed(why, t0, obj_id)
        if (rgb is None) != (view is None):
            raise BadInputError("pass rgb= and view= together (the image and a ViewPoseEstimator)")
        if view is not None:
            if depth is None or (mask is None and bbox is None):
                raise BadInputError("an RGB prior needs depth, K and a mask or bbox (where the object is)")
            if np.shape(rgb)[:2] != np.shape(depth):
                raise BadInputError(f"the RGB image is {np.shape(rgb)[1::-1]} (width, height) but the depth image is "
                                    f"{np.shape(depth)[::-1]}: pass a colour image registered to the depth image")
            from posekit.view.seeding import start_rotations_from_image

            box = None if bbox is None else (bbox[0], bbox[1], bbox[2] - bbox[0], bbox[3] - bbox[1])
            t_view = time.perf_counter()
            start_rotations, _ = start_rotations_from_image(view, rgb, obj_id, K, bbox=None if mask is not None
                                                            else box, mask=mask, k=int(view_starts))
            view_ms = 1e3 * (time.perf_counter() - t_view)
        starts = None if start_rotations is None else self._check_start_rotations(start_rotations)
        if depth is not None:
            if not segmented:
                result = self._search_depth(model, depth, K, region, return_hypotheses)
                result.time_ms = (time.perf_counter() - t0) * 1e3
                return result
            pts, pix = self._depth_points(depth, K, region)
            if len(pts) < MIN_OBSERVED_POINTS:
                return _failed(f"only {len(pts)} valid depth pixels inside the mask (need {MIN_OBSERVED_POINTS})"
                               + _missing_depth_hint(depth, region), t0, obj_id, len(pts))
            from posekit.io.depth import normals_at_pixels
            from posekit.registration.scoring import view_from_depth

            normals = normals_at_pixels(depth, K, pix)
            depth_view = view_from_depth(depth, K, region, model.diameter, model.spacing, self.score_config,
                                         self.device)
            result = self._register(model, pts, normals, depth_view, return_hypotheses, starts, one_view=True)
            if view is not None:
                result.stage_ms = {"view": view_ms, **result.stage_ms}  # the image's orientation prior
        else:
            pts, keep = self._observed_points(observed, return_mask=True)
            if observed_normals is not None:
                observed_normals = np.asarray(observed_normals, dtype=np.float64)
                if observed_normals.shape != np.shape(observed):
                    raise BadInputError(f"observed_normals {observed_normals.shape} and observed points "
                                        f"{np.shape(observed)} differ in shape")
                observed_normals = observed_normals[keep]
            pts, observed_normals = self._subsample(pts, observed_normals, int(self.inference.max_observed_points))
            if len(pts) < MIN_OBSERVED_POINTS:
                return _failed(f"only {len(pts)} valid observed points (need {MIN_OBSERVED_POINTS})", t0, obj_id,
                               len(pts))
            self._check_observed_units(pts, model)
            why = degenerate_cloud(pts, model.diameter)
            if why:
                return _failed(why, t0, obj_id, len(pts))
            from posekit.registration.scoring import view_from_points

            depth_view = view_from_points(pts, model.diameter, model.spacing, self.score_config, device=self.device)
            result = self._register(model, pts, observed_normals, depth_view, return_hypotheses, starts)
        result.time_ms = (time.perf_counter() - t0) * 1e3
        return result

    def estimate_scene(self, model, scene_points: np.ndarray, return_hypotheses: bool = False) -> ObjectPoseResult:
        """Pose of ``model`` in an unsegmented scene cloud (N, 3) camera frame, metres.

        The cloud is z-buffered into a virtual depth image (focal length from the cloud's own
        angular density, so an organized sensor cloud maps back to its pixels) and searched as
        :meth:`estimate` searches a depth image without a mask.
        """
        t0 = time.perf_counter()
        model = self.prepare_model(model)
        pts = self._subsample(self._observed_points(scene_points, "scene points"), None,
                              int(self.inference.max_scene_points))[0]
        if len(pts) < MIN_OBSERVED_POINTS:
            return _failed(f"only {len(pts)} valid scene points", t0, model.obj_id, len(pts))
        self._check_observed_units(pts, model)
        from posekit.io.depth import depth_from_points

        depth, K = depth_from_points(pts)
        result = self._search_depth(model, depth, K, None, return_hypotheses)
        result.time_ms = (time.perf_counter() - t0) * 1e3
        return result

    def _subsample(self, pts: np.ndarray, normals: np.ndarray | None, limit: int):
        """At most ``limit`` points (and their normals), a seeded random subset in the original
        order: a 5-million-point cloud costs what 50,000 do (the engine uses a few hundred)."""
        if len(pts) <= limit:
            return pts, normals
        idx = np.sort(np.random.default_rng(self.seed).choice(len(pts), limit, replace=False))
        return pts[idx], None if normals is None else normals[idx]

    @staticmethod
    def _observed_points(observed, name: str = "observed points", return_mask: bool = False):
        from posekit.validation import valid_points_mask

        try:
            pts = np.asarray(observed, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise BadInputError(f"{name} must be an (N, 3) array of numbers ({exc})") from exc
        if pts.ndim != 2 or pts.shape[1] != 3:
            raise BadInputError(f"{name} must be (N, 3), got shape {pts.shape}")
        keep = valid_points_mask(pts)  # NaN, inf and absurd outliers (1e30) dropped
        return (pts[keep], keep) if return_mask else pts[keep]

    def _check_observed_units(self, pts: np.ndarray, model: PreparedModel) -> None:
        z = float(np.median(np.linalg.norm(pts, axis=1)))
        if z > 30.0:
            raise BadInputError(
                f"observed points are {z:.4g} units from the camera: that looks like millimetres; "
                "posekit expects metres (multiply by 0.001)")

    def _depth_region(self, depth, K, mask, bbox, depth_range):
        """Validated depth (H, W) float32 metres (0 = none, outside depth_range too), K, the pixel
        region (H, W) bool to use, whether it is a segmentation (a mask), and why not if empty."""
        from posekit.io.depth import check_depth_units
        from posekit.validation import check_intrinsics

        depth = np.asarray(depth)
        if depth.ndim != 2:
            raise BadInputError(f"depth must be (H, W), got shape {depth.shape}")
        if K is None:
            raise BadInputError("depth needs intrinsics K (3x3)")
        K = check_intrinsics(K)
        if depth.dtype == np.uint16:
            raise BadInputError("depth is uint16 (millimetres?): convert to float32 metres (depth / 1000)")
        if depth.dtype.kind not in "fiu":
            raise BadInputError(f"depth must hold numbers (float32 metres), got dtype {depth.dtype}")
        depth = np.where(np.isfinite(depth) & (depth > 0), depth, 0).astype(np.float32)
        check_depth_units(depth)
        if depth_range is not None:
            near, far = (float(x) for x in depth_range)
            depth = np.where((depth >= near) & (depth <= far), depth, 0).astype(np.float32)
        H, W = depth.shape
        region = np.ones((H, W), bool)
        segmented = mask is not None
        if mask is not None:
            mask = np.asarray(mask)
            if mask.shape != depth.shape:
                raise BadInputError(f"mask {mask.shape} and depth {depth.shape} differ in size")
            region = mask.astype(bool)
        if bbox is not None:
            x0, y0, x1, y1 = _check_bbox(bbox, W, H)
            box = np.zeros((H, W), bool)
            box[y0:y1, x0:x1] = True
            region = region & box
        if not region.any():
            return depth, K, region, segmented, "the mask/bbox selects no pixels"
        if not (depth[region] > 0).any():
            return depth, K, region, segmented, "no valid depth inside the mask/bbox" + _missing_depth_hint(depth, region)
        return depth, K, region, segmented, ""

    @staticmethod
    def _depth_points(depth, K, region, max_points: int | None = None):
        """Back-projected points (N, 3) and pixels (N, 2) of ``region``, strided to max_points."""
        from posekit.io.depth import depth_to_points

        pts, pix = depth_to_points(depth, K, mask=region, return_pixels=True)
        if max_points is not None and len(pts) > max_points:
            keep = np.arange(0, len(pts), int(np.ceil(len(pts) / max_points)))
            pts, pix = pts[keep], pix[keep]
        return pts.astype(np.float64), pix

    def _search_depth(self, model: PreparedModel, depth, K, region, return_hypotheses: bool) -> ObjectPoseResult:
        """The object searched in a depth image (inside ``region``, or everywhere): see module doc."""
        from posekit.registration.scoring import view_from_depth
        from posekit.registration.segmentation import scene_crops

        pts, _ = self._depth_points(depth, K, region, int(self.inference.scene_max_points))
        if len(pts) < MIN_OBSERVED_POINTS:
            return _failed(f"only {len(pts)} valid depth pixels to search", time.perf_counter(), model.obj_id,
                           len(pts))
        crops = scene_crops(pts, model.diameter, max_seeds=int(self.inference.scene_seeds), seed=self.seed)
        if not crops:
            return _failed("no object-sized surface found off the dominant plane", time.perf_counter(),
                           model.obj_id, len(pts))
        t_rank = time.perf_counter()
        rank = self._rank_crops(model, crops, depth, K, region)
        stages = {"scene_crops": 1e3 * (time.perf_counter() - t_rank)}
        best: ObjectPoseResult | None = None
        for c in rank[: int(self.inference.scene_crops)]:
            crop = crops[int(c)]
            if len(crop) < MIN_OBSERVED_POINTS:
                continue
            uv = crop @ K.T
            uv = np.round(uv[:, :2] / uv[:, 2:]).astype(int)
            crop_region = np.zeros(depth.shape, bool)
            inside = (uv[:, 0] >= 0) & (uv[:, 0] < depth.shape[1]) & (uv[:, 1] >= 0) & (uv[:, 1] < depth.shape[0])
            crop_region[uv[inside, 1], uv[inside, 0]] = True
            view = view_from_depth(depth, K, crop_region, model.diameter, model.spacing, self.score_config,
                                   self.device, roi=None)
            r = self._register_once(model, crop, None, view, return_hypotheses, None,
                                    prune=bool(self.inference.scene_prune), one_view=True)
            for stage, ms in r.stage_ms.items():
                stages[stage] = stages.get(stage, 0.0) + ms
            if best is None or r.score > best.score:
                best, best_view, best_crop = r, view, crop
        if best is None:
            return _failed("no crop of the scene holds enough points", time.perf_counter(), model.obj_id, len(pts))
        if self.inference.scene_prune and self._retry(best):  # the best crop once more with every chain
            full = self._register_once(model, best_crop, None, best_view, return_hypotheses, None, prune=False,
                                       one_view=True)
            for stage, ms in full.stage_ms.items():
                stages[stage] = stages.get(stage, 0.0) + ms
            best = full if full.score > best.score else best
        if self.refine_icp:
            # A crop may hold part of the object only: polish against every scene point around
            # the answer, and keep the polish if it explains the depth better.

            T = best.T_cam_model
            centre = T[:3, :3] @ model.cloud.centre + T[:3, 3]
            around = pts[np.linalg.norm(pts - centre, axis=1) <= 0.75 * model.diameter]
            if len(around) >= MIN_OBSERVED_POINTS:
                row = {"score": best.score, **best.score_terms}
                best.T_cam_model, row = self._refine_if_better(model, T[None], around, best_view, T, row)
                best.score = float(row["score"])
                best.score_terms = {k: v for k, v in row.items() if k != "score"}
        best.stage_ms = stages
        best.reason = best.reason or f"scene search: best of {min(len(crops), int(self.inference.scene_crops))} " \
                                     f"registered crops ({len(crops)} ranked)"
        return best

    def _rank_crops(self, model: PreparedModel, crops: list[np.ndarray], depth, K, region,
                    per_crop: int = 6) -> np.ndarray:
        """Crop indices, most promising first: each crop's ``per_crop`` best coarse poses (all crops
        in one batch) are rendered into the depth image and scored with the coarse depth score
        (:func:`posekit.registration.scoring.score_poses`, ``coarse=True``); a crop ranks by its
        best pose. A patch that fits some face of the model but contradicts the depth around it
        (free space, a missing rest of the object) ranks low."""
        import torch

        from posekit.registration.diffusion import anchor_rotations
        from posekit.registration.scoring import score_poses, view_from_depth

        n = int(self.coarse_points)
        rng = np.random.default_rng(self.seed)
        batch, mus = [], []
        for crop in crops:
            sub = crop[rng.choice(len(crop), n, replace=len(crop) < n)]
            mus.append(sub.mean(0))
            batch.append((sub - mus[-1]) / model.cloud.radius)
        obs = torch.from_numpy(np.stack(batch)).float().to(self.device)
        n_rot = max(64, self.coarse_rotations // 4)
        with torch.no_grad():
            cost, shift = self._coarse_costs(obs, model, n_rot,  # crops of a depth image: single views
                                             np.stack(mus) if self.inference.coarse_visible_centre else None)
        R = anchor_rotations(n_rot, device=self.device)
        top = cost.topk(min(per_crop, n_rot), dim=1, largest=False).indices  # (C, k)
        H = torch.eye(4, device=self.device).repeat(*top.shape, 1, 1)
        H[..., :3, :3] = R[top]
        H[..., :3, 3] = torch.gather(shift, 1, top[..., None].expand(-1, -1, 3))
        T = np.concatenate([pose_from_state(H[c].double().cpu().numpy(), mus[c], model.cloud)
                            for c in range(len(crops))])
        view = view_from_depth(depth, K, region, model.diameter, model.spacing, self.score_config, self.device,
                               roi=None)
        scores = score_poses(T, model.surface_t[::4], model.surface_normals_t[::4], view, model.diameter,
                             self.score_config, coarse=True).score.reshape(len(crops), -1).max(1)
        return np.argsort(-scores, kind="stable")

    def _coarse_costs(self, obs, model: PreparedModel, n_rotations, mus=None):
        """Truncated mean distance (C, R) of each cloud ``obs (C, n, 3)`` (normalised) to the model's
        surface (its :class:`NearestGrid`) under each of ``n_rotations`` rotations (a count of
        :func:`anchor_rotations`, or the rotations (R, 3, 3) R_model_cam themselves), after
        ``coarse_shift_steps`` translation steps of ICP; and those translations (C, R, 3).

        The translation starts where the cloud's mean meets the model's centre or, given the
        clouds' means ``mus (C, 3)`` (camera frame, the camera at the origin: pass them only for
        single views, see :func:`single_view`), where it meets the centroid of the model's side
        that faces the camera under that rotation (:class:`VisibleCentres`)."""
        import torch

        from posekit.registration.diffusion import anchor_rotations

        R = anchor_rotations(n_rotations, device=self.device) if isinstance(n_rotations, int) else n_rotations
        nearest, steps = model.nearest, max(1, int(self.inference.coarse_shift_steps))
        rays = None
        if mus is not None and model.visible is not None:
            mus = torch.as_tensor(np.asarray(mus, np.float64), dtype=torch.float32, device=self.device)
            rays = mus / mus.norm(dim=-1, keepdim=True).clamp_min(1e-9)  # (C, 3) camera -> object
        costs, shifts = [], []
        for chunk in R.split(512):
            moved = torch.einsum("rij,cnj->crni", chunk, obs)  # (C, r, n, 3)
            if rays is None:
                shift = torch.zeros_like(moved[:, :, :1])  # (C, r, 1, 3)
            else:  # the camera-facing side's centroid under each rotation
                shift = model.visible.lookup(torch.einsum("rij,cj->cri", chunk, rays))[:, :, None]
            for _ in range(steps):
                shift = shift + (nearest.nearest_points(moved + shift) - (moved + shift)).mean(2, keepdim=True)
            costs.append(_surface_cost(nearest, moved + shift))
            shifts.append(shift[:, :, 0])
        return torch.cat(costs, 1), torch.cat(shifts, 1)

    def _view_means(self, points: np.ndarray, mu: np.ndarray, diameter: float, one_view: bool | None):
        """``mu[None]`` when ``points`` (camera frame) are one camera's view of the object (``one_view``
        True, or None and they look like one: :func:`single_view`) and ``coarse_visible_centre`` is
        on (the coarse search then starts from the camera-facing side's centroid), else None
        (centroid alignment: a fused or full-surface cloud)."""
        if not self.inference.coarse_visible_centre:
            return None
        if not (one_view if one_view is not None else single_view(points, diameter)):
            return None
        return np.asarray(mu, np.float64)[None]

    @staticmethod
    def _check_start_rotations(R) -> np.ndarray:
        from posekit.validation import as_float_array, check_rotation

        R = as_float_array(R, "start_rotations", (None, 3, 3))
        if len(R) == 0:
            raise BadInputError("start_rotations is empty; pass (k, 3, 3) rotations R_cam_obj")
        for i, Ri in enumerate(R):
            check_rotation(Ri, f"start_rotations[{i}]")
        return R

    def _retry(self, result: ObjectPoseResult) -> bool:
        """Whether an answer of the pruned chains is doubtful enough to run every chain."""
        return self.schedule is not None and self.inference.prune_after > 0 and \
            result.score < float(self.inference.retry_below)

    def _register(self, model: PreparedModel, pts: np.ndarray, normals: np.ndarray | None, view,
                  return_hypotheses: bool, start_rotations: np.ndarray | None = None,
                  one_view: bool | None = None) -> ObjectPoseResult:
        """Register, with the chains' early exit; when the answer scores below ``retry_below``
        (a doubtful answer, as a detector mask's background can give), once more with every
        chain run to the end, and the better-scoring answer is kept. When the chains started from a
        prior (``start_rotations``), the second pass is the depth-only search instead (the prior
        may be wrong: a mostly hidden object, a view network's wrong mode). ``one_view``: the points
        are one depth camera's view (True: from a depth image; None: :func:`single_view` decides)."""
        result = self._register_once(model, pts, normals, view, return_hypotheses, start_rotations, prune=True,
                                     one_view=one_view)
        if start_rotations is not None and result.score < float(self.inference.retry_below):
            full = self._register(model, pts, normals, view, return_hypotheses, None, one_view=one_view)
        elif start_rotations is None and self._retry(result):
            full = self._register_once(model, pts, normals, view, return_hypotheses, None, prune=False,
                                       one_view=one_view)
        else:
            full = None
        if full is not None:
            better = full if full.score > result.score else result
            better.stage_ms = {k: result.stage_ms.get(k, 0.0) + full.stage_ms.get(k, 0.0)
                               for k in set(result.stage_ms) | set(full.stage_ms)}
            result = better
        if self.refine_icp and int(self.inference.wide_starts) > 0 \
                and result.score < float(self.inference.wide_below) and "wide_search" not in result.stage_ms:
            result = self._wide_search(model, pts, view, result, one_view)
        return result

    def _register_once(self, model: PreparedModel, pts: np.ndarray, normals: np.ndarray | None, view,
                       return_hypotheses: bool, start_rotations: np.ndarray | None, prune: bool,
                       one_view: bool | None = None) -> ObjectPoseResult:
        import torch

        from posekit.registration.diffusion import sample
        from posekit.registration.scoring import score_poses_fine_and_coarse

        clock = _StageClock()
        rng = np.random.default_rng(self.seed)
        near = object_ball(pts, model.diameter)  # a detector mask's background and strays: left out
        pts = pts[near]
        normals = None if normals is None else np.asarray(normals)[near]
        if normals is None:
            sub = pts if len(pts) <= 20000 else pts[rng.choice(len(pts), 20000, replace=False)]
            normals, pts = estimate_normals(sub), sub
        obs, obs_nrm = observed_cloud(pts, normals, self.n_observed, rng)
        obs_n, mu = normalise_observed(obs, model.cloud.radius)
        means = self._view_means(obs, mu, model.diameter, one_view)
        k = self.num_hypotheses if start_rotations is None else len(start_rotations)
        o = torch.from_numpy(obs_n).float().to(self.device)[None]
        on = torch.from_numpy(obs_nrm).float().to(self.device)[None]
        g = torch.Generator(device=self.device).manual_seed(self.seed)
        clock.lap("inputs")
        with torch.no_grad():
            f_obs = self.net.features(o, on, n_queries=self.net.cfg.match_observed)  # the matched points only
            ok, fo = o.expand(k, -1, -1), f_obs.expand(k, -1, -1)
            mk, fm = model.points_t.expand(k, -1, -1), model.features_t.expand(k, -1, -1)
            feat_d2 = self.net.feature_distances(f_obs, model.features_t).expand(k, -1, -1)

            def denoise(H, s):  # the chains share their clouds: as many as there are states
                b = len(H)
                return self.net.match(ok[:b], fo[:b], mk[:b], fm[:b], H, s, iters=self.match_iters,
                                      feat_d2=feat_d2[:b])

            if start_rotations is not None:  # a prior: R_model_cam = R_cam_obj^T, shifts from the coarse step
                R = torch.as_tensor(np.transpose(start_rotations, (0, 2, 1)), dtype=torch.float32, device=self.device)
                _, shift = self._coarse_costs(o[:, : self.coarse_points], model, R, means)
                H_T = torch.eye(4, device=self.device).repeat(len(R), 1, 1)
                H_T[:, :3, :3], H_T[:, :3, 3] = R, shift[0]
            elif self.coarse_rotations > 0:
                H_T = self._start_states(o[0], model, k, means)
            else:
                H_T = self._anchor_states(k)
            clock.lap("coarse_search")
            prune = self._pruner(o[0, : self.net.cfg.match_observed], model.nearest) if prune else None
            start_step = None
            if start_rotations is not None and self.schedule is not None and int(self.inference.prior_steps) > 0:
                start_step = min(int(self.inference.prior_steps), self.schedule.steps)
            H = sample(denoise, len(H_T), self.schedule, device=self.device, generator=g, H_init=H_T, prune=prune,
                       start_step=start_step) if self.schedule is not None else H_T
        T = pose_from_state(H.double().cpu().numpy(), mu, model.cloud)
        clock.lap("chains")
        scores, coarse = score_poses_fine_and_coarse(T, model.surface_t, model.surface_normals_t, view,
                                                     model.diameter, self.score_config)
        order = np.argsort(-scores.score, kind="stable")
        T_best, best = T[order[0]], scores.row(int(order[0]))
        if self.refine_icp:
            # ICP on the few best distinct hypotheses by the coarse score (a near miss that ICP
            # fixes ranks high there); its answer is kept only when the depth score says it
            # explains the measurement better.
            n_icp = self.icp_candidates if start_rotations is None else max(1, int(self.inference.prior_icp_candidates))
            picked = self._distinct(T, np.argsort(-coarse.score, kind="stable"), n_icp)
            clock.lap("scoring")
            T_best, best = self._refine_if_better(model, np.stack([T[i] for i in picked]), pts, view, T_best, best)
            clock.lap("refinement")
            if self.inference.flip_candidates and best["score"] < self.inference.flip_below_score:
                # a low score: maybe a half turn of a nearly symmetric view; refine all 6 (refining
                # only the 2 best by the coarse score: 72 % vs 87 % on held-out LM-O renders)
                flips = np.stack(flipped_poses(T[picked[0]], pts, model.cloud.points))
                T_best, best = self._refine_if_better(model, flips, pts, view, T_best, best)
                clock.lap("refinement")
        clock.lap("scoring")
        hyps = [{"T_cam_model": Ti.tolist(), **scores.row(i)} for i, Ti in enumerate(T)] if return_hypotheses else []
        terms = {k_: v for k_, v in best.items() if k_ != "score"}
        return ObjectPoseResult(True, T_best, float(best["score"]), "", 0.0, len(pts), model.obj_id, hyps, terms,
                                clock.ms)

    def _pruner(self, obs, nearest):
        """The sampler's early exit (:func:`posekit.registration.diffusion.sample`): after step
        ``prune_after``, only the ``prune_keep`` chains whose current guesses put the observed
        points ``obs (n, 3)`` (normalised) closest to the model surface go on (None: no pruning)."""
        after, keep = int(self.inference.prune_after), int(self.inference.prune_keep)
        if after <= 0 or keep <= 0:
            return None
        import torch

        def prune(step, H0_hat):
            if step != after or len(H0_hat) <= keep:
                return None
            moved = obs @ H0_hat[:, :3, :3].transpose(1, 2) + H0_hat[:, None, :3, 3]
            kept = torch.argsort(_surface_cost(nearest, moved), stable=True)[:keep]
            return kept.sort().values  # in chain order

        return prune

    def _refine_if_better(self, model: PreparedModel, starts: np.ndarray, pts: np.ndarray, view,
                          T_best: np.ndarray, best: dict) -> tuple[np.ndarray, dict]:
        """ICP from each of ``starts (B, 4, 4)``; the best refined pose replaces ``(T_best, best)``
        (a pose and its :meth:`PoseScores.row`) only when the depth score says it explains the
        measurement better."""
        from posekit.registration.scoring import score_poses

        T_icp = self._refine(model, starts, pts)
        scores = score_poses(T_icp, model.surface_t, model.surface_normals_t, view, model.diameter, self.score_config)
        i = int(np.argmax(scores.score))
        return (T_icp[i], scores.row(i)) if scores.score[i] > best["score"] else (T_best, best)

    def _refine(self, model: PreparedModel, T_starts: np.ndarray, pts: np.ndarray) -> np.ndarray:
        """ICP-refined poses (B, 4, 4) from starts (B, 4, 4) against observed points (N, 3) (at most
        ``icp_max_points`` of them, a seeded random subset: a close object in a 640x480 image
        gives thousands of points and ICP's time grows with them, its accuracy hardly)."""
        limit = int(self.inference.icp_max_points)
        if 0 < limit < len(pts):
            pts = pts[np.sort(np.random.default_rng(self.seed).choice(len(pts), limit, replace=False))]
        backend = self.inference.icp_backend
        if backend == "open3d" or (backend == "auto" and self.device.type != "cuda"):
            from dataclasses import replace

            from posekit.registration.baselines import REFINE_ICP, refine_icp

            settings = replace(REFINE_ICP, iterations=int(self.inference.icp_iterations))
            return np.stack([refine_icp(T, model.cloud.points, model.cloud.normals, pts, model.diameter, settings)
                             for T in T_starts])
        import torch

        from posekit.registration.refine import refine_poses

        g = torch.Generator().manual_seed(self.seed)
        T = refine_poses(torch.as_tensor(T_starts, dtype=torch.float64, device=self.device), model.surface_t,
                         model.surface_normals_t, torch.as_tensor(pts, dtype=torch.float32, device=self.device),
                         model.diameter, generator=g)
        return T.cpu().numpy()

    def _anchor_states(self, k: int):
        import torch

        from posekit.registration.diffusion import anchor_rotations

        H_T = torch.eye(4, device=self.device).repeat(k, 1, 1)
        H_T[:, :3, :3] = anchor_rotations(k, device=self.device)
        return H_T

    def _start_states(self, obs, model: PreparedModel, k: int, means=None, min_angle_deg: float = 15.0):
        """k chain end points H_T (kx4x4) from a coarse search over ``coarse_rotations`` rotations.

        The denoiser converges from about 20 degrees; the anchors of a 24- or 60-rotation group
        are up to 63 / 44 degrees away. So every rotation of a dense set is tried at once
        (:meth:`_coarse_costs`: a few translation steps of ICP from two starts, then the mean
        distance of observed points to the model); the k best rotations at least
        ``min_angle_deg`` apart start the chains (normalised units: obs (Nx3) torch; ``means``
        (1, 3) or None: see :meth:`_view_means`).
        """
        import torch

        H_T = self._best_starts(obs, model, self.coarse_rotations, k, means, min_angle_deg)
        picked = range(len(H_T))
        if len(picked) < k:  # few distinct rotations: pad with group anchors
            H_T = torch.cat([H_T, self._anchor_states(k)[: k - len(picked)]])
        return H_T

    def _best_starts(self, obs, model: PreparedModel, n_rotations: int, k: int, means=None,
                     min_angle_deg: float = 15.0):
        """Up to k states H (k'x4x4, normalised) of the coarse search over ``n_rotations`` rotations
        (:meth:`_coarse_costs`), best first, whose rotations are at least ``min_angle_deg`` apart."""
        import torch

        from posekit.registration.diffusion import anchor_rotations

        R = anchor_rotations(n_rotations, device=self.device)
        cost, shift = self._coarse_costs(obs[None, : self.coarse_points], model, n_rotations, means)
        cost, shift = cost[0], shift[0]
        best = cost.argsort()[: 12 * k]
        Rb = R[best]
        # angle(Ra^T Rb) < a  <=>  trace(Ra^T Rb) > 1 + 2 cos a (no logarithm of 300^2 rotations)
        close = (torch.einsum("aij,bij->ab", Rb, Rb) > 1.0 + 2.0 * np.cos(np.radians(min_angle_deg))).cpu().numpy()
        chosen: list[int] = []
        for i in range(len(best)):
            if not close[i, chosen].any():
                chosen.append(i)
            if len(chosen) == k:
                break
        picked = best[chosen].tolist()
        H = torch.eye(4, device=self.device).repeat(len(picked), 1, 1)
        H[:, :3, :3] = R[picked]
        H[:, :3, 3] = shift[picked]
        return H

    def _wide_search(self, model: PreparedModel, pts: np.ndarray, view, result: ObjectPoseResult,
                     one_view: bool | None) -> ObjectPoseResult:
        """The last resort for an answer that still scores below ``wide_below``: ICP from the
        ``wide_starts`` best distinct start states of a denser coarse search (``wide_rotations``),
        no diffusion; a refined pose replaces the answer only when the depth score rises."""
        import torch

        clock = _StageClock()
        rng = np.random.default_rng(self.seed)
        pts = pts[object_ball(pts, model.diameter)]
        if len(pts) < MIN_OBSERVED_POINTS:
            return result
        obs = pts[subsample_indices(len(pts), self.n_observed, rng)].astype(np.float32)
        obs_n, mu = normalise_observed(obs, model.cloud.radius)
        with torch.no_grad():
            H = self._best_starts(torch.from_numpy(obs_n).float().to(self.device), model,
                                  int(self.inference.wide_rotations), int(self.inference.wide_starts),
                                  self._view_means(obs, mu, model.diameter, one_view))
        T = pose_from_state(H.double().cpu().numpy(), mu, model.cloud)
        best = {"score": result.score, **result.score_terms}
        T_best, best = self._refine_if_better(model, T, pts, view, result.T_cam_model, best)
        clock.lap("wide_search")
        if best["score"] > result.score:
            result.T_cam_model, result.score = T_best, float(best["score"])
            result.score_terms = {k: v for k, v in best.items() if k != "score"}
        result.stage_ms = {**result.stage_ms, "wide_search": clock.ms["wide_search"]}
        return result

    @staticmethod
    def _distinct(T: np.ndarray, order: np.ndarray, k: int, min_angle_deg: float = 10.0) -> list[int]:
        """Up to k hypothesis indices, best first, whose rotations differ by more than min_angle_deg."""
        from posekit.eval.pose_error import re

        picked: list[int] = []
        for i in order:
            if all(np.degrees(re(T[i, :3, :3], T[j, :3, :3])) > min_angle_deg for j in picked):
                picked.append(int(i))
            if len(picked) == k:
                break
        return picked


def _missing_depth_hint(depth: np.ndarray, region: np.ndarray) -> str:
    """Why a sensor may have measured (almost) nothing on the object: ": no depth on N % of its M
    pixels; nearest depth around it X m (...)" for a failure reason ("" for tiny regions)."""
    n = int(region.sum())
    if n < 4 * MIN_OBSERVED_POINTS:
        return ""
    missing = 1.0 - float((depth[region] > 0).mean())
    rows, cols = np.nonzero(region)
    pad = max(4, int(0.25 * max(rows.ptp(), cols.ptp())))
    window = (slice(max(rows.min() - pad, 0), rows.max() + pad + 1), slice(max(cols.min() - pad, 0), cols.max() + pad + 1))
    ring = depth[window][~region[window]]
    around = f"; the nearest depth around it is {ring[ring > 0].min():.2f} m" if (ring > 0).any() else ""
    return (f": the sensor measured no depth on {missing:.0%} of its {n} pixels{around} (an object closer than "
            "the sensor's minimum range, or a dark or shiny surface, gives none)")


def _check_bbox(bbox, width: int, height: int) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) integer pixels of a box inside a width x height image; BadInputError for
    anything else (wrong length, NaN, text, x1 <= x0, a box entirely outside the image)."""
    try:
        values = [float(v) for v in bbox]
    except (TypeError, ValueError) as exc:
        raise BadInputError(f"bbox must be 4 numbers (x0, y0, x1, y1) pixels, got {bbox!r}") from exc
    if len(values) != 4 or not all(np.isfinite(values)):
        raise BadInputError(f"bbox must be 4 finite numbers (x0, y0, x1, y1) pixels, got {bbox!r}")
    x0, y0, x1, y1 = values
    if x1 <= x0 or y1 <= y0:
        raise BadInputError(f"bbox (x0, y0, x1, y1) needs x1 > x0 and y1 > y0, got {bbox!r} "
                            "(a BOP/COCO box [x, y, w, h] is x0, y0, x0 + w, y0 + h)")
    if x1 <= 0 or y1 <= 0 or x0 >= width or y0 >= height:
        raise BadInputError(f"bbox {bbox!r} lies entirely outside the {width}x{height} image")
    return (max(round(x0), 0), max(round(y0), 0), min(round(x1), width),
            min(round(y1), height))


def _surface_cost(nearest, moved, cap: float = 0.3):
    """Mean distance (...) of points ``moved (..., n, 3)`` (normalised model frame) to the model
    surface (its :class:`NearestGrid`), each capped at ``cap`` model radii (strays and background
    count as that far): the coarse search's and the chains' early exit's fit."""
    return (nearest.nearest_points(moved) - moved).norm(dim=-1).clamp_max(cap).mean(-1)


def object_ball(points: np.ndarray, diameter: float, radius: float = 1.0) -> np.ndarray:
    """(N,) bool: the points within ``radius`` x diameter of the cloud's median point.

    A segmented cloud holds the object and, from an imperfect mask, background or
    neighbours around it (and flying pixels at depth edges); the median point lies on the
    object when it is the majority, and no point of the object lies further than a diameter
    from it. When the
    ball would keep fewer than half the points, the object is not the majority: all are kept.
    """
    centre = np.median(points, axis=0)
    inside = np.linalg.norm(points - centre, axis=1) <= radius * diameter
    return inside if inside.sum() >= 0.5 * len(points) else np.ones(len(points), bool)


def flipped_poses(T_cam_model: np.ndarray, points: np.ndarray, model_points: np.ndarray) -> list[np.ndarray]:
    """``T_cam_model`` turned 180 degrees about each principal axis of the observed ``points``
    (camera frame, through their centroid) and of the model (model frame, through its
    centroid): the answers a partial view of a nearly symmetric shape confuses with the right
    one (a handle on the far side, a box seen from one face, an object upside down)."""
    def half_turns(p: np.ndarray) -> list[np.ndarray]:
        centre = p.mean(0)
        _, _, axes = np.linalg.svd(p - centre, full_matrices=False)
        turns = []
        for a in axes:
            F = np.eye(4)
            F[:3, :3] = 2.0 * np.outer(a, a) - np.eye(3)  # rotation by pi about a
            F[:3, 3] = centre - F[:3, :3] @ centre
            turns.append(F)
        return turns

    return ([F @ T_cam_model for F in half_turns(np.asarray(points, np.float64))]
            + [T_cam_model @ F for F in half_turns(np.asarray(model_points, np.float64))])


def degenerate_cloud(points: np.ndarray, diameter: float) -> str:
    """Why ``points (N, 3)`` cannot pin down a 6D pose ("" if they can): all within a sliver of
    the object's size, or on a line (a pose about that line is undetermined)."""
    centred = points - points.mean(0)
    spread = np.linalg.svd(centred[:: max(1, len(points) // 5000)], compute_uv=False) / np.sqrt(
        max(1, len(centred[:: max(1, len(points) // 5000)])))
    if spread[0] < 0.02 * diameter:
        return (f"the observed points span {2e3 * spread[0]:.2f} mm, far less than the object "
                f"({1e3 * diameter:.0f} mm): no pose can be told from them")
    if spread[1] < 0.01 * spread[0] + 1e-5:
        return "the observed points lie on a line: the rotation about it cannot be told"
    return ""
