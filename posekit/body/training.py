"""Training the body network: config, on-the-fly synthetic batches, losses, evaluation.

``posekit train body --config configs/body.yaml [--body-model FILE]`` calls :func:`train_body`,
which hands :func:`posekit.training.train` (seeds, DDP under torchrun, checkpoints, resume)

- ``make_batch``: fresh clouds of "common" poses of the body model (random rotation,
  translation, part of them single-view partial), :func:`posekit.body.clouds.make_body_batch`;
- ``compute_loss``: ArtEq's losses: part NLL, rotation MSE ``||R - R_gt||_F^2`` per part,
  betas MSE, joint and vertex distances of the posed body, plus the pelvis position;
- ``evaluate``: V2V/MPJPE (cm) and part accuracy on fixed "common" and "unseen" sets (and,
  when ``data.kinect_fraction`` mixes Kinect-like views into training, on Kinect-like views of
  unseen poses: ``kinect_*``), :func:`validation_sets` and :func:`validate`.

Compounding runs: ``posekit train body --resume-from body-default --budget-minutes N`` starts
from the shipped weights (their network config wins over the YAML's), validates them first on
the run's own validation sets, trains for the budget, validates again, and - when it improved
(:func:`is_improvement`: no validated set's V2V went up and their mean went down) - replaces
the file it started from with the new weights (:func:`promote_if_better`). The weights' metadata keep the whole ``chain`` of
runs (command, steps, minutes, metrics) that led to them: the model card.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from posekit.body.network import BodyNet, BodyNetConfig, decode_body
from posekit.errors import BadInputError
from posekit.io.weights import fit_state_dict
from posekit.training import TrainResult, TrainSettings, train

logger = logging.getLogger(__name__)


@dataclass
class BodyDataConfig:
    """Synthetic training data (the ``data:`` section)."""

    pose_kind: str = "common"
    rotate: bool = True
    partial_fraction: float = 0.25
    # Share of each batch drawn as Kinect-like single views of the same pose kind (a 640x480
    # depth camera at 1.5-3.5 m, sensor noise, floor removed, camera frame; see
    # :func:`posekit.body.clouds.make_kinect_batch`): the robot's view, which the random
    # 96x96 partial scans do not cover. About 0.25 s a view on one CPU thread.
    kinect_fraction: float = 0.0
    noise: float = 0.001  # metres
    translation: float = 1.0  # metres, uniform per axis
    betas_scale: float = 1.0
    eval_samples: int = 16


@dataclass
class BodyLossWeights:
    segmentation: float = 1.0
    rotation: float = 1.0
    betas: float = 0.05
    vertices: float = 5.0
    joints: float = 5.0
    pelvis: float = 5.0


@dataclass
class BodyTrainConfig:
    """configs/body.yaml: network, data, loss weights, train settings and the body model file."""

    body_model: str = ""  # SMPL-format .npz; empty: the procedural default
    init_weights: str = ""  # start from these weights (shipped name or model.pt): fine-tuning
    resume_from: str = ""  # continue a shipped model (name or model.pt); replaces it if validation improves
    network: BodyNetConfig = field(default_factory=BodyNetConfig)
    data: BodyDataConfig = field(default_factory=BodyDataConfig)
    loss: BodyLossWeights = field(default_factory=BodyLossWeights)
    train: TrainSettings = field(default_factory=TrainSettings)


def body_losses(outputs: dict, batch, body, weights: BodyLossWeights) -> tuple[torch.Tensor, dict]:
    """Weighted total loss and its terms (floats) for one batch (:class:`~posekit.body.clouds.BodyBatch`)."""
    from posekit.body.network import gather_points
    from posekit.body.skeleton import PART_JOINTS

    labels = gather_points(batch.labels, outputs["centre_index"])
    seg = torch.nn.functional.cross_entropy(outputs["centre_logits"].flatten(0, 1), labels.flatten())
    gt_parts = batch.global_rotations[:, list(PART_JOINTS)]
    rot = ((outputs["part_rotations"] - gt_parts) ** 2).sum((-1, -2)).mean()
    betas = ((outputs["betas"][:, : body.n_betas] - batch.betas) ** 2).mean()
    _, _, _, posed = decode_body(outputs, body)
    v2v = (posed.vertices - batch.vertices).norm(dim=-1).mean()
    mpjpe = (posed.joints - batch.joints).norm(dim=-1).mean()
    pelvis = (outputs["pelvis"] - batch.joints[:, 0]).norm(dim=-1).mean()
    total = (weights.segmentation * seg + weights.rotation * rot + weights.betas * betas
             + weights.vertices * v2v + weights.joints * mpjpe + weights.pelvis * pelvis)
    with torch.no_grad():
        acc = (outputs["centre_logits"].argmax(-1) == labels).float().mean()
    seg, rot, betas, v2v, mpjpe, pelvis = (t.detach() for t in (seg, rot, betas, v2v, mpjpe, pelvis))
    return total, {"seg": float(seg), "rot": float(rot), "betas": float(betas), "v2v_cm": 100 * float(v2v),
                   "mpjpe_cm": 100 * float(mpjpe), "pelvis_cm": 100 * float(pelvis), "part_acc": float(acc)}


VALIDATION_SEED = 1234


def validation_sets(body, data: BodyDataConfig, n_points: int, samples: int, kinect: bool = False,
                    seed: int = VALIDATION_SEED, device="cpu") -> dict:
    """The fixed validation clouds (:class:`~posekit.body.clouds.BodyBatch` per set): ``common`` and
    ``unseen`` poses, full, randomly rotated; with ``kinect`` also Kinect-like views of unseen poses."""
    from posekit.body.clouds import make_body_batch, make_kinect_batch

    sets = {kind: make_body_batch(body, np.random.default_rng(seed), samples, n_points, kind, True, 0.0, data.noise,
                                  data.translation, data.betas_scale, device=device)
            for kind in ("common", "unseen")}
    if kinect:
        sets["kinect"] = make_kinect_batch(body, np.random.default_rng(seed), samples, n_points, "unseen",
                                           data.betas_scale, device=device)
    return sets


@torch.no_grad()
def validate(model, body, sets: dict, weights: BodyLossWeights, batch_size: int = 32) -> dict:
    """``<set>_v2v_cm``, ``<set>_mpjpe_cm`` and ``<set>_part_acc`` of the network on each validation set."""
    rows = {}
    for name, batch in sets.items():
        sums, n = {}, 0
        for i in range(0, len(batch), batch_size):
            chunk = batch.select(slice(i, i + batch_size))
            _, terms = body_losses(model(chunk.points), chunk, body, weights)
            for k in ("v2v_cm", "mpjpe_cm", "part_acc"):
                sums[k] = sums.get(k, 0.0) + terms[k] * len(chunk)
            n += len(chunk)
        rows.update({f"{name}_{k}": v / n for k, v in sums.items()})
    return rows


def compare_weights(names_or_paths: list, samples: int = 128, kinect: bool = True, seed: int = VALIDATION_SEED,
                    device: str = "cpu") -> dict:
    """Validation metrics (:func:`validate`) of several body weights files on the *same* clouds
    (``samples`` per set, the trainer's data settings; each file's own body model must be the
    same): ``{name_or_path: metrics}``. The way to compare a candidate with the shipped file."""
    from posekit import pretrained
    from posekit.body.model import load_body_model

    out, sets, body = {}, None, None
    for name in names_or_paths:
        weights = pretrained.load(name, engine="body")
        net_cfg = BodyNetConfig(**weights.config.get("network", {}))
        if body is None:
            body = load_body_model(weights.config.get("body_model") or None, device=device)
            data = BodyDataConfig(**{k: v for k, v in (weights.config.get("data") or {}).items()
                                     if k in BodyDataConfig.__dataclass_fields__})
            sets = validation_sets(body, data, net_cfg.n_points, samples, kinect=kinect, seed=seed, device=device)
        net = BodyNet(net_cfg)
        fit_state_dict(net, weights.state_dict, weights.path)
        net.to(device).eval()
        out[str(name)] = validate(net, body, sets, BodyLossWeights())
    return out


VALIDATION_SETS = ("common", "unseen", "kinect")


def shared_sets(before: dict, after: dict) -> list[str]:
    """The validation sets whose V2V both metric dicts hold (common and unseen always; kinect when
    both files were validated on it)."""
    return [k for k in VALIDATION_SETS if f"{k}_v2v_cm" in before and f"{k}_v2v_cm" in after]


def validation_score(metrics: dict, sets: list[str] | None = None) -> float:
    """Mean validation V2V (cm) over ``sets`` (default: common and unseen)."""
    sets = sets or ["common", "unseen"]
    return float(np.mean([float(metrics[f"{k}_v2v_cm"]) for k in sets]))


def is_improvement(before: dict, after: dict) -> bool:
    """Whether ``after`` validates better than ``before`` (same clouds): the mean V2V over every
    set both measured (:func:`shared_sets`) is lower and no set's V2V is higher - a gain on
    Kinect-like views cannot pay for a loss on unseen poses, nor the other way round."""
    sets = shared_sets(before, after)
    if any(float(after[f"{k}_v2v_cm"]) > float(before[f"{k}_v2v_cm"]) for k in sets):
        return False
    return validation_score(after, sets) < validation_score(before, sets)


def model_chain(metadata: dict) -> list[dict]:
    """The runs that made a weights file, oldest first (one entry for files from before chains)."""
    chain = metadata.get("chain")
    if chain:
        return [dict(c) for c in chain]
    if not metadata:
        return []
    return [{"command": metadata.get("command", ""), "steps": int(metadata.get("steps", 0)),
             "minutes": None, "metrics": dict(metadata.get("metrics") or {})}]


def promote_if_better(weights_path: str | Path, target: str | Path, before: dict, after: dict) -> bool:
    """Copy the run's weights file over ``target`` when ``after`` validates better than ``before``.

    Both are validation metric dicts measured on the same sets; the run's metadata (its
    ``chain`` included) go with the weights. Returns whether the target was replaced.
    """
    from posekit.io.weights import load_weights, save_weights

    sets = shared_sets(before, after)
    table = ", ".join(f"{k} {float(before[f'{k}_v2v_cm']):.2f} -> {float(after[f'{k}_v2v_cm']):.2f}" for k in sets)
    if not is_improvement(before, after):
        logger.info("validation V2V (cm) %s is not an improvement on every set: %s kept", table, target)
        return False
    state, metadata = load_weights(weights_path, map_location="cpu", return_metadata=True)
    save_weights(state, target, metadata=metadata)
    logger.info("validation V2V (cm) %s: replaced %s", table, target)
    return True


def train_body(config: BodyTrainConfig, out_dir: str | Path, body_model: str | Path | None = None,
               resume: bool = True, progress: bool = True) -> TrainResult:
    """Train the network of ``config`` on the body model (``body_model`` path overrides ``config.body_model``).

    With ``config.resume_from`` see the module docstring: the result's ``metrics`` then also
    hold ``before_*`` (the start weights on the same validation sets) and ``promoted`` (1/0).
    """
    from posekit.body.clouds import concat_batches, make_body_batch, make_kinect_batch
    from posekit.body.model import load_body_model
    from posekit.training import init_distributed

    if body_model:
        config.body_model = str(body_model)
    if config.train.num_threads > 0:
        torch.set_num_threads(config.train.num_threads)
    ctx = init_distributed(config.train.device)
    start = None
    if config.resume_from or config.init_weights:
        from posekit import pretrained

        start = pretrained.load(config.resume_from or config.init_weights, engine="body")
        if config.resume_from:
            config.network = BodyNetConfig(**start.config.get("network", {}))
            config.body_model = config.body_model or start.config.get("body_model", "")
    body = load_body_model(config.body_model or None, device=str(ctx.device))
    config.network.n_betas = body.n_betas
    torch.manual_seed(config.train.seed)
    net = BodyNet(config.network)
    if start is not None:
        fit_state_dict(net, start.state_dict, start.path)
        logger.info("starting from %s", start.path)
    d = config.data

    if not 0.0 <= d.kinect_fraction <= 1.0:
        raise BadInputError(f"data.kinect_fraction must be within 0-1, got {d.kinect_fraction}")

    def make_batch(rng, batch_size, device):
        n_kinect = int(rng.binomial(batch_size, d.kinect_fraction)) if d.kinect_fraction > 0 else 0
        parts = []
        if n_kinect < batch_size:
            parts.append(make_body_batch(body, rng, batch_size - n_kinect, config.network.n_points, d.pose_kind,
                                         d.rotate, d.partial_fraction, d.noise, d.translation, d.betas_scale,
                                         device=device))
        if n_kinect:
            parts.append(make_kinect_batch(body, rng, n_kinect, config.network.n_points, d.pose_kind,
                                           d.betas_scale, device=device))
        return concat_batches(parts)

    def compute_loss(model, batch, step):
        return body_losses(model(batch.points), batch, body, config.loss)

    eval_sets = {}

    def evaluate(model):
        if not eval_sets:
            eval_sets.update(validation_sets(body, d, config.network.n_points, d.eval_samples,
                                             kinect=d.kinect_fraction > 0, device=ctx.device))
        return validate(model, body, eval_sets, config.loss)

    before = {}
    if config.resume_from and ctx.is_main:
        net.eval()
        with torch.no_grad():
            before = evaluate(net.to(ctx.device))
        net.train()
    cfg_dict = asdict(config)
    result = train(net, make_batch, compute_loss, config.train, out_dir, config=cfg_dict, evaluate=evaluate,
                   resume=resume, engine="body", progress=progress)
    if config.resume_from and ctx.is_main and result.weights_path is not None:
        result = _finish_compounding_run(config, start, result, before)
    return result


def _finish_compounding_run(config: BodyTrainConfig, start, result: TrainResult, before: dict) -> TrainResult:
    """Append this run to the start weights' chain, store it in model.pt, promote if validation improved."""
    import json

    from posekit.io.atomic import atomic_write_text
    from posekit.io.weights import load_weights, save_weights

    state, metadata = load_weights(result.weights_path, map_location="cpu", return_metadata=True)
    chain = model_chain(start.metadata) + [{
        "command": metadata.get("command", ""), "steps": int(result.steps),
        "minutes": round(result.seconds / 60.0, 1), "metrics": dict(result.metrics),
        "metrics_before": dict(before)}]
    metadata.update({"chain": chain, "total_steps": int(sum(int(c.get("steps") or 0) for c in chain)),
                     "metrics_before": dict(before)})
    save_weights(state, result.weights_path, metadata=metadata)
    target = start.path
    promoted = promote_if_better(result.weights_path, target, before, result.metrics)
    metrics = {**result.metrics, **{f"before_{k}": v for k, v in before.items()}, "promoted": float(promoted)}
    atomic_write_text(Path(result.weights_path).parent / "model_card.json",
                      json.dumps({"target": str(target), "promoted": promoted, "chain": chain,
                                  "total_steps": metadata["total_steps"]}, indent=2) + "\n")
    return TrainResult(result.steps, result.weights_path, result.history, metrics, result.seconds)


__all__ = [
    "VALIDATION_SEED",
    "VALIDATION_SETS",
    "BodyDataConfig",
    "BodyLossWeights",
    "BodyTrainConfig",
    "body_losses",
    "compare_weights",
    "is_improvement",
    "model_chain",
    "promote_if_better",
    "shared_sets",
    "train_body",
    "validate",
    "validation_score",
    "validation_sets",
]
