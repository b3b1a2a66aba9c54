"""ArtEq-style articulated SO(3)-equivariant body network, in plain torch (no compiled ops).

After Feng et al., "Generalizing Neural Human Fitting to Unseen Poses With Articulated SE(3)
Equivariance" (ICCV 2023), with an EPN-like backbone (Chen et al., CVPR 2021) over a finite
rotation group G (icosahedral 60, octahedral 24 or tetrahedral 12 anchors):

1. Input points (B,N,3) are centred on their centroid (translation invariance).
2. Lifting: on M1 farthest-point centres, a shared MLP of each neighbour offset seen in the
   frame of every anchor, ``g^T (p_j - p_c)``, max-pooled -> features (B,M1,G,C). Rotating the
   input by r maps ``f(g)`` to ``f(r^-1 g)``: an exact permutation for r in G.
3. Group convolutions mix each anchor with its neighbours ``f(g s)`` (s near the identity); a
   second stage on M2 centres pools stage-1 features; a global max gives (B,G,C).
4. Part segmentation from group-pooled (rotation-invariant) features, at the M1 centres.
5. Per-part features: part-probability-weighted means over centres, concatenated with the
   parent part's (kinematic conditioning).
6. Pose head per part: self-attention over the G anchor tokens (no positional code, so
   permutation-equivariant) -> a weight and a small residual rotation per anchor; the part's
   global rotation is the weighted chordal mean of ``g exp(delta_g)`` (SVD, det fixed).
7. Shape head: invariant part features -> 10 betas. Translation (not in ArtEq): the pelvis
   offset from the centroid as the same weighted vote of per-anchor vectors ``g t_g``.

Local joint rotations are ``R_parent^T R`` (:func:`global_to_local`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from posekit.body.skeleton import (
    MERGED_JOINTS,
    N_JOINTS,
    N_PARTS,
    PARENTS,
    PART_JOINTS,
    part_parents,
)
from posekit.geometry.neighbours import knn_indices
from posekit.geometry.rotation_groups import rotation_group


@dataclass
class BodyNetConfig:
    """Network shape (the ``network:`` section of configs/body.yaml)."""

    group: str = "tetrahedral"  # tetrahedral (12) | octahedral (24) | icosahedral (60)
    n_points: int = 1024  # input points (clouds are resampled to this many)
    centres1: int = 128
    centres2: int = 32
    neighbours1: int = 16
    neighbours2: int = 10
    channels1: int = 32
    channels2: int = 64
    part_channels: int = 64
    group_neighbours: int = 5  # anchors mixed by each group convolution
    heads: int = 4
    n_betas: int = 10
    max_residual: float = 0.7  # radians, bound of the per-anchor residual rotation


def farthest_point_indices(x: torch.Tensor, m: int) -> torch.Tensor:
    """Farthest-point sampling (B,m) indices of x (B,N,3), starting from point 0 (rotation-invariant)."""
    B, N, _ = x.shape
    m = min(m, N)
    idx = torch.zeros(B, m, dtype=torch.long, device=x.device)
    dist = torch.full((B, N), float("inf"), device=x.device, dtype=x.dtype)
    far = torch.zeros(B, dtype=torch.long, device=x.device)
    batch = torch.arange(B, device=x.device)
    for i in range(m):
        idx[:, i] = far
        d = ((x - x[batch, far][:, None]) ** 2).sum(-1)
        dist = torch.minimum(dist, d)
        far = dist.argmax(-1)
    return idx


def gather_points(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """x (B,N,...) gathered at idx (B,M[,K]) -> (B,M[,K],...)."""
    B = x.shape[0]
    batch = torch.arange(B, device=x.device).view(B, *([1] * (idx.dim() - 1)))
    return x[batch, idx]


class GroupConv(nn.Module):
    """``f'(g) = W [f(g s_1), ..., f(g s_K)]`` over an anchor neighbourhood: commutes with left rotations."""

    def __init__(self, mul: np.ndarray, neighbourhood: np.ndarray, c_in: int, c_out: int):
        super().__init__()
        self.register_buffer("index", torch.as_tensor(mul[:, neighbourhood], dtype=torch.long), persistent=False)
        self.linear = nn.Linear(c_in * len(neighbourhood), c_out)

    def forward(self, f: torch.Tensor) -> torch.Tensor:  # (..., G, C)
        g = f[..., self.index, :]  # (..., G, K, C)
        return self.linear(g.flatten(-2))


class BodyNet(nn.Module):
    """Points (B,N,3) -> dict of part logits, part/joint global rotations, betas, pelvis position (see module doc)."""

    def __init__(self, config: BodyNetConfig | None = None):
        super().__init__()
        self.config = c = config or BodyNetConfig()
        group = rotation_group(c.group)
        self.group = group
        hood = group.neighbourhood(c.group_neighbours)
        self.register_buffer("anchors", torch.as_tensor(group.elements, dtype=torch.float32), persistent=False)
        self.register_buffer("part_parent", torch.as_tensor(
            np.where(part_parents() < 0, 0, part_parents()), dtype=torch.long), persistent=False)
        c1, c2, cp = c.channels1, c.channels2, c.part_channels
        self.lift = nn.Sequential(nn.Linear(3, c1), nn.ReLU(), nn.Linear(c1, c1))
        self.gconv1 = GroupConv(group.mul, hood, c1, c1)
        self.stage2 = nn.Sequential(nn.Linear(3 + c1, c2), nn.ReLU(), nn.Linear(c2, c2))
        self.gconv2 = GroupConv(group.mul, hood, c2, c2)
        self.proj1 = nn.Linear(c1, cp)
        self.proj2 = nn.Linear(c2, cp)
        self.proj_global = nn.Linear(c2, cp)
        self.seg = nn.Sequential(nn.Linear(cp, cp), nn.ReLU(), nn.Linear(cp, N_PARTS))
        self.token_in = nn.Linear(2 * cp, cp)
        self.part_embedding = nn.Parameter(torch.zeros(N_PARTS, cp))
        self.attention = nn.MultiheadAttention(cp, c.heads, batch_first=True)
        self.norm1 = nn.LayerNorm(cp)
        self.norm2 = nn.LayerNorm(cp)
        self.token_mlp = nn.Sequential(nn.Linear(cp, cp), nn.ReLU(), nn.Linear(cp, cp))
        self.token_out = nn.Linear(cp, 1 + 3 + 3)  # anchor score, residual rotation, translation vote
        self.shape = nn.Sequential(nn.Linear(N_PARTS * cp, 128), nn.ReLU(), nn.Linear(128, c.n_betas))

    def forward(self, points: torch.Tensor) -> dict[str, torch.Tensor]:
        """points (B,N,3) metres. Returns (all torch):

        ``centroid`` (B,3); ``centre_index`` (B,M1); ``centre_logits`` (B,M1,P);
        ``point_logits`` (B,N,P) (each point takes its nearest centre's); ``part_rotations``
        (B,P,3,3) global; ``anchor_weights`` (B,P,G); ``betas`` (B,n_betas); ``pelvis`` (B,3);
        ``pelvis_candidates`` (B,G,3,3) the pelvis part's per-anchor rotations ``g exp(delta_g)``.
        """
        c = self.config
        A = self.anchors  # (G,3,3)
        centroid = points.mean(dim=1)
        x = points - centroid[:, None]
        idx1 = farthest_point_indices(x, c.centres1)
        p1 = gather_points(x, idx1)  # (B,M1,3)
        nb = knn_indices(x, p1, c.neighbours1)
        offsets = gather_points(x, nb) - p1[:, :, None]  # (B,M1,K,3)
        local = torch.einsum("gji,bmkj->bmkgi", A, offsets) * 10.0  # g^T d, decimetres
        f1 = self.lift(local).amax(dim=2)  # (B,M1,G,C1)
        f1 = torch.relu(f1 + self.gconv1(torch.relu(f1)))
        idx2 = farthest_point_indices(p1, c.centres2)
        p2 = gather_points(p1, idx2)
        nb2 = knn_indices(p1, p2, c.neighbours2)
        off2 = gather_points(p1, nb2) - p2[:, :, None]  # (B,M2,K2,3)
        local2 = torch.einsum("gji,bmkj->bmkgi", A, off2) * 5.0
        feat2 = torch.cat([local2, gather_points(f1, nb2)], dim=-1)  # (B,M2,K2,G,3+C1)
        f2 = self.stage2(feat2).amax(dim=2)  # (B,M2,G,C2)
        f2 = torch.relu(f2 + self.gconv2(torch.relu(f2)))
        glob = f2.amax(dim=1)  # (B,G,C2)
        up = knn_indices(p2, p1, 1)[..., 0]  # nearest stage-2 centre of each stage-1 centre
        h = torch.relu(self.proj1(f1) + gather_points(self.proj2(f2), up) + self.proj_global(glob)[:, None])
        invariant = h.amax(dim=2)  # (B,M1,Cp)
        centre_logits = self.seg(invariant)
        prob = centre_logits.softmax(dim=-1)  # (B,M1,P)
        mass = prob.sum(dim=1).clamp_min(1e-3)  # (B,P)
        part = torch.einsum("bmp,bmgc->bpgc", prob, h) / mass[:, :, None, None]  # (B,P,G,Cp)
        tokens = self.token_in(torch.cat([part, part[:, self.part_parent]], dim=-1))
        tokens = tokens + self.part_embedding[None, :, None]
        B, P, G, C = tokens.shape
        t = tokens.reshape(B * P, G, C)
        t = self.norm1(t + self.attention(t, t, t, need_weights=False)[0])
        t = self.norm2(t + self.token_mlp(t))
        out = self.token_out(t).reshape(B, P, G, 7)
        weights = out[..., 0].softmax(dim=-1)  # (B,P,G)
        from posekit.geometry.so3 import project_to_so3, so3_exp

        residual = so3_exp(c.max_residual * torch.tanh(out[..., 1:4]))
        candidates = A @ residual  # (B,P,G,3,3)
        # Weighted chordal mean (Hartley et al. 2013): SVD projection of the weighted sum.
        part_rotations = project_to_so3((weights[..., None, None] * candidates).sum(dim=2))
        votes = torch.einsum("gij,bgj->bgi", A, out[:, 0, :, 4:7]) * 0.1  # pelvis part's votes, metres
        pelvis = centroid + (weights[:, 0, :, None] * votes).sum(dim=1)
        betas = self.shape(part.amax(dim=2).flatten(1))
        nearest = knn_indices(p1, x, 1)[..., 0]
        return {
            "centroid": centroid, "centre_index": idx1, "centre_logits": centre_logits,
            "point_logits": gather_points(centre_logits, nearest), "part_rotations": part_rotations,
            "anchor_weights": weights, "betas": betas, "pelvis": pelvis, "group_features": f1,
            "pelvis_candidates": candidates[:, 0],
        }


def part_to_joint_rotations(part_rotations: torch.Tensor) -> torch.Tensor:
    """Global rotations (B,24,3,3) of all joints from the parts' (B,P,3,3); merged joints take their parent's."""
    index = torch.as_tensor([PART_JOINTS.index(MERGED_JOINTS.get(j, j)) for j in range(N_JOINTS)],
                            device=part_rotations.device)
    return part_rotations[:, index]


def global_to_local(global_rotations: torch.Tensor) -> torch.Tensor:
    """Local rotations ``R_parent^T R`` (B,24,3,3) from global ones (the root keeps its global)."""
    parents = torch.as_tensor([max(p, 0) for p in PARENTS], device=global_rotations.device)
    local = global_rotations[:, parents].transpose(-1, -2) @ global_rotations
    return torch.cat([global_rotations[:, :1], local[:, 1:]], dim=1)


def config_to_dict(config: BodyNetConfig) -> dict:
    return asdict(config)


def decode_body(outputs: dict, body) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, object]:
    """Network outputs -> (local rotations (B,24,3,3), betas (B,n), transl (B,3), posed :class:`BodyOutput`).

    Hands and feet keep their rest orientation relative to wrists and ankles; the translation
    puts the model's pelvis joint (``J_regressor`` row 0 of the shaped body) at the predicted one.
    """
    global_rot = part_to_joint_rotations(outputs["part_rotations"])
    local = global_to_local(global_rot)
    eye = torch.eye(3, device=local.device, dtype=local.dtype)
    merged = torch.as_tensor(sorted(MERGED_JOINTS), device=local.device)
    local = local.index_copy(1, merged, eye.expand(local.shape[0], len(merged), 3, 3).contiguous())
    betas = outputs["betas"][:, : body.n_betas]
    transl = outputs["pelvis"] - body.rest_joints(betas)[:, 0]
    return local, betas, transl, body(local, betas, transl)


__all__ = ["BodyNet", "BodyNetConfig", "GroupConv", "config_to_dict", "decode_body", "farthest_point_indices",
           "global_to_local", "part_to_joint_rotations"]
