"""Pose estimates for a whole BOP dataset: the ``posekit predict bop`` engine room.

For each BOP19 target (scene, image, object, instance count) the estimator registers the
object model to the depth image:

* ``masks="gt"``: once per GT instance of that object, inside its visible mask
  (``mask_visib``): the oracle-mask protocol of the SE(3) diffusion paper;
* ``masks="detections"``: once per detection, for the ``inst_count`` best-scoring detections
  of the target's category in its image (a BOP default-detections list,
  :mod:`posekit.io.detections`), inside the detection's mask (its box when it has none);
  detections of other categories are ignored, and the detector's time for the image is added
  to the image's time, as BOP does;
* ``masks="none"``: once per target on the whole depth image, so the estimator's scene
  search (plane removal, object-sized crops, coarse ranking, depth score) finds the object.

Failed registrations (``success`` False, or a posekit error on the input) give no row.
Each row's ``time`` is the image's total, the sum of the estimator's own times
(``res.time_ms``) over that image's targets, as BOP's results format requires (every row
of an image carries the same time).

Under ``torchrun`` (``rank``, ``world_size``) rank r takes scenes[r::world_size]; when a
``torch.distributed`` process group is up, rank 0 gathers every rank's estimates and
returns them all (the others return an empty list), otherwise each rank returns its share.
"""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from posekit.errors import BadInputError, PosekitError

MASK_MODES = ("gt", "detections", "none")


def _prepared_model(estimator, dataset, obj_id: int, cache: dict):
    """The estimator's model of obj_id, built once (mesh in metres, symmetries from models_info)."""
    from posekit.io.bop import symmetry_transformations

    if obj_id not in cache:
        mesh = dataset.model(obj_id)
        syms = None
        if (dataset.models_dir / "models_info.json").is_file():
            info = dataset.models_info.get(obj_id)
            if info is not None and info.is_symmetric:
                syms = symmetry_transformations(info)
        cache[obj_id] = estimator.prepare_model(mesh, obj_id=obj_id, symmetries=syms)
    return cache[obj_id]


def _estimate_seconds(res, wall_s: float) -> float:
    """The estimator's own time for one call (res.time_ms) or, if it has none, the wall time."""
    ms = getattr(res, "time_ms", None)
    if ms is None or not np.isfinite(float(ms)):
        return wall_s
    return float(ms) / 1000.0


def predict_bop(
    dataset_dir: str | Path,
    estimator,
    split: str = "test",
    targets_path: str | Path | None = None,
    masks: str = "gt",
    progress: bool = True,
    rank: int = 0,
    world_size: int = 1,
    summary: dict | None = None,
    detections: list | None = None,
    view=None,
    view_starts: int = 8,
) -> list:
    """Estimate the pose of every target of a BOP dataset; returns ``list[PoseEstimate]``
    (metres; ``time`` seconds per image).

    ``estimator``: anything with ``prepare_model(mesh, obj_id=, symmetries=)`` and
    ``estimate(model, depth=, K=, mask=)`` returning ``success, R (3, 3), t (3,) metres,
    score, time_ms`` (:class:`~posekit.registration.estimator.ObjectPoseEstimator`).
    ``targets_path``: a test_targets JSON (default: the dataset's, or every GT object).
    ``summary``, if a dict, receives counts: images, targets, estimates, failures by reason.
    ``detections``: the :class:`posekit.io.detections.Detection` list for masks="detections".
    ``view``: a :class:`posekit.view.ViewPoseEstimator` for the dataset's objects: each image's
    RGB seeds ``view_starts`` chains per target (RGB-D; needs masks "gt" or "detections").
    """
    from tqdm import tqdm

    from posekit.io.bop import BopDataset, PoseEstimate, read_test_targets

    if masks not in MASK_MODES:
        raise BadInputError(f"masks must be one of {MASK_MODES}, got {masks!r}")
    if masks == "detections" and detections is None:
        raise BadInputError("masks='detections' needs the detections (posekit predict bop --detections FILE)")
    by_category: dict[tuple[int, int, int], list] = defaultdict(list)
    detection_time: dict[tuple[int, int], float] = {}
    for d in detections or ():
        by_category[(d.scene_id, d.image_id, d.category_id)].append(d)
        if d.time > 0:
            key = (d.scene_id, d.image_id)
            detection_time[key] = max(detection_time.get(key, 0.0), d.time)
    if view is not None and masks == "none":
        raise BadInputError("the RGB view prior needs where the object is: masks 'gt' or 'detections', not 'none'")
    if world_size < 1 or not 0 <= rank < world_size:
        raise BadInputError(f"rank {rank} is not within world_size {world_size}")
    dataset = BopDataset(dataset_dir, split=split)
    targets = read_test_targets(targets_path) if targets_path is not None else dataset.targets()
    if not targets:
        raise BadInputError("no targets to estimate: the targets list is empty")
    scenes = sorted({int(t.scene_id) for t in targets})
    mine = set(scenes[rank::world_size])
    by_image: dict[tuple[int, int], list] = defaultdict(list)
    for t in targets:
        if int(t.scene_id) in mine:
            by_image[(int(t.scene_id), int(t.im_id))].append(t)

    models: dict[int, object] = {}
    failures: dict[str, int] = defaultdict(int)
    estimates: list = []
    n_calls = 0
    for scene_id, im_id in tqdm(sorted(by_image), desc=f"predict bop{f' rank {rank}' if world_size > 1 else ''}",
                                unit="img", disable=not progress):
        image = dataset.load_image(scene_id, im_id, rgb=view is not None, depth=True)
        prior = {} if view is None else {"rgb": image.rgb, "view": view, "view_starts": int(view_starts)}
        image_estimates: list = []
        image_seconds = 0.0
        for target in sorted(by_image[(scene_id, im_id)], key=lambda t: t.obj_id):
            obj_id = int(target.obj_id)
            try:
                model = _prepared_model(estimator, dataset, obj_id, models)
            except PosekitError as exc:  # one unusable model must not stop the dataset
                models[obj_id] = exc
                model = exc
            if isinstance(model, PosekitError):
                failures[f"model {obj_id}: {type(model).__name__}: {model}"] += 1
                continue
            if masks == "gt":
                gt_ids = [i for i, g in enumerate(image.gt) if int(g.obj_id) == obj_id and not g.problem]
                calls = []
                for gt_id in gt_ids:
                    mask = dataset.load_mask(scene_id, im_id, gt_id, visible=True)
                    if mask.any():
                        calls.append({"mask": mask})
                if not calls:
                    failures["no visible GT mask"] += 1
            elif masks == "detections":
                best = sorted(by_category.get((scene_id, im_id, obj_id), []), key=lambda d: -d.score)
                calls = []
                for det in best[: int(target.inst_count)]:
                    try:
                        mask = det.mask()
                    except BadInputError as exc:
                        failures[f"bad detection mask: {exc}"] += 1
                        continue
                    if mask is not None and mask.shape != image.depth.shape:
                        failures["detection mask size differs from the depth image"] += 1
                        continue
                    calls.append({"mask": mask} if mask is not None else {"bbox": det.bbox_xyxy})
                if not best:
                    failures["no detection of this object"] += 1
            else:
                calls = [{}]
            for extra in calls:
                n_calls += 1
                start = time.perf_counter()
                try:
                    res = estimator.estimate(model, depth=image.depth, K=image.K, **extra, **prior)
                except PosekitError as exc:
                    image_seconds += time.perf_counter() - start
                    failures[f"{type(exc).__name__}: {exc}"] += 1
                    continue
                image_seconds += _estimate_seconds(res, time.perf_counter() - start)
                if not res.success:
                    failures[str(getattr(res, "reason", "") or "unknown")] += 1
                    continue
                score = float(res.score) if res.score is not None and np.isfinite(float(res.score)) else 0.0
                image_estimates.append(PoseEstimate(scene_id, im_id, obj_id, score,
                                                    np.asarray(res.R, dtype=np.float64),
                                                    np.asarray(res.t, dtype=np.float64).reshape(3), -1.0))
        image_seconds += detection_time.get((scene_id, im_id), 0.0)
        for e in image_estimates:
            e.time = image_seconds
        estimates += image_estimates

    if summary is not None:
        summary.update({"images": len(by_image), "targets": sum(len(v) for v in by_image.values()),
                        "calls": n_calls, "estimates": len(estimates), "failures": dict(failures),
                        "scenes": sorted(mine), "rank": rank, "world_size": world_size})
    return gather_estimates(estimates, world_size)


def gather_estimates(estimates: list, world_size: int) -> list:
    """All ranks' estimates on rank 0 (sorted by scene, image, object), [] on the others;
    a process without a torch.distributed group keeps its own."""
    if world_size <= 1:
        return estimates
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return estimates
    gathered = [None] * dist.get_world_size() if dist.get_rank() == 0 else None
    dist.gather_object(estimates, gathered, dst=0)
    if dist.get_rank() != 0:
        return []
    merged = [e for part in gathered for e in part]
    merged.sort(key=lambda e: (e.scene_id, e.im_id, e.obj_id, -e.score))
    return merged
