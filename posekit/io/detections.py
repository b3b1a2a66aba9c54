"""2D detections in the BOP default-detections format (the BOP challenge's detector results).

A JSON list of ``{scene_id, image_id, category_id, score, bbox: [x, y, w, h], segmentation:
{counts, size: [h, w]}, time}``; ``category_id`` is the object id, ``bbox`` pixels,
``segmentation`` a COCO run-length encoding: ``counts`` either a compressed string (COCO's
LEB128-like text) or an uncompressed list of run lengths (column-major, starting with
background), decoded with pycocotools. ``time`` is the detector's time for the image, in
seconds (BOP adds it to the image's time in a results file).
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from posekit.errors import BadInputError, CorruptFileError, MissingFileError, PosekitWarning


@dataclass
class Detection:
    """One detection: object id, score, box [x, y, w, h] pixels, COCO RLE segmentation (or None)."""

    scene_id: int
    image_id: int
    category_id: int
    score: float
    bbox: tuple[float, float, float, float]
    segmentation: dict | None = None
    time: float = -1.0

    def mask(self) -> np.ndarray | None:
        """(H, W) bool mask decoded from the segmentation (None without one)."""
        return None if self.segmentation is None else decode_rle(self.segmentation)

    @property
    def bbox_xyxy(self) -> tuple[float, float, float, float]:
        x, y, w, h = self.bbox
        return (x, y, x + w, y + h)

    def to_dict(self) -> dict:
        d = {"scene_id": self.scene_id, "image_id": self.image_id, "category_id": self.category_id,
             "score": self.score, "bbox": list(self.bbox), "time": self.time}
        if self.segmentation is not None:
            seg = dict(self.segmentation)
            if isinstance(seg.get("counts"), bytes):
                seg["counts"] = seg["counts"].decode("ascii")
            d["segmentation"] = seg
        return d


def encode_rle(mask: np.ndarray) -> dict:
    """COCO compressed RLE ``{counts: str, size: [h, w]}`` of an (H, W) bool mask."""
    from pycocotools import mask as coco_mask

    m = np.asarray(mask)
    if m.ndim != 2:
        raise BadInputError(f"a mask must be (H, W), got shape {m.shape}")
    rle = coco_mask.encode(np.asfortranarray(m.astype(np.uint8)))
    return {"counts": rle["counts"].decode("ascii"), "size": [int(x) for x in rle["size"]]}


def decode_rle(segmentation: dict) -> np.ndarray:
    """(H, W) bool mask of a COCO RLE, compressed (string counts) or uncompressed (list counts)."""
    from pycocotools import mask as coco_mask

    try:
        h, w = (int(x) for x in segmentation["size"])
        counts = segmentation["counts"]
    except (KeyError, TypeError, ValueError) as exc:
        raise BadInputError(f"a segmentation needs counts and size [h, w], got {segmentation!r:.80}") from exc
    if h <= 0 or w <= 0:
        raise BadInputError(f"segmentation size must be positive, got {[h, w]}")
    if isinstance(counts, list):
        if not all(isinstance(c, int) and c >= 0 for c in counts) or sum(counts) != h * w:
            raise BadInputError(f"uncompressed RLE counts must be non-negative integers summing to h*w = {h * w}")
        rle = coco_mask.frPyObjects({"counts": counts, "size": [h, w]}, h, w)
    elif isinstance(counts, (str, bytes)):
        rle = {"counts": counts.encode("ascii") if isinstance(counts, str) else counts, "size": [h, w]}
    else:
        raise BadInputError(f"RLE counts must be a string or a list, got {type(counts).__name__}")
    try:
        mask = coco_mask.decode(rle)
    except Exception as exc:
        raise BadInputError(f"cannot decode the RLE segmentation ({exc})") from exc
    if mask.shape != (h, w):
        raise BadInputError(f"decoded mask is {mask.shape}, the segmentation says {(h, w)}")
    return mask.astype(bool)


def read_detections(path: str | Path) -> list[Detection]:
    """Read a BOP default-detections JSON. A malformed entry is skipped with one
    :class:`PosekitWarning` naming it (one bad entry never drops the file); a file that is not
    a JSON list raises CorruptFileError."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"detections file not found: {path}")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptFileError(f"{path}: not a JSON file ({exc})") from exc
    if not isinstance(raw, list):
        raise CorruptFileError(f"{path}: BOP detections are a JSON list of detections, got {type(raw).__name__}")
    out, bad = [], []
    for i, d in enumerate(raw):
        try:
            out.append(_detection(d))
        except (BadInputError, KeyError, TypeError, ValueError) as exc:
            bad.append(f"entry {i}: {exc}")
    if bad:
        warnings.warn(f"{path}: {len(bad)} detection(s) skipped: {'; '.join(bad[:5])}{' ...' if len(bad) > 5 else ''}",
                      PosekitWarning, stacklevel=2)
    return out


def _detection(d) -> Detection:
    if not isinstance(d, dict):
        raise BadInputError(f"a detection is an object, got {type(d).__name__}")
    bbox = tuple(float(x) for x in d["bbox"])
    score = float(d.get("score", 1.0))
    t = float(d.get("time", -1.0))
    if len(bbox) != 4 or not all(math.isfinite(x) for x in bbox + (score, t)) or bbox[2] <= 0 or bbox[3] <= 0:
        raise BadInputError("bbox must be 4 finite numbers [x, y, w, h] with w, h > 0, score and time finite")
    seg = d.get("segmentation")
    if seg is not None and not isinstance(seg, dict):
        raise BadInputError("segmentation must be an RLE object {counts, size}")
    return Detection(int(d["scene_id"]), int(d["image_id"]), int(d["category_id"]), score, bbox, seg, t)


def write_detections(path: str | Path, detections) -> Path:
    """Write detections as a BOP default-detections JSON (atomically)."""
    from posekit.io.atomic import atomic_write_text

    return atomic_write_text(Path(path), json.dumps([d.to_dict() for d in detections]) + "\n")
