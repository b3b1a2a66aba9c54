"""Simulated 2D detector output for a rendered BOP dataset: the masks a real detector gives.

Real detector masks are imperfect: a few pixels too large or too small, they bleed over the
occluder in front of the object, and there are low-score false positives on other objects.
:func:`simulate_detections` makes such detections from a dataset's ground-truth masks,
seeded and reproducible, in the BOP default-detections format (:mod:`posekit.io.detections`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from posekit.io.detections import Detection, encode_rle


@dataclass
class DetectorModel:
    """How the simulated detector errs (pixels, probabilities, score ranges)."""

    amodal_prob: float = 0.5  # the mask covers the whole object, occluders in front included
    dilate_prob: float = 0.6  # else eroded
    grow_px: tuple[int, int] = (1, 3)
    score: tuple[float, float] = (0.6, 1.0)
    false_positive_prob: float = 0.5  # per image: one detection of a wrong category on some object
    false_positive_score: tuple[float, float] = (0.05, 0.45)
    time_s: float = 0.05  # detector time per image


def perturb_mask(mask: np.ndarray, rng: np.random.Generator, model: DetectorModel) -> np.ndarray:
    """The mask dilated or eroded by 1-3 px (a detector's boundary error)."""
    import cv2

    px = int(rng.integers(model.grow_px[0], model.grow_px[1] + 1))
    kernel = np.ones((2 * px + 1, 2 * px + 1), np.uint8)
    op = cv2.dilate if rng.random() < model.dilate_prob else cv2.erode
    out = op(mask.astype(np.uint8), kernel) > 0
    return out if out.any() else mask


def _bbox(mask: np.ndarray) -> tuple[float, float, float, float]:
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return (float(cols[0]), float(rows[0]), float(cols[-1] - cols[0] + 1), float(rows[-1] - rows[0] + 1))


def simulate_detections(dataset, seed: int = 0, model: DetectorModel | None = None,
                        min_visible: float = 0.1) -> list[Detection]:
    """Detections (with RLE masks) of every GT instance at least ``min_visible`` visible in a
    :class:`posekit.io.bop.BopDataset`, plus false positives; reproducible by ``seed``."""
    model = model or DetectorModel()
    out: list[Detection] = []
    obj_ids = list(dataset.obj_ids)
    for scene_id in dataset.scene_ids:
        for im_id in dataset.image_ids(scene_id):
            rng = np.random.default_rng([int(seed), int(scene_id), int(im_id)])
            image = dataset.load_image(scene_id, im_id, rgb=False, depth=False)
            visible = []
            for gt_id, gt in enumerate(image.gt):
                if gt.problem:
                    continue
                visib = float(image.gt_info[gt_id].visib_fract) if image.gt_info else 1.0
                if visib < min_visible:
                    continue
                mask = dataset.load_mask(scene_id, im_id, gt_id, visible=rng.random() >= model.amodal_prob)
                if not mask.any():
                    continue
                mask = perturb_mask(mask, rng, model)
                visible.append(mask)
                out.append(Detection(int(scene_id), int(im_id), int(gt.obj_id), float(rng.uniform(*model.score)),
                                     _bbox(mask), encode_rle(mask), model.time_s))
            if visible and rng.random() < model.false_positive_prob:
                mask = visible[int(rng.integers(len(visible)))]
                out.append(Detection(int(scene_id), int(im_id), int(obj_ids[int(rng.integers(len(obj_ids)))]),
                                     float(rng.uniform(*model.false_positive_score)), _bbox(mask), encode_rle(mask),
                                     model.time_s))
    return out
