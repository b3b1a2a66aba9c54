"""The shared training loop: it learns, resumes to the same weights, and runs under torchrun (2 CPU procs)."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from posekit.io.weights import load_weights
from posekit.training import TrainSettings, train

TRUE_W = np.array([[1.5, -2.0, 0.5]], dtype=np.float32)


def make_batch(rng, batch_size, device):
    x = rng.normal(size=(batch_size, 3)).astype(np.float32)
    return torch.from_numpy(x).to(device), torch.from_numpy(x @ TRUE_W.T).to(device)


def compute_loss(model, batch, step):
    x, y = batch
    loss = torch.nn.functional.mse_loss(model(x), y)
    return loss, {"mse": float(loss.detach())}


def settings(steps, **kw):
    return TrainSettings(steps=steps, batch_size=16, lr=0.05, warmup_steps=2, checkpoint_every=5,
                         log_every=5, **kw)


def test_train_learns_and_writes_weights(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1, bias=False)
    result = train(model, make_batch, compute_loss, settings(200), tmp_path, config={"width": 3},
                   evaluate=lambda m: {"w_err": float((m.weight - torch.from_numpy(TRUE_W)).abs().max())},
                   engine="toy", progress=False)
    assert result.metrics["w_err"] < 0.05
    state, meta = load_weights(result.weights_path, return_metadata=True)
    np.testing.assert_allclose(state["weight"].numpy(), TRUE_W, atol=0.05)
    assert meta["engine"] == "toy" and meta["config"] == {"width": 3} and meta["steps"] == 200
    rows = [json.loads(line) for line in (tmp_path / "history.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(5, 201, 5))
    assert rows[-1]["mse"] < rows[0]["mse"]


def test_interrupted_run_resumes_to_identical_weights(tmp_path):
    full = torch.nn.Linear(3, 1, bias=False)
    train(full, make_batch, compute_loss, settings(20), tmp_path / "a", progress=False)

    class Stop(Exception):
        pass

    def stopping_loss(model, batch, step):
        if step == 12:  # after the step-10 checkpoint
            raise Stop
        return compute_loss(model, batch, step)

    with pytest.raises(Stop):
        train(torch.nn.Linear(3, 1, bias=False), make_batch, stopping_loss, settings(20), tmp_path / "b",
              progress=False)
    resumed = torch.nn.Linear(3, 1, bias=False)
    train(resumed, make_batch, compute_loss, settings(20), tmp_path / "b", progress=False)
    torch.testing.assert_close(resumed.weight, full.weight)


@pytest.mark.slow
def test_torchrun_two_cpu_processes(tmp_path):
    script = tmp_path / "ddp_toy.py"
    script.write_text(textwrap.dedent(f"""
        import sys, torch
        from pathlib import Path
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_training import make_batch, compute_loss, settings
        from posekit.training import train
        torch.manual_seed(0)  # the same initial weights in every run (DDP broadcasts rank 0's)
        r = train(torch.nn.Linear(3, 1, bias=False), make_batch, compute_loss, settings(200, num_threads=1),
                  sys.argv[1], progress=False, engine="toy")
        import torch.distributed as dist
        # One file per rank: the two processes' stdout lines can interleave.
        (Path(sys.argv[1]) / f"rank{{dist.get_rank()}}.txt").write_text(f"WORLD {{dist.get_world_size()}} {{r.weights_path}}")
        dist.destroy_process_group()
    """))
    out = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(script), str(tmp_path / "run")],
        capture_output=True, text=True, timeout=240, check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / "run" / "rank0.txt").read_text().startswith("WORLD 2 ")
    assert (tmp_path / "run" / "rank1.txt").read_text() == "WORLD 2 None"  # only rank 0 writes weights
    state, meta = load_weights(tmp_path / "run" / "model.pt", return_metadata=True)
    assert meta["world_size"] == 2
    np.testing.assert_allclose(state["weight"].numpy(), TRUE_W, atol=0.1)
