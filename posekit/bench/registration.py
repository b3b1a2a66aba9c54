"""Registration benchmark: posekit's diffusion registration vs classical peers, side by side.

Renders a held-out synthetic BOP dataset (:func:`posekit.data.scenes.synthesize_bop_dataset`)
from a models folder (default: procedural shapes drawn from seeds 10 000 + ``seed``, a range
training does not use; or e.g. the LM-O models, which the network never sees), once per
depth-noise level, with the same scenes and poses in each. Each GT instance seen with at
least 10 % of its surface becomes a target: its observed cloud is cut from the noisy depth
with the oracle visible mask (``mask_visib``, back-projected by
:func:`posekit.io.depth.depth_to_points`), and every method registers the object's model
to that same cloud:

* ``posekit`` / ``posekit+icp``: :class:`posekit.registration.estimator.ObjectPoseEstimator`
  without / with its ICP refinement;
* ``open3d_fpfh_ransac_icp``, ``open3d_icp``, ``small_gicp`` (when installed): the peers of
  :mod:`posekit.registration.baselines`.

Metrics (BOP conventions, :mod:`posekit.eval.pose_error`): ``add_s_recall`` is the fraction
of targets with ADD (ADI for symmetric objects) below 0.1 x diameter; ``rot_recall_5deg``
the fraction whose rotation error, minimised over the object's symmetry transformations
(:func:`posekit.io.bop.symmetry_transformations`), is below 5 deg; ``trans_recall_1cm`` the
fraction whose translation error (Euclidean, against the GT composed with the same symmetry)
is below 1 cm. A method that fails (error raised or no answer) counts as wrong, with
infinite errors. Latency is the wall time of one registration call, model preparation
(features, caches) excluded for every method alike.

With ``view`` (``posekit bench registration --rgb``; the renders carry RGB from the models'
vertex colours) each posekit method also runs as ``<method>+view``: the same estimator, given
the target's RGB image and a :class:`posekit.view.ViewPoseEstimator`, starts ``view_starts``
chains (default 8, a third of the 24) from the view distribution's top modes instead of the
coarse rotation search (:meth:`ObjectPoseEstimator.estimate` with ``rgb=``, ``view=``); its
latency includes the view network. ``view_prior`` in the result sets the pairs side by side.

Headline numbers use the targets at the calibrated Kinect noise level with a visible
fraction >= 0.5; ``by_visible_fraction`` (bins 0.1-0.5, 0.5-0.7, 0.7-0.9, 0.9-1.0, Kinect
noise) and ``by_noise`` (every level, visible fraction >= 0.5) break them down.
"""

from __future__ import annotations

import math
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from posekit.data.sensor import DepthSensorModel
from posekit.errors import BadInputError, PosekitError

# Procedural benchmark objects come from this seed range; training never draws from it.
HELD_OUT_SEED_OFFSET = 10_000
HEADLINE_NOISE = "kinect"
# name -> sensor model (None: perfect depth). "kinect_x2": the calibrated model with its
# axial noise terms doubled (holes, quantisation and shadows unchanged).
_KINECT = DepthSensorModel()
NOISE_LEVELS: dict[str, DepthSensorModel | None] = {
    "kinect": _KINECT,
    "kinect_x2": replace(_KINECT, sigma_base=2 * _KINECT.sigma_base, sigma_quadratic=2 * _KINECT.sigma_quadratic,
                         sigma_angle=2 * _KINECT.sigma_angle),
    "clean": None,
}
DEFAULT_NOISE_LEVELS = ("kinect", "kinect_x2")
VISIBLE_FRACTION_MIN = 0.5
VISIBLE_FRACTION_BINS = ((0.1, 0.5), (0.5, 0.7), (0.7, 0.9), (0.9, 1.0))
ADD_THRESHOLD = 0.1  # fraction of the diameter
ROT_THRESHOLD_DEG = 5.0
TRANS_THRESHOLD_M = 0.01
METRIC_KEYS = ("add_s_recall", "rot_recall_5deg", "trans_recall_1cm", "median_rot_err_deg",
               "median_trans_err_mm", "latency_ms_median", "latency_ms_p95", "score_auroc", "n_targets")
MASK_MODES = ("gt", "detections", "none")
DEFAULT_WEIGHTS = "registration-procedural"


@dataclass
class BenchObject:
    """One object model as every method sees it (metres, model frame).

    points/normals (M, 3) float32: area-uniform surface samples (the peers' model cloud);
    eval_points (E, 3): the points ADD/ADI are computed on; symmetries (S, 4, 4)
    T_model_model, identity first.
    """

    obj_id: int
    mesh: object
    diameter: float
    symmetric: bool
    symmetries: np.ndarray
    points: np.ndarray
    normals: np.ndarray
    eval_points: np.ndarray


@dataclass
class BenchTarget:
    """One GT instance in one image at one noise level, as the methods get it: the observed
    cloud ``points (N, 3)`` float32 camera frame metres (cut with the mask, or the whole
    scene for masks "none"), the depth image (H, W) metres, K and the mask (H, W) bool
    (None for "none"); and its GT pose."""

    noise: str
    scene_id: int
    im_id: int
    gt_id: int
    obj_id: int
    visib_fract: float
    T_cam_model: np.ndarray
    points: np.ndarray = field(repr=False)
    depth: np.ndarray | None = field(default=None, repr=False)
    K: np.ndarray | None = field(default=None, repr=False)
    mask: np.ndarray | None = field(default=None, repr=False)
    rgb: np.ndarray | None = field(default=None, repr=False)  # (H, W, 3) uint8, when the benchmark loads RGB


class PeerMethod:
    """A :mod:`posekit.registration.baselines` function as a benchmark method: it registers the
    model to the target's cloud (the masked points, or the whole scene cloud for masks
    "none"); its score is the registration's inlier fitness."""

    takes_target = True

    def __init__(self, register: Callable, seed: int = 0):
        self.register = register
        self.seed = seed
        self._calls = 0

    def __call__(self, obj: BenchObject, target: BenchTarget) -> tuple[np.ndarray, float]:
        self._calls += 1
        T, info = self.register(obj.points, obj.normals, target.points, obj.diameter,
                                rng=np.random.default_rng([self.seed, self._calls]))
        return T, float(info.get("fitness", np.nan)) if isinstance(info, dict) else np.nan


class EstimatorMethod:
    """An estimator-shaped object (``prepare_model``, ``estimate``) as a benchmark method.

    ``prepare`` builds and caches the model (features) per object, outside the timing.
    A result with ``success`` False counts as a failure; its ``reason`` is tallied.
    """

    def __init__(self, estimator):
        self.estimator = estimator
        self._models: dict[int, object] = {}
        self.failures: dict[str, int] = {}
        self.stage_ms: dict[str, list[float]] = {}  # per stage, one entry per call that ran it

    def prepare(self, obj: BenchObject) -> None:
        if obj.obj_id not in self._models:
            syms = obj.symmetries if obj.symmetric else None
            self._models[obj.obj_id] = self.estimator.prepare_model(obj.mesh, obj_id=obj.obj_id, symmetries=syms)

    takes_target = True

    def __call__(self, obj: BenchObject, target: BenchTarget) -> tuple[np.ndarray | None, float]:
        self.prepare(obj)
        model = self._models[obj.obj_id]
        if target.depth is not None:  # the depth image with its mask (or none): as a user calls it
            res = self.estimator.estimate(model, depth=target.depth, K=target.K, mask=target.mask)
        else:
            res = self.estimator.estimate(model, target.points)
        return self._result(res)

    def _result(self, res) -> tuple[np.ndarray | None, float]:
        for stage, ms in (getattr(res, "stage_ms", None) or {}).items():
            self.stage_ms.setdefault(stage, []).append(ms)
        if not res.success:
            reason = str(getattr(res, "reason", "") or "unknown")
            self.failures[reason] = self.failures.get(reason, 0) + 1
            return None, np.nan
        return np.asarray(res.T_cam_model, dtype=np.float64), float(res.score)


class ViewPriorMethod(EstimatorMethod):
    """An :class:`EstimatorMethod` whose chains start from the image: ``estimate(..., rgb=target.rgb,
    view=view, view_starts=view_starts)`` (the view network's top modes replace the coarse search)."""

    def __init__(self, estimator, view, view_starts: int = 8):
        super().__init__(estimator)
        self.view = view
        self.view_starts = int(view_starts)

    def __call__(self, obj: BenchObject, target: BenchTarget) -> tuple[np.ndarray | None, float]:
        if target.rgb is None or target.depth is None:
            raise BadInputError("the view prior needs the target's RGB image and depth (run with rgb loaded)")
        self.prepare(obj)
        res = self.estimator.estimate(self._models[obj.obj_id], depth=target.depth, K=target.K, mask=target.mask,
                                      rgb=target.rgb, view=self.view, view_starts=self.view_starts)
        return self._result(res)


def estimator_methods(weights: str = DEFAULT_WEIGHTS, device: str = "cpu", **kwargs) -> dict[str, EstimatorMethod]:
    """``{"posekit": ..., "posekit+icp": ..., "ablation_no_diffusion": ...}`` from shipped or given
    weights. The ablation is posekit+icp without the reverse diffusion (``sample_steps=0``: the
    coarse search's starts go straight to scoring, ICP and half turns): what the diffusion adds."""
    from posekit.registration.estimator import ObjectPoseEstimator

    def build(**settings):
        return EstimatorMethod(ObjectPoseEstimator.from_pretrained(weights, device=device, **settings, **kwargs))

    return {"posekit": build(refine_icp=False), "posekit+icp": build(refine_icp=True),
            "ablation_no_diffusion": build(refine_icp=True, sample_steps=0)}


ESTIMATOR_METHODS = ("posekit", "posekit+icp", "ablation_no_diffusion")
PEER_METHODS = ("open3d_fpfh_ransac_icp", "open3d_icp", "small_gicp")


def default_methods(weights: str = DEFAULT_WEIGHTS, device: str = "cpu", seed: int = 0,
                    notes: list[str] | None = None, names: Sequence[str] | None = None) -> dict[str, Callable]:
    """The benchmark's methods (all, or those in ``names``); one that cannot be built (no
    estimator module or weights, small_gicp not installed) is left out with a note."""
    from posekit.registration import baselines

    names = list(ESTIMATOR_METHODS + PEER_METHODS) if names is None else list(names)
    unknown = [n for n in names if n not in ESTIMATOR_METHODS + PEER_METHODS]
    if unknown:
        raise BadInputError(f"method(s) {unknown} not available; available: "
                            f"{list(ESTIMATOR_METHODS + PEER_METHODS)}")
    notes = notes if notes is not None else []
    methods: dict[str, Callable] = {}
    wanted = [n for n in ESTIMATOR_METHODS if n in names]
    if wanted:
        try:
            built = estimator_methods(weights, device)
            methods.update({n: built[n] for n in wanted})
        except (ImportError, PosekitError) as exc:
            notes.append(f"posekit estimator not available ({type(exc).__name__}: {exc}): "
                         f"{' and '.join(wanted)} skipped")
    peers = {"open3d_fpfh_ransac_icp": baselines.register_open3d_fpfh_ransac_icp,
             "open3d_icp": baselines.register_open3d_icp, "small_gicp": baselines.register_small_gicp}
    for name in PEER_METHODS:
        if name not in names:
            continue
        if name == "small_gicp" and not baselines.small_gicp_available():
            notes.append("small_gicp not installed (pip install small-gicp): skipped")
            continue
        methods[name] = PeerMethod(peers[name], seed)
    return methods


# ----------------------------------------------------------------------------- errors


def pose_errors(T_est: np.ndarray | None, T_gt: np.ndarray, obj: BenchObject) -> dict:
    """ADD(-S) / diameter, symmetry-aware rotation error (deg), translation error (m).

    The rotation error is the smallest angle of R_est^T R_gt R_s over the symmetries S; the
    translation error is |t_est - (R_gt t_s + t_gt)| for that same S. None -> infinities.
    """
    from posekit.eval.pose_error import add, adi

    if T_est is None:
        return {"add_rel": math.inf, "rot_deg": math.inf, "trans_m": math.inf}
    R_e, t_e, R_g, t_g = T_est[:3, :3], T_est[:3, 3], T_gt[:3, :3], T_gt[:3, 3]
    err = (adi if obj.symmetric else add)(R_e, t_e, R_g, t_g, obj.eval_points)
    A = R_e.T @ R_g
    cos = 0.5 * (np.einsum("ij,sji->s", A, obj.symmetries[:, :3, :3]) - 1.0)
    best = int(np.argmax(cos))
    rot = math.degrees(math.acos(float(np.clip(cos[best], -1.0, 1.0))))
    trans = float(np.linalg.norm(t_e - (R_g @ obj.symmetries[best, :3, 3] + t_g)))
    return {"add_rel": err / obj.diameter, "rot_deg": rot, "trans_m": trans}


def summarize(records: Sequence[dict]) -> dict:
    """The benchmark's metrics (:data:`METRIC_KEYS`) over per-target records of one method.

    ``score_auroc``: AUROC of the method's score for right (ADD(-S) < 0.1 d) vs wrong
    answers (:func:`posekit.eval.confidence.auroc`; None without scores or without both kinds).
    """
    from posekit.eval.confidence import auroc

    n = len(records)
    if n == 0:
        return {k: (0 if k == "n_targets" else None) for k in METRIC_KEYS} | {"n_failed": 0}
    add_rel = np.array([r["add_rel"] for r in records])
    rot = np.array([r["rot_deg"] for r in records])
    trans = np.array([r["trans_m"] for r in records])
    lat = np.array([r["latency_ms"] for r in records])
    return {
        "add_s_recall": float(np.mean(add_rel < ADD_THRESHOLD)),
        "rot_recall_5deg": float(np.mean(rot < ROT_THRESHOLD_DEG)),
        "trans_recall_1cm": float(np.mean(trans < TRANS_THRESHOLD_M)),
        "median_rot_err_deg": _finite(float(np.median(rot))),
        "median_trans_err_mm": _finite(1e3 * float(np.median(trans))),
        "latency_ms_median": float(np.median(lat)),
        "latency_ms_p95": float(np.percentile(lat, 95)),
        "score_auroc": (auroc([r.get("score", np.nan) for r in records], add_rel < ADD_THRESHOLD)
                        if any(np.isfinite(r.get("score", np.nan)) for r in records) else None),
        "n_targets": n,
        "n_failed": int(sum(1 for r in records if r["failed"])),
    }


def _finite(x: float):
    return x if math.isfinite(x) else None


# ----------------------------------------------------------------------------- data


def load_objects(dataset, n_points: int = 2048, n_eval_points: int = 1000, seed: int = 0) -> dict[int, BenchObject]:
    """BenchObject per object of a BopDataset (model clouds sampled once, reproducibly)."""
    from posekit.io.bop import symmetry_transformations
    from posekit.registration.baselines import sample_model_cloud

    objs = {}
    for obj_id in dataset.obj_ids:
        mesh = dataset.model(obj_id)
        info = dataset.models_info[obj_id]
        points, normals = sample_model_cloud(mesh, n_points, seed=seed)
        eval_points = mesh.sample_points(n_eval_points, seed=seed + 1)
        objs[obj_id] = BenchObject(obj_id, mesh, float(info.diameter), bool(info.is_symmetric),
                                   symmetry_transformations(info), points, normals, eval_points)
    return objs


def collect_targets(dataset, noise: str, visible_fraction_min: float = 0.1, masks: str = "gt",
                    detections: Sequence | None = None, max_scene_points: int = 30000,
                    rgb: bool = False) -> list[BenchTarget]:
    """Every usable GT instance with visib_fract >= visible_fraction_min, as the methods see it.

    masks "gt": the oracle visible mask; "detections": the best-matching of the top-scoring
    ``detections`` of the object's category in the image (a :class:`Detection` list, e.g.
    :func:`posekit.data.detections.simulate_detections`; an instance no detection covers gets
    an empty mask and fails); "none": no mask, the points are the whole scene (strided to
    ``max_scene_points``). ``rgb``: also load each image's RGB (``BenchTarget.rgb``).
    """
    from posekit.io.depth import depth_to_points

    if masks not in MASK_MODES:
        raise BadInputError(f"masks must be one of {MASK_MODES}, got {masks!r}")
    by_image: dict[tuple[int, int, int], list] = {}
    for d in detections or ():
        by_image.setdefault((d.scene_id, d.image_id, d.category_id), []).append(d)
    targets = []
    for scene_id in dataset.scene_ids:
        for im_id in dataset.image_ids(scene_id):
            image = dataset.load_image(scene_id, im_id, rgb=rgb, depth=True)
            scene = None
            counts: dict[int, int] = {}
            for gt in image.gt:
                counts[gt.obj_id] = counts.get(gt.obj_id, 0) + (0 if gt.problem else 1)
            for gt_id, gt in enumerate(image.gt):
                if gt.problem:  # a broken stored pose (reported when the file was read)
                    continue
                visib = float(image.gt_info[gt_id].visib_fract) if image.gt_info else 1.0
                if visib < visible_fraction_min:
                    continue
                mask = None
                if masks == "none":
                    if scene is None:
                        scene = depth_to_points(image.depth, image.K)
                        scene = scene[:: max(1, int(np.ceil(len(scene) / max_scene_points)))]
                    points = scene
                else:
                    visible = dataset.load_mask(scene_id, im_id, gt_id, visible=True)
                    if masks == "gt":
                        mask = visible
                    else:
                        cands = sorted(by_image.get((scene_id, im_id, int(gt.obj_id)), []),
                                       key=lambda d: -d.score)[: counts[gt.obj_id]]
                        decoded = [d.mask() for d in cands]
                        ious = [(m & visible).sum() / max((m | visible).sum(), 1) for m in decoded]
                        mask = decoded[int(np.argmax(ious))] if decoded and max(ious) > 0 else \
                            np.zeros_like(visible)
                    points = depth_to_points(image.depth, image.K, mask=mask)
                targets.append(BenchTarget(noise, scene_id, im_id, gt_id, int(gt.obj_id), visib,
                                           np.asarray(gt.T_cam_model, dtype=np.float64), points,
                                           image.depth, image.K, mask, image.rgb if rgb else None))
    return targets


def render_datasets(models: str | Path, root: Path, noise_levels: Sequence[str], *, n_scenes: int, n_images: int,
                    width: int, height: int, seed: int, n_procedural_objects: int = 8,
                    objects_per_scene: tuple[int, int] = (5, 8), progress: bool = True) -> dict[str, Path]:
    """One BOP dataset per noise level under ``root``: same scenes, cameras and poses."""
    from posekit.data.scenes import synthesize_bop_dataset

    out = {}
    for noise in noise_levels:
        if noise not in NOISE_LEVELS:
            raise BadInputError(f"unknown noise level {noise!r}; choose from {sorted(NOISE_LEVELS)}")
        out[noise] = root / noise
        synthesize_bop_dataset(models, out[noise], n_scenes=n_scenes, n_images=n_images, seed=seed, width=width,
                               height=height, n_procedural_objects=n_procedural_objects,
                               objects_per_scene=tuple(objects_per_scene), sensor=NOISE_LEVELS[noise],
                               progress=progress)
    return out


# ----------------------------------------------------------------------------- benchmark


def _as_methods(methods, weights: str, device: str, seed: int, notes: list[str]) -> dict[str, Callable]:
    if isinstance(methods, Mapping):
        return dict(methods)
    return default_methods(weights, device, seed, notes, names=methods)


VIEW_SUFFIX = "+view"


def _load_view(view, device: str):
    """A ViewPoseEstimator from a name or path (an estimator-shaped object is used as it is)."""
    if isinstance(view, (str, Path)):
        from posekit.view.estimator import ViewPoseEstimator

        return ViewPoseEstimator.from_pretrained(view, device=device)
    if not callable(getattr(view, "predict", None)):
        raise BadInputError(f"view must be a view model name, a weights path or a ViewPoseEstimator, got {view!r}")
    return view


def add_view_methods(methods: dict[str, Callable], view, view_starts: int) -> dict[str, Callable]:
    """``methods`` with ``<name>+view`` (:class:`ViewPriorMethod`, same estimator) right after each
    :class:`EstimatorMethod`; BadInputError when there is none."""
    out: dict[str, Callable] = {}
    for name, method in methods.items():
        out[name] = method
        if isinstance(method, EstimatorMethod) and not isinstance(method, ViewPriorMethod):
            out[name + VIEW_SUFFIX] = ViewPriorMethod(method.estimator, view, view_starts)
    if len(out) == len(methods):
        raise BadInputError("--rgb compares posekit with and without the view prior: run posekit or posekit+icp "
                            f"(methods given: {list(methods)})")
    return out


def _chains(method) -> int | None:
    if isinstance(method, ViewPriorMethod):
        return method.view_starts
    n = getattr(getattr(method, "estimator", None), "num_hypotheses", None)
    return int(n) if isinstance(n, (int, np.integer)) else None


def view_prior_comparison(out_methods: dict, methods: Mapping[str, Callable]) -> dict:
    """Depth only vs with the view prior, per posekit method: ADD(-S) recall, median latency,
    chains, and their ratios (the issue-13 target: ADD(-S) at least as high, at most a third of
    the chains, at most half the latency)."""
    rows = {}
    for name, method in methods.items():
        if not isinstance(method, ViewPriorMethod):
            continue
        base = name[: -len(VIEW_SUFFIX)]
        a, b = out_methods[base], out_methods[name]
        lat_ratio = (b["latency_ms_median"] / a["latency_ms_median"]
                     if a.get("latency_ms_median") and b.get("latency_ms_median") is not None else None)
        chains = [_chains(methods[base]), _chains(method)]
        rows[base] = {
            "depth_only": base, "with_view": name,
            "add_s_recall": [a["add_s_recall"], b["add_s_recall"]],
            "rot_recall_5deg": [a["rot_recall_5deg"], b["rot_recall_5deg"]],
            "latency_ms_median": [a["latency_ms_median"], b["latency_ms_median"]],
            "chains": chains, "latency_ratio": lat_ratio,
            "chain_ratio": chains[1] / chains[0] if None not in chains and chains[0] else None,
            "n_targets": a["n_targets"],
        }
    return rows


def run_registration_benchmark(
    models: str | Path = "procedural",
    quick: bool = False,
    seed: int = 0,
    methods: Mapping[str, Callable] | Sequence[str] | None = None,
    *,
    weights: str = DEFAULT_WEIGHTS,
    device: str = "cpu",
    noise_levels: Sequence[str] = DEFAULT_NOISE_LEVELS,
    n_scenes: int | None = None,
    n_images: int | None = None,
    width: int | None = None,
    height: int | None = None,
    n_procedural_objects: int = 8,
    objects_per_scene: tuple[int, int] = (5, 8),
    work_dir: str | Path | None = None,
    progress: bool = True,
    records: list | None = None,
    masks: str = "gt",
    dataset: str | Path | None = None,
    split: str = "test",
    view=None,
    view_starts: int = 8,
) -> dict:
    """Run the benchmark; returns ``{"benchmark": "registration", "settings", "methods"}``
    (and ``"view_prior"`` with ``view``).

    view: a view model (name, path or ViewPoseEstimator) knowing the dataset's object ids:
    RGB is loaded and every :class:`EstimatorMethod` also runs as ``<name>+view`` with
    ``view_starts`` chains seeded by the image (:func:`view_prior_comparison`).

    masks: "gt" (oracle visible masks), "detections" (simulated detector masks, seeded:
    :func:`posekit.data.detections.simulate_detections`) or "none" (the whole depth image;
    peers register against the whole scene cloud). dataset: bench on this BOP dataset (real
    or synthetic, its ``split``) instead of rendering one; its depth is one noise level,
    "dataset".

    models: "procedural" (held-out seeds) or a BOP models folder (PLY in mm +
    models_info.json). quick: 2 scenes x 3 images at 320x240 (else 6 x 5 at 640x480);
    n_scenes/n_images/width/height override either. objects_per_scene: more than the
    synthesizer's default (3-6), for some occlusion (the tabletop scenes keep objects apart,
    so most instances are still >= 90 % visible). methods: None (every available method),
    a list of their names, or ``{name: method}`` where a method is
    ``method(obj: BenchObject, points (N, 3)) -> T_cam_model (4, 4) | None`` (or, with a
    ``takes_target = True`` attribute, ``method(obj, target: BenchTarget) -> (T | None, score)``)
    with an optional ``prepare(obj)`` run before timing. weights/device build the posekit estimator.
    work_dir keeps the rendered datasets (default: a temporary folder, deleted).
    ``records``, if a list, receives one dict per (method, target).
    """
    from tqdm import tqdm

    from posekit.io.bop import BopDataset

    if masks not in MASK_MODES:
        raise BadInputError(f"masks must be one of {MASK_MODES}, got {masks!r}")
    if dataset is not None:
        noise_levels = ("dataset",)
    if not noise_levels:
        raise BadInputError("noise_levels is empty; give at least one of " + ", ".join(NOISE_LEVELS))
    n_scenes = n_scenes or (2 if quick else 6)
    n_images = n_images or (3 if quick else 5)
    width = width or (320 if quick else 640)
    height = height or (240 if quick else 480)
    procedural = str(models) == "procedural" and dataset is None
    if dataset is not None:
        models = Path(dataset) / "models"
    if not procedural and not (Path(models) / "models_info.json").is_file():
        raise BadInputError(f"--models must be 'procedural' or a BOP models folder with models_info.json, got {models}")
    data_seed = HELD_OUT_SEED_OFFSET + int(seed) if procedural else int(seed)
    notes: list[str] = []
    if view is not None and masks == "none":
        raise BadInputError("the view prior crops the image around the object: use --masks gt or detections with --rgb")
    methods = _as_methods(methods, weights, device, seed, notes)
    if not methods:
        raise BadInputError("no methods to run")
    view_name = None
    if view is not None:
        from posekit.validation import check_count

        view_starts = check_count(view_starts, "view_starts (chains seeded by the view prior)")
        view_name = str(view) if isinstance(view, (str, Path)) else type(view).__name__
        methods = add_view_methods(methods, _load_view(view, device), view_starts)
    for note in notes:
        print(f"note: {note}")

    with tempfile.TemporaryDirectory(prefix="posekit_bench_reg_") as tmp:
        root = Path(work_dir) if work_dir is not None else Path(tmp)
        t0 = time.perf_counter()
        if dataset is not None:
            datasets = {"dataset": BopDataset(dataset, split=split)}
        else:
            paths = render_datasets(models, root, list(noise_levels), n_scenes=n_scenes, n_images=n_images,
                                    width=width, height=height, seed=data_seed, objects_per_scene=objects_per_scene,
                                    n_procedural_objects=n_procedural_objects, progress=progress)
            datasets = {noise: BopDataset(p) for noise, p in paths.items()}
        render_s = time.perf_counter() - t0
        objects = load_objects(next(iter(datasets.values())), seed=seed)
        targets = []
        for noise, ds in datasets.items():
            detections = None
            if masks == "detections":
                from posekit.data.detections import simulate_detections

                detections = simulate_detections(ds, seed=seed)
            targets += collect_targets(ds, noise, masks=masks, detections=detections, rgb=view is not None)

    for name, method in methods.items():
        prepare = getattr(method, "prepare", None)
        if prepare is None:
            continue
        for obj in objects.values():
            try:
                prepare(obj)
            except PosekitError as exc:  # the timed calls fail the same way and count as failures
                notes.append(f"{name}: preparing object {obj.obj_id} failed ({type(exc).__name__}: {exc})")

    per_method: dict[str, list[dict]] = {name: [] for name in methods}
    bar = tqdm(total=len(targets) * len(methods), desc="bench registration", unit="reg", disable=not progress)
    t0 = time.perf_counter()
    for target in targets:
        obj = objects[target.obj_id]
        for name, method in methods.items():
            bar.set_postfix_str(name, refresh=False)
            start = time.perf_counter()
            failure = None
            score = np.nan
            try:
                if getattr(method, "takes_target", False):
                    T, score = method(obj, target)
                else:
                    T = method(obj, target.points)
            except PosekitError as exc:
                T, failure = None, f"{type(exc).__name__}: {exc}"
            latency = 1e3 * (time.perf_counter() - start)
            if T is not None:
                T = np.asarray(T, dtype=np.float64)
                if T.shape != (4, 4) or not np.isfinite(T).all():
                    T, failure = None, "returned a pose that is not a finite 4x4 matrix"
            elif failure is None:
                failure = "no pose"
            row = {"method": name, "noise": target.noise, "scene_id": target.scene_id, "im_id": target.im_id,
                   "gt_id": target.gt_id, "obj_id": target.obj_id, "visib_fract": target.visib_fract,
                   "n_points": len(target.points), "latency_ms": latency, "failed": T is None,
                   "score": float(score) if T is not None else np.nan,
                   "failure": failure, **pose_errors(T, target.T_cam_model, obj)}
            per_method[name].append(row)
            bar.update(1)
    bar.close()
    registration_s = time.perf_counter() - t0
    if records is not None:
        records.extend(r for rows in per_method.values() for r in rows)

    headline_noise = HEADLINE_NOISE if HEADLINE_NOISE in noise_levels else next(iter(noise_levels))
    out_methods = {}
    for name, rows in per_method.items():
        head = [r for r in rows if r["noise"] == headline_noise and r["visib_fract"] >= VISIBLE_FRACTION_MIN]
        entry = summarize(head)
        entry["by_visible_fraction"] = {
            f"{lo:.1f}-{hi:.1f}": summarize([r for r in rows if r["noise"] == headline_noise
                                             and lo <= r["visib_fract"] < hi + (1e-9 if hi >= 1.0 else 0.0)])
            for lo, hi in VISIBLE_FRACTION_BINS
        }
        entry["by_noise"] = {noise: summarize([r for r in rows if r["noise"] == noise
                                               and r["visib_fract"] >= VISIBLE_FRACTION_MIN])
                             for noise in noise_levels}
        failures = getattr(methods[name], "failures", None)
        if failures:
            entry["failure_reasons"] = dict(failures)
        stage_ms = getattr(methods[name], "stage_ms", None)
        if stage_ms:  # median milliseconds per stage (all targets and noise levels)
            entry["stage_ms"] = {k: float(np.median(v)) for k, v in stage_ms.items()}
        out_methods[name] = entry

    n_head = sum(1 for t in targets if t.noise == headline_noise and t.visib_fract >= VISIBLE_FRACTION_MIN)
    settings = {
        "models": "procedural" if procedural else str(models),
        "quick": bool(quick), "seed": int(seed), "dataset_seed": data_seed,
        "n_scenes": n_scenes, "n_images": n_images, "width": width, "height": height,
        "objects_per_scene": list(objects_per_scene), "n_objects": len(objects),
        "objects": {str(o.obj_id): {"diameter_m": o.diameter, "symmetric": o.symmetric} for o in objects.values()},
        "noise_levels": {n: (None if NOISE_LEVELS.get(n) is None else _sensor_dict(NOISE_LEVELS[n]))
                         for n in noise_levels},
        "headline": {"noise": headline_noise, "visible_fraction_min": VISIBLE_FRACTION_MIN, "n_targets": n_head},
        "visible_fraction_bins": [list(b) for b in VISIBLE_FRACTION_BINS],
        "thresholds": {"add_s": f"{ADD_THRESHOLD} x diameter (ADI for symmetric objects)",
                       "rotation_deg": ROT_THRESHOLD_DEG, "translation_m": TRANS_THRESHOLD_M},
        "masks": {"gt": "oracle (mask_visib)", "none": "none (whole depth image)",
                  "detections": "simulated detector (posekit.data.detections.DetectorModel)"}[masks],
        "dataset": None if dataset is None else str(dataset),
        "median_points_per_target": float(statistics.median([len(t.points) for t in targets])) if targets else 0.0,
        "weights": weights, "device": device,
        "methods_run": list(methods), "notes": notes,
        "view_prior": None if view is None else {"view_weights": view_name, "view_starts": int(view_starts)},
        "render_s": round(render_s, 2), "registration_s": round(registration_s, 2),
        "cpu_threads": _cpu_threads(),
    }
    result = {"benchmark": "registration", "settings": settings, "methods": out_methods}
    if view is not None:
        result["view_prior"] = view_prior_comparison(out_methods, methods)
    return result


def _sensor_dict(sensor: DepthSensorModel) -> dict:
    d = asdict(sensor)
    d["invalid_border"] = list(d["invalid_border"])
    return d


def _cpu_threads() -> dict:
    import os

    info = {"os_cpu_count": os.cpu_count()}
    try:
        info["affinity"] = len(os.sched_getaffinity(0))
    except AttributeError:
        pass
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    return info


# ----------------------------------------------------------------------------- table


def _fmt(value, scale: float = 1.0, digits: int = 1) -> str:
    if value is None:
        return "-"
    return f"{value * scale:.{digits}f}"


def format_table(result: dict) -> str:
    """Headline table (one row per method) and ADD(-S) recall per visible-fraction bin and noise level."""
    methods = result["methods"]
    cols = (("ADD(-S)%", "add_s_recall", 100, 1), ("rot@5%", "rot_recall_5deg", 100, 1),
            ("t@1cm%", "trans_recall_1cm", 100, 1), ("med rot deg", "median_rot_err_deg", 1, 2),
            ("med t mm", "median_trans_err_mm", 1, 1), ("lat ms", "latency_ms_median", 1, 0),
            ("p95 ms", "latency_ms_p95", 1, 0), ("AUROC", "score_auroc", 1, 2), ("n", "n_targets", 1, 0))
    w = max([len(m) for m in methods] + [8]) + 2
    head = result["settings"].get("headline", {})
    lines = [(f"headline: masks {result['settings'].get('masks')}, noise {head.get('noise')}, "
              f"visible fraction >= {head.get('visible_fraction_min')}"),
             "method".ljust(w) + "".join(f"{c[0]:>12}" for c in cols), "-" * (w + 12 * len(cols))]
    for name, m in methods.items():
        lines.append(name.ljust(w) + "".join(f"{_fmt(m.get(k), s, d):>12}" for _, k, s, d in cols))
    for group, title in (("by_visible_fraction", "ADD(-S) recall % by visible fraction"),
                         ("by_noise", "ADD(-S) recall % by depth noise (visible fraction >= 0.5)")):
        keys = list(next(iter(methods.values()), {}).get(group, {}))
        if not keys:
            continue
        lines += ["", title, "method".ljust(w) + "".join(f"{k:>14}" for k in keys), "-" * (w + 14 * len(keys))]
        for name, m in methods.items():
            cells = []
            for k in keys:
                b = m[group][k]
                cells.append("-" if not b["n_targets"] else f"{_fmt(b['add_s_recall'], 100)} ({b['n_targets']})")
            lines.append(name.ljust(w) + "".join(f"{c:>14}" for c in cells))
    lines += format_view_prior(result)
    return "\n".join(lines)


def format_view_prior(result: dict) -> list[str]:
    """Lines of the depth-only vs view-prior table (none without ``view_prior``)."""
    rows = result.get("view_prior") or {}
    if not rows:
        return []
    lines = ["", "RGB view prior (headline targets): depth only vs with the view prior",
             (f"{'method':<14}{'ADD(-S)% depth':>16}{'ADD(-S)% +view':>16}{'lat ms depth':>14}"
              f"{'lat ms +view':>14}{'lat ratio':>11}{'chains':>10}{'n':>6}")]
    for base, r in rows.items():
        chains = "/".join("-" if c is None else str(c) for c in r["chains"])
        lines.append(f"{base:<14}{_fmt(r['add_s_recall'][0], 100):>16}{_fmt(r['add_s_recall'][1], 100):>16}"
                     f"{_fmt(r['latency_ms_median'][0], 1, 0):>14}{_fmt(r['latency_ms_median'][1], 1, 0):>14}"
                     f"{_fmt(r['latency_ratio'], 1, 2):>11}{chains:>10}{r['n_targets']:>6}")
    return lines
