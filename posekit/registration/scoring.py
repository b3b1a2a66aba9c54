"""Scoring pose hypotheses by geometric fit: does the posed model explain the observed surface?

Two terms, both in the camera frame (metres):

- **fit**: the fraction of observed points within ``tau`` of the posed model's surface
  points (the observed surface must lie on the model);
- **visibility** (free-space consistency): model points that face the camera must not lie
  clearly in front of the observed surface along the same viewing ray: a sensor sees the
  first surface on each ray, so a model surface in front of the measurement is impossible
  for a right pose. The fraction of such violations among model points that fall on an
  observed ray is the penalty.

``score = fit * (1 - violations)`` in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree


@dataclass
class HypothesisScore:
    score: float
    fit: float
    violations: float


def inlier_threshold(diameter: float) -> float:
    """Distance (m) within which an observed point counts as explained: 5% of the diameter, >= 4 mm."""
    return max(0.004, 0.05 * float(diameter))


def score_hypotheses(T_cam_model: np.ndarray, model_points: np.ndarray, model_normals: np.ndarray,
                     observed: np.ndarray, diameter: float) -> list[HypothesisScore]:
    """Score each pose of ``T_cam_model (H, 4, 4)`` against ``observed (N, 3)`` camera points."""
    observed = np.asarray(observed, dtype=np.float64)
    tau = inlier_threshold(diameter)
    obs_dist = np.linalg.norm(observed, axis=1)
    obs_dirs = observed / obs_dist[:, None]
    dir_tree = cKDTree(obs_dirs)
    # Angular spacing of the observed rays: a model point "falls on" an observed ray when its
    # direction is within two spacings of one.
    spacing = np.median(dir_tree.query(obs_dirs, k=2)[0][:, 1]) if len(observed) > 1 else 1e-3
    ray_tol = 2.5 * max(spacing, 1e-5)
    out = []
    for T in np.asarray(T_cam_model, dtype=np.float64).reshape(-1, 4, 4):
        pts = model_points @ T[:3, :3].T + T[:3, 3]
        nrm = model_normals @ T[:3, :3].T
        fit = float(np.mean(cKDTree(pts).query(observed, distance_upper_bound=tau)[0] < tau))
        facing = (nrm * pts).sum(1) < 0
        p = pts[facing]
        violations = 0.0
        if len(p):
            d = np.linalg.norm(p, axis=1)
            ang, idx = dir_tree.query(p / d[:, None], distance_upper_bound=ray_tol)
            on_ray = np.isfinite(ang)
            if on_ray.any():
                in_front = d[on_ray] < obs_dist[idx[on_ray]] - tau
                violations = float(in_front.mean())
        out.append(HypothesisScore(fit * (1.0 - violations), fit, violations))
    return out
