"""Procedural household-like object meshes with known symmetries, and BOP models folders.

Each shape is a composite of closed, outward-oriented primitives (boxes, surfaces of
revolution for cylinders, cones, spheres, capsules and vases, tori, extrusions of 2D
polygons). Composites are made by concatenating the primitives: every component is
watertight on its own, but overlapping components are not merged into one manifold
(no boolean union). That is exact for ray-cast rendering and for surface sampling of
the visible surface; interior faces only matter for algorithms that need one shell.

Symmetries are recorded as BOP's models_info.json does: ``symmetries_discrete`` as
4x4 ``T_model_model`` (metres here), ``symmetries_continuous`` as axis + offset. Every
recorded symmetry maps the mesh onto itself (discrete ones exactly up to float error,
continuous ones up to the tessellation error of the revolution surface).
"""

from __future__ import annotations

import colorsys
import itertools
import math
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from posekit.errors import BadInputError
from posekit.geometry.rigid_np import make_pose, rotation_about_axis, transform_points_np
from posekit.io.bop import (
    ContinuousSymmetry,
    ModelInfo,
    model_filename,
    write_model,
    write_models_info,
)
from posekit.io.mesh import Mesh

# Object diameters drawn uniformly in this range (metres): mugs, boxes, bottles, tools.
DIAMETER_RANGE = (0.05, 0.25)
# Segments around a surface of revolution: the polygon's sagitta r (1 - cos(pi / n)) stays
# below 0.1 % of the radius.
REVOLUTION_SEGMENTS = 72


# ----------------------------------------------------------------------------- primitives


def _orient_outward(v: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Faces with winding flipped if the closed surface's signed volume is negative."""
    tri = v[f]
    vol = np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6.0
    return f[:, ::-1].copy() if vol < 0 else f


def box_mesh(size) -> tuple[np.ndarray, np.ndarray]:
    """Closed box centred at the origin; size (3,) metres. Returns (vertices, faces)."""
    s = np.asarray(size, dtype=np.float64) / 2
    v = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], float) * s
    f = np.array([[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
                  [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]])
    return v, _orient_outward(v, f)


def revolution_mesh(profile, segments: int = REVOLUTION_SEGMENTS) -> tuple[np.ndarray, np.ndarray]:
    """Closed surface of revolution about z from a profile of (r, z) points, bottom to top.

    Points with r = 0 become poles; ends with r > 0 are closed by flat caps.
    """
    prof = np.asarray(profile, dtype=np.float64)
    if prof.ndim != 2 or prof.shape[1] != 2 or len(prof) < 2 or (prof[:, 0] < 0).any():
        raise BadInputError("profile must be (N >= 2, 2) points (r >= 0, z)")
    ang = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    cos, sin = np.cos(ang), np.sin(ang)
    verts, rings = [], []
    for r, z in prof:
        start = sum(len(x) for x in verts)
        if r <= 0:
            verts.append(np.array([[0.0, 0.0, z]]))
            rings.append(np.full(segments, start))
        else:
            verts.append(np.stack([r * cos, r * sin, np.full(segments, z)], axis=1))
            rings.append(start + np.arange(segments))
    faces = []
    j = np.arange(segments)
    jn = (j + 1) % segments
    for a, b in itertools.pairwise(rings):
        a_pole, b_pole = a[0] == a[1], b[0] == b[1]
        if not a_pole:
            faces.append(np.stack([a[j], a[jn], b[jn]], 1) if not b_pole else np.stack([a[j], a[jn], b[j]], 1))
        if not b_pole:
            faces.append(np.stack([a[j], b[jn], b[j]], 1))
    n = sum(len(x) for x in verts)
    for ring, (r, z), top in ((rings[0], prof[0], False), (rings[-1], prof[-1], True)):
        if r > 0:  # flat cap with a centre vertex
            verts.append(np.array([[0.0, 0.0, z]]))
            cap = np.stack([np.full(segments, n), ring[jn], ring[j]], 1)
            faces.append(cap[:, ::-1] if top else cap)
            n += 1
    v = np.vstack(verts)
    f = np.vstack(faces)
    f = f[(f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 0] != f[:, 2])]
    return v, _orient_outward(v, f)


def torus_mesh(major: float, minor: float, n_major: int = 96, n_minor: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """Closed torus about the z axis (major radius, tube radius, metres)."""
    u = np.linspace(0, 2 * np.pi, n_major, endpoint=False)
    w = np.linspace(0, 2 * np.pi, n_minor, endpoint=False)
    uu, ww = np.meshgrid(u, w, indexing="ij")
    rr = major + minor * np.cos(ww)
    v = np.stack([rr * np.cos(uu), rr * np.sin(uu), minor * np.sin(ww)], -1).reshape(-1, 3)
    i, k = np.meshgrid(np.arange(n_major), np.arange(n_minor), indexing="ij")
    a = i * n_minor + k
    b = ((i + 1) % n_major) * n_minor + k
    c = ((i + 1) % n_major) * n_minor + (k + 1) % n_minor
    d = i * n_minor + (k + 1) % n_minor
    f = np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3), np.stack([a, c, d], -1).reshape(-1, 3)])
    return v, _orient_outward(v, f)


def extrusion_mesh(polygon, height: float) -> tuple[np.ndarray, np.ndarray]:
    """Closed prism: a 2D polygon (N, 2), star-shaped about the origin, extruded over z in ±height/2."""
    p = np.asarray(polygon, dtype=np.float64)
    n = len(p)
    if p.ndim != 2 or p.shape[1] != 2 or n < 3:
        raise BadInputError("polygon must be (N >= 3, 2)")
    h = height / 2
    v = np.vstack([np.c_[p, np.full(n, -h)], np.c_[p, np.full(n, h)], [[0, 0, -h], [0, 0, h]]])
    j = np.arange(n)
    jn = (j + 1) % n
    f = np.concatenate([
        np.stack([j, jn, n + jn], 1), np.stack([j, n + jn, n + j], 1),
        np.stack([np.full(n, 2 * n), jn, j], 1), np.stack([np.full(n, 2 * n + 1), n + j, n + jn], 1),
    ])
    return v, _orient_outward(v, f)


# ----------------------------------------------------------------------------- composition


class _Builder:
    """Accumulates coloured parts (vertices, faces, one colour each) in a common frame."""

    def __init__(self) -> None:
        self.parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def add(self, vf: tuple[np.ndarray, np.ndarray], color, R=None, t=None) -> None:
        v, f = vf
        v = transform_points_np(v, R, t)
        self.parts.append((v, f, np.asarray(color, dtype=np.float64)))

    def mesh(self, name: str) -> Mesh:
        verts, faces, cols, off = [], [], [], 0
        for v, f, c in self.parts:
            verts.append(v)
            faces.append(f + off)
            cols.append(np.broadcast_to(c, v.shape))
            off += len(v)
        return Mesh(np.vstack(verts), np.vstack(faces), np.vstack(cols), None, name)


def _palette(rng: np.random.Generator, n: int) -> list[np.ndarray]:
    base = rng.random()
    return [np.array(colorsys.hsv_to_rgb((base + 0.15 * i + 0.1 * rng.random()) % 1.0,
                                         0.35 + 0.55 * rng.random(), 0.45 + 0.5 * rng.random()))
            for i in range(n)]


_FLIP_X = make_pose(rotation_about_axis((1, 0, 0), math.pi))
_Z_AXIS = ContinuousSymmetry(np.array([0.0, 0.0, 1.0]), np.zeros(3))


def _shape_box(rng, b: _Builder):
    cols = _palette(rng, 1)
    if rng.random() < 0.4:  # square cross-section: dihedral group D4 about z
        s = rng.uniform(0.4, 1.0)
        size = (s, s, rng.uniform(0.3, 1.6))
        b.add(box_mesh(size), cols[0])
        disc = [make_pose(rotation_about_axis((0, 0, 1), k * math.pi / 2)) for k in (1, 2, 3)]
        disc += [make_pose(rotation_about_axis((math.cos(a), math.sin(a), 0), math.pi))
                 for a in np.arange(4) * math.pi / 4]
        return "square_box", disc, []
    size = np.sort(rng.uniform(0.25, 1.0, 3))[::-1] * np.array([1.0, 0.85, 0.7])
    b.add(box_mesh(size), cols[0])
    return "box", [make_pose(rotation_about_axis(ax, math.pi)) for ax in np.eye(3)], []


def _shape_can(rng, b: _Builder):
    """Cylinder or capsule, symmetric top/bottom: continuous about z plus a flip about x."""
    cols = _palette(rng, 1)
    r, h = rng.uniform(0.2, 0.5), rng.uniform(0.4, 1.2)
    if rng.random() < 0.5:
        profile = [(r, -h / 2), (r, h / 2)]
        name = "cylinder"
    else:
        arc = np.linspace(0, np.pi / 2, 10)
        bottom = [(r * math.sin(a), -h / 2 - r * math.cos(a)) for a in arc]
        profile = bottom + [(rr, -zz) for rr, zz in bottom[::-1]]
        name = "capsule"
    b.add(revolution_mesh(profile), cols[0])
    return name, [_FLIP_X], [_Z_AXIS]


def _shape_vase(rng, b: _Builder):
    """Bottle / vase / cone / lamp: a random revolution profile; continuous about z only."""
    cols = _palette(rng, 2)
    n = int(rng.integers(3, 7))
    z = np.sort(rng.uniform(0, 1, n))
    z = (z - z[0]) / max(z[-1] - z[0], 1e-6) * rng.uniform(0.6, 1.5)
    r = rng.uniform(0.1, 0.5, n)
    if rng.random() < 0.3:
        r[-1] = 0.0  # a cone tip
    b.add(revolution_mesh(np.c_[r, z]), cols[0])
    if rng.random() < 0.5 and r[-1] > 0:  # a lid/cap in a second colour
        rc, hc = r[-1] * rng.uniform(0.6, 1.1), rng.uniform(0.05, 0.2)
        b.add(revolution_mesh([(rc, z[-1]), (rc, z[-1] + hc)]), cols[1])
    return "vase", [], [_Z_AXIS]


def _shape_prism(rng, b: _Builder):
    """Regular n-gon prism: dihedral group D_n (n rotations about z, n flips in-plane)."""
    cols = _palette(rng, 1)
    n = int(rng.integers(3, 9))
    ang = np.arange(n) * 2 * math.pi / n
    poly = np.c_[np.cos(ang), np.sin(ang)] * rng.uniform(0.3, 0.6)
    b.add(extrusion_mesh(poly, rng.uniform(0.2, 1.2)), cols[0])
    disc = [make_pose(rotation_about_axis((0, 0, 1), k * 2 * math.pi / n)) for k in range(1, n)]
    disc += [make_pose(rotation_about_axis((math.cos(k * math.pi / n), math.sin(k * math.pi / n), 0),
                                           math.pi))
             for k in range(n)]
    return f"prism{n}", disc, []


def _shape_torus(rng, b: _Builder):
    cols = _palette(rng, 2)
    R, r = rng.uniform(0.3, 0.5), rng.uniform(0.06, 0.2)
    b.add(torus_mesh(R, r), cols[0])
    if rng.random() < 0.5:  # a ring around a peg: still about z and flip-symmetric
        rp, hp = R - r * rng.uniform(0.5, 1.0), rng.uniform(0.1, 0.4)
        b.add(revolution_mesh([(rp, -hp), (rp, hp)]), cols[1])
        return "ring_peg", [_FLIP_X], [_Z_AXIS]
    return "torus", [_FLIP_X], [_Z_AXIS]


def _shape_mug(rng, b: _Builder):
    """Cylinder body with a torus handle: only a mirror plane, which BOP does not record."""
    cols = _palette(rng, 2)
    r, h = rng.uniform(0.3, 0.45), rng.uniform(0.6, 1.0)
    b.add(revolution_mesh([(r, -h / 2), (r, h / 2)]), cols[0])
    R, tube = h * rng.uniform(0.22, 0.32), rng.uniform(0.04, 0.07)
    b.add(torus_mesh(R, tube), cols[1], R=rotation_about_axis((1, 0, 0), math.pi / 2),
          t=(r + R * 0.55, 0, 0))
    return "mug", [], []


def _random_star_polygon(rng, n: int) -> np.ndarray:
    ang = np.sort(rng.uniform(0, 2 * math.pi, n))
    ang = np.sort((ang + np.linspace(0, 2 * math.pi, n, endpoint=False)) / 2)  # keep gaps moderate
    rad = rng.uniform(0.45, 1.0, n)
    return np.c_[rad * np.cos(ang), rad * np.sin(ang)]


def _shape_extrusion(rng, b: _Builder):
    """Random star-shaped polygon extruded, sometimes with a knob: no symmetry."""
    cols = _palette(rng, 2)
    poly = _random_star_polygon(rng, int(rng.integers(5, 10))) * rng.uniform(0.3, 0.6)
    h = rng.uniform(0.15, 0.8)
    b.add(extrusion_mesh(poly, h), cols[0])
    if rng.random() < 0.6:
        rk = rng.uniform(0.06, 0.15)
        c = poly[int(rng.integers(len(poly)))] * 0.5
        b.add(revolution_mesh([(rk, 0.0), (rk, rng.uniform(0.1, 0.4))]), cols[1], t=(c[0], c[1], h / 2))
    return "extrusion", [], []


def _shape_composite(rng, b: _Builder):
    """A base box or cylinder with 1-3 attachments on its faces (tool/toy-like): no symmetry."""
    cols = _palette(rng, 4)
    base = rng.uniform(0.3, 0.9, 3)
    if rng.random() < 0.5:
        b.add(box_mesh(base), cols[0])
    else:
        b.add(revolution_mesh([(base[0] / 2, -base[2] / 2), (base[0] / 2, base[2] / 2)]), cols[0])
        base[1] = base[0]
    for k in range(int(rng.integers(1, 4))):
        axis = int(rng.integers(3))
        sign = 1 if rng.random() < 0.5 else -1
        normal = np.zeros(3)
        normal[axis] = sign
        # Attachment's local z along the face normal, placed off-centre on the face.
        if axis != 2:
            R = rotation_about_axis(np.cross((0, 0, 1), normal), math.acos(np.clip(normal[2], -1, 1)))
        else:
            R = np.eye(3) if sign > 0 else rotation_about_axis((1, 0, 0), math.pi)
        span = rng.uniform(0.25, 0.6)
        length = rng.uniform(0.15, 0.6)
        kind = int(rng.integers(4))
        if kind == 0:
            part = box_mesh((span * 0.6, span * 0.4, length))
        elif kind == 1:
            part = revolution_mesh([(span / 3, -length / 2), (span / 3, length / 2)], segments=32)
        elif kind == 2:
            part = revolution_mesh([(span / 3, -length / 2), (0.0, length / 2)], segments=32)
        else:
            arc = np.linspace(0, math.pi, 12)
            part = revolution_mesh(np.c_[np.sin(arc), -np.cos(arc)] * span / 3, segments=32)
            length = 2 * span / 3
        offset = rng.uniform(-0.25, 0.25, 3) * base
        offset[axis] = sign * (base[axis] / 2 + length / 2 * 0.8)
        b.add(part, cols[1 + k], R=R, t=offset)
    return "composite", [], []


SHAPE_FAMILIES: dict[str, Callable] = {
    "box": _shape_box,
    "can": _shape_can,
    "vase": _shape_vase,
    "prism": _shape_prism,
    "torus": _shape_torus,
    "mug": _shape_mug,
    "extrusion": _shape_extrusion,
    "composite": _shape_composite,
}


def procedural_mesh(seed: int, family: str | None = None,
                    diameter_range: tuple[float, float] = DIAMETER_RANGE) -> tuple[Mesh, ModelInfo]:
    """A random object mesh (metres, origin at its bounding-box centre) and its ModelInfo.

    The same seed gives the same mesh. ``family`` picks one of :data:`SHAPE_FAMILIES`
    (default: drawn from the seed). ModelInfo carries diameter, bounding box and the exact
    symmetries (discrete T_model_model in metres, continuous axis + offset), as BOP's
    models_info.json records them.
    """
    rng = np.random.default_rng(int(seed))
    names = list(SHAPE_FAMILIES)
    if family is None:
        family = names[int(rng.integers(len(names)))]
    if family not in SHAPE_FAMILIES:
        raise BadInputError(f"unknown shape family {family!r}; choose from {names}")
    builder = _Builder()
    name, disc, cont = SHAPE_FAMILIES[family](rng, builder)
    mesh = builder.mesh(f"{name}_{seed}")
    # Random orientation of the symmetry axes in the model frame would make the symmetries
    # non-trivial to read; BOP models usually have them along model axes, and so do we.
    lo, hi = mesh.vertices.min(0), mesh.vertices.max(0)
    centre = (lo + hi) / 2
    scale = rng.uniform(*diameter_range) / mesh.diameter
    # Similarity A: x -> scale (x - centre); symmetries are conjugated, T' = A T A^-1.
    A = np.diag([scale, scale, scale, 1.0])
    A[:3, 3] = -scale * centre
    A_inv = np.linalg.inv(A)
    mesh = Mesh((mesh.vertices - centre) * scale, mesh.faces, mesh.colors, None, mesh.name)
    disc = [A @ T @ A_inv for T in disc]
    for T in disc:
        T[3] = (0, 0, 0, 1)
    cont = [ContinuousSymmetry(s.axis.copy(), _closest_on_axis(s.axis, scale * (s.offset - centre)))
            for s in cont]
    return mesh, ModelInfo.from_mesh(mesh, disc, cont)


def _closest_on_axis(axis: np.ndarray, point: np.ndarray) -> np.ndarray:
    """The point of the axis line (through ``point``) closest to the origin: a canonical offset."""
    a = axis / np.linalg.norm(axis)
    return point - a * (point @ a)


def procedural_models(n_objects: int, seed: int = 0) -> dict[int, tuple[Mesh, ModelInfo]]:
    """{obj_id (1..n): (mesh, ModelInfo)}, each family used in turn so a small set is varied."""
    if int(n_objects) < 1:
        raise BadInputError(f"need at least one procedural object, got n_objects={n_objects}")
    names = list(SHAPE_FAMILIES)
    rng = np.random.default_rng(int(seed))
    order = rng.permutation(len(names))
    out = {}
    for i in range(int(n_objects)):
        family = names[order[i % len(names)]]
        out[i + 1] = procedural_mesh(int(rng.integers(2 ** 31)), family=family)
    return out


def write_bop_models(models_dir: str | Path, models: Mapping[int, tuple[Mesh, ModelInfo]]) -> Path:
    """Write a BOP models folder: obj_OBJID.ply (ASCII PLY, mm, vertex colours) + models_info.json."""
    from posekit.io.atomic import output_directory

    models_dir = output_directory(models_dir, "models folder")
    for obj_id, (mesh, _) in models.items():
        write_model(models_dir / model_filename(obj_id), mesh)
    write_models_info(models_dir / "models_info.json", {k: info for k, (_, info) in models.items()})
    return models_dir
