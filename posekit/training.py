"""One training loop for every engine: seeds, DistributedDataParallel, progress, checkpoints, resume.

Each engine supplies three callables and a :class:`TrainSettings`; :func:`train` does the rest:

- ``make_batch(rng, batch_size, device)`` draws one batch (on the fly, e.g. rendered synthetic
  data) from a ``numpy.random.Generator`` seeded by (seed, rank, step), so a resumed or
  repeated run sees exactly the same data;
- ``compute_loss(model, batch, step)`` returns ``(loss tensor, {name: float})``;
- ``evaluate(model)`` (optional, main process only) returns ``{name: float}`` validation metrics.

Launched with ``torchrun --nproc_per_node N`` (the ``WORLD_SIZE``/``RANK``/``LOCAL_RANK``
environment variables), the model is wrapped in DistributedDataParallel over gloo on CPU or
nccl on CUDA; every process draws its own batches (seeded by its rank), gradients are
averaged, and only the main process writes files and shows the progress bar.

Files written to ``out_dir`` (atomically): ``checkpoint.pt`` (model, optimiser, scheduler,
step, history; loads with ``weights_only=True``), ``history.jsonl`` (one line of metrics per
logged step) and, at the end, ``model.pt`` via :func:`posekit.io.weights.save_weights` with the
config, final metrics and the command line in its metadata.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from posekit.device import resolve_device
from posekit.errors import BadInputError, CorruptFileError

logger = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.pt"
WEIGHTS_NAME = "model.pt"
HISTORY_NAME = "history.jsonl"


@dataclass
class TrainSettings:
    """Optimisation settings shared by every engine (the ``train:`` section of a config)."""

    steps: int = 1000
    batch_size: int = 8  # per process
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup_steps: int = 50
    min_lr_fraction: float = 0.05  # cosine decay ends at lr * this
    grad_clip: float = 1.0  # max gradient norm; 0 disables
    seed: int = 0
    checkpoint_every: int = 200
    eval_every: int = 0  # 0: evaluate only at the end
    log_every: int = 10
    device: str = "cpu"
    num_threads: int = 0  # torch CPU threads per process; 0 leaves torch's default
    budget_minutes: float = 0.0  # wall-clock budget; 0: none. The run stops when it is spent and
    # the cosine schedule follows whichever of steps and time is further along.


@dataclass
class DistributedContext:
    """Where this process sits in a (possibly single-process) run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: Any = "cpu"  # torch.device
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


@dataclass
class TrainResult:
    steps: int
    weights_path: Path | None
    history: list[dict] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    seconds: float = 0.0


def init_distributed(device: str = "cpu") -> DistributedContext:
    """Join the process group torchrun set up (gloo on CPU, nccl on CUDA), or run alone."""
    import torch
    import torch.distributed as dist

    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    requested = resolve_device(device)
    if world_size <= 1:
        return DistributedContext(device=requested)
    if requested.type == "cuda":
        torch.cuda.set_device(local_rank)
        torch_device, backend = torch.device("cuda", local_rank), "nccl"
    else:
        torch_device, backend = torch.device("cpu"), "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return DistributedContext(rank, world_size, local_rank, torch_device, backend)


def batch_rng(seed: int, rank: int, step: int) -> np.random.Generator:
    """The generator of one process's batch at one step: the same after a resume."""
    return np.random.default_rng([int(seed), int(rank), int(step)])


def unwrap(model):
    """The bare module inside a DistributedDataParallel wrapper (or the model itself)."""
    return getattr(model, "module", model)


def _lr_factor(settings: TrainSettings, time_progress: Callable[[], float] | None = None) -> Callable[[int], float]:
    warmup, total, floor = max(settings.warmup_steps, 0), max(settings.steps, 1), settings.min_lr_fraction

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(total - warmup, 1))
        if time_progress is not None:
            progress = max(progress, min(1.0, time_progress()))
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def _budget_spent(spent: bool, ctx: DistributedContext) -> bool:
    """Whether any process has spent the time budget (every rank must stop at the same step)."""
    if not ctx.distributed:
        return spent
    import torch
    import torch.distributed as dist

    flag = torch.tensor([1.0 if spent else 0.0], device=ctx.device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item() > 0)


def _average_metrics(rows: list[dict]) -> dict:
    keys = {k for row in rows for k in row}
    return {k: float(np.mean([row[k] for row in rows if k in row])) for k in sorted(keys)}


def train(
    model,
    make_batch: Callable[[np.random.Generator, int, Any], Any],
    compute_loss: Callable[[Any, Any, int], tuple[Any, dict]],
    settings: TrainSettings,
    out_dir: str | Path,
    config: dict | None = None,
    evaluate: Callable[[Any], dict] | None = None,
    resume: bool = True,
    engine: str = "",
    progress: bool = True,
) -> TrainResult:
    """Train ``model`` for ``settings.steps`` optimiser steps; see the module docstring.

    ``config`` (JSON-like) is stored in the checkpoint and in ``model.pt`` so the weights
    can rebuild their network. With ``resume`` an existing ``out_dir/checkpoint.pt`` is
    continued from its step (a finished run returns at once). With ``settings.budget_minutes``
    the run also ends when that much wall-clock time (summed over resumes) is spent; the
    result's ``steps`` are the steps actually taken.
    """
    import torch
    from tqdm import tqdm

    from posekit.io.atomic import atomic_path, atomic_write_text, output_directory
    from posekit.io.weights import fit_state_dict, load_weights, save_weights

    if settings.steps < 1 or settings.batch_size < 1:
        raise BadInputError(f"steps and batch_size must be >= 1 (got {settings.steps}, {settings.batch_size})")
    if settings.num_threads > 0:
        torch.set_num_threads(settings.num_threads)
    ctx = init_distributed(settings.device)
    out_dir = Path(out_dir)
    if ctx.is_main:
        output_directory(out_dir, "training output folder")
    torch.manual_seed(settings.seed)  # identical initial weights on every rank
    model = model.to(ctx.device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    budget_s = 60.0 * max(settings.budget_minutes, 0.0)
    clock = {"start": time.perf_counter(), "before": 0.0}  # "before": seconds spent before a resume

    def elapsed() -> float:
        return clock["before"] + time.perf_counter() - clock["start"]

    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, _lr_factor(settings, (lambda: elapsed() / budget_s) if budget_s > 0 else None))
    start_step, history = 0, []
    checkpoint_path = out_dir / CHECKPOINT_NAME
    if resume and checkpoint_path.is_file():
        state = load_weights(checkpoint_path, map_location=str(ctx.device))
        try:
            fit_state_dict(model, state["model"], checkpoint_path)
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            start_step, history = int(state["step"]), list(state.get("history", []))
            clock["before"] = float(state.get("seconds", 0.0))
        except CorruptFileError:
            raise
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            raise CorruptFileError(
                f"{checkpoint_path}: not a resumable checkpoint of this run ({type(err).__name__}: {err}); "
                "delete it or train into a new folder") from err
        if ctx.is_main:
            logger.info("resuming %s from step %d", checkpoint_path, start_step)
    net = model
    if ctx.distributed:
        from torch.nn.parallel import DistributedDataParallel

        ids = [ctx.local_rank] if ctx.device.type == "cuda" else None
        net = DistributedDataParallel(model, device_ids=ids)
    config = json.loads(json.dumps(config or {}))
    settings_dict = asdict(settings)

    def save_checkpoint(step: int) -> None:
        if not ctx.is_main:
            return
        payload = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                   "scheduler": scheduler.state_dict(), "step": step, "history": history,
                   "config": config, "settings": settings_dict, "seconds": elapsed()}
        with atomic_path(checkpoint_path, suffix="") as tmp:
            torch.save(payload, tmp)

    def run_evaluation() -> dict:
        if evaluate is None or not ctx.is_main:
            return {}
        model.eval()
        with torch.no_grad():
            metrics = {k: float(v) for k, v in evaluate(model).items()}
        model.train()
        return metrics

    t0 = time.perf_counter()
    bar = tqdm(total=settings.steps, initial=start_step, desc=f"train {engine}".strip(),
               disable=not (progress and ctx.is_main), dynamic_ncols=True)
    window: list[dict] = []
    model.train()
    last_step = start_step
    for step in range(start_step, settings.steps):
        if budget_s > 0 and _budget_spent(elapsed() >= budget_s, ctx):
            if ctx.is_main:
                logger.info("time budget of %.1f min spent at step %d", settings.budget_minutes, step)
            break
        batch = make_batch(batch_rng(settings.seed, ctx.rank, step), settings.batch_size, ctx.device)
        loss, metrics = compute_loss(net, batch, step)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss is {loss.item()} at step {step}; lower train.lr or check the data")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if settings.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
        optimizer.step()
        scheduler.step()
        window.append({"loss": float(loss.detach()), **{k: float(v) for k, v in metrics.items()}})
        done = last_step = step + 1
        if done % settings.log_every == 0 or done == settings.steps:
            row = {"step": done, "lr": scheduler.get_last_lr()[0], **_average_metrics(window)}
            window = []
            if settings.eval_every and done % settings.eval_every == 0 and done != settings.steps:
                row.update({f"val_{k}": v for k, v in run_evaluation().items()})
            history.append(row)
            if ctx.is_main:
                with open(out_dir / HISTORY_NAME, "a") as fh:
                    fh.write(json.dumps(row) + "\n")
            bar.set_postfix(loss=f"{row['loss']:.4f}")
        bar.update(1)
        if done % settings.checkpoint_every == 0 and done != settings.steps:
            save_checkpoint(done)
    bar.close()

    final_metrics = run_evaluation()
    weights_path = None
    if ctx.is_main:
        save_checkpoint(last_step)
        metadata = {
            "engine": engine, "config": config, "settings": settings_dict, "steps": last_step,
            "world_size": ctx.world_size, "metrics": final_metrics,
            "command": " ".join(shlex.quote(a) for a in ["posekit"] + sys.argv[1:])
            if Path(sys.argv[0]).name == "posekit" else " ".join(map(shlex.quote, sys.argv)),
        }
        weights_path = save_weights(model.state_dict(), out_dir / WEIGHTS_NAME, metadata=metadata)
        atomic_write_text(out_dir / "metrics.json", json.dumps(final_metrics, indent=2) + "\n")
    if ctx.distributed:
        import torch.distributed as dist

        dist.barrier()
    return TrainResult(last_step, weights_path, history, final_metrics, time.perf_counter() - t0)
