"""Triangle meshes: the one in-memory mesh type of posekit, and PLY/OBJ reading and writing.

Units: a :class:`Mesh` is always in metres. BOP model files are in millimetres; pass
``scale=0.001`` when reading them (``posekit.io.bop`` does this for you) and
``scale=1000`` when writing them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from posekit.errors import BadInputError, CorruptFileError, MissingFileError, UnsupportedFormatError
from posekit.geometry.rigid_np import transform_points_np
from posekit.io.atomic import atomic_path
from posekit.validation import (
    as_float_array,
    as_path,
    check_pose,
    check_positive,
    valid_points_mask,
)


@dataclass
class Mesh:
    """A triangle mesh in metres.

    vertices (V, 3) float64, faces (F, 3) int64, colors (V, 3) float64 in [0, 1] or None,
    normals (V, 3) float64 (unit) or None.
    """

    vertices: np.ndarray
    faces: np.ndarray
    colors: np.ndarray | None = None
    normals: np.ndarray | None = None
    name: str = field(default="")

    def __post_init__(self) -> None:
        self.vertices = as_float_array(self.vertices, "mesh vertices", (None, 3), finite=False)
        faces = as_float_array(self.faces, "mesh faces", (None, 3))
        if (faces != np.round(faces)).any():
            raise BadInputError("mesh faces must hold integer vertex indices")
        self.faces = faces.astype(np.int64)
        if len(self.vertices) == 0 or len(self.faces) == 0:
            raise BadInputError("mesh is empty (no vertices or no faces)")
        if not valid_points_mask(self.vertices).all():
            raise BadInputError("mesh vertices contain NaN, inf or coordinates beyond 1e6 m")
        if self.faces.min() < 0 or self.faces.max() >= len(self.vertices):
            raise BadInputError("mesh faces index vertices that do not exist")
        if self.colors is not None:
            self.colors = as_float_array(self.colors, "mesh colors")
            if self.colors.shape != self.vertices.shape:
                raise BadInputError("mesh colors must have the same shape as its vertices")
            if self.colors.min() < 0 or self.colors.max() > 1:
                raise BadInputError("mesh colors must be RGB within [0, 1]; divide 0-255 colours by 255")
        if self.normals is not None:
            self.normals = as_float_array(self.normals, "mesh normals")
            if self.normals.shape != self.vertices.shape:
                raise BadInputError("mesh normals must have the same shape as its vertices")

    @cached_property
    def diameter(self) -> float:
        """Largest distance between two vertices (metres), as BOP's models_info defines it.

        Computed once per mesh (:func:`points_diameter`); a Mesh's vertices are not changed
        in place (transformed/scaled return new meshes).
        """
        return points_diameter(self.vertices)

    def transformed(self, T: np.ndarray) -> Mesh:
        """This mesh moved by the 4x4 rigid transform T (points: x' = R x + t)."""
        T = check_pose(T, "mesh transform T")
        v = transform_points_np(self.vertices, T[:3, :3], T[:3, 3])
        n = None if self.normals is None else transform_points_np(self.normals, T[:3, :3])
        return Mesh(v, self.faces.copy(), self.colors, n, self.name)

    def scaled(self, s: float) -> Mesh:
        """This mesh with coordinates multiplied by s > 0 (unit conversion; s <= 0 would mirror it)."""
        s = check_positive(s, "mesh scale")
        return Mesh(self.vertices * s, self.faces.copy(), self.colors, self.normals, self.name)

    def to_open3d(self):
        import open3d as o3d

        m = o3d.geometry.TriangleMesh(
            o3d.utility.Vector3dVector(self.vertices), o3d.utility.Vector3iVector(self.faces.astype(np.int32))
        )
        if self.colors is not None:
            m.vertex_colors = o3d.utility.Vector3dVector(self.colors)
        if self.normals is not None:
            m.vertex_normals = o3d.utility.Vector3dVector(self.normals)
        return m

    @classmethod
    def from_open3d(cls, m, name: str = "") -> Mesh:
        colors = np.asarray(m.vertex_colors) if m.has_vertex_colors() else None
        normals = np.asarray(m.vertex_normals) if m.has_vertex_normals() else None
        return cls(np.asarray(m.vertices), np.asarray(m.triangles), colors, normals, name)

    def sample_points(self, n: int, seed: int = 0, return_normals: bool = False):
        """n points (n, 3) drawn uniformly on the surface (area-weighted), reproducible by seed.

        With ``return_normals`` also the (n, 3) unit normals of the faces they lie on (the
        faces' winding order decides the side: outward for posekit's and BOP's meshes).
        """
        if int(n) != n or n < 1:
            raise BadInputError(f"number of points to sample must be a positive integer, got {n!r}")
        rng = np.random.default_rng(seed)
        tri = self.vertices[self.faces]
        area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
        if area.sum() <= 0:
            raise BadInputError("mesh has zero surface area")
        idx = rng.choice(len(tri), size=n, p=area / area.sum())
        r1, r2 = rng.random(n), rng.random(n)
        s = np.sqrt(r1)
        w = np.stack([1 - s, s * (1 - r2), s * r2], axis=1)
        points = (tri[idx] * w[:, :, None]).sum(1)
        if not return_normals:
            return points
        normals = np.cross(tri[idx, 1] - tri[idx, 0], tri[idx, 2] - tri[idx, 0])
        normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
        return points, normals


def points_diameter(points) -> float:
    """Largest distance between two of ``points`` (N, 3), exact, in their unit.

    The farthest pair lies on the convex hull, so only the hull's vertices are compared
    (pairwise, in blocks of rows to bound memory); qhull's joggle handles flat or colinear
    sets. This is posekit's one definition of an object's diameter (BOP's models_info).
    """
    from scipy.spatial import ConvexHull, QhullError

    pts = as_float_array(points, "points", (None, 3))
    if len(pts) == 0:
        raise BadInputError("points are empty: an empty set has no diameter")
    if not valid_points_mask(pts).all():
        raise BadInputError("points contain NaN, inf or coordinates beyond 1e6 m: the diameter is undefined")
    if len(pts) > 4:
        for options in (None, "QJ"):  # QJ: degenerate (flat, colinear) sets
            try:
                pts = pts[ConvexHull(pts, qhull_options=options).vertices]
                break
            except (QhullError, ValueError):
                continue
    best = 0.0
    block = max(1, 250_000 // max(len(pts), 1))  # at most ~250k distances (6 MB) at a time
    for start in range(0, len(pts), block):
        d2 = ((pts[start:start + block, None, :] - pts[None, :, :]) ** 2).sum(-1)
        best = max(best, float(d2.max()))
    return float(np.sqrt(best))


_MESH_SUFFIXES = {".ply", ".obj", ".stl", ".off"}


def read_mesh(path: str | Path, scale: float = 1.0) -> Mesh:
    """Read a triangle mesh (PLY, OBJ, STL, OFF) and multiply coordinates by ``scale``.

    Use ``scale=0.001`` for BOP models (millimetres) so the result is in metres.
    """
    import open3d as o3d

    from posekit.io.pointcloud import CapturedNativeOutput, raise_on_open3d_failure

    path = as_path(path, "mesh path")
    if not path.is_file():
        raise MissingFileError(f"mesh file not found: {path}")
    if path.suffix.lower() not in _MESH_SUFFIXES:
        raise UnsupportedFormatError(
            f"{path}: unsupported mesh format {path.suffix!r}; use one of {sorted(_MESH_SUFFIXES)}"
        )
    scale = check_positive(scale, "scale")
    expected = None
    if path.suffix.lower() == ".ply":
        from posekit.io.ply import check_ply

        header = check_ply(path)  # a binary body that disagrees with its header can crash open3d
        expected = header.count("vertex"), header.count("face")
    with CapturedNativeOutput() as native:
        m = o3d.io.read_triangle_mesh(str(path))
    # open3d only prints that a (truncated) file failed, and returns what it read so far.
    raise_on_open3d_failure(path, native.text)
    if len(m.vertices) == 0 or len(m.triangles) == 0:
        raise CorruptFileError(f"{path}: no triangles could be read (empty, truncated or not a mesh)")
    if expected is not None and (len(m.vertices) != expected[0] or len(m.triangles) < expected[1]):
        raise CorruptFileError(
            f"{path}: header announces {expected[0]} vertices and {expected[1]} faces, "
            f"{len(m.vertices)} and {len(m.triangles)} triangles were read (truncated or corrupt file)")
    mesh = Mesh.from_open3d(m, name=path.stem)
    return mesh.scaled(scale) if scale != 1.0 else mesh


def write_mesh(mesh: Mesh, path: str | Path, scale: float = 1.0, ascii: bool = False) -> Path:
    """Write ``mesh`` with coordinates multiplied by ``scale`` (``scale=1000`` for BOP, in mm).

    The file is written next to its final name and renamed, so a failure leaves nothing half-written.
    """
    import open3d as o3d

    path = Path(path)
    if path.suffix.lower() not in _MESH_SUFFIXES:
        raise UnsupportedFormatError(f"{path}: cannot write mesh format {path.suffix!r}")
    out = mesh.scaled(scale) if scale != 1.0 else mesh
    o3d_mesh = out.to_open3d()
    if path.suffix.lower() == ".stl":
        o3d_mesh.compute_triangle_normals()  # STL stores a normal per facet
    with atomic_path(path) as tmp:
        ok = o3d.io.write_triangle_mesh(
            str(tmp), o3d_mesh, write_ascii=ascii,
            write_vertex_normals=out.normals is not None, write_vertex_colors=out.colors is not None,
        )
        if not ok:
            raise CorruptFileError(f"open3d could not write {path}")
    return path


def read_object_model(path: str | Path, scale: float = 1.0):
    """An object model file as posekit's engines take it: a :class:`Mesh` when the file holds
    triangles (PLY/OBJ/STL/OFF), else a :class:`posekit.io.pointcloud.PointCloud` (PLY
    without faces, PCD, XYZ, NPY, NPZ), coordinates multiplied by ``scale``.

    The one model loader of the API (``prepare_model(path)``), the CLI (``--model``) and the
    ROS object node (``model_files``).
    """
    from posekit.io.pointcloud import read_point_cloud
    from posekit.validation import check_positive

    if not isinstance(path, (str, Path)):
        raise BadInputError(f"a model path must be a str or Path, got {type(path).__name__}")
    path = Path(path)
    scale = check_positive(scale, "model scale")
    if not path.is_file():
        raise MissingFileError(f"model file not found: {path}")
    if path.suffix.lower() in _MESH_SUFFIXES:
        try:
            return read_mesh(path, scale=scale)
        except CorruptFileError:
            if path.suffix.lower() != ".ply":
                raise
            # a PLY of vertices only is a point cloud model
    return read_point_cloud(path, scale=scale)
