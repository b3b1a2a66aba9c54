"""The object-agnostic denoiser: rotation-invariant point features, annealed soft matching, weighted Kabsch.

An RPM-Net-style surrogate registration network (Yew & Lee, CVPR 2020) adapted to the
diffusion step:

1. **Features** (computed once per cloud, independent of the pose): point-pair features
   (PPF, Drost et al. 2010) between each point and its neighbours, ``(|d|, cos(n_i, d),
   cos(n_j, d), cos(n_i, n_j))``, pooled by a small PointNet, at two scales (k nearest
   neighbours in the cloud, then k neighbours in a 4x sparser subsample, which also see the
   first-scale features). PPFs only use distances and angles, so the features are invariant
   to any rigid motion of the cloud, and the network never sees the object's identity:
   one network serves unseen objects.
2. **Matching** (every diffusion step): affinities
   ``-alpha(s) |f_i - g_j|^2 - beta(s) |H x_i - y_j|^2`` between observed point i (moved by
   the current state H) and model point j, with ``alpha, beta`` and a slack (outlier) score
   predicted from the step ``s = sqrt(abar_t)``: far from the data (s ~ 0) the features
   decide, close to it the positions do (annealing as in RPM-Net). Sinkhorn normalisation
   with a slack row and column gives a soft assignment.
3. **Pose**: weighted Kabsch between ``H x_i`` and their soft correspondences gives
   ``dH``; the whole map is equivariant: moving the observed cloud by G moves the answer
   ``dH @ H`` by G^-1 on the right.

Units: both clouds are normalised by the caller (centred, divided by the model radius).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from posekit.geometry.alignment import weighted_kabsch
from posekit.geometry.neighbours import knn_indices
from posekit.geometry.se3 import transform_points


@dataclass
class DenoiserConfig:
    """Network sizes (the ``network:`` section of configs/registration.yaml)."""

    k_local: int = 12  # neighbours of the first (fine) scale
    k_coarse: int = 12  # neighbours of the second scale, in the 4x subsample
    coarse_stride: int = 4
    hidden: int = 48
    feature_dim: int = 48
    sinkhorn_iters: int = 0  # 0: row-wise softmax with slack (EM-ICP); >0: Sinkhorn iterations (RPM-Net)
    match_observed: int = 256  # points of each cloud that take part in the matching
    match_model: int = 512
    match_iters: int = 2  # soft-matching + Kabsch iterations per denoiser call (RPM-Net iterates too)

    def to_dict(self) -> dict:
        return asdict(self)


def gather_neighbours(values: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """values (BxNxC), idx (BxQxk) -> (BxQxkxC)."""
    B, Q, k = idx.shape
    flat = idx.reshape(B, Q * k, 1).expand(-1, -1, values.shape[-1])
    return values.gather(1, flat).reshape(B, Q, k, values.shape[-1])


def point_pair_features(p: torch.Tensor, n: torch.Tensor, pn: torch.Tensor, nn_: torch.Tensor) -> torch.Tensor:
    """PPF (..., 4) of centre points ``p, n (BxQx3)`` with neighbours ``pn, nn_ (BxQxkx3)``.

    ``(|d|, cos(n_i, d), cos(n_j, d), cos(n_i, n_j))`` with d = p_j - p_i (Drost et al. 2010),
    cosines instead of angles (smooth, no arccos at the poles).
    """
    d = pn - p.unsqueeze(2)
    dist = d.norm(dim=-1, keepdim=True)
    du = d / dist.clamp_min(1e-6)
    ni = n.unsqueeze(2).expand_as(nn_)
    return torch.cat([dist, (ni * du).sum(-1, keepdim=True), (nn_ * du).sum(-1, keepdim=True),
                      (ni * nn_).sum(-1, keepdim=True)], dim=-1)


def _mlp(sizes: list[int], last_activation: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2 or last_activation:
            layers.append(nn.GELU())
    return nn.Sequential(*layers)


class InvariantPointFeatures(nn.Module):
    """Rigid-motion-invariant per-point features (BxNxfeature_dim) from points and normals."""

    def __init__(self, cfg: DenoiserConfig):
        super().__init__()
        self.cfg = cfg
        h = cfg.hidden
        self.local = _mlp([4, h // 2, h])
        self.coarse = _mlp([4 + h, h, h])
        self.head = _mlp([2 * h, h, cfg.feature_dim], last_activation=False)

    def forward(self, points: torch.Tensor, normals: torch.Tensor, n_queries: int | None = None) -> torch.Tensor:
        """Features (B x N x C) of every point, or (B x n_queries x C) of the first ``n_queries``
        only (the same values; the matching uses no others, and the rest is not computed)."""
        cfg = self.cfg
        N = points.shape[1]
        q = N if n_queries is None else max(1, min(int(n_queries), N))
        sub_idx = torch.arange(0, N, cfg.coarse_stride, device=points.device)  # points are in random order
        # the fine scale is needed at the queries and at the strided subsample (the coarse scale's inputs)
        need = torch.arange(N, device=points.device) if q == N else \
            torch.unique(torch.cat([torch.arange(q, device=points.device), sub_idx]))
        pn, nn_ = points[:, need], normals[:, need]
        idx = knn_indices(points, pn, cfg.k_local + 1)[..., 1:]  # without the point itself
        ppf = point_pair_features(pn, nn_, gather_neighbours(points, idx), gather_neighbours(normals, idx))
        f_local = self.local(ppf).max(dim=2).values  # (B, len(need), h); need is sorted, queries first
        # Second scale: neighbours among the strided subsample.
        sub_pos = torch.searchsorted(need, sub_idx)
        ps, ns, fs = points[:, sub_idx], normals[:, sub_idx], f_local[:, sub_pos]
        pq, nq = points[:, :q], normals[:, :q]
        idx2 = knn_indices(ps, pq, cfg.k_coarse)
        ppf2 = point_pair_features(pq, nq, gather_neighbours(ps, idx2), gather_neighbours(ns, idx2))
        f_coarse = self.coarse(torch.cat([ppf2, gather_neighbours(fs, idx2)], dim=-1)).max(dim=2).values
        f = self.head(torch.cat([f_local[:, :q], f_coarse], dim=-1))
        return nn.functional.normalize(f, dim=-1)


def log_sinkhorn(logits: torch.Tensor, slack: torch.Tensor, iters: int, log: bool = False) -> torch.Tensor:
    """Soft assignment (BxNxM) from logits (BxNxM) with a slack row/column of score ``slack (B,)``.

    Log-domain Sinkhorn with row and column potentials (RPM-Net's Sinkhorn with slack): real
    rows and columns are normalised to one including the slack entry; the slack row and
    column themselves are not, so they absorb points with no counterpart (occluded parts,
    background).
    """
    B, N, M = logits.shape
    s = slack.view(B, 1)
    if iters <= 0:  # rows only: each observed point's softmax over model points and the slack
        if not log:  # one exp pass: softmax over [logits, slack], the slack column dropped
            full = torch.cat([logits, s.unsqueeze(2).expand(B, N, 1).to(logits.dtype)], dim=2)
            return torch.softmax(full, dim=2)[..., :M]
        return logits - torch.logaddexp(torch.logsumexp(logits, dim=2), s).unsqueeze(2)
    u = logits.new_zeros(B, N)
    v = logits.new_zeros(B, M)
    for _ in range(iters):
        u = -torch.logaddexp(torch.logsumexp(logits + v.unsqueeze(1), dim=2), s)
        v = -torch.logaddexp(torch.logsumexp(logits + u.unsqueeze(2), dim=1), s)
    log_p = logits + u.unsqueeze(2) + v.unsqueeze(1)
    return log_p if log else log_p.exp()


class RegistrationDenoiser(nn.Module):
    """Predicts dH (Bx4x4) aligning the moved observed cloud to the model, given the step s."""

    def __init__(self, cfg: DenoiserConfig | None = None):
        super().__init__()
        self.cfg = cfg or DenoiserConfig()
        self.features = InvariantPointFeatures(self.cfg)
        # s -> (log alpha modulation, log beta, slack). Initialised as annealed soft ICP (RPM, Gold et
        # al. 1998): beta = e^(3 + 2.5 s), a kernel of 0.22 model radii far from the data, 0.06 close.
        self.anneal = _mlp([1, 32, 3], last_activation=False)
        with torch.no_grad():
            self.anneal[-1].weight.zero_()
            self.anneal[-1].bias.copy_(torch.tensor([0.0, 3.0, -3.0]))
        self.beta_gain = nn.Parameter(torch.tensor(2.5))  # log beta grows with s
        # Temperature of the training-only feature matching loss; kept apart from the matching
        # itself so that the loss's hedging (broad distributions) cannot soften the matching.
        self.feature_log_temperature = nn.Parameter(torch.tensor(2.0))

    def feature_log_assignment(self, f_obs: torch.Tensor, f_model: torch.Tensor) -> torch.Tensor:
        """log softmax over model points (B x n_obs x n_model) of feature similarity, matched subsets."""
        d2 = self.feature_distances(f_obs, f_model)
        return torch.log_softmax(-self.feature_log_temperature.exp() * d2, dim=2)

    def annealing(self, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self.anneal(s.view(-1, 1).to(self.beta_gain.dtype))
        # The feature weight is the calibrated temperature of the feature matching loss, modulated by s.
        alpha = (out[:, 0] + self.feature_log_temperature).exp()
        beta = (out[:, 1] + self.beta_gain * s.view(-1).to(out.dtype)).exp()
        return alpha, beta, out[:, 2]

    def feature_distances(self, f_obs: torch.Tensor, f_model: torch.Tensor) -> torch.Tensor:
        """|f_i - g_j|^2 (BxNxM) of the matched subsets: the same at every step of a chain, so a
        sampler computes it once and passes it to :meth:`match` as ``feat_d2``."""
        f_obs, f_model = f_obs[:, : self.cfg.match_observed], f_model[:, : self.cfg.match_model]
        return (2.0 - 2.0 * f_obs @ f_model.transpose(1, 2)).clamp_min(0)

    def match(self, obs: torch.Tensor, f_obs: torch.Tensor, model: torch.Tensor, f_model: torch.Tensor,
              H: torch.Tensor, s: torch.Tensor, iters: int | None = None,
              feat_d2: torch.Tensor | None = None) -> torch.Tensor:
        """One denoising step: dH (Bx4x4) for observed (BxNx3), model (BxMx3), features, state H.

        Only the first ``match_observed`` / ``match_model`` points of each cloud are matched;
        ``iters`` overrides the number of matching iterations; ``feat_d2`` is
        :meth:`feature_distances` of the features, when the caller has it already.
        """
        # Features come from the whole clouds; matching uses a subset (clouds are in random order).
        obs = obs[:, : self.cfg.match_observed]
        model = model[:, : self.cfg.match_model]
        alpha, beta, slack = self.annealing(s)
        if feat_d2 is None:
            feat_d2 = self.feature_distances(f_obs, f_model)
        beta = beta.view(-1, 1, 1)
        # logits = -alpha |f_i - g_j|^2 - beta |x_i - y_j|^2, expanded so that the (BxNxM) work is
        # one broadcast sum and one batched matrix product: -(alpha F + beta |x_i|^2 + beta |y_j|^2)
        # + 2 beta x_i . y_j (the model's part is the same at every iteration).
        model_term = alpha.view(-1, 1, 1) * feat_d2 + beta * (model * model).sum(-1).unsqueeze(-2)
        dH = torch.eye(4, dtype=H.dtype, device=H.device).expand_as(H)
        for _ in range(max(1, iters or self.cfg.match_iters)):
            moved = transform_points(dH @ H, obs)
            logits = torch.baddbmm(-(model_term + beta * (moved * moved).sum(-1, keepdim=True)), 2.0 * beta * moved,
                                   model.transpose(-1, -2))
            P = log_sinkhorn(logits, slack, self.cfg.sinkhorn_iters)
            mass = P.sum(dim=2)
            target = (P @ model) / mass.clamp_min(1e-6).unsqueeze(-1)
            dH = weighted_kabsch(moved, target, mass + 1e-6) @ dH
        return dH

    def forward(self, obs, obs_normals, model, model_normals):
        """Features of both clouds (the part DistributedDataParallel wraps; :meth:`match` reuses them)."""
        return self.features(obs, obs_normals), self.features(model, model_normals)
