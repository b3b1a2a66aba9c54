"""SYMSOL-like images (Murphy et al., ICML 2021).

Object crops of coloured meshes (allocentric labels) live in :mod:`posekit.data.view_crops`.

SYMSOL I: ``tet`` (12 symmetries), ``cube`` (24), ``icosa`` (60), ``cone`` (continuous about
z), ``cyl`` (continuous about z, plus the flip about x). SYMSOL II: ``tetX`` (tetrahedron with
one red face), ``cylO`` (cylinder with an off-centre red dot on its side), ``sphX`` (sphere
with three coloured dots); their equivalent rotations depend on which marks are visible.

Every shape is convex, so images are rendered by exact analytic ray casting in numpy
(half-spaces, quadrics): a rotation in the symmetry group renders the very same image (up to
float rounding). Camera: pinhole at the origin looking along +z (x right, y down), principal
point at the image centre ``((W-1)/2, (H-1)/2)``, object centred at distance
:data:`CAMERA_DISTANCE`; lighting is a headlight (Lambertian ``|n . ray|``), so a rotation
``Rz(t) R`` about the optical axis renders the image rotated by ``t`` (clockwise on screen for
t > 0: x right turns into y down), exactly for quarter turns.

Labels are ``R_cam_obj`` (3x3). The equivalent rotations of an image are ``R S`` for the object
symmetries ``S`` that leave the rendered image unchanged; continuous symmetries are sampled
every :data:`CONTINUOUS_STEP_DEG` degrees.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

import numpy as np

from posekit.errors import BadInputError

SYMSOL_I = ("tet", "cube", "icosa", "cone", "cyl")
SYMSOL_II = ("tetX", "cylO", "sphX")
SHAPES = SYMSOL_I + SYMSOL_II
CAMERA_DISTANCE = 4.0
FIELD_OF_VIEW_RADIUS = 1.15  # object units visible from the centre to the image border
CONTINUOUS_STEP_DEG = 1.0
BACKGROUND = 0

_PHI = (1 + 5 ** 0.5) / 2
_CYL_RADIUS, _CYL_HALF_HEIGHT = 0.6, 0.75
_CONE_APEX, _CONE_BASE, _CONE_RADIUS = 0.9, -0.6, 0.75
_SHAPE_COLOURS = {"tet": (0.95, 0.85, 0.55), "cube": (0.6, 0.8, 0.95), "icosa": (0.75, 0.95, 0.7),
                  "cone": (0.95, 0.7, 0.75), "cyl": (0.8, 0.75, 0.95), "tetX": (0.9, 0.9, 0.9),
                  "cylO": (0.9, 0.9, 0.9), "sphX": (0.9, 0.9, 0.9)}
_MARK_RED = (0.95, 0.15, 0.1)


def _check_shape(shape: str) -> str:
    if shape not in SHAPES:
        raise BadInputError(f"unknown SYMSOL shape {shape!r}; choose one of {', '.join(SHAPES)}")
    return shape


def _tet_normals() -> np.ndarray:
    v = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], dtype=np.float64) / math.sqrt(3)
    return -v  # face normals point away from the opposite vertex


def _icosa_vertices() -> np.ndarray:
    v = []
    for a in (-1, 1):
        for b in (-_PHI, _PHI):
            v += [(0, a, b), (a, b, 0), (b, 0, a)]
    v = np.array(v, dtype=np.float64)
    return v / np.linalg.norm(v[0])


@cache
def _half_spaces(shape: str) -> tuple[np.ndarray, np.ndarray]:
    """Convex polytope ``{x : n_i . x <= b_i}``: normals (F, 3) unit, offsets (F,)."""
    if shape in ("tet", "tetX"):
        n = _tet_normals()
        return n, np.full(4, 1.0 / 3.0) * 1.0
    if shape == "cube":
        n = np.concatenate([np.eye(3), -np.eye(3)])
        return n, np.full(6, 1.0 / math.sqrt(3))
    if shape == "icosa":
        from scipy.spatial import ConvexHull

        v = _icosa_vertices()
        hull = ConvexHull(v)
        eq = np.unique(np.round(hull.equations, 9), axis=0)
        return eq[:, :3], -eq[:, 3]
    raise BadInputError(f"no polytope for shape {shape!r}; polytopes: tet, tetX, cube, icosa")


@cache
def symmetry_group(shape: str) -> np.ndarray:
    """Object-frame rotations ``(K, 3, 3)`` mapping the bare shape (marks ignored) onto itself.

    Continuous symmetries are sampled every :data:`CONTINUOUS_STEP_DEG` degrees; ``sphX``'s
    base shape (a sphere) has all of SO(3): a level-2 HEALPix grid plus the identity stands in.
    """
    _check_shape(shape)
    polyhedral = {"tet": "tetrahedral", "tetX": "tetrahedral", "cube": "octahedral", "icosa": "icosahedral"}
    if shape in polyhedral:  # the shapes are built in the groups' standard orientation
        from posekit.geometry.rotation_groups import rotation_group

        return rotation_group(polyhedral[shape]).elements.copy()
    from posekit.geometry.so3_grid import rot_z

    angles = np.deg2rad(np.arange(0.0, 360.0, CONTINUOUS_STEP_DEG))
    if shape == "cone":
        return rot_z(angles)
    if shape in ("cyl", "cylO"):
        from posekit.geometry.rigid_np import rotation_about_axis

        flip = rotation_about_axis([1, 0, 0], np.pi)
        return np.concatenate([rot_z(angles), flip @ rot_z(angles)])
    from posekit.geometry.so3_grid import so3_healpix_grid

    return np.concatenate([np.eye(3)[None], so3_healpix_grid(2)])


@dataclass
class _Hits:
    hit: np.ndarray  # (P,) bool
    point: np.ndarray  # (P, 3) object frame
    normal: np.ndarray  # (P, 3) object frame, unit
    face: np.ndarray  # (P,) int: polytope face, or -1


def _cast_polytope(o: np.ndarray, d: np.ndarray, normals: np.ndarray, offsets: np.ndarray) -> _Hits:
    nd = d @ normals.T  # (P, F)
    no = normals @ o  # (F,)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (offsets - no)[None] / nd
    t_in = np.where(nd < 0, t, -np.inf)
    t_out = np.where(nd > 0, t, np.inf)
    enter = t_in.max(axis=1)
    face = t_in.argmax(axis=1)
    hit = (enter <= t_out.min(axis=1)) & (enter > 0) & np.isfinite(enter)
    point = o[None] + enter[:, None] * d
    return _Hits(hit, point, normals[face], np.where(hit, face, -1))


def _solve_quadratic(A, B, C):
    disc = B * B - 4 * A * C
    ok = (disc >= 0) & (np.abs(A) > 1e-12)
    s = np.sqrt(np.where(ok, disc, 0.0))
    A_safe = np.where(np.abs(A) > 1e-12, A, 1.0)
    t1, t2 = (-B - s) / (2 * A_safe), (-B + s) / (2 * A_safe)
    return ok, np.minimum(t1, t2), np.maximum(t1, t2)


def _cast_cylinder(o, d) -> _Hits:
    r, h = _CYL_RADIUS, _CYL_HALF_HEIGHT
    A = d[:, 0] ** 2 + d[:, 1] ** 2
    B = 2 * (o[0] * d[:, 0] + o[1] * d[:, 1])
    C = o[0] ** 2 + o[1] ** 2 - r * r
    ok, s1, s2 = _solve_quadratic(A, B, C)
    with np.errstate(divide="ignore", invalid="ignore"):
        za, zb = (-h - o[2]) / d[:, 2], (h - o[2]) / d[:, 2]
    z1, z2 = np.minimum(za, zb), np.maximum(za, zb)
    enter = np.maximum(s1, z1)
    hit = ok & (enter <= np.minimum(s2, z2)) & (enter > 0)
    p = o[None] + enter[:, None] * d
    side = s1 >= z1
    n = np.where(side[:, None], np.stack([p[:, 0], p[:, 1], 0 * p[:, 2]], 1) / r,
                 np.stack([0 * p[:, 0], 0 * p[:, 0], np.sign(p[:, 2])], 1))
    return _Hits(hit, p, n, np.where(hit, np.where(side, 0, 1), -1))


def _cast_cone(o, d) -> _Hits:
    k = _CONE_RADIUS / (_CONE_APEX - _CONE_BASE)
    h = _CONE_APEX
    k2 = k * k
    A = k2 * d[:, 2] ** 2 - d[:, 0] ** 2 - d[:, 1] ** 2
    B = -2 * k2 * (h - o[2]) * d[:, 2] - 2 * (o[0] * d[:, 0] + o[1] * d[:, 1])
    C = k2 * (h - o[2]) ** 2 - o[0] ** 2 - o[1] ** 2
    ok, t1, t2 = _solve_quadratic(A, B, C)
    # g(t) >= 0 on [t1, t2] when A < 0, else outside it; keep the nappe below the apex
    mid_z = o[2] + 0.5 * (t1 + t2) * d[:, 2]
    lo = np.where(A < 0, t1, np.where(o[2] + (t2 + 1.0) * d[:, 2] <= h, t2, -np.inf))
    hi = np.where(A < 0, t2, np.where(o[2] + (t2 + 1.0) * d[:, 2] <= h, np.inf, t1))
    valid_nappe = np.where(A < 0, mid_z <= h, True)
    with np.errstate(divide="ignore", invalid="ignore"):
        tb = (_CONE_BASE - o[2]) / d[:, 2]
    base_in = np.where(d[:, 2] < 0, -np.inf, tb)  # z >= base: entering when moving up
    base_out = np.where(d[:, 2] < 0, tb, np.inf)
    enter = np.maximum(lo, base_in)
    hit = ok & valid_nappe & (enter <= np.minimum(hi, base_out)) & (enter > 0) & np.isfinite(enter)
    p = o[None] + enter[:, None] * d
    on_base = base_in >= lo
    grad = np.stack([p[:, 0], p[:, 1], k2 * (h - p[:, 2])], 1)
    grad /= np.maximum(np.linalg.norm(grad, axis=1, keepdims=True), 1e-12)
    n = np.where(on_base[:, None], np.array([0.0, 0.0, -1.0]), grad)
    return _Hits(hit, p, n, np.where(hit, np.where(on_base, 1, 0), -1))


def _cast_sphere(o, d) -> _Hits:
    A = np.sum(d * d, axis=1)
    B = 2 * d @ o
    C = o @ o - 1.0
    ok, t1, _ = _solve_quadratic(A, B, np.full_like(A, C))
    hit = ok & (t1 > 0)
    p = o[None] + t1[:, None] * d
    return _Hits(hit, p, p / np.maximum(np.linalg.norm(p, axis=1, keepdims=True), 1e-12), np.where(hit, 0, -1))


_SPH_DOTS = np.array([[1.0, 0.0, 0.0], [0.0, 0.766, 0.643], [-0.5, -0.5, 0.707]])
_SPH_DOTS = _SPH_DOTS / np.linalg.norm(_SPH_DOTS, axis=1, keepdims=True)
_SPH_DOT_COLOURS = np.array([[0.95, 0.15, 0.1], [0.1, 0.7, 0.2], [0.15, 0.3, 0.95]])
_CYL_DOT = np.array([_CYL_RADIUS, 0.0, 0.45])


def _surface_colour(shape: str, hits: _Hits) -> np.ndarray:
    col = np.tile(np.asarray(_SHAPE_COLOURS[shape]), (hits.point.shape[0], 1))
    if shape == "tetX":
        col[hits.face == 0] = _MARK_RED
    elif shape == "cylO":
        near = np.linalg.norm(hits.point - _CYL_DOT, axis=1) < 0.22
        col[near & (hits.face == 0)] = _MARK_RED
    elif shape == "sphX":
        for c, p in zip(_SPH_DOT_COLOURS, _SPH_DOTS):
            col[np.linalg.norm(hits.point - p, axis=1) < 0.25] = c
    return col


@lru_cache(maxsize=8)
def camera_rays(size: int) -> np.ndarray:
    """Unit ray directions ``(size*size, 3)`` of a square camera whose image border is at
    :data:`FIELD_OF_VIEW_RADIUS` object units from the axis at the object's distance."""
    f = (size / 2.0) * CAMERA_DISTANCE / FIELD_OF_VIEW_RADIUS
    c = (size - 1) / 2.0
    v, u = np.mgrid[0:size, 0:size].astype(np.float64)
    d = np.stack([(u - c) / f, (v - c) / f, np.ones_like(u)], axis=-1).reshape(-1, 3)
    return d / np.linalg.norm(d, axis=1, keepdims=True)


def symsol_intrinsics(size: int) -> np.ndarray:
    """``K (3, 3)`` of :func:`render_symsol` images."""
    f = (size / 2.0) * CAMERA_DISTANCE / FIELD_OF_VIEW_RADIUS
    c = (size - 1) / 2.0
    return np.array([[f, 0, c], [0, f, c], [0, 0, 1.0]])


def render_symsol(shape: str, R_cam_obj: np.ndarray, size: int = 64) -> np.ndarray:
    """Image ``(size, size, 3)`` uint8 RGB of ``shape`` with orientation ``R_cam_obj``, black background."""
    _check_shape(shape)
    R = np.asarray(R_cam_obj, dtype=np.float64)
    if R.shape != (3, 3) or not np.isfinite(R).all():
        raise BadInputError(f"R_cam_obj must be a finite (3, 3) rotation, got shape {R.shape}")
    if int(size) != size or size < 8:
        raise BadInputError(f"image size must be an integer >= 8, got {size!r}")
    rays = camera_rays(int(size))
    # camera at the origin, object centre at (0, 0, D): express the rays in the object frame
    o = R.T @ np.array([0.0, 0.0, -CAMERA_DISTANCE])
    d = rays @ R  # rows: R^T d
    if shape in ("tet", "tetX", "cube", "icosa"):
        hits = _cast_polytope(o, d, *_half_spaces(shape))
    elif shape in ("cyl", "cylO"):
        hits = _cast_cylinder(o, d)
    elif shape == "cone":
        hits = _cast_cone(o, d)
    else:
        hits = _cast_sphere(o, d)
    shade = 0.25 + 0.75 * np.abs(np.sum(hits.normal * d, axis=1))
    rgb = _surface_colour(shape, hits) * shade[:, None]
    rgb = np.where(hits.hit[:, None], rgb, BACKGROUND / 255.0)
    return np.round(np.clip(rgb, 0, 1) * 255).astype(np.uint8).reshape(size, size, 3)


def equivalent_rotations(shape: str, R_cam_obj: np.ndarray, size: int = 64,
                         image: np.ndarray | None = None, tolerance: float = 0.5) -> np.ndarray:
    """Rotations ``(K, 3, 3)`` that render the same image as ``R_cam_obj`` (``R S`` for object
    symmetries S). SYMSOL I: the whole group; SYMSOL II: the symmetries whose render differs
    by at most ``tolerance`` grey levels on average (the marks decide)."""
    _check_shape(shape)
    R = np.asarray(R_cam_obj, dtype=np.float64)
    candidates = R[None] @ symmetry_group(shape)
    if shape in SYMSOL_I:
        return candidates
    ref = render_symsol(shape, R, size) if image is None else image
    keep = [i for i, C in enumerate(candidates)
            if np.abs(render_symsol(shape, C, size).astype(np.int16) - ref).mean() <= tolerance]
    return candidates[keep]


@dataclass
class SymsolSample:
    image: np.ndarray  # (H, W, 3) uint8
    rotation: np.ndarray  # (3, 3) R_cam_obj
    shape: str


def sample_symsol(shape: str, rng: np.random.Generator, size: int = 64) -> SymsolSample:
    """One image of ``shape`` at a uniformly random (Haar) rotation."""
    from posekit.geometry.rigid_np import random_rotation_np

    R = random_rotation_np(rng)
    return SymsolSample(render_symsol(shape, R, size), R, shape)


def write_symsol_dataset(out_dir: str | Path, shapes=SYMSOL_I, n_per_shape: int = 100, size: int = 64,
                         seed: int = 0, progress: bool = True) -> Path:
    """Write ``out_dir/symsol.npz`` (images (N,H,W,3) uint8, rotations (N,3,3), shape names,
    equivalent rotations concatenated with per-image offsets) and a preview PNG per shape."""
    from tqdm import tqdm

    from posekit.io.atomic import atomic_path, output_directory
    from posekit.io.bop import write_rgb

    shapes = [_check_shape(s) for s in shapes]
    if n_per_shape < 1:
        raise BadInputError("n_per_shape must be >= 1")
    out_dir = output_directory(out_dir, "output folder")
    rng = np.random.default_rng(seed)
    images, rotations, names, equivalents, offsets = [], [], [], [], [0]
    for shape in shapes:
        for i in tqdm(range(n_per_shape), desc=shape, disable=not progress):
            s = sample_symsol(shape, rng, size)
            eq = equivalent_rotations(shape, s.rotation, size, image=s.image)
            images.append(s.image)
            rotations.append(s.rotation)
            names.append(shape)
            equivalents.append(eq)
            offsets.append(offsets[-1] + len(eq))
            if i == 0:
                write_rgb(out_dir / f"preview_{shape}.png", s.image)
    path = out_dir / "symsol.npz"
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, images=np.stack(images), rotations=np.stack(rotations),
                            shapes=np.array(names), equivalent_rotations=np.concatenate(equivalents),
                            equivalent_offsets=np.array(offsets, dtype=np.int64))
    return path


def read_symsol_dataset(path: str | Path) -> list[tuple[np.ndarray, np.ndarray, str, np.ndarray]]:
    """(image, rotation, shape, equivalent rotations) per sample of a :func:`write_symsol_dataset` file."""
    from posekit.errors import CorruptFileError, MissingFileError

    path = Path(path)
    if path.is_dir():
        path = path / "symsol.npz"
    if not path.is_file():
        raise MissingFileError(f"no SYMSOL dataset at {path}; write one with `posekit synth symsol --out DIR`")
    try:
        z = np.load(path, allow_pickle=False)
        off = z["equivalent_offsets"]
        eq = z["equivalent_rotations"]
        return [(z["images"][i], z["rotations"][i], str(z["shapes"][i]), eq[off[i]:off[i + 1]])
                for i in range(len(z["rotations"]))]
    except (KeyError, ValueError, OSError) as exc:
        raise CorruptFileError(f"{path}: not a posekit SYMSOL dataset ({exc})") from exc
