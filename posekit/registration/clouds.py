"""Point clouds as the registration network sees them: fixed sizes, normals, normalised frames.

One home for the input conventions shared by training and inference:

- model cloud: ``n_model`` surface points of the object with outward unit normals, in the
  model frame (metres);
- observed cloud: ``n_observed`` camera-frame points (metres) with unit normals turned
  towards the camera;
- normalisation: the observed cloud is centred on its mean ``mu``, the model on its
  bounding-box centre ``c``, and both are divided by the model radius ``r`` (half its
  diameter), so the network works in object-size units whatever the object's size.
  A normalised state ``H`` (observed -> model) maps back to ``T_cam_model`` by
  :func:`pose_from_state`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from posekit.errors import BadInputError
from posekit.geometry.normals import estimate_normals
from posekit.io.mesh import Mesh


@dataclass
class ModelCloud:
    """A model ready for registration: points/normals (model frame, m), centre, radius, symmetries."""

    points: np.ndarray  # (M, 3) float32
    normals: np.ndarray  # (M, 3) float32, outward
    centre: np.ndarray  # (3,) bounding-box centre, model frame
    radius: float  # half the diameter, m
    symmetries: np.ndarray  # (S, 4, 4) T_model_model (identity first), metres
    obj_id: int = 0
    mesh: Mesh | None = None
    source_points: np.ndarray | None = None  # a cloud model's full points (M', 3), m (None for meshes)
    source_normals: np.ndarray | None = None

    @property
    def diameter(self) -> float:
        return 2.0 * self.radius

    def normalised(self) -> tuple[np.ndarray, np.ndarray]:
        return ((self.points - self.centre) / self.radius).astype(np.float32), self.normals.astype(np.float32)

    def normalised_symmetries(self) -> np.ndarray:
        """(S, 4, 4) symmetries in normalised model coordinates q = (p - c) / r."""
        S = self.symmetries.copy()
        R, t = S[:, :3, :3], S[:, :3, 3]
        S[:, :3, 3] = (np.einsum("sij,j->si", R, self.centre) + t - self.centre) / self.radius
        return S


def subsample_indices(n_have: int, n_want: int, rng: np.random.Generator) -> np.ndarray:
    """n_want indices into n_have items: without replacement when possible, else with."""
    if n_have < 1:
        raise BadInputError("cannot subsample an empty cloud")
    return rng.choice(n_have, size=n_want, replace=n_have < n_want)


def _diameter(points: np.ndarray) -> float:
    from posekit.io.mesh import points_diameter

    return points_diameter(points)


def model_cloud_from_mesh(mesh: Mesh, n: int = 1024, seed: int = 0, symmetries: np.ndarray | None = None,
                          obj_id: int = 0, diameter: float | None = None) -> ModelCloud:
    """Sample ``n`` surface points with face normals from a mesh (metres)."""
    pts, nrm = mesh.sample_points(n, seed=seed, return_normals=True)
    lo, hi = mesh.vertices.min(0), mesh.vertices.max(0)
    d = float(diameter) if diameter else _diameter(np.asarray(mesh.vertices))
    return ModelCloud(pts.astype(np.float32), nrm.astype(np.float32), ((lo + hi) / 2).astype(np.float64),
                      d / 2.0, _symmetries_or_identity(symmetries), obj_id, mesh)


def model_cloud_from_points(points: np.ndarray, normals: np.ndarray | None = None, n: int = 1024, seed: int = 0,
                            symmetries: np.ndarray | None = None, obj_id: int = 0) -> ModelCloud:
    """A model given as points (e.g. a scanned cloud), normals estimated and turned outward if absent."""
    points = np.asarray(points, dtype=np.float64)
    if normals is None:
        normals = estimate_normals(points, towards="outward")
    rng = np.random.default_rng(seed)
    idx = subsample_indices(len(points), n, rng)
    lo, hi = points.min(0), points.max(0)
    return ModelCloud(points[idx].astype(np.float32), np.asarray(normals)[idx].astype(np.float32),
                      (lo + hi) / 2, _diameter(points) / 2.0, _symmetries_or_identity(symmetries), obj_id, None)


def _symmetries_or_identity(symmetries) -> np.ndarray:
    if symmetries is None or len(symmetries) == 0:
        return np.eye(4)[None]
    try:
        S = np.asarray(symmetries, dtype=np.float64).reshape(-1, 4, 4)
    except (TypeError, ValueError) as exc:
        raise BadInputError(f"symmetries must be (S, 4, 4) transforms, got {np.shape(symmetries)}") from exc
    if not np.isfinite(S).all():
        raise BadInputError("symmetries contain NaN or inf")
    return S


def observed_cloud(points: np.ndarray, normals: np.ndarray | None, n: int,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Subsample to ``n`` points (camera frame, m) with camera-facing normals (estimated if None)."""
    points = np.asarray(points, dtype=np.float64)
    if normals is None:
        normals = estimate_normals(points)
    idx = subsample_indices(len(points), n, rng)
    return points[idx].astype(np.float32), np.asarray(normals)[idx].astype(np.float32)


def normalise_observed(points: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """(points - mu) / radius and mu (3,)."""
    mu = points.mean(0).astype(np.float64)
    return ((points - mu) / radius).astype(np.float32), mu


def pose_from_state(H: np.ndarray, mu: np.ndarray, model: ModelCloud) -> np.ndarray:
    """T_cam_model (..., 4, 4) from normalised states H (..., 4, 4) (observed -> model).

    (p_model - c) / r = R_H (p_cam - mu) / r + t_H, so T_model_cam = [R_H, r t_H + c - R_H mu].
    """
    H = np.asarray(H, dtype=np.float64)
    T_model_cam = np.broadcast_to(np.eye(4), H.shape).copy()
    R = H[..., :3, :3]
    T_model_cam[..., :3, :3] = R
    T_model_cam[..., :3, 3] = model.radius * H[..., :3, 3] + model.centre - np.einsum("...ij,j->...i", R, mu)
    return np.linalg.inv(T_model_cam)


def state_from_pose(T_cam_model: np.ndarray, mu: np.ndarray, model: ModelCloud) -> np.ndarray:
    """Inverse of :func:`pose_from_state`: the normalised state H0 of a known pose."""
    T_model_cam = np.linalg.inv(np.asarray(T_cam_model, dtype=np.float64))
    R = T_model_cam[..., :3, :3]
    H = np.broadcast_to(np.eye(4), T_model_cam.shape).copy()
    H[..., :3, :3] = R
    H[..., :3, 3] = (T_model_cam[..., :3, 3] - model.centre + np.einsum("...ij,j->...i", R, mu)) / model.radius
    return H


class VisibleCentres:
    """Where a depth camera's view of the model has its centroid, for any viewing direction.

    A single view sees only the camera-facing side, so the observed cloud's mean ``mu`` is not
    the model's centre but the centroid of that side: aligning the two centroids puts a
    partial view a good part of a radius off, and the coarse search then ranks the right
    rotation low. This table holds, for ``n_dirs`` viewing directions ``d`` (unit, model frame,
    camera -> object) spread evenly over the sphere, the mean of the normalised surface samples
    whose normals face the camera (``n . d < 0``; self-occlusion is ignored); :meth:`lookup`
    takes the nearest tabulated direction.
    """

    def __init__(self, points_n, normals, n_dirs: int = 512, device="cpu"):
        import torch

        i = np.arange(n_dirs) + 0.5  # Fibonacci sphere: directions about evenly spread
        z = 1.0 - 2.0 * i / n_dirs
        phi = np.pi * (1.0 + 5.0 ** 0.5) * i
        rho = np.sqrt(1.0 - z * z)
        dirs = np.stack([rho * np.cos(phi), rho * np.sin(phi), z], 1)
        pts, nrm = np.asarray(points_n, np.float64), np.asarray(normals, np.float64)
        facing = (nrm @ dirs.T) < 0.0  # (S, D)
        count = facing.sum(0)
        centres = (facing.T.astype(np.float64) @ pts) / np.maximum(count, 1)[:, None]
        centres[count == 0] = pts.mean(0)
        self.dirs = torch.as_tensor(dirs, dtype=torch.float32, device=device)
        self.centres = torch.as_tensor(centres, dtype=torch.float32, device=device)

    def lookup(self, d):
        """Centres (..., 3) for viewing directions ``d (..., 3)`` (unit, model frame)."""
        return self.centres[(d @ self.dirs.T).argmax(-1)]


def hidden_fraction(points: np.ndarray, diameter: float, gap: float = 0.25) -> float:
    """Share of ``points (N, 3)`` (camera frame, the camera at the origin looking along +z) that
    lie more than ``gap`` x diameter behind another point on about the same ray: near 0 for
    one depth camera's view (it measures one surface per ray), near half for a cloud of the
    whole surface (the back is behind the front). Rays are binned on a square grid in the
    image plane with about 8 points per occupied bin."""
    pts = np.asarray(points, np.float64)
    pts = pts[np.isfinite(pts).all(1) & (pts[:, 2] > 1e-6)]
    if len(pts) < 16:
        return 0.0
    u, v = pts[:, 0] / pts[:, 2], pts[:, 1] / pts[:, 2]
    side = max(u.max() - u.min(), v.max() - v.min(), 1e-12)
    bins = max(2, int(np.sqrt(len(pts) / 8.0)))
    iu = np.minimum(((u - u.min()) / side * bins).astype(np.int64), bins - 1)
    iv = np.minimum(((v - v.min()) / side * bins).astype(np.int64), bins - 1)
    cell = iu * bins + iv
    front = np.full(bins * bins, np.inf)
    np.minimum.at(front, cell, pts[:, 2])
    return float((pts[:, 2] > front[cell] + gap * diameter).mean())


def single_view(points: np.ndarray, diameter: float, max_hidden: float = 0.15) -> bool:
    """Whether ``points`` (camera frame) look like one depth camera's view of an object of that
    ``diameter``: at most ``max_hidden`` of them hidden behind others (:func:`hidden_fraction`)."""
    return hidden_fraction(points, diameter) <= max_hidden
