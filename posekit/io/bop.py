"""Reading and writing datasets in the BOP format (bop.felk.cvut.cz, bop_toolkit ``inout.py``).

Layout of a BOP dataset (``root``)::

    camera.json                     fx, fy, cx, cy, width, height, depth_scale
    models/obj_OBJID.ply            meshes in millimetres; models_info.json next to them
    test_targets_bop19.json         [{scene_id, im_id, obj_id, inst_count}, ...]
    SPLIT/SCENEID/                  6-digit scene folders, e.g. test/000002/
        scene_camera.json           {im_id: {cam_K, depth_scale, [cam_R_w2c, cam_t_w2c]}}
        scene_gt.json               {im_id: [{obj_id, cam_R_m2c (row-wise), cam_t_m2c (mm)}, ...]}
        scene_gt_info.json          {im_id: [{bbox_obj, bbox_visib, px_count_*, visib_fract}, ...]}
        rgb/IMID.png|jpg            depth/IMID.png (uint16, value * depth_scale = mm)
        mask/IMID_GTID.png          mask_visib/IMID_GTID.png

Units: everything this module returns is in metres (poses ``T_cam_model`` 4x4, depth
float32 metres); the files are millimetres and row-wise rotations. Conversion happens
here and nowhere else.
"""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from posekit.errors import (
    BadInputError,
    CorruptFileError,
    IncompleteDatasetError,
    MissingFileError,
    PosekitError,
    PosekitWarning,
)
from posekit.geometry.rigid_np import make_pose, rotation_about_axis
from posekit.io.atomic import atomic_write_bytes, atomic_write_text
from posekit.io.depth import read_depth_image, write_depth_image
from posekit.io.mesh import Mesh, read_mesh, write_mesh
from posekit.validation import (
    ROTATION_ATOL,
    as_float_array,
    as_path,
    check_intrinsics,
    check_pose,
    check_positive,
    check_rotation,
    check_translation,
    stored_rotation_problem,
)

MM_PER_M = 1000.0
RESULTS_HEADER = "scene_id,im_id,obj_id,score,R,t,time"


# ----------------------------------------------------------------------------- pose units


def pose_from_bop(R_rowwise, t_mm) -> np.ndarray:
    """``T (4, 4)`` metres from a BOP pose: ``R`` as 9 numbers row-wise, ``t`` 3 numbers in mm."""
    R = as_float_array(R_rowwise, "BOP rotation R")
    if R.size != 9:
        raise BadInputError(f"BOP rotation R needs 9 numbers (row-wise), got {R.size}")
    R = check_rotation(R.reshape(3, 3), "BOP rotation R")
    return make_pose(R, check_translation(t_mm, "BOP translation t (mm)") / MM_PER_M)


def pose_to_bop(T) -> tuple[list[float], list[float]]:
    """Inverse of :func:`pose_from_bop`: ``(R row-wise (9 floats), t (3 floats) mm)``."""
    T = check_pose(T, "pose T")
    return [float(x) for x in T[:3, :3].reshape(-1)], [float(x * MM_PER_M) for x in T[:3, 3]]


# ----------------------------------------------------------------------------- data types


@dataclass
class ContinuousSymmetry:
    """Continuous rotational symmetry about ``axis`` (3,) through the point ``offset`` (3,) metres."""

    axis: np.ndarray
    offset: np.ndarray


@dataclass
class ModelInfo:
    """One entry of models_info.json, in metres.

    diameter (metres), bbox_min (3,) = (min_x, min_y, min_z), bbox_size (3,) = (size_x,
    size_y, size_z), symmetries_discrete: list of (4, 4) T_model_model with translation in
    metres, symmetries_continuous: list of :class:`ContinuousSymmetry`.
    """

    diameter: float
    bbox_min: np.ndarray
    bbox_size: np.ndarray
    symmetries_discrete: list[np.ndarray] = field(default_factory=list)
    symmetries_continuous: list[ContinuousSymmetry] = field(default_factory=list)

    @property
    def is_symmetric(self) -> bool:
        return bool(self.symmetries_discrete or self.symmetries_continuous)

    @classmethod
    def from_bop_dict(cls, d: Mapping, where: str = "models_info") -> ModelInfo:
        """Convert a models_info.json entry (millimetres) to metres."""
        try:
            info = cls(
                diameter=float(d["diameter"]) / MM_PER_M,
                bbox_min=np.array([d.get("min_x", 0.0), d.get("min_y", 0.0), d.get("min_z", 0.0)], float)
                / MM_PER_M,
                bbox_size=np.array([d.get("size_x", 0.0), d.get("size_y", 0.0), d.get("size_z", 0.0)], float)
                / MM_PER_M,
            )
            for sym in d.get("symmetries_discrete", []):
                T = np.array(sym, dtype=np.float64).reshape(4, 4)
                T[:3, 3] /= MM_PER_M
                info.symmetries_discrete.append(T)
            for sym in d.get("symmetries_continuous", []):
                info.symmetries_continuous.append(
                    ContinuousSymmetry(
                        axis=np.array(sym["axis"], dtype=np.float64).reshape(3),
                        offset=np.array(sym["offset"], dtype=np.float64).reshape(3) / MM_PER_M,
                    )
                )
        except (KeyError, TypeError, ValueError) as exc:
            raise CorruptFileError(f"{where}: malformed model info entry ({exc!r})") from exc
        return info

    def to_bop_dict(self) -> dict:
        """The models_info.json entry (millimetres, flattened row-major 4x4 symmetries)."""
        d = {"diameter": self.diameter * MM_PER_M}
        for i, ax in enumerate("xyz"):
            d[f"min_{ax}"] = float(self.bbox_min[i] * MM_PER_M)
            d[f"size_{ax}"] = float(self.bbox_size[i] * MM_PER_M)
        if self.symmetries_discrete:
            out = []
            for T in self.symmetries_discrete:
                T = np.array(T, dtype=np.float64)
                T[:3, 3] *= MM_PER_M
                out.append([float(x) for x in T.reshape(-1)])
            d["symmetries_discrete"] = out
        if self.symmetries_continuous:
            d["symmetries_continuous"] = [
                {"axis": [float(x) for x in s.axis], "offset": [float(x * MM_PER_M) for x in s.offset]}
                for s in self.symmetries_continuous
            ]
        return d

    @classmethod
    def from_mesh(cls, mesh: Mesh, symmetries_discrete=(), symmetries_continuous=()) -> ModelInfo:
        """Diameter and bounding box computed from a mesh (metres), with the given symmetries."""
        lo, hi = mesh.vertices.min(0), mesh.vertices.max(0)
        return cls(mesh.diameter, lo, hi - lo, [np.asarray(T, float) for T in symmetries_discrete],
                   list(symmetries_continuous))


@dataclass
class BopGt:
    """One ground-truth object instance: obj_id and T_cam_model (4, 4) metres, as stored.

    ``problem`` is empty for a usable entry; otherwise it says why the stored pose is
    broken (NaN, a reflection, far from a rotation) and ``T_cam_model`` is the identity.
    Such entries keep their place (the list index is the gt_id that mask files use) and
    every consumer skips them.
    """

    obj_id: int
    T_cam_model: np.ndarray
    problem: str = ""

    @property
    def R(self) -> np.ndarray:
        return self.T_cam_model[:3, :3]

    @property
    def t(self) -> np.ndarray:
        return self.T_cam_model[:3, 3]


@dataclass
class BopGtInfo:
    """One scene_gt_info.json entry. Boxes are [x, y, w, h] pixels as bop_toolkit's
    ``calc_2d_bbox`` computes them (w = x_max - x_min), [-1, -1, -1, -1] when invisible."""

    bbox_obj: list[int]
    bbox_visib: list[int]
    px_count_all: int
    px_count_valid: int
    px_count_visib: int
    visib_fract: float

    def to_bop_dict(self) -> dict:
        return {
            "bbox_obj": [int(x) for x in self.bbox_obj],
            "bbox_visib": [int(x) for x in self.bbox_visib],
            "px_count_all": int(self.px_count_all),
            "px_count_valid": int(self.px_count_valid),
            "px_count_visib": int(self.px_count_visib),
            "visib_fract": float(self.visib_fract),
        }


@dataclass
class SceneCamera:
    """One scene_camera.json entry: K (3, 3), depth_scale (depth PNG value * depth_scale = mm),
    and optionally T_cam_world (4, 4) metres (BOP's cam_R_w2c, cam_t_w2c)."""

    K: np.ndarray
    depth_scale: float = 1.0
    T_cam_world: np.ndarray | None = None

    def to_bop_dict(self) -> dict:
        d = {"cam_K": [float(x) for x in np.asarray(self.K, float).reshape(-1)],
             "depth_scale": float(self.depth_scale)}
        if self.T_cam_world is not None:
            d["cam_R_w2c"], d["cam_t_w2c"] = pose_to_bop(self.T_cam_world)
        return d


@dataclass
class BopTarget:
    """One entry of test_targets_bop19.json: estimate ``inst_count`` instances of obj_id."""

    scene_id: int
    im_id: int
    obj_id: int
    inst_count: int


@dataclass
class PoseEstimate:
    """One row of a BOP results CSV, in metres: R (3, 3), t (3,) metres, time seconds (-1 unknown)."""

    scene_id: int
    im_id: int
    obj_id: int
    score: float
    R: np.ndarray
    t: np.ndarray
    time: float = -1.0

    @property
    def T_cam_model(self) -> np.ndarray:
        return make_pose(self.R, self.t)


@dataclass
class BopImage:
    """One image of a BOP scene, in posekit units.

    rgb (H, W, 3) uint8 or None, depth (H, W) float32 metres (0 = missing) or None, K (3, 3),
    gt: list of :class:`BopGt` (index = gt_id), gt_info: list of :class:`BopGtInfo` or None,
    masks / masks_visib: per gt_id (H, W) bool, filled when asked for.
    """

    scene_id: int
    im_id: int
    K: np.ndarray
    rgb: np.ndarray | None
    depth: np.ndarray | None
    gt: list[BopGt]
    gt_info: list[BopGtInfo] | None = None
    camera: SceneCamera | None = None
    masks: list[np.ndarray] | None = field(default=None, repr=False)
    masks_visib: list[np.ndarray] | None = field(default=None, repr=False)


# ----------------------------------------------------------------------------- low-level I/O


def load_json(path: str | Path):
    """Parse a JSON file; MissingFileError / CorruptFileError name the file."""
    path = as_path(path, "BOP file path")
    if not path.is_file():
        raise MissingFileError(f"BOP file not found: {path}")
    try:
        with open(path, "r", encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CorruptFileError(f"{path}: not valid JSON ({exc}); re-download or regenerate it") from exc


def save_json(path: str | Path, content) -> Path:
    """Write JSON as bop_toolkit does (one top-level entry per line, keys sorted numerically).

    NaN/inf (not valid JSON) and values JSON cannot hold raise BadInputError; nothing is written.
    """
    try:
        return _save_json(path, content)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, BadInputError):
            raise
        raise BadInputError(f"{path}: cannot be written as JSON ({exc})") from exc


def _save_json(path: str | Path, content) -> Path:
    if isinstance(content, dict):
        items = sorted(content.items(), key=lambda kv: (0, int(kv[0])) if str(kv[0]).lstrip("-").isdigit()
                       else (1, str(kv[0])))
        body = ",\n".join(f'  "{k}": {json.dumps(v, sort_keys=True, allow_nan=False)}' for k, v in items)
        text = "{\n" + body + ("\n" if items else "") + "}"
    elif isinstance(content, list):
        body = ",\n".join(f"  {json.dumps(v, sort_keys=True, allow_nan=False)}" for v in content)
        text = "[\n" + body + ("\n" if content else "") + "]"
    else:
        text = json.dumps(content, sort_keys=True, allow_nan=False)
    return atomic_write_bytes(Path(path), text.encode("utf-8"))


def _describe(exc: Exception) -> str:
    """A caught parse error as message text: posekit's own messages as they are, others with their type."""
    return str(exc) if isinstance(exc, PosekitError) else repr(exc)


def _int_keys(d: Mapping, path: Path) -> dict:
    try:
        return {int(k): v for k, v in d.items()}
    except (ValueError, AttributeError) as exc:
        raise CorruptFileError(f"{path}: expected an object keyed by integer ids") from exc


def _read_image(path: Path, flags: int) -> np.ndarray:
    import cv2

    if not path.is_file():
        raise MissingFileError(f"BOP image not found: {path}")
    data = np.fromfile(str(path), dtype=np.uint8)
    im = cv2.imdecode(data, flags) if data.size else None
    if im is None:
        raise CorruptFileError(f"{path}: cannot be decoded as an image (truncated or not a PNG/JPEG)")
    return im


def _write_image(path: Path, im: np.ndarray, jpg_quality: int = 95) -> Path:
    import cv2

    path = as_path(path, "BOP file path")
    ext = path.suffix.lower()
    if ext not in (".png", ".jpg", ".jpeg"):
        raise BadInputError(f"{path}: BOP images are written as .png or .jpg, not {path.suffix!r}")
    if im.size == 0:
        raise BadInputError(f"{path}: the image is empty (shape {im.shape})")
    params = [cv2.IMWRITE_JPEG_QUALITY, jpg_quality] if ext in (".jpg", ".jpeg") else [cv2.IMWRITE_PNG_COMPRESSION, 3]
    ok, buf = cv2.imencode(ext, im, params)
    if not ok:
        raise BadInputError(f"could not encode an image of shape {im.shape} and dtype {im.dtype} as {ext}")
    return atomic_write_bytes(path, buf.tobytes())


def read_rgb(path: str | Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB from a PNG/JPEG (grey images are repeated to 3 channels)."""
    import cv2

    im = _read_image(Path(path), cv2.IMREAD_UNCHANGED)
    if im.dtype == np.uint16:
        im = (im // 257).astype(np.uint8)
    if im.ndim == 2:
        return np.repeat(im[:, :, None], 3, axis=2)
    if im.shape[2] == 4:
        im = im[:, :, :3]
    return np.ascontiguousarray(im[:, :, ::-1])


def write_rgb(path: str | Path, rgb: np.ndarray, jpg_quality: int = 95) -> Path:
    """Write an (H, W, 3) uint8 RGB image as PNG or JPEG (by suffix)."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise BadInputError(f"rgb must be (H, W, 3) uint8, got {rgb.shape} {rgb.dtype}")
    return _write_image(Path(path), np.ascontiguousarray(rgb[:, :, ::-1]), jpg_quality)


def read_depth(path: str | Path, depth_scale: float = 1.0) -> np.ndarray:
    """(H, W) float32 depth in metres from a 16-bit BOP depth PNG (value * depth_scale = mm).

    Delegates to :func:`posekit.io.depth.read_depth_image`, which raises BadInputError when the
    values look like metres rather than millimetres.
    """
    return read_depth_image(path, depth_scale)


def write_depth(path: str | Path, depth: np.ndarray, depth_scale: float = 1.0) -> Path:
    """Write (H, W) depth in metres as a 16-bit PNG holding mm / depth_scale (rounded).

    Stricter than :func:`posekit.io.depth.write_depth_image`, which it delegates to: BOP depth
    images are PNG, and missing pixels must already be 0 (NaN/inf raise).
    """
    path = as_path(path, "BOP file path")
    depth = as_float_array(depth, "depth", (None, None), finite=False)
    if path.suffix.lower() != ".png":
        raise BadInputError(f"{path}: BOP depth images must be PNG")
    if not np.isfinite(depth).all() or (depth < 0).any():
        raise BadInputError("depth contains NaN, inf or negative values; use 0 for missing pixels")
    return write_depth_image(depth, path, depth_scale)


def read_mask(path: str | Path) -> np.ndarray:
    """(H, W) bool mask from a BOP mask PNG (non-zero = object)."""
    import cv2

    im = _read_image(Path(path), cv2.IMREAD_GRAYSCALE)
    return im > 0


def write_mask(path: str | Path, mask: np.ndarray) -> Path:
    """Write an (H, W) bool mask as an 8-bit PNG (255 = object)."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise BadInputError(f"mask must be (H, W), got shape {mask.shape}")
    if mask.dtype.kind not in "biuf":
        raise BadInputError(f"mask must be boolean or numeric, got dtype {mask.dtype}")
    return _write_image(Path(path), (mask > 0).astype(np.uint8) * 255)


# ----------------------------------------------------------------------------- JSON files


def read_camera(path: str | Path) -> tuple[np.ndarray, int, int, float]:
    """camera.json -> (K (3, 3), width, height, depth_scale)."""
    path = as_path(path, "BOP file path")
    c = load_json(path)
    try:
        K = np.array([[c["fx"], 0.0, c["cx"]], [0.0, c["fy"], c["cy"]], [0.0, 0.0, 1.0]], dtype=np.float64)
        K = check_intrinsics(K)
        width, height = int(c["width"]), int(c["height"])
        if width <= 0 or height <= 0:
            raise BadInputError(f"image size must be positive, got {width}x{height}")
        return K, width, height, check_positive(c.get("depth_scale", 1.0), "depth_scale")
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptFileError(
            f"{path}: camera.json needs fx, fy > 0, cx, cy, width, height > 0 ({exc})"
        ) from exc


def write_camera(path: str | Path, K: np.ndarray, width: int, height: int, depth_scale: float = 1.0) -> Path:
    K = check_intrinsics(K)
    depth_scale = check_positive(depth_scale, "depth_scale")
    if int(width) <= 0 or int(height) <= 0:
        raise BadInputError(f"image size must be positive, got {width}x{height}")
    return save_json(path, {"cx": float(K[0, 2]), "cy": float(K[1, 2]), "depth_scale": float(depth_scale),
                            "fx": float(K[0, 0]), "fy": float(K[1, 1]), "height": int(height),
                            "width": int(width)})


def read_models_info(path: str | Path) -> dict[int, ModelInfo]:
    """models_info.json -> {obj_id: ModelInfo (metres)}."""
    path = as_path(path, "BOP file path")
    raw = _int_keys(load_json(path), path)
    infos = {k: ModelInfo.from_bop_dict(v, where=f"{path} obj {k}") for k, v in raw.items()}
    for k, info in infos.items():
        if not (math.isfinite(info.diameter) and info.diameter > 0):
            raise CorruptFileError(
                f"{path}: object {k} has diameter {info.diameter * MM_PER_M} mm; it must be a "
                "positive number (recompute models_info.json from the models)"
            )
    return infos


def write_models_info(path: str | Path, infos: Mapping[int, ModelInfo]) -> Path:
    return save_json(path, {int(k): v.to_bop_dict() for k, v in infos.items()})


def model_filename(obj_id: int) -> str:
    return f"obj_{int(obj_id):06d}.ply"


def obj_id_from_model_path(path) -> int | None:
    """The object id in a BOP model file name (``obj_000005.ply`` -> 5; None for other names)."""
    import re

    match = re.fullmatch(r"obj_(\d+)", Path(path).stem)
    return int(match.group(1)) if match else None


def write_model(path: str | Path, mesh: Mesh) -> Path:
    """Write a mesh (metres) as a BOP model: ASCII PLY in millimetres (readable by bop_toolkit)."""
    return write_mesh(mesh, path, scale=MM_PER_M, ascii=True)


def read_scene_camera(path: str | Path) -> dict[int, SceneCamera]:
    path = as_path(path, "BOP file path")
    out = {}
    for im_id, c in _int_keys(load_json(path), path).items():
        try:
            K = check_intrinsics(c["cam_K"], "cam_K")
            T = None
            if "cam_R_w2c" in c and "cam_t_w2c" in c:
                T = pose_from_bop(c["cam_R_w2c"], c["cam_t_w2c"])
            out[im_id] = SceneCamera(K, check_positive(c.get("depth_scale", 1.0), "depth_scale"), T)
        except (KeyError, TypeError, ValueError) as exc:
            raise CorruptFileError(f"{path}: bad entry for image {im_id} ({_describe(exc)})") from exc
    return out


def write_scene_camera(path: str | Path, cameras: Mapping[int, SceneCamera]) -> Path:
    return save_json(path, {int(k): v.to_bop_dict() for k, v in cameras.items()})


def read_scene_gt(path: str | Path) -> dict[int, list[BopGt]]:
    """scene_gt.json -> {im_id: [BopGt(obj_id, T_cam_model metres)]} (list index = gt_id).

    Poses are kept as stored (bop_toolkit computes its errors with the stored matrices).
    Rotations a little off orthonormal (real LM-O GT drifts to |R^T R - I| = 0.002) are
    accepted with one :class:`PosekitWarning` per file; a broken entry (NaN, a reflection,
    missing keys, off by more than :data:`posekit.validation.STORED_ROTATION_ATOL`) gets
    ``BopGt.problem`` set, a warning naming its image and index, and never stops the rest.
    A file that is not a JSON object of lists raises CorruptFileError.
    """
    path = as_path(path, "BOP file path")
    out = {}
    drifted: list[tuple[int, int, float]] = []
    broken: list[str] = []
    for im_id, gts in _int_keys(load_json(path), path).items():
        if not isinstance(gts, list):
            raise CorruptFileError(f"{path}: image {im_id} needs a list of GT entries, got {type(gts).__name__}")
        lst = []
        for gt_id, g in enumerate(gts):
            entry, err = _stored_gt(g)
            if entry.problem:
                broken.append(f"image {im_id} gt {gt_id}: {entry.problem}")
            elif err > ROTATION_ATOL:
                drifted.append((im_id, gt_id, err))
            lst.append(entry)
        out[im_id] = lst
    if drifted:
        im_id, gt_id, err = max(drifted, key=lambda d: d[2])
        warnings.warn(f"{path}: {len(drifted)} GT rotation(s) are off orthonormal by more than {ROTATION_ATOL:g} "
                      f"(worst |R^T R - I| = {err:.3g}, image {im_id} gt {gt_id}); used as stored, as the BOP "
                      "toolkit does", PosekitWarning, stacklevel=2)
    if broken:
        warnings.warn(f"{path}: {len(broken)} GT entr{'y is' if len(broken) == 1 else 'ies are'} broken and "
                      f"skipped: {'; '.join(broken[:5])}{' ...' if len(broken) > 5 else ''}",
                      PosekitWarning, stacklevel=2)
    return out


def _stored_gt(g) -> tuple[BopGt, float]:
    """One scene_gt entry as stored, and its |R^T R - I| (inf when broken)."""
    try:
        obj_id = int(g["obj_id"])
    except (KeyError, TypeError, ValueError) as exc:
        return BopGt(-1, np.eye(4), f"no integer obj_id ({_describe(exc)})"), math.inf
    try:
        R = np.asarray(g["cam_R_m2c"], dtype=np.float64)
        t = np.asarray(g["cam_t_m2c"], dtype=np.float64)
    except (KeyError, TypeError, ValueError) as exc:
        return BopGt(obj_id, np.eye(4), f"no numeric cam_R_m2c / cam_t_m2c ({_describe(exc)})"), math.inf
    if R.size != 9 or t.size != 3:
        return BopGt(obj_id, np.eye(4), f"cam_R_m2c needs 9 numbers and cam_t_m2c 3, got {R.size} and {t.size}"), \
            math.inf
    problem, err = stored_rotation_problem(R)
    if not problem and not np.isfinite(t).all():
        problem = "cam_t_m2c contains NaN or inf"
    if problem:
        return BopGt(obj_id, np.eye(4), problem), math.inf
    return BopGt(obj_id, make_pose(R.reshape(3, 3), t.reshape(3) / MM_PER_M)), err


def write_scene_gt(path: str | Path, scene_gt: Mapping[int, Sequence[BopGt]]) -> Path:
    content = {}
    for im_id, gts in scene_gt.items():
        content[int(im_id)] = []
        for g in gts:
            R, t = pose_to_bop(g.T_cam_model)
            content[int(im_id)].append({"cam_R_m2c": R, "cam_t_m2c": t, "obj_id": int(g.obj_id)})
    return save_json(path, content)


def read_scene_gt_info(path: str | Path) -> dict[int, list[BopGtInfo]]:
    path = as_path(path, "BOP file path")
    out = {}
    for im_id, infos in _int_keys(load_json(path), path).items():
        try:
            out[im_id] = [
                BopGtInfo(list(i["bbox_obj"]), list(i["bbox_visib"]), int(i["px_count_all"]),
                          int(i["px_count_valid"]), int(i["px_count_visib"]), float(i["visib_fract"]))
                for i in infos
            ]
        except (KeyError, TypeError, ValueError) as exc:
            raise CorruptFileError(f"{path}: bad GT info entry for image {im_id} ({exc!r})") from exc
    return out


def write_scene_gt_info(path: str | Path, gt_info: Mapping[int, Sequence[BopGtInfo]]) -> Path:
    return save_json(path, {int(k): [i.to_bop_dict() for i in v] for k, v in gt_info.items()})


def read_test_targets(path: str | Path) -> list[BopTarget]:
    path = as_path(path, "BOP file path")
    raw = load_json(path)
    try:
        return [BopTarget(int(t["scene_id"]), int(t["im_id"]), int(t["obj_id"]), int(t["inst_count"]))
                for t in raw]
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptFileError(f"{path}: entries need scene_id, im_id, obj_id, inst_count ({exc!r})") from exc


def write_test_targets(path: str | Path, targets: Iterable[BopTarget]) -> Path:
    return save_json(path, [{"im_id": t.im_id, "inst_count": t.inst_count, "obj_id": t.obj_id,
                             "scene_id": t.scene_id} for t in targets])


def targets_from_gt(scene_id: int, scene_gt: Mapping[int, Sequence[BopGt]]) -> list[BopTarget]:
    """One target per (image, object) with the number of GT instances, as BOP19 defines targets."""
    out = []
    for im_id in sorted(scene_gt):
        counts: dict[int, int] = {}
        for g in scene_gt[im_id]:
            if not g.problem:
                counts[g.obj_id] = counts.get(g.obj_id, 0) + 1
        out += [BopTarget(int(scene_id), int(im_id), o, n) for o, n in sorted(counts.items())]
    return out


# ----------------------------------------------------------------------------- results CSV


# Objects closer to the camera than this (mm) cannot be imaged: a results file whose every
# translation is that small holds metres where BOP expects millimetres.
_MIN_PLAUSIBLE_DISTANCE_MM = 20.0
# Translations beyond this (metres) are millimetres passed where posekit expects metres.
_MAX_PLAUSIBLE_DISTANCE_M = 100.0


def read_results_csv(path: str | Path) -> list[PoseEstimate]:
    """Read BOP19 results (``scene_id,im_id,obj_id,score,R,t,time``; R row-wise, t mm) in metres.

    Raises CorruptFileError (with the line number) for a missing or wrong header, a row
    without 7 fields, non-numeric or non-finite values, and a file whose translations all
    lie within 20 mm of the camera (written in metres). Rotations are kept as written; a
    row whose R is no rotation at all (see :func:`posekit.validation.stored_rotation_problem`)
    is skipped with a :class:`PosekitWarning` naming its line, and the other rows are read.
    """
    path = as_path(path, "BOP file path")
    if not path.is_file():
        raise MissingFileError(f"results file not found: {path}")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise CorruptFileError(f"{path}: not a UTF-8 text file ({exc}); is it a results CSV?") from exc
    if not any(line.strip() for line in lines):
        raise CorruptFileError(f"{path}: the file is empty; a results CSV starts with the header {RESULTS_HEADER}")
    out = []
    drifted, broken = 0, []
    for line_no, line in enumerate(lines, start=1):
        line = line.strip()
        if not line:
            continue
        elems = [e.strip() for e in line.split(",")]
        if line_no == 1 and not elems[0].lstrip("-").isdigit():
            if ",".join(elems) != RESULTS_HEADER:
                raise CorruptFileError(
                    f"{path}:1: header is {line!r}, expected {RESULTS_HEADER!r} (BOP19 results format)"
                )
            continue
        if len(elems) != 7:
            raise CorruptFileError(
                f"{path}:{line_no}: expected 7 comma-separated fields ({RESULTS_HEADER}), got {len(elems)}"
            )
        try:
            R = np.array(elems[4].split(), dtype=np.float64)
            t = np.array(elems[5].split(), dtype=np.float64)
            if R.size != 9 or t.size != 3:
                raise CorruptFileError(
                    f"{path}:{line_no}: R needs 9 numbers and t 3, got {R.size} and {t.size}")
            score, run_time = float(elems[3]), float(elems[6])
            if not (np.isfinite(R).all() and np.isfinite(t).all() and math.isfinite(score)
                    and math.isfinite(run_time)):
                raise CorruptFileError(f"{path}:{line_no}: score, R, t and time must be finite "
                                       "numbers (found NaN or inf)")
            row = (int(elems[0]), int(elems[1]), int(elems[2]))
        except CorruptFileError:
            raise
        except ValueError as exc:
            raise CorruptFileError(f"{path}:{line_no}: {exc}") from exc
        problem, err = stored_rotation_problem(R)
        if problem:  # one bad row of another method's file must not drop the others
            broken.append(f"line {line_no}: R is not a rotation ({problem})")
            continue
        if err > ROTATION_ATOL:
            drifted += 1
        out.append(PoseEstimate(*row, score, R.reshape(3, 3), t / MM_PER_M, run_time))
    if drifted:
        warnings.warn(f"{path}: {drifted} rotation(s) are off orthonormal by more than {ROTATION_ATOL:g}; used "
                      "as stored, as the BOP toolkit does", PosekitWarning, stacklevel=2)
    if broken:
        warnings.warn(f"{path}: {len(broken)} row(s) skipped: {'; '.join(broken[:5])}"
                      f"{' ...' if len(broken) > 5 else ''}", PosekitWarning, stacklevel=2)
    if out and max(float(np.linalg.norm(e.t)) for e in out) * MM_PER_M < _MIN_PLAUSIBLE_DISTANCE_MM:
        raise CorruptFileError(
            f"{path}: every translation is within {_MIN_PLAUSIBLE_DISTANCE_MM:g} mm of the camera; "
            "the file looks like it holds metres, but BOP results hold millimetres (multiply t by 1000)"
        )
    return out


def _check_estimate(e: PoseEstimate) -> tuple[np.ndarray, np.ndarray, float, float]:
    """R (3, 3), t (3,) metres, score, time of one estimate, checked; BadInputError names it."""
    where = f"estimate for scene {e.scene_id} image {e.im_id} obj {e.obj_id}"
    try:
        R = as_float_array(e.R, "R", (3, 3))
        problem, _ = stored_rotation_problem(R)  # written as given, like GT read as stored
        if problem:
            raise BadInputError(f"R is not a rotation: {problem}")
        t = check_translation(e.t, "t")
        score = float(as_float_array(e.score, "score", ()))
        time = float(as_float_array(e.time, "time", ()))
        for name in ("scene_id", "im_id", "obj_id"):
            value = getattr(e, name)
            if isinstance(value, bool) or int(value) != value:
                raise BadInputError(f"{name} must be an integer, got {value!r}")
    except (TypeError, ValueError) as exc:
        raise BadInputError(f"{where}: {exc}") from exc
    if float(np.linalg.norm(t)) > _MAX_PLAUSIBLE_DISTANCE_M:
        raise BadInputError(
            f"{where}: |t| = {np.linalg.norm(t):g}; posekit translations are metres and this looks "
            "like millimetres (multiply by 0.001; the CSV is written in mm for you)"
        )
    return R, t, score, time


def write_results_csv(path: str | Path, estimates: Iterable[PoseEstimate]) -> Path:
    """Write BOP19 results CSV (t converted to mm); floats keep full precision.

    Every estimate is checked first (R a rotation, t (3,) metres, finite score and time);
    a bad one raises BadInputError and nothing is written.
    """
    lines = [RESULTS_HEADER]
    for e in estimates:
        R, t, score, time = _check_estimate(e)
        R, t = R.reshape(9), t * MM_PER_M
        lines.append(
            f"{int(e.scene_id)},{int(e.im_id)},{int(e.obj_id)},{score!r},"
            f"{' '.join(repr(float(x)) for x in R)},{' '.join(repr(float(x)) for x in t)},{time!r}"
        )
    return atomic_write_bytes(Path(path), ("\n".join(lines) + "\n").encode("utf-8"))


# ----------------------------------------------------------------------------- symmetries


def symmetry_transformations(model_info: ModelInfo | Mapping, max_sym_disc_step: float = 0.01) -> np.ndarray:
    """Symmetry transformations (N, 4, 4) T_model_model, translations in metres.

    Implements bop_toolkit ``misc.get_symmetry_transformations``: identity plus the discrete
    symmetries, each combined with every step of each continuous symmetry discretised into
    ceil(pi / max_sym_disc_step) rotations (R = R_c R_d, t = R_c t_d + t_c with
    t_c = offset - R_c offset). ``model_info`` is a :class:`ModelInfo` (metres) or a raw
    models_info.json entry (millimetres).
    """
    if not isinstance(model_info, ModelInfo):
        model_info = ModelInfo.from_bop_dict({"diameter": 0.0, **dict(model_info)})
    if max_sym_disc_step <= 0:
        raise BadInputError(f"max_sym_disc_step must be positive, got {max_sym_disc_step}")
    disc = [np.eye(4)] + [np.asarray(T, dtype=np.float64) for T in model_info.symmetries_discrete]
    cont = []
    for sym in model_info.symmetries_continuous:
        n_steps = math.ceil(math.pi / max_sym_disc_step)
        step = 2.0 * math.pi / n_steps
        for i in range(n_steps):
            R = rotation_about_axis(sym.axis, i * step)
            cont.append(make_pose(R, sym.offset - R @ sym.offset))
    if not cont:
        return np.stack(disc)
    return np.stack([Tc @ Td for Td in disc for Tc in cont])


# ----------------------------------------------------------------------------- dataset


INCOMPLETE_MARKER = ".posekit-incomplete"


@contextmanager
def writing_dataset(root: str | Path) -> Iterator[Path]:
    """Mark folder ``root`` incomplete while the block writes a dataset into it.

    The marker file (:data:`INCOMPLETE_MARKER`) is written first and removed only when the
    block succeeds; a writer that is killed or fails leaves it, and :class:`BopDataset`
    refuses such a folder (IncompleteDatasetError) until a rerun completes it.
    """
    root = Path(root)
    marker = root / INCOMPLETE_MARKER
    atomic_write_text(marker, f"being written by process {os.getpid()} since {time.ctime()}\n")
    yield root
    marker.unlink(missing_ok=True)


def check_dataset_complete(root: str | Path) -> None:
    """IncompleteDatasetError if ``root`` holds the marker of an unfinished writer."""
    marker = Path(root) / INCOMPLETE_MARKER
    if marker.exists():
        raise IncompleteDatasetError(
            f"{root} is an incomplete dataset: its writer was interrupted or failed ({marker} "
            "is still there). Run the command that writes it again (posekit synth bop ...), "
            "or delete the folder"
        )


def _find_image(folder: Path, im_id: int, suffixes: Sequence[str]) -> Path | None:
    for s in suffixes:
        p = folder / f"{im_id:06d}{s}"
        if p.is_file():
            return p
    return None


class BopDataset:
    """A BOP dataset on disk, read lazily, returned in metres.

    ``BopDataset(root, split="test")``; ``models_dir`` defaults to ``root/models``.
    """

    def __init__(self, root: str | Path, split: str = "test", models_dir: str | Path | None = None):
        self.root = as_path(root, "BOP dataset path")
        if not isinstance(split, str) or not split or Path(split).name != split or split in (".", ".."):
            raise BadInputError(f"split must be a folder name inside the dataset, such as 'test', got {split!r}")
        if not self.root.is_dir():
            raise MissingFileError(f"BOP dataset folder not found: {self.root}")
        check_dataset_complete(self.root)
        self.split = split
        self.split_dir = self.root / split
        self.models_dir = as_path(models_dir, "models path") if models_dir is not None else self.root / "models"
        self._models: dict[int, Mesh] = {}
        self._models_info: dict[int, ModelInfo] | None = None
        self._scene_cache: dict[int, tuple] = {}

    # models
    @property
    def models_info(self) -> dict[int, ModelInfo]:
        if self._models_info is None:
            self._models_info = read_models_info(self.models_dir / "models_info.json")
        return self._models_info

    @property
    def obj_ids(self) -> list[int]:
        if (self.models_dir / "models_info.json").is_file():
            return sorted(self.models_info)
        return sorted(int(p.stem.split("_")[1]) for p in self.models_dir.glob("obj_*.ply"))

    def model(self, obj_id: int) -> Mesh:
        """Mesh of obj_id in metres (cached)."""
        if obj_id not in self._models:
            path = self.models_dir / model_filename(obj_id)
            if not path.is_file():
                raise MissingFileError(f"model of object {obj_id} not found: {path}")
            self._models[obj_id] = read_mesh(path, scale=1.0 / MM_PER_M)
        return self._models[obj_id]

    @property
    def models(self) -> dict[int, Mesh]:
        return {i: self.model(i) for i in self.obj_ids}

    def camera(self) -> tuple[np.ndarray, int, int, float]:
        """camera.json: (K, width, height, depth_scale)."""
        return read_camera(self.root / "camera.json")

    # scenes
    @property
    def scene_ids(self) -> list[int]:
        if not self.split_dir.is_dir():
            raise MissingFileError(f"split folder not found: {self.split_dir}")
        return sorted(int(p.name) for p in self.split_dir.iterdir() if p.is_dir() and p.name.isdigit())

    def scene_dir(self, scene_id: int) -> Path:
        return self.split_dir / f"{int(scene_id):06d}"

    def _scene(self, scene_id: int):
        if scene_id not in self._scene_cache:
            d = self.scene_dir(scene_id)
            if not d.is_dir():
                raise MissingFileError(f"scene folder not found: {d}")
            cams = read_scene_camera(d / "scene_camera.json")
            gt = read_scene_gt(d / "scene_gt.json") if (d / "scene_gt.json").is_file() else {}
            info = read_scene_gt_info(d / "scene_gt_info.json") if (d / "scene_gt_info.json").is_file() else None
            self._scene_cache[scene_id] = (cams, gt, info)
        return self._scene_cache[scene_id]

    def image_ids(self, scene_id: int) -> list[int]:
        return sorted(self._scene(scene_id)[0])

    def scene_gt(self, scene_id: int) -> dict[int, list[BopGt]]:
        return self._scene(scene_id)[1]

    def load_image(self, scene_id: int, im_id: int, rgb: bool = True, depth: bool = True,
                   masks: bool = False) -> BopImage:
        """Load one image: rgb (uint8), depth (metres), K, GT poses (metres), GT info, masks if asked."""
        cams, gt, info = self._scene(scene_id)
        if im_id not in cams:
            raise MissingFileError(f"image {im_id} is not in {self.scene_dir(scene_id) / 'scene_camera.json'}")
        cam = cams[im_id]
        d = self.scene_dir(scene_id)
        rgb_im = depth_im = None
        if rgb:
            p = _find_image(d / "rgb", im_id, (".png", ".jpg", ".jpeg")) or _find_image(d / "gray", im_id,
                                                                                        (".png", ".tif"))
            if p is None:
                raise MissingFileError(f"no RGB image {im_id:06d}.png/.jpg in {d / 'rgb'}")
            rgb_im = read_rgb(p)
        if depth:
            p = d / "depth" / f"{im_id:06d}.png"
            if not p.is_file():
                raise MissingFileError(f"depth image not found: {p}")
            depth_im = read_depth(p, cam.depth_scale)
        image = BopImage(int(scene_id), int(im_id), cam.K, rgb_im, depth_im, list(gt.get(im_id, [])),
                         None if info is None else info.get(im_id), cam)
        if masks:
            n = len(image.gt)
            image.masks = [self.load_mask(scene_id, im_id, g, visible=False) for g in range(n)]
            image.masks_visib = [self.load_mask(scene_id, im_id, g, visible=True) for g in range(n)]
        return image

    def load_mask(self, scene_id: int, im_id: int, gt_id: int, visible: bool = True) -> np.ndarray:
        """(H, W) bool mask of GT instance gt_id (mask_visib/ if visible else mask/)."""
        folder = "mask_visib" if visible else "mask"
        return read_mask(self.scene_dir(scene_id) / folder / f"{im_id:06d}_{gt_id:06d}.png")

    def targets(self) -> list[BopTarget]:
        """Targets from test_targets_bop19.json, or every GT (image, object) if the file is absent."""
        path = self.root / "test_targets_bop19.json"
        if path.is_file():
            return read_test_targets(path)
        out = []
        for s in self.scene_ids:
            if not (self.scene_dir(s) / "scene_gt.json").is_file():
                raise MissingFileError(
                    f"scene {s}: {self.scene_dir(s) / 'scene_gt.json'} is missing, and without "
                    f"{path.name} the targets are every ground-truth object; add it or pass targets"
                )
            out += targets_from_gt(s, self.scene_gt(s))
        return out

    def __repr__(self) -> str:
        return f"BopDataset(root={str(self.root)!r}, split={self.split!r})"
