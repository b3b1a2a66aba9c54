"""Synthetic body point clouds: full-surface samples and single-view partial scans, with ground truth.

A batch draws poses (:mod:`posekit.body.poses`) and shapes, applies a global rotation (uniform
on SO(3), or none for "canonical" inputs) and a translation, poses the body model, then takes

- ``full`` clouds: N points uniformly on the surface (area-weighted), plus Gaussian noise
  (1 mm, as ArtEq's training data);
- ``partial`` clouds: what a virtual depth camera 2.5-3.5 m away sees (open3d raycasting of a
  96x96 image, one random viewpoint), resampled to N points, plus noise;
- ``kinect`` clouds (:func:`make_kinect_batch`): the body standing on a floor, rendered into a
  640x480 depth image (fx = fy = 525) by a camera 1.5-3.5 m away at head-to-knee height,
  passed through posekit's Kinect-like sensor model (:class:`posekit.data.sensor.DepthSensorModel`),
  back-projected, floor removed: points and ground truth in the *camera* frame (the viewpoint
  is the origin), as a robot's depth camera sees a person.

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
    up: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.points.shape[0])

    def select(self, index) -> BodyBatch:
        """The samples at ``index`` (a slice or index tensor) as a batch."""
        fields = ("points", "labels", "pose", "betas", "transl", "vertices", "joints", "global_rotations")
        return BodyBatch(**{f: getattr(self, f)[index] for f in fields},
                         up=None if self.up is None else self.up[index])


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
    x = np.cross(-up, z)  # image y points away from world up
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


KINECT_K = np.array([[525.0, 0.0, 319.5], [0.0, 525.0, 239.5], [0.0, 0.0, 1.0]])
KINECT_SIZE = (640, 480)
FLOOR_CUT_M = 0.02  # points this close to the floor plane are removed with it (plus 1.5 depth steps)
MASK_GROW_PX = 3  # the person mask is the body's silhouette grown by this many pixels


def kinect_view(vertices: np.ndarray, faces: np.ndarray, rng: np.random.Generator,
                distance: tuple[float, float] = (1.5, 3.5), height: tuple[float, float] = (0.5, 1.9),
                sensor=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What a Kinect-like camera sees of a body standing on a floor.

    vertices (V,3) metres in a y-up world frame with the floor at y = 0; the camera stands
    ``distance`` m away (horizontally, random azimuth) at ``height`` m and looks at the
    body's bounding-box centre. Returns camera-frame points (M,3) float32 inside the body's
    silhouette grown by :data:`MASK_GROW_PX`, with the floor removed (everything within
    :data:`FLOOR_CUT_M` plus 1.5 depth steps of it), and ``R_cam_world`` (3,3),
    ``t_cam_world`` (3,).
    """
    from posekit.data.render import render_scene
    from posekit.data.sensor import DepthSensorModel
    from posekit.io.depth import depth_to_points
    from posekit.io.mesh import Mesh

    centre = 0.5 * (vertices.min(axis=0) + vertices.max(axis=0))
    azimuth = rng.uniform(0, 2 * np.pi)
    d = rng.uniform(*distance)
    eye = np.array([centre[0] + d * np.sin(azimuth), rng.uniform(*height), centre[2] + d * np.cos(azimuth)])
    R_world_cam = look_at(eye, centre)
    T_cam_world = np.eye(4)
    T_cam_world[:3, :3] = R_world_cam.T
    T_cam_world[:3, 3] = -R_world_cam.T @ eye
    floor = Mesh(np.array([[-6.0, 0.0, -6.0], [6.0, 0.0, -6.0], [6.0, 0.0, 6.0], [-6.0, 0.0, 6.0]]) + [centre[0], 0, centre[2]],
                 np.array([[0, 2, 1], [0, 3, 2]]))
    body = Mesh(np.asarray(vertices, dtype=np.float64), np.asarray(faces))
    W, H = KINECT_SIZE
    render = render_scene([body, floor], [T_cam_world, T_cam_world], KINECT_K, W, H)
    sensor = sensor or DepthSensorModel()
    depth = sensor.apply(render.depth, KINECT_K, normals=render.normals, rng=rng)
    # A person mask as a segmenter gives it: the body's pixels grown by a few pixels (so it
    # catches edge pixels of the floor and background too), then the floor plane removed with
    # a tolerance that grows with the depth step of the sensor.
    from scipy.ndimage import binary_dilation

    mask = binary_dilation(render.instance == 0, iterations=MASK_GROW_PX)
    points = depth_to_points(depth, KINECT_K, mask=mask).astype(np.float64)
    world = (points - T_cam_world[:3, 3]) @ T_cam_world[:3, :3]  # R^T (p - t)
    step = sensor.inverse_depth_step * points[:, 2] ** 2
    keep = world[:, 1] > FLOOR_CUT_M + 1.5 * step
    return points[keep].astype(np.float32), T_cam_world[:3, :3], T_cam_world[:3, 3]


def make_kinect_batch(body: BodyModel, rng: np.random.Generator, batch_size: int, n_points: int = 2048,
                      pose_kind: str = "unseen", betas_scale: float = 1.0, sensor=None,
                      device: str | torch.device = "cpu") -> BodyBatch:
    """Kinect-like single views (:func:`kinect_view`) of posed bodies, as a :class:`BodyBatch` in the camera frame.

    Each body gets a random heading about the vertical; the ground truth (pose root, transl,
    vertices, joints, global rotations) is expressed in the camera frame, and ``up`` holds the
    floor's normal there (what removing the floor plane tells a user). Labels: the part of
    the nearest true vertex. Views with fewer than 64 body points are drawn again.
    """
    from posekit.geometry.so3 import so3_exp

    B = int(batch_size)
    local = so3_exp(torch.from_numpy(sample_poses(rng, B, pose_kind)).float())
    betas = torch.from_numpy(sample_betas(rng, B, body.n_betas, betas_scale)).float()
    parts = torch.as_tensor(body.vertex_parts())
    rows = []
    for b in range(B):
        heading = rng.uniform(0, 2 * np.pi)
        c, s = np.cos(heading), np.sin(heading)
        R_heading = torch.tensor([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]], dtype=torch.float32)
        pose = local[b].clone()
        pose[0] = R_heading @ pose[0]
        with torch.no_grad():
            out = body(pose[None].to(body.device), betas[b:b + 1].to(body.device))
        verts = out.vertices[0].cpu().numpy().astype(np.float64)
        lift = -verts[:, 1].min()
        verts[:, 1] += lift
        for _ in range(8):
            pts, R, t = kinect_view(verts, body.faces, rng, sensor=sensor)
            if len(pts) >= 64:
                break
        pick = rng.choice(len(pts), n_points, replace=len(pts) < n_points)
        pts = torch.from_numpy(pts[pick])
        Rt = torch.as_tensor(R, dtype=torch.float32)
        tt = torch.as_tensor(t, dtype=torch.float32) + Rt @ torch.tensor([0.0, float(lift), 0.0])
        # A rigid motion of the posed body is a new root rotation and translation (about the pelvis).
        pose[0] = Rt @ pose[0]
        with torch.no_grad():
            moved = body(pose[None].to(body.device), betas[b:b + 1].to(body.device))
        v_cam = out.vertices[0].cpu() @ Rt.T + tt
        transl = (v_cam - moved.vertices[0].cpu()).mean(0)
        joints = moved.joints[0].cpu() + transl
        nearest = torch.cdist(pts, v_cam).argmin(-1)
        rows.append((pts, parts[nearest], pose, transl, v_cam, joints, moved.global_rotations[0].cpu(), Rt[:, 1]))
    dev = torch.device(device)
    stack = [torch.stack([r[k] for r in rows]).float().to(dev) for k in range(8)]
    return BodyBatch(stack[0], stack[1].long(), stack[2], betas.to(dev), stack[3], stack[4], stack[5], stack[6],
                     up=stack[7])


def concat_batches(batches: list[BodyBatch]) -> BodyBatch:
    """One :class:`BodyBatch` of the samples of several (same point count and device), in order.

    ``up`` is kept only when every batch has it.
    """
    batches = [b for b in batches if len(b)]
    if not batches:
        raise BadInputError("concat_batches needs at least one non-empty batch")
    if len(batches) == 1:
        return batches[0]
    fields = ("points", "labels", "pose", "betas", "transl", "vertices", "joints", "global_rotations")
    cat = {f: torch.cat([getattr(b, f) for b in batches]) for f in fields}
    up = torch.cat([b.up for b in batches]) if all(b.up is not None for b in batches) else None
    return BodyBatch(**cat, up=up)


__all__ = ["CLOUD_KINDS", "FLOOR_CUT_M", "KINECT_K", "KINECT_SIZE", "BodyBatch", "concat_batches", "kinect_view",
           "look_at", "make_body_batch", "make_kinect_batch", "partial_scan", "sample_surface"]
