"""``ObjectPoseEstimator``: 6D object pose by SE(3) diffusion registration, for objects never seen in training.

    est = posekit.ObjectPoseEstimator.from_pretrained("registration-procedural")
    model = est.prepare_model("obj.ply")                  # mesh (metres) or points
    result = est.estimate(model, observed_points)         # segmented object points, camera frame
    result = est.estimate(model, depth=depth, K=K, mask=mask)   # or bbox=..., or neither (tabletop)
    result.T_cam_model, result.score

Several hypotheses are drawn by running reverse diffusion chains from anchor rotations spread
over SO(3) (see :mod:`posekit.registration.diffusion`), scored
by geometric fit (:mod:`posekit.registration.scoring`) and the best is returned;
optionally refined by point-to-plane ICP. Inputs that cannot give a pose (empty cloud, a
mask that selects nothing, too few valid points) give a result with ``success=False``
and the reason; inputs that are plainly wrong (millimetres, wrong shapes, a model of a few
points) raise :class:`posekit.errors.BadInputError`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from posekit.errors import BadInputError
from posekit.io.mesh import Mesh
from posekit.registration.clouds import (
    ModelCloud,
    estimate_normals,
    model_cloud_from_mesh,
    model_cloud_from_points,
    normalise_observed,
    observed_cloud,
    pose_from_state,
)

DEFAULT_MODEL = "registration-procedural"


@dataclass
class InferenceConfig:
    """Test-time settings (the ``inference:`` section of a config; defaults measured with
    ``posekit bench registration``)."""

    anchors: int = 24  # reverse chains, one per anchor rotation
    sample_steps: int = 5  # paper: T = 5 at test time
    match_iters: int = 2
    match_observed: int = 192
    match_model: int = 384
    refine_icp: bool = True  # +8 points ADD(-S) on held-out procedural views (docs/models.md)
    coarse_rotations: int = 1024  # coarse rotation search before the chains (0: group anchors only)
    coarse_points: int = 64  # observed points used by the coarse search (64 vs 128: same ADD(-S), -30 % time)
    icp_candidates: int = 3  # best distinct hypotheses refined by ICP when refine_icp
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

    @property
    def R(self) -> np.ndarray:
        return self.T_cam_model[:3, :3]

    @property
    def t(self) -> np.ndarray:
        return self.T_cam_model[:3, 3]

    def to_dict(self) -> dict:
        return {"success": self.success, "reason": self.reason, "obj_id": self.obj_id,
                "R": self.R.tolist(), "t": self.t.tolist(), "score": self.score, "time_ms": self.time_ms,
                "n_observed": self.n_observed, "hypotheses": self.hypotheses}


def _failed(reason: str, t0: float, obj_id: int = 0, n_observed: int = 0) -> ObjectPoseResult:
    return ObjectPoseResult(False, np.eye(4), 0.0, reason, (time.perf_counter() - t0) * 1e3, n_observed, obj_id)


@dataclass
class PreparedModel:
    """A model with its network features cached (see :meth:`ObjectPoseEstimator.prepare_model`)."""

    cloud: ModelCloud
    points_t: object  # (1, M, 3) normalised points, torch
    normals_t: object
    features_t: object  # (1, M, C)

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
        # One reverse chain per anchor rotation: hypotheses cover every orientation.
        self.num_hypotheses = int(num_hypotheses or inference.anchors)
        if self.num_hypotheses < 1:
            raise BadInputError(f"num_hypotheses must be >= 1, got {num_hypotheses}")
        self.schedule = diffusion.schedule(sample_steps or inference.sample_steps)
        self.n_observed = int(data.get("n_observed", 512))
        self.n_model = int(data.get("n_model", 1024))
        self.refine_icp = inference.refine_icp if refine_icp is None else bool(refine_icp)
        self.icp_candidates = max(1, int(inference.icp_candidates))
        self.coarse_rotations = int(inference.coarse_rotations)
        self.coarse_points = int(inference.coarse_points)
        self.seed = int(seed)
        self.name = name
        self.match_iters = int(match_iters or inference.match_iters)

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path = DEFAULT_MODEL, device: str = "cpu", **kwargs):
        """Load shipped weights by name (``posekit.pretrained.available("registration")``) or a path."""
        from posekit import pretrained
        from posekit.registration.denoiser import DenoiserConfig, RegistrationDenoiser
        from posekit.training import init_distributed

        init_distributed(device)  # clear error for device="cuda" without a GPU
        weights = pretrained.load(name_or_path, engine="registration")
        net = RegistrationDenoiser(DenoiserConfig(**weights.config.get("network", {})))
        net.load_state_dict(weights.state_dict)
        return cls(net, weights.config, device=device, name=weights.name, **kwargs)

    # -- models ---------------------------------------------------------------------------------

    def prepare_model(self, model, obj_id: int = 0, symmetries: np.ndarray | None = None,
                      diameter: float | None = None) -> PreparedModel:
        """A mesh (:class:`Mesh` or mesh file, metres), or points (M, 3) metres, ready to register.

        Features are computed once here; reuse the result for every frame. ``symmetries``
        (S, 4, 4) T_model_model are only used for reporting; scoring needs none.
        """
        import torch

        if isinstance(model, PreparedModel):
            return model
        if isinstance(model, ModelCloud):
            cloud = model
        elif isinstance(model, Mesh):
            cloud = self._cloud_from_mesh(model, obj_id, symmetries, diameter)
        elif isinstance(model, (str, Path)):
            cloud = self._cloud_from_file(Path(model), obj_id, symmetries, diameter)
        else:
            pts = np.asarray(model, dtype=np.float64)
            if pts.ndim != 2 or pts.shape[1] != 3:
                raise BadInputError(f"model points must be (M, 3), got shape {pts.shape}")
            pts = pts[np.isfinite(pts).all(1)]
            self._check_model_points(pts)
            cloud = model_cloud_from_points(pts, n=self.n_model, seed=self.seed, symmetries=symmetries, obj_id=obj_id)
        pts_n, nrm = cloud.normalised()
        idx = np.random.default_rng(self.seed).permutation(len(pts_n))[: self.n_model]
        p = torch.from_numpy(pts_n[idx]).float().to(self.device)[None]
        n = torch.from_numpy(nrm[idx]).float().to(self.device)[None]
        with torch.no_grad():
            f = self.net.features(p, n)
        return PreparedModel(cloud, p, n, f)

    def _check_model_points(self, pts: np.ndarray, count: bool = True) -> None:
        if count and len(pts) < MIN_MODEL_POINTS:
            raise BadInputError(f"the model has {len(pts)} valid points; registration needs at least "
                                f"{MIN_MODEL_POINTS} (pass a mesh or a denser cloud)")
        from posekit.io.pointcloud import check_metric_units

        check_metric_units(pts, (0.005, 3.0))

    def _cloud_from_mesh(self, mesh: Mesh, obj_id, symmetries, diameter) -> ModelCloud:
        if len(mesh.faces) == 0:
            return self.prepare_model(np.asarray(mesh.vertices), obj_id, symmetries).cloud
        self._check_model_points(np.asarray(mesh.vertices), count=False)  # a box has 8 vertices
        return model_cloud_from_mesh(mesh, 4 * self.n_model, seed=self.seed, symmetries=symmetries, obj_id=obj_id,
                                     diameter=diameter)

    def _cloud_from_file(self, path: Path, obj_id, symmetries, diameter) -> ModelCloud:
        from posekit.io.mesh import read_mesh
        from posekit.io.pointcloud import read_point_cloud

        try:
            mesh = read_mesh(path)
        except BadInputError:
            mesh = None
        if mesh is not None and len(mesh.faces):
            return self._cloud_from_mesh(mesh, obj_id, symmetries, diameter)
        cloud = read_point_cloud(path)
        pts = np.asarray(cloud.points, dtype=np.float64)
        self._check_model_points(pts)
        return model_cloud_from_points(pts, cloud.normals, n=self.n_model, seed=self.seed, symmetries=symmetries,
                                       obj_id=obj_id)

    # -- estimation -----------------------------------------------------------------------------

    def estimate(self, model, observed: np.ndarray | None = None, *, depth: np.ndarray | None = None,
                 K: np.ndarray | None = None, mask: np.ndarray | None = None, bbox=None,
                 depth_range: tuple[float, float] | None = None, return_hypotheses: bool = False,
                 observed_normals: np.ndarray | None = None) -> ObjectPoseResult:
        """Pose of ``model`` in the camera frame from observed points or a depth image.

        observed (N, 3) metres: the object's points (segmented). Or depth (H, W) float32
        metres + K (3, 3) with an optional mask (H, W) bool or bbox (x0, y0, x1, y1) pixels;
        without mask the object is found by the tabletop fallback (within the bbox if given).
        """
        t0 = time.perf_counter()
        model = self.prepare_model(model)
        obj_id = model.obj_id
        if (observed is None) == (depth is None):
            raise BadInputError("pass either observed points or depth (+ K, optional mask/bbox)")
        segmented = True
        if depth is not None:
            observed, observed_normals, segmented, why = self._points_from_depth(depth, K, mask, bbox, depth_range)
            if why:
                return _failed(why, t0, obj_id)
        pts = np.asarray(observed, dtype=np.float64)
        if pts.ndim != 2 or pts.shape[1] != 3:
            raise BadInputError(f"observed points must be (N, 3), got shape {pts.shape}")
        finite = np.isfinite(pts).all(1)
        pts = pts[finite]
        if observed_normals is not None:
            observed_normals = np.asarray(observed_normals, dtype=np.float64)[finite]
        if len(pts) < MIN_OBSERVED_POINTS:
            return _failed(f"only {len(pts)} valid observed points (need {MIN_OBSERVED_POINTS})", t0, obj_id, len(pts))
        self._check_observed_units(pts, model)
        if not segmented:
            return self._estimate_in_scene(model, pts, t0, return_hypotheses)
        result = self._register(model, pts, observed_normals, return_hypotheses)
        result.time_ms = (time.perf_counter() - t0) * 1e3
        return result

    def estimate_scene(self, model, scene_points: np.ndarray, return_hypotheses: bool = False) -> ObjectPoseResult:
        """Pose of ``model`` in an unsegmented scene cloud (N, 3) metres: the tabletop fallback."""
        t0 = time.perf_counter()
        model = self.prepare_model(model)
        pts = np.asarray(scene_points, dtype=np.float64)
        if pts.ndim != 2 or pts.shape[1] != 3:
            raise BadInputError(f"scene points must be (N, 3), got shape {pts.shape}")
        pts = pts[np.isfinite(pts).all(1)]
        if len(pts) < MIN_OBSERVED_POINTS:
            return _failed(f"only {len(pts)} valid scene points", t0, model.obj_id, len(pts))
        self._check_observed_units(pts, model)
        return self._estimate_in_scene(model, pts, t0, return_hypotheses)

    def _check_observed_units(self, pts: np.ndarray, model: PreparedModel) -> None:
        z = float(np.median(np.linalg.norm(pts, axis=1)))
        if z > 30.0:
            raise BadInputError(
                f"observed points are {z:.4g} units from the camera: that looks like millimetres; "
                "posekit expects metres (multiply by 0.001)")

    def _points_from_depth(self, depth, K, mask, bbox, depth_range):
        from posekit.data.sensor import normals_from_depth
        from posekit.io.depth import check_depth_units, depth_to_points

        depth = np.asarray(depth)
        if depth.ndim != 2:
            raise BadInputError(f"depth must be (H, W), got shape {depth.shape}")
        if K is None:
            raise BadInputError("depth needs intrinsics K (3x3)")
        if depth.dtype == np.uint16:
            raise BadInputError("depth is uint16 (millimetres?): convert to float32 metres (depth / 1000)")
        depth = np.where(np.isfinite(depth), depth, 0).astype(np.float32)
        check_depth_units(depth)
        H, W = depth.shape
        region = np.ones((H, W), bool)
        segmented = mask is not None
        if mask is not None:
            mask = np.asarray(mask).astype(bool)
            if mask.shape != depth.shape:
                raise BadInputError(f"mask {mask.shape} and depth {depth.shape} differ in size")
            region = mask
        if bbox is not None:
            x0, y0, x1, y1 = (round(float(v)) for v in bbox)
            box = np.zeros((H, W), bool)
            box[max(y0, 0):min(y1, H), max(x0, 0):min(x1, W)] = True
            region = region & box
        if not region.any():
            return None, None, segmented, "the mask/bbox selects no pixels"
        pts, pix = depth_to_points(depth, K, mask=region, depth_range=depth_range, return_pixels=True)
        if len(pts) == 0:
            return None, None, segmented, "no valid depth inside the mask/bbox"
        normals = None
        if segmented:
            nmap = normals_from_depth(depth, K)
            normals = nmap[pix[:, 1], pix[:, 0]].astype(np.float64)
            bad = np.linalg.norm(normals, axis=1) < 0.5
            normals[bad] = -pts[bad] / np.linalg.norm(pts[bad], axis=1, keepdims=True)
        return pts, normals, segmented, ""

    def _estimate_in_scene(self, model: PreparedModel, scene_pts: np.ndarray, t0: float,
                           return_hypotheses: bool) -> ObjectPoseResult:
        from posekit.registration.segmentation import tabletop_candidates

        candidates = tabletop_candidates(scene_pts, model.diameter)
        if not candidates:
            return _failed("no object-sized cluster found above the dominant plane", t0, model.obj_id,
                           len(scene_pts))
        best = None
        for cand in candidates:
            r = self._register(model, cand, None, return_hypotheses)
            if best is None or r.score > best.score:
                best = r
        best.time_ms = (time.perf_counter() - t0) * 1e3
        best.reason = best.reason or f"tabletop fallback: best of {len(candidates)} clusters"
        return best

    def _register(self, model: PreparedModel, pts: np.ndarray, normals: np.ndarray | None,
                  return_hypotheses: bool) -> ObjectPoseResult:
        import torch

        from posekit.registration.diffusion import sample
        from posekit.registration.scoring import score_hypotheses

        rng = np.random.default_rng(self.seed)
        if normals is None:
            normals = estimate_normals(pts)
        obs, obs_nrm = observed_cloud(pts, normals, self.n_observed, rng)
        obs_n, mu = normalise_observed(obs, model.cloud.radius)
        k = self.num_hypotheses
        o = torch.from_numpy(obs_n).float().to(self.device)[None]
        on = torch.from_numpy(obs_nrm).float().to(self.device)[None]
        g = torch.Generator(device=self.device).manual_seed(self.seed)
        with torch.no_grad():
            f_obs = self.net.features(o, on)
            ok, fo = o.expand(k, -1, -1), f_obs.expand(k, -1, -1)
            mk, fm = model.points_t.expand(k, -1, -1), model.features_t.expand(k, -1, -1)

            def denoise(H, s):
                return self.net.match(ok, fo, mk, fm, H, s, iters=self.match_iters)

            H_T = self._start_states(o[0], model.points_t[0], k) if self.coarse_rotations > 0 else \
                self._anchor_states(k)
            H = sample(denoise, k, self.schedule, device=self.device, generator=g, H_init=H_T)
        T = pose_from_state(H.double().cpu().numpy(), mu, model.cloud)
        score_pts = pts if len(pts) <= 1500 else pts[rng.choice(len(pts), 1500, replace=False)]
        scores = score_hypotheses(T, model.cloud.points, model.cloud.normals, score_pts, model.diameter)
        order = np.argsort([-s.score for s in scores])
        T_best, s_best = T[order[0]], scores[order[0]]
        if self.refine_icp:
            # ICP on the few best distinct hypotheses, then the best fit: robust to a scoring tie
            # between a right pose and a near-miss that ICP would have fixed.
            from posekit.registration.baselines import refine_icp

            for i in self._distinct(T, order, self.icp_candidates):
                T_icp = refine_icp(T[i], model.cloud.points, model.cloud.normals, pts, model.diameter)
                s_icp = score_hypotheses(T_icp[None], model.cloud.points, model.cloud.normals, score_pts,
                                         model.diameter)[0]
                if s_icp.score > s_best.score:
                    T_best, s_best = T_icp, s_icp
        hyps = [{"T_cam_model": Ti.tolist(), "score": s.score, "fit": s.fit, "violations": s.violations}
                for Ti, s in zip(T, scores)] if return_hypotheses else []
        return ObjectPoseResult(True, T_best, float(s_best.score), "", 0.0, len(pts), model.obj_id, hyps)

    def _anchor_states(self, k: int):
        import torch

        from posekit.registration.diffusion import anchor_rotations

        H_T = torch.eye(4, device=self.device).repeat(k, 1, 1)
        H_T[:, :3, :3] = anchor_rotations(k, device=self.device)
        return H_T

    def _start_states(self, obs, model, k: int, min_angle_deg: float = 15.0):
        """k chain end points H_T (kx4x4) from a coarse search over ``coarse_rotations`` rotations.

        The denoiser converges from about 20 degrees; the anchors of a 24- or 60-rotation group
        are up to 63 / 44 degrees away. So every rotation of a dense set is tried at once:
        centroid-aligned, one nearest-neighbour translation update, then the mean distance of
        observed points to the model; the k best rotations at least ``min_angle_deg`` apart
        start the chains (normalised units: obs (Nx3), model (Mx3) torch).
        """
        import torch

        from posekit.geometry.so3 import geodesic_distance
        from posekit.registration.denoiser import squared_distances
        from posekit.registration.diffusion import anchor_rotations

        R = anchor_rotations(self.coarse_rotations, device=self.device)
        o = obs[: self.coarse_points]
        m = model[: 2 * self.coarse_points]
        costs, shifts = [], []
        for chunk in R.split(128):
            moved = o @ chunk.transpose(1, 2)  # (c, n, 3)
            j = squared_distances(moved, m).argmin(-1)
            shift = (m[j] - moved).mean(1, keepdim=True)  # one translation step of ICP
            d = squared_distances(moved + shift, m).min(-1).values.sqrt()
            costs.append(d.clamp_max(0.3).mean(-1))  # truncated: background points cannot dominate
            shifts.append(shift[:, 0])
        cost, shift = torch.cat(costs), torch.cat(shifts)
        best = cost.argsort()[: 12 * k]
        Rb = R[best]
        close = (geodesic_distance(Rb[:, None], Rb[None]) < np.radians(min_angle_deg)).cpu().numpy()
        chosen: list[int] = []
        for i in range(len(best)):
            if not close[i, chosen].any():
                chosen.append(i)
            if len(chosen) == k:
                break
        picked = best[chosen].tolist()
        H_T = torch.eye(4, device=self.device).repeat(len(picked), 1, 1)
        H_T[:, :3, :3] = R[picked]
        H_T[:, :3, 3] = shift[picked]
        if len(picked) < k:  # few distinct rotations: pad with group anchors
            H_T = torch.cat([H_T, self._anchor_states(k)[: k - len(picked)]])
        return H_T

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
