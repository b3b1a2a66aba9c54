"""CPU rendering of triangle meshes by ray casting (open3d's Embree-backed RaycastingScene).

Camera convention (BOP / OpenCV): camera frame x right, y down, z forward; pixel (u, v)
has its centre at integer coordinates, so the ray of pixel (u, v) goes from the camera
centre through ``K^-1 [u, v, 1]``. Depth is the z coordinate of the hit point in the
camera frame (not the length of the ray), in metres, 0 where no surface is hit.

Object poses are ``T_cam_model`` (4x4, metres): a model point x lands at R x + t in the
camera frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from posekit.errors import BadInputError
from posekit.io.mesh import Mesh
from posekit.validation import STORED_ROTATION_ATOL, check_intrinsics, check_pose

# Colour of meshes without vertex colours (grey), in [0, 1].
DEFAULT_MESH_COLOR = (0.7, 0.7, 0.7)
# Direction towards the light in the camera frame: above (-y) and behind (-z) the camera.
DEFAULT_LIGHT_DIR = (0.3, -0.6, -1.0)


@dataclass
class RenderResult:
    """What one render of several posed meshes produces.

    depth (H, W) float32 metres, 0 = background; instance (H, W) int32, index into the
    list of meshes of the visible surface, -1 = background; normals (H, W, 3) float32
    unit surface normals in the camera frame, turned towards the camera (0 on
    background); rgb (H, W, 3) uint8 or None; full_masks: per mesh (H, W) bool mask of
    its un-occluded silhouette (as if it were alone) or None; full_depths: per mesh
    (H, W) float32 depth of the mesh rendered alone, or None.
    """

    depth: np.ndarray
    instance: np.ndarray
    normals: np.ndarray
    rgb: np.ndarray | None = None
    full_masks: list[np.ndarray] | None = None
    full_depths: list[np.ndarray] | None = field(default=None, repr=False)

    def visible_mask(self, index: int) -> np.ndarray:
        """(H, W) bool pixels where mesh ``index`` is the visible surface."""
        return self.instance == index


def _check_camera(K: np.ndarray, width: int, height: int) -> np.ndarray:
    K = check_intrinsics(K)
    try:
        ok = int(width) > 0 and int(height) > 0 and int(width) == width and int(height) == height
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise BadInputError(f"image size must be positive integers, got width={width!r} height={height!r}")
    return K


def _check_pose(T: np.ndarray) -> np.ndarray:
    # Stored GT poses are rendered as they are (bop_toolkit does): they may drift past 1e-3.
    return check_pose(T, "pose T_cam_model", atol=STORED_ROTATION_ATOL)


def pixel_rays(K: np.ndarray, width: int, height: int) -> np.ndarray:
    """Ray directions (H, W, 3) float64 with z = 1 through the integer pixel centres.

    A hit at ray parameter t is then at depth z = t.
    """
    K = _check_camera(K, width, height)
    u, v = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    pix = np.stack([u, v, np.ones_like(u)], axis=-1)
    dirs = pix @ np.linalg.inv(K).T
    return dirs / dirs[..., 2:3]


def _projected_box(vertices_cam: np.ndarray, K: np.ndarray, width: int, height: int):
    """Pixel box (u0, v0, u1, v1), exclusive ends, that contains the projection; None if off-image."""
    z = vertices_cam[:, 2]
    if (z <= 1e-9).any():
        if (z <= 1e-9).all():
            return None
        return 0, 0, width, height  # straddles the camera plane: no finite projection box
    uv = vertices_cam[:, :2] / z[:, None] @ K[:2, :2].T + K[:2, 2]
    u0, v0 = np.floor(uv.min(0)).astype(int) - 1
    u1, v1 = np.ceil(uv.max(0)).astype(int) + 2
    u0, v0 = max(u0, 0), max(v0, 0)
    u1, v1 = min(u1, width), min(v1, height)
    if u0 >= u1 or v0 >= v1:
        return None
    return int(u0), int(v0), int(u1), int(v1)


def _cast(vertex_sets: list[np.ndarray], faces_sets: list[np.ndarray], rays_dirs: np.ndarray) -> dict:
    """Cast rays from the origin with direction rays_dirs (N, 3) against the given triangle sets."""
    import open3d as o3d

    scene = o3d.t.geometry.RaycastingScene()
    for v, f in zip(vertex_sets, faces_sets):
        scene.add_triangles(
            o3d.core.Tensor(np.ascontiguousarray(v, dtype=np.float32)),
            o3d.core.Tensor(np.ascontiguousarray(f, dtype=np.uint32)),
        )
    rays = np.zeros((len(rays_dirs), 6), dtype=np.float32)
    rays[:, 3:] = rays_dirs
    ans = scene.cast_rays(o3d.core.Tensor(rays))
    return {k: ans[k].numpy() for k in ("t_hit", "geometry_ids", "primitive_ids", "primitive_uvs",
                                        "primitive_normals")}


def _depth_alone(vertices_cam: np.ndarray, faces: np.ndarray, K: np.ndarray, width: int, height: int) -> np.ndarray:
    """Depth (H, W) float32 of one mesh already in the camera frame; rays only inside its projected box."""
    depth = np.zeros((height, width), dtype=np.float32)
    box = _projected_box(vertices_cam, K, width, height)
    if box is None:
        return depth
    u0, v0, u1, v1 = box
    u, v = np.meshgrid(np.arange(u0, u1, dtype=np.float64), np.arange(v0, v1, dtype=np.float64))
    dirs = np.stack([u, v, np.ones_like(u)], axis=-1).reshape(-1, 3) @ np.linalg.inv(K).T
    dirs /= dirs[:, 2:3]
    th = _cast([vertices_cam], [faces], dirs)["t_hit"].reshape(v1 - v0, u1 - u0)
    depth[v0:v1, u0:u1] = np.where(np.isfinite(th), th, 0.0)
    return depth


def render_scene(
    meshes: Sequence[Mesh],
    poses: Sequence[np.ndarray],
    K: np.ndarray,
    width: int,
    height: int,
    *,
    full_masks: bool = False,
    rgb: bool = False,
    light_dir: Sequence[float] = DEFAULT_LIGHT_DIR,
    ambient: float = 0.35,
    background: Sequence[int] = (0, 0, 0),
) -> RenderResult:
    """Render meshes at poses ``T_cam_model`` with intrinsics K into a width x height image.

    meshes: list of :class:`Mesh` (metres); poses: matching list of (4, 4) T_cam_model;
    K (3, 3). ``full_masks=True`` also renders each mesh alone (its un-occluded mask and
    depth, restricted to its projected bounding box for speed). ``rgb=True`` shades vertex
    colours (see :func:`render_rgb`). Returns a :class:`RenderResult`.
    """
    K = _check_camera(K, width, height)
    width, height = int(width), int(height)
    if len(meshes) != len(poses):
        raise BadInputError(f"got {len(meshes)} meshes but {len(poses)} poses; pass one pose per mesh")
    if len(meshes) == 0:
        raise BadInputError("render_scene needs at least one mesh")
    poses = [_check_pose(T) for T in poses]
    verts = [m.vertices @ T[:3, :3].T + T[:3, 3] for m, T in zip(meshes, poses)]
    faces = [m.faces for m in meshes]
    dirs = pixel_rays(K, width, height).reshape(-1, 3)
    hit = _cast(verts, faces, dirs)

    t = hit["t_hit"]
    valid = np.isfinite(t)
    depth = np.where(valid, t, 0.0).astype(np.float32)
    gid = hit["geometry_ids"].astype(np.int64)
    instance = np.where(valid, gid, -1).astype(np.int32)
    normals = hit["primitive_normals"].astype(np.float32)
    # Face normals point wherever the winding says; turn them towards the camera.
    flip = (normals * dirs).sum(-1) > 0
    normals[flip] *= -1
    normals[~valid] = 0

    result = RenderResult(
        depth=depth.reshape(height, width),
        instance=instance.reshape(height, width),
        normals=normals.reshape(height, width, 3),
    )
    if rgb:
        result.rgb = _shade(meshes, poses, hit, valid, normals, light_dir, ambient, background).reshape(
            height, width, 3
        )
    if full_masks:
        result.full_depths = [_depth_alone(v, f, K, width, height) for v, f in zip(verts, faces)]
        result.full_masks = [d > 0 for d in result.full_depths]
    return result


def _shade(meshes, poses, hit, valid, face_normals, light_dir, ambient, background) -> np.ndarray:
    """Lambertian + ambient shading of barycentrically interpolated vertex colours; (N, 3) uint8."""
    n_pix = len(valid)
    color = np.zeros((n_pix, 3), dtype=np.float64)
    shade_n = face_normals.astype(np.float64).copy()
    gid = hit["geometry_ids"]
    prim = hit["primitive_ids"]
    # Embree's barycentrics: hit = (1 - a - b) v0 + a v1 + b v2.
    a, b = hit["primitive_uvs"][:, 0].astype(np.float64), hit["primitive_uvs"][:, 1].astype(np.float64)
    w = np.stack([1 - a - b, a, b], axis=1)
    for i, mesh in enumerate(meshes):
        sel = valid & (gid == i)
        if not sel.any():
            continue
        tri = mesh.faces[prim[sel].astype(np.int64)]
        ws = w[sel][:, :, None]
        if mesh.colors is not None:
            color[sel] = (mesh.colors[tri] * ws).sum(1)
        else:
            color[sel] = DEFAULT_MESH_COLOR
        if mesh.normals is not None:
            # Smooth shading with the mesh's vertex normals rotated into the camera frame.
            R = poses[i][:3, :3]
            n = (mesh.normals[tri] * ws).sum(1) @ R.T
            n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-12
            same_side = (n * shade_n[sel]).sum(1) >= 0
            shade_n[sel] = np.where(same_side[:, None], n, -n)
    light = np.asarray(light_dir, dtype=np.float64)
    light = light / np.linalg.norm(light)
    lambert = np.clip(shade_n @ light, 0.0, 1.0)
    intensity = ambient + (1.0 - ambient) * lambert
    out = np.clip(color * intensity[:, None], 0.0, 1.0) * 255.0
    out = np.round(out).astype(np.uint8)
    out[~valid] = np.asarray(background, dtype=np.uint8)
    return out


def render_depth(mesh: Mesh, T_cam_model: np.ndarray, K: np.ndarray, width: int, height: int) -> np.ndarray:
    """Depth image (H, W) float32 metres (z in the camera frame, 0 = background) of one mesh.

    mesh in metres, T_cam_model (4, 4), K (3, 3); BOP/OpenCV pixel convention. This is
    the renderer BOP's VSD needs (bop_toolkit renderer, depth mode). Only the rays inside
    the mesh's projected bounding box are cast, so the cost follows the object's size in
    the image (a large canvas, e.g. 3W x 3H for truncated objects, stays cheap).
    """
    K = _check_camera(K, width, height)
    T = _check_pose(T_cam_model)
    return _depth_alone(mesh.vertices @ T[:3, :3].T + T[:3, 3], mesh.faces, K, int(width), int(height))


def render_rgb(
    meshes: Mesh | Sequence[Mesh],
    poses: np.ndarray | Sequence[np.ndarray],
    K: np.ndarray,
    width: int,
    height: int,
    *,
    light_dir: Sequence[float] = DEFAULT_LIGHT_DIR,
    ambient: float = 0.35,
    background: Sequence[int] = (0, 0, 0),
) -> np.ndarray:
    """RGB image (H, W, 3) uint8 of posed meshes from their vertex colours.

    Colours are interpolated barycentrically over each triangle (grey if a mesh has
    none) and shaded as ``ambient + (1 - ambient) * max(0, n . l)`` with ``l`` the unit
    direction towards a distant light in the camera frame. Accepts one mesh and one
    pose, or lists of both.
    """
    if isinstance(meshes, Mesh):
        meshes, poses = [meshes], [poses]
    res = render_scene(meshes, poses, K, width, height, rgb=True, light_dir=light_dir,
                       ambient=ambient, background=background)
    return res.rgb
