"""``posekit train view``: train the view network on SYMSOL images rendered on the fly.

Loss (I2S, Sec. 3.4): cross-entropy of the grid logits (level ``model.train_grid_level``)
against the grid rotation nearest the label ``R_cam_obj``. Runs through
:func:`posekit.training.train` (seeds, DDP under torchrun, checkpoints, resume).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from posekit.training import TrainSettings
from posekit.view.network import ViewNetConfig


@dataclass
class ViewDataConfig:
    shapes: list = field(default_factory=lambda: ["tet", "cube", "icosa", "cone", "cyl"])
    val_per_shape: int = 10  # validation images per shape (fixed seed)
    val_seed: int = 12345
    eval_grid_level: int = 3  # HEALPix level for validation log-likelihood (36,864 rotations)


@dataclass
class ViewTrainConfig:
    model: ViewNetConfig = field(default_factory=ViewNetConfig)
    data: ViewDataConfig = field(default_factory=ViewDataConfig)
    train: TrainSettings = field(default_factory=TrainSettings)
    out_dir: str = "runs/view"


def images_to_tensor(images: np.ndarray, device="cpu"):
    """``(B, H, W, 3)`` uint8 -> ``(B, 3, H, W)`` float32 in [0, 1]."""
    import torch

    return torch.from_numpy(np.array(images, dtype=np.uint8)).permute(0, 3, 1, 2).float().div(255.0).to(device)


def make_batch_fn(cfg: ViewTrainConfig):
    from posekit.data.symsol import render_symsol
    from posekit.geometry.rigid_np import random_rotation_np
    from posekit.geometry.so3_grid import nearest_index

    shapes = list(cfg.data.shapes)
    size = cfg.model.image_size
    index = nearest_index(cfg.model.train_grid_level)

    def make_batch(rng: np.random.Generator, batch_size: int, device):
        import torch

        R = np.stack([random_rotation_np(rng) for _ in range(batch_size)])
        names = rng.choice(shapes, size=batch_size)
        images = np.stack([render_symsol(str(s), r, size) for s, r in zip(names, R)])
        target = torch.from_numpy(index.query(R)).to(device)
        return images_to_tensor(images, device), target

    return make_batch


def compute_loss(model, batch, step: int):
    import torch

    images, target = batch
    logits = model(images)
    loss = torch.nn.functional.cross_entropy(logits, target)
    acc = (logits.argmax(-1) == target).float().mean()
    return loss, {"grid_acc": float(acc)}


def validation_set(cfg: ViewDataConfig, size: int):
    """Fixed (images, equivalent rotations, shape names) for validation and benchmarks."""
    from posekit.data.symsol import equivalent_rotations, sample_symsol

    rng = np.random.default_rng(cfg.val_seed)
    images, eqs, names = [], [], []
    for shape in cfg.shapes:
        for _ in range(cfg.val_per_shape):
            s = sample_symsol(shape, rng, size)
            images.append(s.image)
            eqs.append(equivalent_rotations(shape, s.rotation, size, image=s.image))
            names.append(shape)
    return np.stack(images), eqs, names


def predict_distributions(model, images: np.ndarray, level: int, batch_size: int = 16, device="cpu"):
    import torch

    from posekit.training import unwrap
    from posekit.view.distribution import SO3GridDistribution

    net = unwrap(model)
    out = []
    with torch.no_grad():
        for s in range(0, len(images), batch_size):
            logits = net(images_to_tensor(images[s:s + batch_size], device), level=level)
            out += [SO3GridDistribution.from_logits(z.double().cpu().numpy(), level) for z in logits]
    return out


def make_evaluate_fn(cfg: ViewTrainConfig, device="cpu"):
    from posekit.view.evaluation import evaluate_distributions

    cache = {}

    def evaluate(model) -> dict:
        if "val" not in cache:
            cache["val"] = validation_set(cfg.data, cfg.model.image_size)
        images, eqs, names = cache["val"]
        dev = next(model.parameters()).device
        dists = predict_distributions(model, images, cfg.data.eval_grid_level, device=dev)
        m = evaluate_distributions(dists, eqs, names, with_spread=False)
        out = {k: v for k, v in m.items() if isinstance(v, float)}
        out.update({f"loglik_{k}": v for k, v in m["loglik_per_shape"].items()})
        return {k: v for k, v in out.items() if k != "spread_deg"}

    return evaluate


def build_model(model_cfg: ViewNetConfig | dict):
    from posekit.view.network import ViewNet

    if isinstance(model_cfg, dict):
        model_cfg = ViewNetConfig(**model_cfg)
    # escnn convolutions are built holding their expanded filters (eval-mode buffers); train()
    # drops them so that the state dict is the parameters alone, as saved by the training loop
    return ViewNet(model_cfg).train()


def train_view(cfg: ViewTrainConfig, out_dir: str | Path | None = None, resume: bool = True, progress: bool = True):
    """Train as configured; returns :class:`posekit.training.TrainResult` (model.pt in out_dir)."""
    from posekit.training import train

    model = build_model(cfg.model)
    return train(model, make_batch_fn(cfg), compute_loss, cfg.train, out_dir or cfg.out_dir,
                 config=asdict(cfg), evaluate=make_evaluate_fn(cfg), resume=resume, engine="view",
                 progress=progress)


def export_weights(model_pt: str | Path, out_path: str | Path) -> Path:
    """Copy a training run's ``model.pt`` keeping only the parameters (and all metadata).

    escnn stores its sampled kernel bases as buffers (about 4x the parameters); they are
    rebuilt identically from the config when the network is constructed, so a shipped file
    needs only the learnt parameters.
    """
    from posekit.io.weights import load_weights, save_weights

    state, metadata = load_weights(model_pt, return_metadata=True)
    model = build_model(dict(metadata["config"]["model"]))
    keep = {name for name, _ in model.named_parameters()}
    return save_weights({k: v for k, v in state.items() if k in keep}, out_path,
                        metadata={**metadata, "exported_parameters_only": True})
