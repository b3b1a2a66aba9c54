"""Training the registration denoiser: config, batches, the x0-style loss, validation.

Loss (paper Sec. 3.3): for a diffused state ``H_t`` and the network's ``dH``, the L1 distance
between the observed points moved by ``dH @ H_t`` and by the ground truth ``H_0``, plus the
same loss for the plain, non-diffused pass from the identity (s = 0). For a symmetric object
every symmetry S gives an equally right answer ``S @ H_0``: the loss takes the minimum over
them. Run by ``posekit train registration`` through :func:`posekit.training.train`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from posekit.config import load_config
from posekit.eval.pose_error import add, adi, re
from posekit.registration.denoiser import DenoiserConfig, RegistrationDenoiser
from posekit.registration.diffusion import DiffusionSchedule, anchor_rotations, q_sample, sample
from posekit.registration.training_data import ViewDataConfig, ViewSampler
from posekit.training import TrainResult, TrainSettings, train, unwrap


@dataclass
class DiffusionConfig:
    train_steps: int = 200
    sample_steps: int = 5
    sigma_r: float = 0.05
    sigma_t: float = 0.03
    anchors: int = 24  # start rotations (chains) per object: 12, 24, 60 or any n
    second_anchor_prob: float = 0.25  # train from the second-nearest anchor this often
    correspondence_weight: float = 0.1  # weight of the auxiliary correspondence loss

    def schedule(self, steps: int | None = None) -> DiffusionSchedule:
        return DiffusionSchedule(steps or self.train_steps, self.sigma_r, self.sigma_t)


@dataclass
class ValidationConfig:
    examples: int = 48
    seed: int = 12345
    mesh_seed: int = 50_000  # procedural meshes never used for training


@dataclass
class RegistrationTrainConfig:
    """configs/registration.yaml."""

    data: ViewDataConfig = field(default_factory=ViewDataConfig)
    network: DenoiserConfig = field(default_factory=DenoiserConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    train: TrainSettings = field(default_factory=lambda: TrainSettings(steps=3000, batch_size=12, lr=1e-3))
    validation: ValidationConfig = field(default_factory=ValidationConfig)

    def to_dict(self) -> dict:
        return asdict(self)


def load_train_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RegistrationTrainConfig:
    if path is None and not overrides:
        return RegistrationTrainConfig()
    return load_config(RegistrationTrainConfig, path, overrides or [])


def collate(examples, device) -> dict[str, torch.Tensor]:
    """Stack ViewExamples into tensors on ``device``."""
    keys = ("obs", "obs_normals", "model", "model_normals", "H0", "symmetries")
    return {k: torch.from_numpy(np.stack([getattr(e, k) for e in examples])).float().to(device) for k in keys}


def symmetric_l1(pred: torch.Tensor, obs: torch.Tensor, H0: torch.Tensor, syms: torch.Tensor) -> torch.Tensor:
    """Per-example min over symmetries S of mean |pred_i - S H0 obs_i|_1; pred (BxNx3), syms (BxSx4x4)."""
    gt = syms @ H0.unsqueeze(1)  # (B, S, 4, 4)
    target = torch.einsum("bsij,bnj->bsni", gt[..., :3, :3], obs) + gt[:, :, None, :3, 3]
    err = (pred.unsqueeze(1) - target).abs().sum(-1).mean(-1)  # (B, S)
    return err.min(dim=1).values


def start_states(H0: torch.Tensor, n_anchors: int, second_prob: float, generator=None) -> torch.Tensor:
    """H_T (Bx4x4) for training: the anchor rotation (of a randomly turned anchor set) nearest to
    the true rotation, or the second nearest with ``second_prob``; translation 0 (centroids aligned)."""
    from posekit.geometry.so3 import geodesic_distance, random_rotation

    B = H0.shape[0]
    G = anchor_rotations(n_anchors, dtype=H0.dtype, device=H0.device)
    Q = random_rotation(B, generator=generator, dtype=H0.dtype, device=H0.device)
    A = Q[:, None] @ G[None]  # (B, n, 3, 3)
    d = geodesic_distance(A, H0[:, None, :3, :3])
    order = d.argsort(dim=1)
    pick = (torch.rand(B, generator=generator, device=H0.device) < second_prob).long() if n_anchors > 1 else \
        torch.zeros(B, dtype=torch.long, device=H0.device)
    idx = order.gather(1, pick[:, None])[:, 0]
    H_T = torch.eye(4, dtype=H0.dtype, device=H0.device).repeat(B, 1, 1)
    H_T[:, :3, :3] = A[torch.arange(B, device=H0.device), idx]
    return H_T


def compute_loss(model, batch, step, schedule: DiffusionSchedule, generator=None, anchors: int = 24,
                 second_anchor_prob: float = 0.25, correspondence_weight: float = 0.1):
    """x0-style symmetric L1 at a random diffusion step, plus the non-diffused pass from H_T."""
    from posekit.geometry.se3 import transform_points

    net = model
    B = batch["obs"].shape[0]
    device = batch["obs"].device
    abar = schedule.abar(device=device, dtype=torch.float32)
    t = torch.randint(1, schedule.steps + 1, (B,), device=device, generator=generator)
    H_T = start_states(batch["H0"], anchors, second_anchor_prob, generator)
    H_t = q_sample(batch["H0"], abar[t], schedule, generator=generator, H_T=H_T)
    # Both passes share the (pose-independent) point features: one feature computation.
    H_both = torch.cat([H_t, H_T])
    s_both = torch.cat([abar[t].sqrt(), torch.zeros(B, device=device)])
    f_obs, f_model = net(batch["obs"], batch["obs_normals"], batch["model"], batch["model_normals"])
    obs2, model2 = torch.cat([batch["obs"]] * 2), torch.cat([batch["model"]] * 2)
    core = unwrap(net)
    dH = core.match(obs2, torch.cat([f_obs] * 2), model2, torch.cat([f_model] * 2), H_both, s_both)
    pred = transform_points(dH @ H_both, obs2)
    losses = symmetric_l1(pred, obs2, torch.cat([batch["H0"]] * 2), torch.cat([batch["symmetries"]] * 2))
    diffused, plain = losses[:B].mean(), losses[B:].mean()
    corr = correspondence_nll(core.feature_log_assignment(f_obs, f_model), batch["obs"][:, : core.cfg.match_observed],
                              batch["model"][:, : core.cfg.match_model], batch["H0"], batch["symmetries"])
    loss = diffused + plain + correspondence_weight * corr
    return loss, {"loss_diffused": float(diffused.detach()), "loss_plain": float(plain.detach()),
                  "loss_corr": float(corr.detach())}


def correspondence_nll(log_P: torch.Tensor, obs: torch.Tensor, model: torch.Tensor, H0: torch.Tensor,
                       syms: torch.Tensor, inlier: float = 0.08) -> torch.Tensor:
    """Mean -log P[i, j*(i)] over observed points with a model point within ``inlier`` (model radii)
    of their true position; j* is the nearest model point under the best symmetry S H0.

    A training aid on top of the paper's loss: it gives the point features a direct, dense
    signal (which points correspond), where the pose loss reaches them only through Kabsch.
    ``log_P`` is the features-only assignment (:meth:`RegistrationDenoiser.feature_log_assignment`).
    """
    with torch.no_grad():
        gt = syms @ H0.unsqueeze(1)
        target = torch.einsum("bsij,bnj->bsni", gt[..., :3, :3], obs) + gt[:, :, None, :3, 3]
        d, j = torch.cdist(target.flatten(1, 2), model).min(-1)  # (B, S*N)
        S, N = syms.shape[1], obs.shape[1]
        d, j = d.view(-1, S, N), j.view(-1, S, N)
        best = d.mean(-1).argmin(1)  # the symmetry that explains the view best
        idx = torch.arange(len(best), device=obs.device)
        d, j = d[idx, best], j[idx, best]
        ok = d < inlier
    picked = log_P.gather(2, j.unsqueeze(-1)).squeeze(-1)
    return -(picked * ok).sum() / ok.sum().clamp_min(1)


def rotation_error_deg(R_est: np.ndarray, R_gt: np.ndarray, syms: np.ndarray) -> float:
    """Symmetry-aware rotation error in degrees (min over S of angle(R_est, R_gt S_R))."""
    return float(np.degrees(min(re(R_est, R_gt @ S[:3, :3]) for S in syms)))


def pose_within_tenth_diameter(T_est: np.ndarray, T_gt: np.ndarray, model, n_points: int = 500) -> bool:
    """ADD(-S) < 0.1 d: ADI for a symmetric model (more than one symmetry), ADD otherwise (BOP)."""
    error = adi if len(model.symmetries) > 1 else add
    pts = model.points[:n_points].astype(np.float64)
    return error(T_est[:3, :3], T_est[:3, 3], T_gt[:3, :3], T_gt[:3, 3], pts) < 0.1 * model.diameter


def validation_set(cfg: RegistrationTrainConfig):
    data = ViewDataConfig(**{**asdict(cfg.data), "n_meshes": 12, "mesh_seed": cfg.validation.mesh_seed, "cache_views": 0,
                             "models": "procedural"})
    sampler = ViewSampler(data)
    rng = np.random.default_rng(cfg.validation.seed)
    return sampler, [sampler.example(rng) for _ in range(cfg.validation.examples)]


def evaluate_examples(net: RegistrationDenoiser, sampler: ViewSampler, examples, cfg: RegistrationTrainConfig,
                      device="cpu") -> dict:
    """Full reverse process on held-out views from the nearest anchor (the chain that matters):
    ADD-S recall, rotation error (the estimator runs every anchor and picks by fit)."""
    from posekit.registration.clouds import pose_from_state

    schedule = cfg.diffusion.schedule(cfg.diffusion.sample_steps)
    batch = collate(examples, device)
    with torch.no_grad():
        feats_obs, feats_model = net(batch["obs"], batch["obs_normals"], batch["model"], batch["model_normals"])

    def denoise(H, s):
        return net.match(batch["obs"], feats_obs, batch["model"], feats_model, H, s)

    g = torch.Generator(device=device).manual_seed(0)
    H_T = start_states(batch["H0"], cfg.diffusion.anchors, 0.0, g)
    with torch.no_grad():
        H = sample(denoise, len(examples), schedule, device=device, generator=g, H_init=H_T)
    H = H.double().cpu().numpy()
    rot_err, add_ok, trans_err = [], [], []
    for ex, Hi in zip(examples, H):
        model = sampler.models[ex.extras["model_index"]]
        T_est = pose_from_state(Hi, ex.extras["mu"], model)
        T_gt = ex.extras["T_cam_model"]
        rot_err.append(rotation_error_deg(T_est[:3, :3], T_gt[:3, :3], model.symmetries))
        pts = model.points[:256].astype(np.float64)
        # ADD-S (nearest-point distance) for every object: a lenient training-time signal.
        add_ok.append(adi(T_est[:3, :3], T_est[:3, 3], T_gt[:3, :3], T_gt[:3, 3], pts) < 0.1 * model.diameter)
        trans_err.append(np.linalg.norm(T_est[:3, 3] - T_gt[:3, 3]) * 1000)
    return {"adds_recall": float(np.mean(add_ok)), "rot_err_median_deg": float(np.median(rot_err)),
            "rot_recall_5deg": float(np.mean(np.array(rot_err) < 5)),
            "trans_err_median_mm": float(np.median(trans_err))}


def evaluate_estimator(estimator, sampler: ViewSampler, examples, progress: bool = False) -> dict:
    """The whole estimator (all chains, scoring, optional ICP) on held-out views: the numbers of
    the model card. Uses every rendered point of each view, as a user's segmented cloud."""
    from tqdm import tqdm

    rot_err, add_ok, trans_err, ms = [], [], [], []
    prepared = {}
    for ex in tqdm(examples, disable=not progress, desc="evaluate", leave=False):
        mi = ex.extras["model_index"]
        if mi not in prepared:
            prepared[mi] = estimator.prepare_model(sampler.models[mi])
        model = prepared[mi]
        view = ex.extras["view"]
        res = estimator.estimate(model, view["pts"], observed_normals=view["nrm"])
        T_gt = ex.extras["T_cam_model"]
        cloud = model.cloud
        rot_err.append(rotation_error_deg(res.R, T_gt[:3, :3], cloud.symmetries))
        add_ok.append(pose_within_tenth_diameter(res.T_cam_model, T_gt, cloud))
        trans_err.append(np.linalg.norm(res.t - T_gt[:3, 3]) * 1000)
        ms.append(res.time_ms)
    return {"add_s_recall": float(np.mean(add_ok)), "rot_err_median_deg": float(np.median(rot_err)),
            "rot_recall_5deg": float(np.mean(np.array(rot_err) < 5)),
            "trans_err_median_mm": float(np.median(trans_err)), "latency_ms_median": float(np.median(ms))}


def run_training(cfg: RegistrationTrainConfig, out_dir: str | Path, resume: bool = True,
                 progress: bool = True) -> TrainResult:
    """``posekit train registration``: rendered views (cached or on the fly), validation on unseen meshes."""
    import os
    from dataclasses import replace

    rank = int(os.environ.get("RANK", "0"))  # each process renders its own views
    sampler = ViewSampler(replace(cfg.data, cache_seed=cfg.data.cache_seed + 1000 * rank))
    schedule = cfg.diffusion.schedule()
    val_sampler, val_examples = validation_set(cfg)

    def make_batch(rng, batch_size, device):
        return collate(sampler.batch(rng, batch_size), device)

    def loss_fn(model, batch, step):
        import torch.distributed as dist

        rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
        g = torch.Generator(device=batch["obs"].device)
        g.manual_seed(cfg.train.seed * 1_000_003 + step * 7919 + rank)  # same noise after a resume
        return compute_loss(model, batch, step, schedule, generator=g, anchors=cfg.diffusion.anchors,
                            second_anchor_prob=cfg.diffusion.second_anchor_prob,
                            correspondence_weight=cfg.diffusion.correspondence_weight)

    def evaluate(model):
        device = next(model.parameters()).device
        return evaluate_examples(model, val_sampler, val_examples, cfg, device)

    net = RegistrationDenoiser(cfg.network)
    return train(net, make_batch, loss_fn, cfg.train, out_dir, config=cfg.to_dict(), evaluate=evaluate,
                 resume=resume, engine="registration", progress=progress)
