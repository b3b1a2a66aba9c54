"""ArtEq-style network: finite groups, exact equivariance to group rotations, training (and under torchrun)."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from posekit.body.network import BodyNet, BodyNetConfig, decode_body, global_to_local
from posekit.body.skeleton import N_PARTS, PART_JOINTS
from posekit.errors import BadInputError
from posekit.geometry.rotation_groups import rotation_group

TINY = {"n_points": 256, "centres1": 48, "centres2": 12, "neighbours1": 8, "neighbours2": 6, "channels1": 16,
        "channels2": 24, "part_channels": 16, "heads": 2}


@pytest.mark.parametrize("name,order", [("tetrahedral", 12), ("octahedral", 24), ("icosahedral", 60)])
def test_rotation_groups_are_closed(name, order):
    g = rotation_group(name)
    assert g.order == order
    E = g.elements
    np.testing.assert_allclose(np.einsum("gij,gkj->gik", E, E), np.broadcast_to(np.eye(3), E.shape), atol=1e-9)
    assert all(sorted(row) == list(range(order)) for row in g.mul)  # Latin square: a group table
    a, b = 5 % order, 7 % order
    np.testing.assert_allclose(E[g.mul[a, b]], E[a] @ E[b], atol=1e-9)


@pytest.mark.parametrize("group", ["icosahedral", "tetrahedral"])
def test_group_rotation_permutes_features_and_rotates_outputs(group, device):
    torch.manual_seed(0)
    net = BodyNet(BodyNetConfig(group=group, **TINY)).to(device).eval()
    g = rotation_group(group)
    x = (torch.randn(2, 256, 3) * torch.tensor([0.2, 0.6, 0.1])).to(device)
    r = 7
    R = torch.as_tensor(g.elements[r], dtype=torch.float32, device=device)
    with torch.no_grad():
        a, b = net(x), net(x @ R.T)
    perm = torch.as_tensor(g.left_permutation(r), device=device)
    scale = a["group_features"].abs().max()
    assert (b["group_features"] - a["group_features"][:, :, perm]).abs().max() <= 1e-4 * scale
    assert (b["part_rotations"] - R @ a["part_rotations"]).abs().max() < 1e-3
    assert (b["pelvis"] - a["pelvis"] @ R.T).abs().max() < 1e-5
    assert (b["betas"] - a["betas"]).abs().max() < 1e-4
    assert (b["centre_logits"].argmax(-1) == a["centre_logits"].argmax(-1)).all()


def test_outputs_and_decoding():
    from posekit.body.model import load_body_model

    body = load_body_model()
    net = BodyNet(BodyNetConfig(**TINY)).eval()
    with torch.no_grad():
        out = net(torch.randn(3, 300, 3) * 0.3 + 2.0)
        local, _, _, posed = decode_body(out, body)
    assert out["centre_logits"].shape == (3, 48, N_PARTS) and out["point_logits"].shape == (3, 300, N_PARTS)
    R = out["part_rotations"]
    torch.testing.assert_close(R @ R.transpose(-1, -2), torch.eye(3).expand_as(R), atol=1e-5, rtol=0)
    assert torch.allclose(torch.det(R), torch.ones(()), atol=1e-5)
    # Decoding puts the model's pelvis joint at the predicted pelvis, hands/feet at rest.
    torch.testing.assert_close(posed.joints[:, 0], out["pelvis"], atol=1e-5, rtol=0)
    torch.testing.assert_close(local[:, 10], torch.eye(3).expand(3, 3, 3), atol=1e-6, rtol=0)
    # global -> local -> forward kinematics reproduces the globals of the non-merged joints.
    torch.testing.assert_close(posed.global_rotations[:, 18], R[:, PART_JOINTS.index(18)], atol=1e-4, rtol=0)
    assert posed.vertices.shape == (3, body.n_vertices, 3)


def test_global_to_local_inverts_forward_kinematics():
    from posekit.body.model import load_body_model
    from posekit.geometry.so3 import so3_exp

    body = load_body_model()
    local = so3_exp(torch.randn(2, 24, 3) * 0.4)
    out = body(local)
    torch.testing.assert_close(global_to_local(out.global_rotations), local, atol=1e-5, rtol=0)


def _tiny_config(tmp_steps: int):
    from posekit.body.training import BodyTrainConfig
    from posekit.config import load_config

    overrides = [f"network.{k}={v}" for k, v in TINY.items()] + [
        f"train.steps={tmp_steps}", "train.batch_size=2", "train.log_every=1", "train.warmup_steps=1",
        "train.checkpoint_every=2", "data.eval_samples=2", "data.partial_fraction=0.5", "train.num_threads=1"]
    return load_config(BodyTrainConfig, "configs/body.yaml", overrides)


def test_training_runs_and_writes_weights_that_load(tmp_path):
    from posekit.body.fitter import BodyFitter
    from posekit.body.training import train_body

    result = train_body(_tiny_config(3), tmp_path, progress=False)
    assert result.weights_path.is_file()
    assert all(np.isfinite(row["loss"]) for row in result.history)
    assert {"unseen_v2v_cm", "common_part_acc"} <= set(result.metrics)
    fitter = BodyFitter.from_pretrained(result.weights_path)
    assert fitter.net.config.centres1 == TINY["centres1"]


def test_training_mixes_kinect_views_and_validates_on_them(tmp_path):
    from posekit.body.training import train_body

    cfg = _tiny_config(1)
    cfg.data.kinect_fraction = 1.0
    cfg.data.partial_fraction = 0.0
    result = train_body(cfg, tmp_path, progress=False)
    assert {"kinect_v2v_cm", "kinect_part_acc"} <= set(result.metrics)
    assert np.isfinite(result.metrics["kinect_v2v_cm"])
    cfg = _tiny_config(1)
    cfg.data.kinect_fraction = 1.5
    with pytest.raises(BadInputError):
        train_body(cfg, tmp_path / "bad", progress=False)


def test_concat_batches_keeps_samples_in_order():
    from posekit.body.clouds import concat_batches, make_body_batch, make_kinect_batch
    from posekit.body.model import load_body_model

    body = load_body_model()
    a = make_body_batch(body, np.random.default_rng(0), 2, 256, "common")
    k = make_kinect_batch(body, np.random.default_rng(1), 1, 256, "common")
    both = concat_batches([a, k])
    assert len(both) == 3 and both.up is None
    assert torch.equal(both.points[2], k.points[0]) and torch.equal(both.labels[:2], a.labels)
    assert concat_batches([k, k]).up.shape == (2, 3)


@pytest.mark.slow
def test_training_under_torchrun_two_cpu_processes(tmp_path):
    script = tmp_path / "ddp_body.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_body_network import _tiny_config
        from posekit.body.training import train_body
        import torch.distributed as dist
        r = train_body(_tiny_config(4), sys.argv[1], progress=False)
        if dist.get_rank() == 0:
            print("WEIGHTS", r.weights_path, "WORLD", dist.get_world_size())
        dist.destroy_process_group()
    """))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script),
           str(tmp_path / "run")]
    root = str(Path(__file__).parents[1])  # this checkout's posekit, not whichever one is installed
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH", "")]))}
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=300, cwd=root, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "WORLD 2" in proc.stdout
    from posekit.io.weights import load_weights

    _, meta = load_weights(tmp_path / "run" / "model.pt", return_metadata=True)
    assert meta["world_size"] == 2 and meta["engine"] == "body"


def test_time_budget_ends_a_run_early_and_records_the_steps_taken(tmp_path):
    from posekit.body.training import train_body

    cfg = _tiny_config(10**6)
    cfg.train.budget_minutes = 0.05  # 3 s
    result = train_body(cfg, tmp_path, progress=False)
    assert 1 <= result.steps < 10**6
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert state["step"] == result.steps and state["seconds"] >= 3.0


def test_compounding_run_keeps_a_chain_and_promotes_only_an_improvement(tmp_path):
    from posekit import pretrained
    from posekit.body.training import model_chain, promote_if_better, train_body
    from posekit.io.weights import load_weights, save_weights

    first = train_body(_tiny_config(2), tmp_path / "first", progress=False)
    start = tmp_path / "start.pt"
    start.write_bytes(first.weights_path.read_bytes())
    original = tmp_path / "original.pt"  # the start may be replaced by the run (promotion)
    original.write_bytes(first.weights_path.read_bytes())
    cfg = _tiny_config(2)
    cfg.resume_from = str(start)
    cfg.network = BodyNetConfig()  # the start file's network config must win over the YAML's
    second = train_body(cfg, tmp_path / "second", progress=False)
    meta = pretrained.load(second.weights_path, engine="body").metadata
    chain = meta["chain"]
    assert len(chain) == 2 and chain[-1]["steps"] == 2 and meta["total_steps"] == 4
    assert {"unseen_v2v_cm", "common_v2v_cm"} <= set(chain[-1]["metrics_before"])
    assert {"before_unseen_v2v_cm", "promoted"} <= set(second.metrics)
    assert model_chain({}) == [] and len(model_chain({"command": "x", "steps": 3, "metrics": {}})) == 1
    # compare_weights validates several files on the same clouds: the trainer's before and after.
    from posekit.body.training import compare_weights

    both = compare_weights([str(original), str(second.weights_path)], samples=2, kinect=False)
    for k in ("common_v2v_cm", "unseen_part_acc"):
        assert both[str(original)][k] == pytest.approx(second.metrics[f"before_{k}"], rel=1e-4)
        assert both[str(second.weights_path)][k] == pytest.approx(second.metrics[k], rel=1e-4)
    # promote_if_better: the target changes only when the validation score drops.
    target = tmp_path / "target.pt"
    save_weights({"w": torch.zeros(1)}, target, metadata={"engine": "body"})
    worse, better = {"common_v2v_cm": 10.0, "unseen_v2v_cm": 30.0}, {"common_v2v_cm": 9.0, "unseen_v2v_cm": 29.0}
    assert not promote_if_better(second.weights_path, target, better, worse)
    assert set(load_weights(target)) == {"w"}
    assert promote_if_better(second.weights_path, target, worse, better)
    # A set both files were validated on counts, and a gain on one set cannot pay for a loss on another.
    from posekit.body.training import is_improvement

    assert is_improvement({**worse, "kinect_v2v_cm": 30.0}, {**better, "kinect_v2v_cm": 29.0})
    assert not is_improvement({**worse, "kinect_v2v_cm": 30.0}, {**better, "kinect_v2v_cm": 30.5})
    assert not is_improvement(worse, {"common_v2v_cm": 5.0, "unseen_v2v_cm": 30.1})  # mean lower, unseen up
    assert is_improvement(worse, {**better, "kinect_v2v_cm": 99.0})  # measured on one file only: not compared
    assert "chain" in load_weights(target, return_metadata=True)[1]
