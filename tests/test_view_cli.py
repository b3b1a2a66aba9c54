"""View engine end to end: predict-view (with bad inputs), synth symsol/views, bench view --quick."""

import json
from dataclasses import asdict

import numpy as np
import pytest
import torch
from PIL import Image

from posekit.cli import main
from posekit.data.symsol import render_symsol
from posekit.errors import BadInputError, CorruptFileError
from posekit.io.weights import save_weights
from posekit.view.estimator import ViewPoseEstimator, prepare_image
from posekit.view.network import ViewNetConfig
from posekit.view.training import ViewDataConfig, ViewTrainConfig, build_model

TINY = {"image_size": 32, "encoder_channels": [4, 6], "lmax": 3, "s2_channels": 4, "so3_channels": 3,
            "nonlinearity_grid_level": 1, "train_grid_level": 1}


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    """Untrained tiny induced and I2S models saved like training runs (no training needed)."""
    out = tmp_path_factory.mktemp("models")
    paths = {}
    for head in ("induced", "i2s"):
        torch.manual_seed(0)
        cfg = ViewTrainConfig(model=ViewNetConfig(head=head, **TINY), data=ViewDataConfig(eval_grid_level=1))
        model = build_model(cfg.model)
        paths[head] = save_weights(model.state_dict(), out / f"{head}.pt",
                                   metadata={"engine": "view", "config": asdict(cfg)})
    return paths


def test_predict_view_prints_modes_and_writes_plot(tiny_models, tmp_path, capsys):
    img = tmp_path / "cube.png"
    Image.fromarray(render_symsol("cube", np.eye(3), 32)).save(img)
    rc = main(["predict-view", str(img), "--model", str(tiny_models["induced"]), "--png", str(tmp_path / "d.png"),
               "--json", str(tmp_path / "m.json"), "--top", "3", "--level", "3"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "top 3 modes" in out and "wrote" in out
    assert (tmp_path / "d.png").stat().st_size > 2000
    doc = json.loads((tmp_path / "m.json").read_text())
    modes = doc["modes"]
    R = np.array(modes[0]["R_cam_obj"])
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-9)
    # the JSON is the distribution's to_dict (one result vocabulary) plus the inputs
    assert doc["level"] == 3 and np.array(doc["rotation_covariance"]).shape == (3, 3) and len(modes) == 3


def test_bad_images_are_converted_or_refused(tiny_models, tmp_path, capsys):
    est = ViewPoseEstimator.from_pretrained(tiny_models["i2s"])
    rgb = render_symsol("tet", np.eye(3), 32)
    ref = est.predict(rgb).probs
    gray = rgb.mean(-1).astype(np.uint8)
    assert prepare_image(gray, 32).shape == (32, 32, 3)
    rgba = np.concatenate([rgb, np.full((32, 32, 1), 255, np.uint8)], -1)
    np.testing.assert_allclose(est.predict(rgba).probs, ref)  # opaque RGBA == RGB
    np.testing.assert_allclose(est.predict(rgb.astype(np.float32) / 255).probs, ref, atol=1e-9)
    with pytest.warns(UserWarning, match="resizing"):
        assert est.predict(np.repeat(np.repeat(rgb, 2, 0), 2, 1)).probs.shape == ref.shape
    with pytest.raises(BadInputError, match="empty"):
        est.predict(np.zeros((0, 0, 3), np.uint8))
    with pytest.raises(BadInputError, match="shape"):
        est.predict(np.zeros((32, 32, 5), np.uint8))
    with pytest.raises(BadInputError, match="NaN"):
        est.predict(np.full((32, 32, 3), np.nan))
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    for name in ("empty.png", "bad.png", "missing.png"):
        rc = main(["predict-view", str(tmp_path / name), "--model", str(tiny_models["i2s"])])
        assert rc == 1
        assert "error" in capsys.readouterr().err
    with pytest.raises(CorruptFileError):
        est.predict(tmp_path / "bad.png")
    rc = main(["predict-view", str(tmp_path / "bad.png"), "--model", "view-no-such-model"])
    assert rc == 1


def test_bench_view_quick_json_keys(tiny_models, tmp_path, capsys):
    out = tmp_path / "bench.json"
    rc = main(["bench", "view", "--quick", "--per-shape", "1", "--level", "1", "--json", str(out),
               "--induced", str(tiny_models["induced"]), "--i2s", str(tiny_models["i2s"])])
    assert rc == 0
    res = json.loads(out.read_text())
    assert res["benchmark"] == "view" and set(res["methods"]) == {"induced", "i2s"}
    keys = {"loglik_mean", "loglik_per_shape", "spread_deg", "acc15", "acc30", "median_err_deg",
            "latency_ms_median", "n_images", "equivariance_error"}
    for m in res["methods"].values():
        assert keys <= set(m)
        assert set(m["loglik_per_shape"]) == {"tet", "cube", "icosa", "cone", "cyl"}
        assert m["n_images"] == 5 and 0 <= m["acc15"] <= m["acc30"] <= 1
        assert m["equivariance_error"] < 1e-5
        # an untrained model is close to uniform: log-likelihood near log(1/pi^2)
        assert abs(m["loglik_mean"] - np.log(1 / np.pi ** 2)) < 1.0
    assert "equivariance error" in capsys.readouterr().out


def test_synth_symsol_and_views(tmp_path):
    assert main(["synth", "symsol", "--out", str(tmp_path / "s"), "--shapes", "cube", "tetX", "--per-shape", "2",
                 "--size", "24", "--quiet"]) == 0
    z = np.load(tmp_path / "s" / "symsol.npz")
    assert z["images"].shape == (4, 24, 24, 3) and z["equivalent_offsets"][-1] == len(z["equivalent_rotations"])
    assert main(["synth", "views", "--models", "procedural", "--out", str(tmp_path / "v"), "--per-model", "1",
                 "--size", "32", "--quiet"]) == 0
    v = np.load(tmp_path / "v" / "views.npz")
    assert v["crops"].shape[1:] == (32, 32, 3)
    # the allocentric label is the egocentric one seen from the crop camera, whose axis is the
    # ray through the (jittered) box centre
    K = v["K"]
    for R_ego, R_allo, Q, (x, y, w, h) in zip(v["R_cam_obj"], v["R_crop_obj"], v["R_cam_crop"], v["bbox"]):
        np.testing.assert_allclose(Q @ R_allo, R_ego, atol=1e-9)
        ray = np.linalg.inv(K) @ [x + (w - 1) / 2, y + (h - 1) / 2, 1]
        np.testing.assert_allclose(Q[:, 2], ray / np.linalg.norm(ray), atol=1e-9)


def test_demo_uses_shipped_weights_and_finds_the_symmetric_modes(tmp_path):
    from posekit.view.demo import run_demo

    lines = run_demo(tmp_path, seed=0)
    assert (tmp_path / "view_cube.png").stat().st_size > 5000 and (tmp_path / "view_cone.png").is_file()
    cube = next(line for line in lines if line.startswith("view: cube"))
    ll = float(cube.split("log-likelihood ")[1].split()[0])
    assert ll > 0.0  # far above the uniform -2.29: the shipped model has learnt the cube
    err = float(cube.split("mode error ")[1].split()[0])
    assert err < 20.0
