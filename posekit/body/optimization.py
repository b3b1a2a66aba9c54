"""Optimisation-based body fitting: the baseline users would otherwise write, and the refinement step.

Pose (axis-angle per joint), shape (betas) and translation are found by Adam on

    E = mean_i min_v |p_i - v|  +  w_m mean_v min_i |v - p_i|  +  w_pose sum_k |omega_k|^2  +  w_b |beta|^2

(a chamfer point-to-vertex data term, truncated at ``max_distance``, a zero-mean Gaussian pose
prior on the local joint rotations and a shape prior), from several initial global
orientations at once; the fit with the lowest final energy wins. The model side of the
chamfer uses a fixed subset of mesh vertices. Hand and foot joints stay at rest, as in the
network. ``init`` starts from a given fit (refinement): one start, fewer steps, and a prior
that keeps the pose near it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from posekit.body.model import BodyModel
from posekit.body.skeleton import MERGED_JOINTS, N_JOINTS


@dataclass
class OptimizationSettings:
    iterations: int = 150
    global_iterations: int = 50  # first steps move only the global rotation and translation
    lr: float = 0.03
    n_inits: int = 8  # initial orientations (tetrahedral rotations, then random ones)
    model_points: int = 600  # mesh vertices in the chamfer
    data_points: int = 256  # input points in the chamfer
    model_to_data_weight: float = 0.5  # 0 for one-sided (partial scans)
    max_distance: float = 0.15  # metres, chamfer truncation
    pose_prior: float = 0.002
    betas_prior: float = 0.002
    seed: int = 0


@dataclass
class OptimizationResult:
    local_rotations: torch.Tensor  # (24,3,3)
    betas: torch.Tensor  # (n_betas,)
    transl: torch.Tensor  # (3,)
    energy: float
    data_term: float


def _initial_rotations(n: int, rng: np.random.Generator) -> np.ndarray:
    from posekit.body.groups import rotation_group
    from posekit.geometry.rigid_np import random_rotation_np

    base = rotation_group("tetrahedral").elements
    extra = [random_rotation_np(rng) for _ in range(max(0, n - len(base)))]
    return np.concatenate([base[:n], np.asarray(extra).reshape(-1, 3, 3)])


def fit_by_optimization(body: BodyModel, points: torch.Tensor, settings: OptimizationSettings | None = None,
                        init: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None) -> OptimizationResult:
    """Fit ``body`` to points (N,3) metres (torch, on the body's device); see the module docstring.

    init: (local rotations (24,3,3), betas (n,), transl (3,)) to refine from, or None.
    """
    from posekit.geometry.so3 import so3_exp, so3_log

    s = settings or OptimizationSettings()
    dev, dtype = body.device, body.v_template.dtype
    rng = np.random.default_rng(s.seed)
    pts = points.to(dev, dtype)
    if len(pts) > s.data_points:
        pts = pts[torch.as_tensor(rng.choice(len(pts), s.data_points, replace=False), device=dev)]
    subset = torch.as_tensor(np.sort(rng.choice(body.n_vertices, min(s.model_points, body.n_vertices),
                                                replace=False)), device=dev)
    free = torch.ones(N_JOINTS, 1, device=dev, dtype=dtype)
    free[list(MERGED_JOINTS)] = 0.0
    free[0] = 0.0  # the root is R0 exp(omega_0): handled separately
    if init is None:
        R0 = torch.as_tensor(_initial_rotations(s.n_inits, rng), device=dev, dtype=dtype)
        K = len(R0)
        pose = torch.zeros(K, N_JOINTS, 3, device=dev, dtype=dtype)
        betas = torch.zeros(K, body.n_betas, device=dev, dtype=dtype)
        pelvis = body.rest_joints()[0, 0]
        transl = (pts.mean(0) - (R0 @ (body.v_template.mean(0) - pelvis)) - pelvis)
        pose_mean = torch.zeros_like(pose)
        iterations, global_iterations = s.iterations, s.global_iterations
    else:
        local, b0, t0 = (x.to(dev, dtype) for x in init)
        R0 = local[0][None]
        pose = so3_log(local)[None].clone()
        pose[:, 0] = 0.0
        pose_mean = pose.clone()
        betas = b0[None].clone()
        transl = t0[None].clone()
        K = 1
        iterations, global_iterations = max(s.iterations // 3, 1), 0
    pose.requires_grad_(True)
    root = torch.zeros(K, 3, device=dev, dtype=dtype, requires_grad=True)
    betas.requires_grad_(True)
    transl = transl.clone().requires_grad_(True)
    opt = torch.optim.Adam([pose, root, betas, transl], lr=s.lr)

    def energy(final: bool = False):
        local = so3_exp(pose * free)
        local = torch.cat([(R0 @ so3_exp(root))[:, None], local[:, 1:]], dim=1)
        out = body(local, betas, transl)
        verts = out.vertices[:, subset]
        # Squared distances by the expansion |p|^2 + |v|^2 - 2 p.v; square roots only of the minima.
        d2 = ((pts * pts).sum(-1)[None, :, None] + (verts * verts).sum(-1)[:, None, :]
              - 2.0 * pts[None] @ verts.transpose(1, 2)).clamp_min(1e-10)
        to_model = d2.amin(dim=2).sqrt().clamp_max(s.max_distance).mean(1)
        to_data = d2.amin(dim=1).sqrt().clamp_max(s.max_distance).mean(1)
        data = to_model + s.model_to_data_weight * to_data
        prior = s.pose_prior * ((pose - pose_mean) * free).pow(2).sum((1, 2)) + s.betas_prior * betas.pow(2).sum(1)
        return data + prior, data, local

    for it in range(iterations):
        total, _, _ = energy()
        opt.zero_grad(set_to_none=True)
        total.sum().backward()
        if it < global_iterations:
            pose.grad.zero_()
            betas.grad.zero_()
        opt.step()
    with torch.no_grad():
        total, data, local = energy(final=True)
        best = int(total.argmin())
    return OptimizationResult(local[best].detach(), betas[best].detach(), transl[best].detach(),
                              float(total[best]), float(data[best]))


__all__ = ["OptimizationResult", "OptimizationSettings", "fit_by_optimization"]
