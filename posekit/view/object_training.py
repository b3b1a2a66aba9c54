"""``posekit train view --models DIR``: the view network on a dataset's own CAD models.

Crops are rendered on the fly (:mod:`posekit.data.view_crops`: random rotation, distance and
image position, detector-like box jitter, clutter, occluders, backgrounds, lighting, colour
jitter, blur, noise). The network is object-conditioned (``model.num_objects``: one-hot input
planes and per-object S2 filters, see :mod:`posekit.view.network`) and predicts the
allocentric ``R_crop_obj``.

Loss: the negative log of the probability the grid logits (level ``model.train_grid_level``)
give to the set of grid cells nearest the ground-truth rotations; for an asymmetric object this
is the I2S cross-entropy (Klee et al., ICLR 2023, Sec. 3.4), for a symmetric one every
equivalent rotation ``R S`` counts. Runs through :func:`posekit.training.train` (seeded
batches, checkpoints, resume, torchrun).

With ``baseline_head: i2s`` one run also trains the I2S-style head as a separate network on the
very same batches (the module of ``_paired_class``: the two networks share no parameter; their losses
are summed, so each gets its own gradients, and one gradient-norm clip scales both): the
comparison in ``posekit bench view`` then has identical steps and data.
:func:`export_paired_weights` writes one weights file per head.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from posekit.data.view_crops import ViewCropConfig
from posekit.training import TrainSettings
from posekit.view.network import ViewNetConfig


@dataclass
class ObjectViewDataConfig:
    models: str = ""  # BOP models/ folder (mm, per-vertex colours) or 'procedural'
    procedural_objects: int = 4  # with models: procedural
    procedural_seed: int = 0
    obj_ids: list = field(default_factory=list)  # filled in from the models when empty
    backgrounds: list = field(default_factory=list)  # real photos (files or folders) for backgrounds
    crop: ViewCropConfig = field(default_factory=ViewCropConfig)
    fresh_per_step: int = 0  # 0: ray-cast every training crop; N: only N a step, the rest re-use recent
    # renders turned about the crop axis (posekit.data.view_crops.ReusedViewRenders)
    reuse_window: int = 1024  # renders kept for re-use
    val_per_object: int = 8
    val_seed: int = 4242
    eval_grid_level: int = 3


@dataclass
class ObjectViewTrainConfig:
    model: ViewNetConfig = field(default_factory=ViewNetConfig)
    data: ObjectViewDataConfig = field(default_factory=ObjectViewDataConfig)
    train: TrainSettings = field(default_factory=TrainSettings)
    baseline_head: str = "i2s"  # also train this head on the same batches ('' for none)
    resume_from: str = ""  # start from exported weights (name or path of the model.head file; see start_weights)
    resumed_steps: int = 0  # steps the resume_from weights had already been trained (set by start_weights)
    out_dir: str = "runs/view_lmo"


def _paired_class():
    from torch import nn

    class _Paired(nn.Module):
        """Two independent view networks trained on the same batches: ``nets[head]``."""

        def __init__(self, nets: dict):
            super().__init__()
            self.nets = nn.ModuleDict(nets)

        def forward(self, images, level=None, obj_index=None):
            return {k: net(images, level=level, obj_index=obj_index) for k, net in self.nets.items()}

    return _Paired


def build_object_model(cfg: ObjectViewTrainConfig):
    """The network to train: one :class:`~posekit.view.network.ViewNet`, or a pair
    (``model.head`` and ``baseline_head``) when a baseline is asked for."""
    import copy

    from posekit.view.training import build_model

    if not cfg.baseline_head or cfg.baseline_head == cfg.model.head:
        return build_model(cfg.model)
    base = copy.deepcopy(cfg.model)
    base.head = cfg.baseline_head
    return _paired_class()({cfg.model.head: build_model(cfg.model), cfg.baseline_head: build_model(base)})


def baseline_weights_name(name_or_path: str, baseline: str) -> str:
    """Where :func:`export_paired_weights` put the baseline next to ``name_or_path``: the shipped
    name ``<name>-<baseline>``, or the sibling file ``<stem>-<baseline>.pt`` of a path."""
    path = Path(str(name_or_path))
    if path.suffix == ".pt":
        return str(path.with_name(f"{path.stem}-{baseline}.pt"))
    return f"{name_or_path}-{baseline}"


def start_weights(cfg: ObjectViewTrainConfig, obj_ids: list[int]) -> dict:
    """The exported weights ``cfg.resume_from`` (and its baseline) to continue: ``{head: state}``.

    Adopts the network config stored with them (``cfg.model``); their object ids must be
    ``obj_ids`` (BadInputError otherwise). With a baseline head its file must exist
    (``<name>-<baseline>``), so that both heads continue from the same number of steps.
    """
    from posekit import pretrained
    from posekit.errors import BadInputError, MissingFileError

    main = pretrained.load(cfg.resume_from, engine="view")
    model_cfg = dict(main.config.get("model") or {})
    known = [int(i) for i in (main.config.get("data") or {}).get("obj_ids", [])]
    if not model_cfg or int(model_cfg.get("num_objects", 0)) < 1:
        raise BadInputError(f"{main.path}: not an object view model (no model.num_objects); "
                            "--resume-from takes the weights of a `posekit train view --models` run")
    if known != [int(i) for i in obj_ids]:
        raise BadInputError(f"{main.path} knows objects {known}, the models folder has {list(obj_ids)}: "
                            "resume only with the same objects")
    cfg.model = ViewNetConfig(**model_cfg)
    cfg.resumed_steps = int((main.config.get("train") or {}).get("steps", 0))
    states = {cfg.model.head: main.state_dict}
    if cfg.baseline_head and cfg.baseline_head != cfg.model.head:
        name = baseline_weights_name(cfg.resume_from, cfg.baseline_head)
        try:
            base = pretrained.load(name, engine="view")
        except MissingFileError as err:
            raise MissingFileError(f"--resume-from {cfg.resume_from}: its {cfg.baseline_head} baseline {name!r} "
                                   "is missing; pass it next to the weights or --set baseline_head= "
                                   f"to train without a baseline ({err})") from err
        if (base.config.get("model") or {}).get("head") != cfg.baseline_head:
            raise BadInputError(f"{base.path} is not a {cfg.baseline_head} head")
        states[cfg.baseline_head] = base.state_dict
    return states


def load_start_weights(model, states: dict, source: str) -> None:
    """Load ``{head: state}`` into ``model`` (one network or a pair); escnn's rebuilt buffers are optional."""
    from posekit.io.weights import fit_state_dict

    nets = dict(model.nets) if hasattr(model, "nets") else {next(iter(states)): model}
    for head, net in nets.items():
        buffers = {k for k, _ in net.named_buffers(remove_duplicate=False)}
        fit_state_dict(net, states[head], f"{source} ({head} head)", optional=buffers)


def load_objects(data: ObjectViewDataConfig):
    from posekit.data.view_crops import load_view_objects

    return load_view_objects(data.models, data.procedural_objects, data.procedural_seed,
                             data.crop.symmetry_step_deg, data.obj_ids or None)


def target_mask(equivalents: list[np.ndarray], level: int):
    """``(B, N)`` bool torch tensor: grid cells nearest any equivalent rotation of each sample."""
    import torch

    from posekit.geometry.so3_grid import grid_size, nearest_index

    index = nearest_index(level)
    mask = torch.zeros(len(equivalents), grid_size(level), dtype=torch.bool)
    for b, eq in enumerate(equivalents):
        mask[b, torch.from_numpy(index.query(eq))] = True
    return mask


def render_batch(objects, rng: np.random.Generator, n: int, crop: ViewCropConfig, backgrounds,
                 obj_indices=None, reuse=None, visibility: bool = False):
    """``n`` crops: images ``(n, S, S, 3)`` uint8, obj indices ``(n,)``, labels ``(n, 3, 3)``,
    equivalent label sets (list of ``(K, 3, 3)``), visible fractions ``(n,)`` (NaN unless
    ``visibility``: one more ray cast a crop). With ``reuse`` (a
    :class:`~posekit.data.view_crops.ReusedViewRenders`) the crops come from it."""
    from posekit.data.view_crops import render_view_crop

    if reuse is not None:
        crops = reuse.batch(rng, n)
        obj_indices = [c.obj_index for c in crops]
    else:
        if obj_indices is None:
            obj_indices = rng.integers(len(objects.ids), size=n)
        crops = [render_view_crop(objects, int(i), rng, crop, backgrounds, visibility) for i in obj_indices]
    labels = np.stack([c.R_crop_obj for c in crops])
    eqs = [c.R_crop_obj[None] @ objects.symmetries[c.obj_index] for c in crops]
    visible = np.array([c.visible_fraction for c in crops], dtype=np.float64)
    return np.stack([c.image for c in crops]), np.asarray(obj_indices, dtype=np.int64), labels, eqs, visible


def make_batch_fn(cfg: ObjectViewTrainConfig, objects, backgrounds):
    from posekit.data.view_crops import ReusedViewRenders
    from posekit.view.training import images_to_tensor

    reuse = None
    if cfg.data.fresh_per_step > 0:
        reuse = ReusedViewRenders(objects, cfg.data.crop, backgrounds, cfg.data.fresh_per_step, cfg.data.reuse_window)

    def make_batch(rng: np.random.Generator, batch_size: int, device):
        import torch

        images, idx, _, eqs, _ = render_batch(objects, rng, batch_size, cfg.data.crop, backgrounds, reuse=reuse)
        mask = target_mask(eqs, cfg.model.train_grid_level).to(device)
        return images_to_tensor(images, device), torch.from_numpy(idx).to(device), mask

    return make_batch


def set_loss(logits, mask):
    """``-log sum_{i in set} softmax(logits)_i``, mean over the batch; logits ``(B, N)``, mask ``(B, N)`` bool."""
    import torch

    inside = torch.logsumexp(logits.masked_fill(~mask, float("-inf")), dim=-1)
    return (torch.logsumexp(logits, dim=-1) - inside).mean()


def compute_loss(model, batch, step: int):
    images, idx, mask = batch
    out = model(images, obj_index=idx)
    if not isinstance(out, dict):
        out = {"": out}
    total, metrics = 0.0, {}
    for name, logits in out.items():
        loss = set_loss(logits, mask)
        hit = mask.gather(1, logits.argmax(-1, keepdim=True)).float().mean()
        prefix = f"{name}_" if name else ""
        metrics[f"{prefix}grid_acc"] = float(hit)
        if name:
            metrics[f"{prefix}loss"] = float(loss.detach())
        total = total + loss
    return total, metrics


def validation_set(cfg: ObjectViewTrainConfig, objects, backgrounds, per_object: int | None = None,
                   seed: int | None = None, visibility: bool = False):
    """Fixed renders, ``per_object`` of each object: (images, obj indices, labels, equivalents,
    visible fractions (NaN unless ``visibility``; the renders do not depend on it))."""
    n = cfg.data.val_per_object if per_object is None else int(per_object)
    seed = cfg.data.val_seed if seed is None else int(seed)
    parts = [render_batch(objects, np.random.default_rng([seed, i]), n, cfg.data.crop, backgrounds,
                          obj_indices=[i] * n, visibility=visibility) for i in range(len(objects.ids))]
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
            np.concatenate([p[2] for p in parts]), [e for p in parts for e in p[3]],
            np.concatenate([p[4] for p in parts]))


def predict_distributions(model, images: np.ndarray, obj_idx: np.ndarray, level: int, batch_size: int = 16,
                          head: str = ""):
    """Allocentric :class:`SO3GridDistribution` per crop (``head``: which network of a pair)."""
    import torch

    from posekit.training import unwrap
    from posekit.view.distribution import SO3GridDistribution
    from posekit.view.training import images_to_tensor

    net = unwrap(model)
    net = net.nets[head] if head else net
    dev = next(net.parameters()).device
    out = []
    with torch.no_grad():
        for s in range(0, len(images), batch_size):
            idx = torch.from_numpy(np.asarray(obj_idx[s:s + batch_size], dtype=np.int64)).to(dev)
            logits = net(images_to_tensor(images[s:s + batch_size], dev), level=level, obj_index=idx)
            out += [SO3GridDistribution.from_logits(z.double().cpu().numpy(), level) for z in logits]
    return out


def make_evaluate_fn(cfg: ObjectViewTrainConfig, objects, backgrounds):
    from posekit.view.evaluation import evaluate_distributions

    cache = {}

    def evaluate(model) -> dict:
        if "val" not in cache:
            cache["val"] = validation_set(cfg, objects, backgrounds)
        images, idx, _, eqs, _ = cache["val"]
        names = [f"obj{objects.ids[i]}" for i in idx]
        heads = list(getattr(model, "nets", {}).keys()) or [""]
        out = {}
        for head in heads:
            dists = predict_distributions(model, images, idx, cfg.data.eval_grid_level, head=head)
            m = evaluate_distributions(dists, eqs, names, with_spread=False)
            prefix = f"{head}_" if len(heads) > 1 else ""
            out.update({prefix + k: v for k, v in m.items() if isinstance(v, float) and k != "spread_deg"})
        return out

    return evaluate


def train_object_view(cfg: ObjectViewTrainConfig, out_dir: str | Path | None = None, resume: bool = True,
                      progress: bool = True):
    """Train as configured; returns :class:`posekit.training.TrainResult` (model.pt in out_dir).

    The object ids and their count are written into the config (``data.obj_ids``,
    ``model.num_objects``) so that the weights know which object each index is. With
    ``cfg.resume_from`` the networks start from those exported weights (:func:`start_weights`)
    with a fresh optimiser and learning-rate schedule; use a new ``train.seed`` for new batches.
    """
    from posekit.data.view_crops import load_backgrounds
    from posekit.errors import BadInputError
    from posekit.training import train

    if not cfg.data.models:
        raise BadInputError("data.models is empty: pass --models DIR (a BOP models/ folder) or 'procedural'")
    if cfg.data.crop.image_size != cfg.model.image_size:
        raise BadInputError(f"data.crop.image_size ({cfg.data.crop.image_size}) must equal model.image_size "
                            f"({cfg.model.image_size})")
    objects = load_objects(cfg.data)
    backgrounds = load_backgrounds(cfg.data.backgrounds)
    states = start_weights(cfg, list(objects.ids)) if cfg.resume_from else None
    cfg.data.obj_ids = list(objects.ids)
    cfg.model.num_objects = len(objects.ids)
    model = build_object_model(cfg)
    if states is not None:
        load_start_weights(model, states, cfg.resume_from)
    return train(model, make_batch_fn(cfg, objects, backgrounds), compute_loss, cfg.train, out_dir or cfg.out_dir,
                 config={**asdict(cfg), "kind": "objects"}, evaluate=make_evaluate_fn(cfg, objects, backgrounds),
                 resume=resume, engine="view", progress=progress)


def export_paired_weights(weights_pt: str | Path, out_dir: str | Path, name: str = "model") -> dict[str, Path]:
    """Write ``out_dir/<name>.pt`` (the ``model.head`` network) and ``out_dir/<name>-<baseline>.pt``
    from a run's ``model.pt`` or ``checkpoint.pt``, each with the parameters only (escnn's
    kernel-basis buffers are rebuilt from the config) and the run's metadata, its ``model.head``
    set to that network's head. A run without a baseline gives one file."""
    import copy

    import torch

    from posekit.io.weights import load_weights, save_weights
    from posekit.view.training import build_model

    path = Path(weights_pt)
    if path.name.startswith("checkpoint"):
        raw = torch.load(path, map_location="cpu", weights_only=True)
        state = raw["model"]
        metadata = {"engine": "view", "config": raw["config"], "settings": raw["settings"], "steps": raw["step"],
                    "metrics": {}, "from_checkpoint": True}
    else:
        state, metadata = load_weights(path, return_metadata=True)
    cfg = metadata["config"]
    main = cfg["model"]["head"]
    baseline = cfg.get("baseline_head") or ""
    heads = [main] + ([baseline] if baseline and baseline != main else [])
    out = {}
    for head in heads:
        prefix = f"nets.{head}." if len(heads) > 1 else ""
        sub_cfg = copy.deepcopy(cfg)
        sub_cfg["model"]["head"] = head
        sub_cfg["baseline_head"] = ""
        # the steps the weights have seen in all (a budget run's train.steps is only its cap)
        sub_cfg.setdefault("train", {})["steps"] = int(metadata.get("steps") or 0) + int(cfg.get("resumed_steps") or 0)
        keep = {k for k, _ in build_model(dict(sub_cfg["model"])).named_parameters()}
        sub = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix) and k[len(prefix):] in keep}
        metrics = {k[len(head) + 1:]: v for k, v in (metadata.get("metrics") or {}).items()
                   if len(heads) == 1 or k.startswith(head + "_")} if len(heads) > 1 else metadata.get("metrics", {})
        target = Path(out_dir) / (f"{name}.pt" if head == main else f"{name}-{head}.pt")
        out[head] = save_weights(sub, target, metadata={**metadata, "config": sub_cfg, "metrics": metrics,
                                                        "exported_parameters_only": True})
    return out
