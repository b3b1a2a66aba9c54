"""Synthetic body point clouds: full-surface samples and single-view partial scans, with ground truth.

A batch draws poses (:mod:`posekit.body.poses`) and shapes, applies a global rotation (uniform
on SO(3), or none for "canonical" inputs) and a translation, poses the body model, then takes

- ``full`` clouds: N points uniformly on the surface (area-weighted), plus Gaussian noise
  (1 mm, as ArtEq's training data);
- ``partial`` clouds: what a virtual depth camera 2.5-3.5 m away sees (open3d raycasting of a
  96x96 image, one random viewpoint), resampled to N points, plus noise.

Every point carries the part label of the vertex it was drawn from (argmax skinning weight,
hands merged into wrists and feet into ankles; see :mod:`posekit.body.skeleton`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from posekit.body.model import BodyModel
from posekit.body.poses import sample_betas, sample_poses
from posekit.errors import BadInputError

CLOUD_KINDS = ("full", "partial")


@dataclass
class BodyBatch:
    """Clouds and their ground truth (torch, on one device); B samples of N points, V vertices.

    points (B,N,3) m; labels (B,N) part index; pose (B,24,3,3) local rotations, the global
    rotation in the root; betas (B,n_betas); transl (B,3) m; vertices (B,V,3); joints (B,24,3);
    global_rotations (B,24,3,3).
    """

    points: torch.Tensor
    labels: torch.Tensor
    pose: torch.Tensor
    betas: torch.Tensor
    transl: torch.Tensor
    vertices: torch.Tensor
    joints: torch.Tensor
    global_rotations: torch.Tensor

    def __len__(self) -> int:
        return int(self.points.shape[0])


def sample_surface(vertices: torch.Tensor, faces: torch.Tensor, n: int,
                   generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """n area-uniform surface points per mesh: vertices (B,V,3), faces (F,3) -> points (B,n,3), vertex ids (B,n).

    The vertex id is the triangle corner with the largest barycentric weight (for labels).
    """
    tri = vertices[:, faces]  # (B,F,3,3)
    area = torch.linalg.cross(tri[:, :, 1] - tri[:, :, 0], tri[:, :, 2] - tri[:, :, 0]).norm(dim=-1)
    face = torch.multinomial(area, n, replacement=True, generator=generator)  # (B,n)
    r = torch.rand(vertices.shape[0], n, 2, generator=generator, device=vertices.device, dtype=vertices.dtype)
    s = r[..., 0].sqrt()
    bary = torch.stack([1 - s, s * (1 - r[..., 1]), s * r[..., 1]], dim=-1)  # (B,n,3)
    corners = torch.gather(tri, 1, face[..., None, None].expand(-1, -1, 3, 3))  # (B,n,3,3)
    points = (bary[..., None] * corners).sum(dim=2)
    vertex = faces[face, bary.argmax(dim=-1)]
    return points, vertex


def look_at(eye: np.ndarray, target: np.ndarray) -> np.ndarray:
    """R_world_cam (3,3) of a camera at ``eye`` looking at ``target`` (OpenCV: z forward, y down)."""
    z = target - eye
    z /= np.linalg.norm(z)
    up = np.array([0.0, 1.0, 0.0]) if abs(z[1]) < 0.95 else np.array([1.0, 0.0, 0.0])
    x = np.cross(z, -up)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    return np.stack([x, y, z], axis=1)


def partial_scan(vertices: np.ndarray, faces: np.ndarray, rng: np.random.Generator, image_size: int = 96,
                 distance: tuple[float, float] = (2.5, 3.5)) -> tuple[np.ndarray, np.ndarray]:
    """Points (M,3) a depth camera sees from a random direction, and the id (M,) of a vertex of each hit face.

    vertices (V,3) metres, faces (F,3). Camera ``distance`` m from the mesh centre, field of
    view wide enough for a 2.2 m body, ``image_size`` pixels square.
    """
    import open3d as o3d

    centre = 0.5 * (vertices.min(axis=0) + vertices.max(axis=0))
    direction = rng.normal(size=3)
    direction /= np.linalg.norm(direction)
    eye = centre + rng.uniform(*distance) * direction
    R = look_at(eye, centre)
    half = np.tan(np.radians(25.0))
    u = np.linspace(-half, half, image_size)
    uu, vv = np.meshgrid(u, u)
    dirs = np.stack([uu, vv, np.ones_like(uu)], axis=-1).reshape(-1, 3) @ R.T
    rays = np.concatenate([np.broadcast_to(eye, dirs.shape), dirs], axis=1).astype(np.float32)
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(np.ascontiguousarray(vertices, dtype=np.float32)),
                        o3d.core.Tensor(np.ascontiguousarray(faces, dtype=np.uint32)))
    ans = scene.cast_rays(o3d.core.Tensor(rays))
    t = ans["t_hit"].numpy()
    hit = np.isfinite(t)
    points = eye + t[hit, None] * dirs[hit]
    face = ans["primitive_ids"].numpy()[hit].astype(np.int64)
    return points, faces[face, 0]


def make_body_batch(body: BodyModel, rng: np.random.Generator, batch_size: int, n_points: int = 1024,
                    pose_kind: str = "common", rotate: bool = True, partial_fraction: float = 0.0,
                    noise: float = 0.001, translation: float = 1.0, betas_scale: float = 1.0,
                    device: str | torch.device = "cpu") -> BodyBatch:
    """One batch of synthetic clouds with ground truth (see :class:`BodyBatch`).

    ``rotate``: global rotation uniform on SO(3) (else upright, facing +z); ``partial_fraction``
    of the samples are single-view scans; ``translation``: uniform in +-that many metres per axis.
    """
    if partial_fraction < 0 or partial_fraction > 1:
        raise BadInputError(f"partial_fraction must be within 0-1, got {partial_fraction}")
    from posekit.geometry.rigid_np import random_rotation_np
    from posekit.geometry.so3 import so3_exp

    B = int(batch_size)
    local = so3_exp(torch.from_numpy(sample_poses(rng, B, pose_kind)).float())  # (B,24,3,3)
    if rotate:
        R_global = torch.from_numpy(np.stack([random_rotation_np(rng) for _ in range(B)])).float()
        local[:, 0] = R_global @ local[:, 0]
    betas = torch.from_numpy(sample_betas(rng, B, body.n_betas, betas_scale)).float()
    transl = torch.from_numpy(rng.uniform(-translation, translation, size=(B, 3))).float()
    dev = body.device
    with torch.no_grad():
        out = body(local.to(dev), betas.to(dev), transl.to(dev))
    faces = torch.as_tensor(body.faces, device=dev)
    gen = torch.Generator(device=dev).manual_seed(int(rng.integers(2**62)))
    points, vertex = sample_surface(out.vertices, faces, n_points, gen)
    is_partial = rng.random(B) < partial_fraction
    for b in np.flatnonzero(is_partial):
        scan, scan_vertex = partial_scan(out.vertices[b].cpu().numpy(), body.faces, rng)
        if len(scan) < 16:  # viewpoint missed the body: keep the full cloud
            continue
        pick = rng.choice(len(scan), n_points, replace=len(scan) < n_points)
        points[b] = torch.from_numpy(scan[pick]).to(points)
        vertex[b] = torch.from_numpy(scan_vertex[pick]).to(vertex)
    points = points + noise * torch.randn(points.shape, generator=gen, device=dev)
    part_of_vertex = torch.as_tensor(body.vertex_parts(), device=dev)
    dev_out = torch.device(device)
    return BodyBatch(points.float().to(dev_out), part_of_vertex[vertex].to(dev_out), local.to(dev_out),
                     betas.to(dev_out), transl.to(dev_out), out.vertices.to(dev_out), out.joints.to(dev_out),
                     out.global_rotations.to(dev_out))


__all__ = ["CLOUD_KINDS", "BodyBatch", "look_at", "make_body_batch", "partial_scan", "sample_surface"]
