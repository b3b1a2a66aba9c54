"""View training glue: `posekit train view` writes loadable weights; DDP over 2 CPU processes."""

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import yaml

from posekit.io.weights import load_weights

TINY = [
    "model.image_size=32", "model.encoder_channels=[4,6]", "model.lmax=3", "model.s2_channels=4",
    "model.so3_channels=3", "model.train_grid_level=1", "model.nonlinearity_grid_level=1",
    "data.shapes=[tet,cone]", "data.val_per_shape=1", "data.eval_grid_level=1",
    "train.steps=3", "train.batch_size=2", "train.warmup_steps=1", "train.log_every=1",
    "train.eval_every=0", "train.checkpoint_every=100", "train.num_threads=1",
]


def test_cli_train_writes_weights_the_estimator_loads(tmp_path):
    from posekit.cli.view import run_train
    from posekit.view.estimator import ViewPoseEstimator

    args = type("Args", (), {"config": "configs/view.yaml", "overrides": TINY + ["model.head=i2s"], "out": tmp_path / "run",
                                 "no_resume": False, "quiet": True})()
    assert run_train(args) == 0
    _, meta = load_weights(tmp_path / "run" / "model.pt", return_metadata=True)
    assert meta["engine"] == "view" and meta["config"]["model"]["head"] == "i2s"
    assert np.isfinite(meta["metrics"]["loglik_mean"]) and 0 <= meta["metrics"]["acc30"] <= 1
    rows = (tmp_path / "run" / "history.jsonl").read_text().splitlines()
    assert len(rows) == 3
    est = ViewPoseEstimator.from_pretrained(tmp_path / "run" / "model.pt", grid_level=1)
    dist = est.predict(np.zeros((32, 32, 3), np.uint8) + 60)
    R = dist.mode()
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-9)
    assert dist.probs.shape == (576,)


def test_configs_load():
    from posekit.config import load_config
    from posekit.view.training import ViewTrainConfig

    cpu = load_config(ViewTrainConfig, "configs/view.yaml")
    gpu = load_config(ViewTrainConfig, "configs/view_gpu.yaml")
    assert cpu.model.image_size == 64 and cpu.train.device == "cpu" and cpu.model.head == "induced"
    assert gpu.model.image_size == 224 and gpu.train.device == "cuda"
    for cfg in (cpu, gpu):
        assert cfg.model.image_size % 2 ** len(cfg.model.encoder_channels) == 0
    assert set(yaml.safe_load(Path("configs/view.yaml").read_text())) == {"model", "data", "train", "out_dir"}


@pytest.mark.slow
def test_torchrun_two_cpu_processes(tmp_path):
    script = tmp_path / "ddp_view.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        from posekit.config import load_config
        from posekit.view.training import ViewTrainConfig, train_view
        cfg = load_config(ViewTrainConfig, "configs/view.yaml", {TINY!r} + ["train.steps=2"])
        r = train_view(cfg, out_dir=sys.argv[1], progress=False)
        import torch.distributed as dist
        from pathlib import Path
        # One file per rank: the two processes' stdout lines can interleave.
        (Path(sys.argv[1]) / f"rank{{dist.get_rank()}}.txt").write_text(f"WORLD {{dist.get_world_size()}}")
        dist.destroy_process_group()
    """))
    out = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(script), str(tmp_path / "run")], check=False, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    for rank in (0, 1):
        assert (tmp_path / "run" / f"rank{rank}.txt").read_text() == "WORLD 2"
    _, meta = load_weights(tmp_path / "run" / "model.pt", return_metadata=True)
    assert meta["world_size"] == 2 and meta["engine"] == "view"
