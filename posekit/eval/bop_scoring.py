"""BOP scoring of 6D pose estimates: errors per (target, estimate), greedy matching, recalls.

This reproduces the BOP 2019 localisation protocol of bop_toolkit
(``scripts/eval_bop19_pose.py`` driving ``eval_calc_errors.py`` and
``eval_calc_scores.py``, with ``pose_matching.match_poses`` and
``score.calc_localization_scores``):

1. **Targets.** A target is a GT instance of an object listed for its image in the
   targets file (``test_targets_bop19.json``) whose visible fraction is at least
   ``visib_gt_min`` (0.1). Only valid GT instances can be matched and counted.
2. **Errors.** For each (image, object) in the targets, the ``n`` estimates of that
   object with the highest score are kept, ``n`` = the target's ``inst_count`` (the
   toolkit's ``n_top = -1``); each is compared with every GT instance of that object in
   the image (valid or not).
3. **Matching.** Per (image, object), per error type and threshold: estimates in
   decreasing score order each take the still unmatched valid GT with the lowest error,
   if that error is strictly below the threshold.
4. **Recall** = matched GT / number of targets, pooled over all targets of the dataset
   (as the toolkit does; not a mean of per-object recalls). Per-object recalls use that
   object's targets only.
5. **Average recalls.** AR_VSD averages the recall over the 10 taus x 10 thresholds,
   AR_MSSD and AR_MSPD over their 10 thresholds; AR is the mean of the three.

Classic metrics matched the same way: ADD(-S) at 0.1 diameter (ADI for objects with
symmetries in ``models_info``, ADD otherwise), ADD and ADI alone at 0.1 diameter,
rotation error below 5 degrees, translation error (L2 of ``t``) below 1 cm.

Errors are computed on the model vertices (``dataset.models``; BOP's eval models where
the dataset provides them) and VSD renders the same mesh. Like the toolkit, pose pairs
whose bounding spheres cannot overlap get infinite ADD/ADI/MSSD and VSD = 1 without
computing them (such poses fail every threshold anyway).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from posekit.errors import BadInputError, CorruptFileError, MissingFileError
from posekit.eval import pose_error

# BOP19 grid of correctness thresholds and VSD tolerances, written as the toolkit writes it
# (np.arange) so the float values, and hence strict comparisons, are identical.
_BOP19_FRACTIONS = tuple(float(x) for x in np.arange(0.05, 0.51, 0.05))
_BOP19_MSPD_PX = tuple(float(x) for x in np.arange(5, 51, 5))

# Names of the scores in every result dict, in table order.
SCORE_KEYS = (
    "ar",
    "ar_vsd",
    "ar_mssd",
    "ar_mspd",
    "add_s_recall",
    "add_recall",
    "adi_recall",
    "rot_recall_5deg",
    "trans_recall_1cm",
)


@dataclass(frozen=True)
class BopEvalConfig:
    """Parameters of the BOP19 evaluation; defaults are those of ``eval_bop19_pose.py``.

    Lengths in metres, angles in radians. ``vsd_taus`` and the VSD, MSSD and ADD
    thresholds are fractions of the object diameter; MSPD thresholds are pixels for a
    640-pixel-wide image (scaled by width / 640 for other widths).
    ``visib_gt_min < 0`` selects the toolkit's alternative: the ``inst_count`` most
    visible GT instances of each target are valid.
    """

    vsd_delta: float = 0.015
    vsd_taus: tuple[float, ...] = _BOP19_FRACTIONS
    vsd_thresholds: tuple[float, ...] = _BOP19_FRACTIONS
    mssd_thresholds: tuple[float, ...] = _BOP19_FRACTIONS
    mspd_thresholds: tuple[float, ...] = _BOP19_MSPD_PX
    visib_gt_min: float = 0.1
    add_threshold: float = 0.1
    rot_threshold: float = float(np.deg2rad(5.0))
    trans_threshold: float = 0.01
    max_sym_disc_step: float = 0.01


@dataclass
class TargetGroup:
    """Errors of the estimates of one object in one image against its GT instances.

    ``gt_ids`` index the image's GT list (instances of ``obj_id`` only), ``gt_valid (G,)``
    says which count as targets. ``scores (E,)`` are the kept estimates' confidences,
    highest first. ``errors`` maps an error name to ``(E, G)`` values already in the unit
    of its thresholds: "vsd" ``(E, G, n_taus)``, "mssd"/"add"/"adi" fractions of the
    diameter, "mspd" pixels at 640 width, "re" radians, "te" metres.
    """

    scene_id: int
    im_id: int
    obj_id: int
    gt_ids: list[int]
    gt_valid: np.ndarray
    scores: np.ndarray
    errors: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n_targets(self) -> int:
        return int(np.count_nonzero(self.gt_valid))


@dataclass
class BopScores:
    """Scores of one evaluation: overall and per object, each a dict of :data:`SCORE_KEYS`."""

    dataset: str
    n_targets: int
    overall: dict[str, float]
    per_object: dict[int, dict[str, float]]
    n_targets_per_object: dict[int, int]

    def to_dict(self) -> dict:
        """``{"dataset", "n_targets", "overall", "per_object": {"<obj_id>": {...}}}`` (JSON-ready)."""
        return {
            "dataset": self.dataset,
            "n_targets": int(self.n_targets),
            "overall": {k: float(v) for k, v in self.overall.items()},
            "per_object": {
                str(obj_id): {k: float(v) for k, v in scores.items()}
                for obj_id, scores in sorted(self.per_object.items())
            },
        }


# ----------------------------------------------------------------------------- matching


def match_greedy(errors: np.ndarray, gt_valid: np.ndarray, threshold: float) -> np.ndarray:
    """Greedy BOP matching; mirrors ``pose_matching.match_poses``.

    ``errors (E, G)`` with rows in decreasing order of estimate score; ``gt_valid (G,)``
    bool. Each estimate in turn takes the unmatched valid GT with the lowest error if that
    error is strictly below ``threshold`` (ties: lowest GT index). Returns ``(E,)`` int,
    the matched GT column or -1.
    """
    errors = np.asarray(errors, dtype=np.float64)
    available = np.asarray(gt_valid, dtype=bool).copy()
    matched = np.full(errors.shape[0], -1, dtype=np.int64)
    for e in range(errors.shape[0]):
        candidates = np.where(available & (errors[e] < threshold), errors[e], np.inf)
        if not np.isfinite(candidates).any():
            continue
        g = int(np.argmin(candidates))
        matched[e] = g
        available[g] = False
    return matched


def count_true_positives(group: TargetGroup, errors: np.ndarray, threshold: float) -> int:
    """Number of GT instances of ``group`` matched under ``threshold``."""
    if errors.shape[0] == 0 or group.n_targets == 0:
        return 0
    return int(np.count_nonzero(match_greedy(errors, group.gt_valid, threshold) >= 0))


# ----------------------------------------------------------------------------- scoring


def _recall(tp: int, n: int) -> float:
    # As score.calc_recall: no targets gives recall 0.
    return tp / n if n > 0 else 0.0


def score_groups(
    groups: Sequence[TargetGroup],
    symmetric_obj_ids: Iterable[int] = (),
    config: BopEvalConfig = BopEvalConfig(),
    dataset_name: str = "",
) -> BopScores:
    """Match and score precomputed :class:`TargetGroup` errors; see the module docstring."""
    symmetric = {int(o) for o in symmetric_obj_ids}
    # Each "criterion" is (metric, error name, index into the tau axis or None, threshold).
    criteria: list[tuple[str, str, int | None, float]] = []
    for k, _tau in enumerate(config.vsd_taus):
        criteria += [("vsd", "vsd", k, th) for th in config.vsd_thresholds]
    criteria += [("mssd", "mssd", None, th) for th in config.mssd_thresholds]
    criteria += [("mspd", "mspd", None, th) for th in config.mspd_thresholds]
    criteria += [
        ("add_s", "add_s", None, config.add_threshold),
        ("add", "add", None, config.add_threshold),
        ("adi", "adi", None, config.add_threshold),
        ("rot", "re", None, config.rot_threshold),
        ("trans", "te", None, config.trans_threshold),
    ]

    # tps[obj_id][criterion index]
    tps: dict[int, np.ndarray] = defaultdict(lambda: np.zeros(len(criteria), dtype=np.int64))
    n_targets: dict[int, int] = defaultdict(int)
    for group in groups:
        n_targets[group.obj_id] += group.n_targets
        counts = tps[group.obj_id]
        errs = dict(group.errors)
        if "add" in errs and "adi" in errs:
            errs["add_s"] = errs["adi"] if group.obj_id in symmetric else errs["add"]
        for i, (_metric, name, k, th) in enumerate(criteria):
            if name not in errs:
                continue
            e = errs[name] if k is None else errs[name][..., k]
            counts[i] += count_true_positives(group, e, th)

    def scores_from(tp: np.ndarray, n: int) -> dict[str, float]:
        rec = np.array([_recall(int(x), n) for x in tp])
        metric = np.array([c[0] for c in criteria])
        ar_vsd = float(rec[metric == "vsd"].mean())
        ar_mssd = float(rec[metric == "mssd"].mean())
        ar_mspd = float(rec[metric == "mspd"].mean())
        one = {m: float(rec[metric == m][0]) for m in ("add_s", "add", "adi", "rot", "trans")}
        return {
            "ar": (ar_vsd + ar_mssd + ar_mspd) / 3.0,
            "ar_vsd": ar_vsd,
            "ar_mssd": ar_mssd,
            "ar_mspd": ar_mspd,
            "add_s_recall": one["add_s"],
            "add_recall": one["add"],
            "adi_recall": one["adi"],
            "rot_recall_5deg": one["rot"],
            "trans_recall_1cm": one["trans"],
        }

    obj_ids = sorted(n_targets)
    total_tp = np.zeros(len(criteria), dtype=np.int64)
    for obj_id in obj_ids:
        total_tp += tps[obj_id]
    total = int(sum(n_targets.values()))
    return BopScores(
        dataset=dataset_name,
        n_targets=total,
        overall=scores_from(total_tp, total),
        per_object={o: scores_from(tps[o], n_targets[o]) for o in obj_ids},
        n_targets_per_object={o: int(n_targets[o]) for o in obj_ids},
    )


# ----------------------------------------------------------------------------- errors


@dataclass
class ObjectModel:
    """What the errors need of one object: mesh and points (metres), diameter, symmetries."""

    mesh: Any
    points: np.ndarray
    diameter: float
    symmetries: np.ndarray  # (S, 4, 4) T_model_model, identity included
    symmetric: bool


def compute_group_errors(
    group: TargetGroup,
    est_poses: Sequence[tuple[np.ndarray, np.ndarray]],
    gt_poses: Sequence[np.ndarray],
    model: ObjectModel,
    K: np.ndarray,
    depth: np.ndarray | None,
    image_width: int,
    config: BopEvalConfig = BopEvalConfig(),
    render_cache: dict | None = None,
) -> None:
    """Fill ``group.errors`` for estimates ``(R (3,3), t (3,))`` against GT ``T_cam_model (4,4)``.

    Mirrors the per-target loop of ``eval_calc_errors.py`` for the error types of BOP19
    (VSD, MSSD, MSPD) and the classic ones (ADD, ADI, RE, TE). ``depth (H, W)`` metres is
    the scene depth for VSD (None: VSD is skipped). ``render_cache`` may hold rendered
    GT depth images between calls (keyed by scene, image and GT id).
    """
    from posekit.data.render import render_depth

    E, G = len(est_poses), len(gt_poses)
    n_taus = len(config.vsd_taus)
    out = {
        "vsd": np.ones((E, G, n_taus)),
        "mssd": np.full((E, G), np.inf),
        "mspd": np.full((E, G), np.inf),
        "add": np.full((E, G), np.inf),
        "adi": np.full((E, G), np.inf),
        "re": np.zeros((E, G)),
        "te": np.zeros((E, G)),
    }
    d = model.diameter
    mspd_scale = 640.0 / float(image_width)
    pts = model.points
    h = w = 0
    if depth is not None:
        h, w = depth.shape
    depth_est_cache: dict[int, np.ndarray] = {}
    for g, T_gt in enumerate(gt_poses):
        R_g, t_g = T_gt[:3, :3], T_gt[:3, 3]
        for e, (R_e, t_e) in enumerate(est_poses):
            out["re"][e, g] = pose_error.re(R_e, R_g)
            out["te"][e, g] = pose_error.te(t_e, t_g)
            out["mspd"][e, g] = mspd_scale * pose_error.mspd(R_e, t_e, R_g, t_g, K, pts, model.symmetries)
            if np.linalg.norm(t_e - t_g) < d:
                out["mssd"][e, g] = pose_error.mssd(R_e, t_e, R_g, t_g, pts, model.symmetries) / d
                out["add"][e, g] = pose_error.add(R_e, t_e, R_g, t_g, pts) / d
                out["adi"][e, g] = pose_error.adi(R_e, t_e, R_g, t_g, pts) / d
            if depth is not None and _sphere_projections_overlap(0.5 * d, t_e, t_g):
                key = (group.scene_id, group.im_id, group.gt_ids[g])
                if render_cache is not None and key in render_cache:
                    depth_gt = render_cache[key]
                else:
                    depth_gt = render_depth(model.mesh, T_gt, K, w, h)
                    if render_cache is not None:
                        render_cache[key] = depth_gt
                if e not in depth_est_cache:
                    depth_est_cache[e] = render_depth(
                        model.mesh, pose_error.pose_matrix(R_e, t_e), K, w, h
                    )
                out["vsd"][e, g] = pose_error.vsd_from_depths(
                    depth_est_cache[e], depth_gt, depth, K, config.vsd_delta, config.vsd_taus,
                    True, d, "step",
                )
    if depth is None:
        del out["vsd"]
    group.errors = out


def _sphere_projections_overlap(radius: float, p1: np.ndarray, p2: np.ndarray) -> bool:
    """Approximate test whether two equal spheres' silhouettes overlap; mirrors
    ``misc.overlapping_sphere_projections``."""
    if p1[2] == 0 or p2[2] == 0:
        return False
    proj_dist = np.linalg.norm(p1[:2] / p1[2] - p2[:2] / p2[2])
    return bool(proj_dist < radius * (1.0 / p1[2] + 1.0 / p2[2]))


# ----------------------------------------------------------------------------- dataset driver


def _dataset_name(dataset) -> str:
    root = getattr(dataset, "root", None)
    return Path(root).name if root is not None else str(getattr(dataset, "name", ""))


def evaluate_bop(
    dataset,
    estimates: Sequence[Any],
    split: str = "test",
    targets: Sequence[Any] | None = None,
    progress: bool = True,
    config: BopEvalConfig = BopEvalConfig(),
) -> dict:
    """Score pose estimates on a BOP dataset with the BOP19 protocol (module docstring).

    ``dataset`` is a ``posekit.io.bop.BopDataset``; ``split`` is the split to score (a
    dataset opened on another split is reopened on this one). ``estimates`` is a list of
    ``PoseEstimate`` (scene_id, im_id, obj_id, score, R (3, 3), t (3,) metres).
    ``targets`` (``BopTarget`` list) defaults to ``dataset.targets()``
    (test_targets_bop19.json, or every GT object if the file is absent). Returns
    ``{"dataset", "n_targets", "overall", "per_object": {"<obj_id>": {...}}}`` with the
    :data:`SCORE_KEYS` as fractions in [0, 1]; "overall" pools all targets.
    """
    return score_bop(dataset, estimates, split, targets, progress, config).to_dict()


def score_bop(
    dataset,
    estimates: Sequence[Any],
    split: str = "test",
    targets: Sequence[Any] | None = None,
    progress: bool = True,
    config: BopEvalConfig = BopEvalConfig(),
) -> BopScores:
    """As :func:`evaluate_bop` but returns :class:`BopScores` (with per-object target counts)."""
    from tqdm import tqdm

    from posekit.io.bop import BopDataset, symmetry_transformations

    if getattr(dataset, "split", split) != split:
        dataset = BopDataset(dataset.root, split=split, models_dir=dataset.models_dir)
    if targets is None:
        targets = dataset.targets()
    targets = list(targets)
    if not targets:
        raise BadInputError("no evaluation targets: the targets list/file is empty")

    # targets_by_image[(scene, im)][obj_id] = inst_count
    targets_by_image: dict[tuple[int, int], dict[int, int]] = defaultdict(dict)
    for t in targets:
        targets_by_image[(int(t.scene_id), int(t.im_id))][int(t.obj_id)] = int(t.inst_count)

    check_targets_have_gt(dataset, targets_by_image)

    ests_by_key: dict[tuple[int, int, int], list] = defaultdict(list)
    for est in estimates:
        ests_by_key[(int(est.scene_id), int(est.im_id), int(est.obj_id))].append(est)

    models: dict[int, ObjectModel] = {}

    def object_model(obj_id: int) -> ObjectModel:
        if obj_id not in models:
            info = dataset.models_info.get(obj_id)
            if info is None:
                raise BadInputError(
                    f"target object {obj_id} is not in models_info.json of {dataset.models_dir}"
                )
            mesh = dataset.model(obj_id)
            models[obj_id] = ObjectModel(
                mesh=mesh,
                points=np.asarray(mesh.vertices, dtype=np.float64),
                diameter=float(info.diameter),
                symmetries=symmetry_transformations(info, config.max_sym_disc_step),
                symmetric=bool(info.is_symmetric),
            )
        return models[obj_id]

    groups: list[TargetGroup] = []
    for scene_id, im_id in tqdm(sorted(targets_by_image), desc="BOP errors", unit="img",
                                disable=not progress):
        image = dataset.load_image(scene_id, im_id, rgb=False, depth=True)
        depth = np.asarray(image.depth, dtype=np.float32)
        render_cache: dict = {}
        for obj_id, inst_count in sorted(targets_by_image[(scene_id, im_id)].items()):
            gt_ids = [i for i, gt in enumerate(image.gt) if int(gt.obj_id) == obj_id and not gt.problem]
            if not gt_ids:
                continue  # every GT entry of it is broken: skipped, with the reader's warning
            if image.gt_info is None:
                # Without scene_gt_info.json every GT instance counts as fully visible.
                visib = np.ones(len(gt_ids))
            else:
                visib = np.array([float(image.gt_info[i].visib_fract) for i in gt_ids])
            # Highest score first; Python's sort is stable, as the toolkit's is.
            ests = sorted(ests_by_key.get((scene_id, im_id, obj_id), []),
                          key=lambda e: float(e.score), reverse=True)[:inst_count]
            group = TargetGroup(
                scene_id=scene_id, im_id=im_id, obj_id=obj_id, gt_ids=gt_ids,
                gt_valid=valid_gts(visib, inst_count, config.visib_gt_min),
                scores=np.array([float(e.score) for e in ests]),
            )
            compute_group_errors(
                group,
                [(np.asarray(e.R, float), np.asarray(e.t, float).reshape(3)) for e in ests],
                [np.asarray(image.gt[i].T_cam_model, float) for i in gt_ids],
                object_model(obj_id), image.K, depth, depth.shape[1], config, render_cache,
            )
            groups.append(group)
    symmetric_ids = [o for o, m in models.items() if m.symmetric]
    return score_groups(groups, symmetric_ids, config, dataset_name=_dataset_name(dataset))


def check_targets_have_gt(dataset, targets_by_image: Mapping[tuple[int, int], Mapping[int, int]]) -> None:
    """Every target must have ground truth: an evaluation counts every target it is asked about.

    A target whose scene has no (or an empty) scene_gt.json, or whose image lists no instance
    of the target object, cannot be scored: MissingFileError / CorruptFileError naming the
    scene, image and object (dropping it would inflate the recall). Entries that exist but are
    broken (``BopGt.problem``) are the reader's business: it warns, and scoring skips them.
    """
    problems: list[str] = []
    missing_file = False
    for scene_id in sorted({s for s, _ in targets_by_image}):
        gt_path = dataset.scene_dir(scene_id) / "scene_gt.json"
        if not gt_path.is_file():
            missing_file = True
            problems.append(f"scene {scene_id}: {gt_path} is missing")
            continue
        scene_gt = dataset.scene_gt(scene_id)
        if not scene_gt:
            problems.append(f"scene {scene_id}: {gt_path} holds no ground truth")
            continue
        for (s, im_id), objs in sorted(targets_by_image.items()):
            if s != scene_id:
                continue
            present = {int(g.obj_id) for g in scene_gt.get(im_id, [])}
            for obj_id in sorted(objs):
                if obj_id not in present:
                    problems.append(f"scene {scene_id} image {im_id}: no ground truth of object "
                                    f"{obj_id} in {gt_path}")
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        cls = MissingFileError if missing_file else CorruptFileError
        raise cls(f"{len(problems)} target(s) have no ground truth, so they cannot be scored "
                  f"({shown}); fix the dataset or pass only targets that have ground truth")


def valid_gts(visib: np.ndarray, inst_count: int, visib_gt_min: float) -> np.ndarray:
    """Which GT instances of one target object count; mirrors ``eval_calc_scores.py``.

    ``visib (G,)`` visible fractions. With ``visib_gt_min >= 0`` those at least that
    visible; with a negative value the ``inst_count`` most visible ones.
    """
    visib = np.asarray(visib, dtype=np.float64)
    if visib_gt_min >= 0:
        return visib >= visib_gt_min
    valid = np.zeros(len(visib), dtype=bool)
    valid[np.argsort(-visib, kind="stable")[:inst_count]] = True
    return valid
