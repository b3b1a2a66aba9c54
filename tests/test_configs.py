"""The YAML files in configs/ load into their dataclasses and document the real defaults."""

from pathlib import Path

import numpy as np
import pytest

from posekit.cli import main
from posekit.config import load_config
from posekit.data.scenes import SynthConfig
from posekit.io.bop import BopDataset

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_synth_config_file_equals_builtin_defaults():
    assert load_config(SynthConfig, CONFIGS / "synth_bop.yaml") == SynthConfig()


def test_synth_cli_applies_config_and_overrides(tmp_path):
    cfg = tmp_path / "small.yaml"
    cfg.write_text("width: 96\nheight: 72\nobjects_per_scene: [2, 2]\nn_procedural_objects: 3\n")
    out = tmp_path / "ds"
    rc = main(["synth", "bop", "--models", "procedural", "--out", str(out), "--images", "1",
               "--config", str(cfg), "--set", "scene.camera_distance=[0.5,0.5]",
               "--set", "sensor_noise=false", "--quiet"])
    assert rc == 0
    ds = BopDataset(out)
    img = ds.load_image(ds.scene_ids[0], 0)
    assert img.depth.shape == (72, 96) and len(img.gt) == 2
    # camera 0.5 m from the look-at point: the objects lie about that far away
    dist = [np.linalg.norm(g.t) for g in img.gt]
    assert 0.3 < min(dist) and max(dist) < 0.75
    # sensor_noise=false keeps the perfect rendered depth: no holes on any visible object
    img = ds.load_image(ds.scene_ids[0], 0, masks=True)
    assert all((img.depth[m] > 0).all() for m in img.masks_visib)
    # an explicit flag beats the config file
    out2 = tmp_path / "ds2"
    assert main(["synth", "bop", "--models", "procedural", "--out", str(out2), "--images", "1",
                 "--config", str(cfg), "--width", "64", "--height", "48", "--quiet"]) == 0
    assert BopDataset(out2).load_image(0, 0).depth.shape == (48, 64)


def test_synth_cli_rejects_unknown_config_key(tmp_path, capsys):
    rc = main(["synth", "bop", "--models", "procedural", "--out", str(tmp_path / "x"),
               "--set", "scene.camera_distanse=[1,2]", "--quiet"])
    assert rc == 1
    assert "camera_distanse" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_synth_refuses_bad_split_and_missing_models_before_writing(tmp_path, capsys):
    out = tmp_path / "ds"
    assert main(["synth", "bop", "--models", "procedural", "--out", str(out), "--split", "../evil",
                 "--quiet"]) == 1
    assert "split" in capsys.readouterr().err
    assert main(["synth", "bop", "--models", str(tmp_path / "no_models"), "--out", str(out), "--quiet"]) == 1
    assert "models_info.json" in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "evil").exists()


@pytest.mark.slow
def test_synth_output_does_not_depend_on_workers(tmp_path):
    import filecmp

    from posekit.data.scenes import synthesize_bop_dataset

    kw = {"n_scenes": 2, "n_images": 2, "seed": 5, "width": 80, "height": 60, "objects_per_scene": 2,
              "n_procedural_objects": 3, "progress": False}
    a = synthesize_bop_dataset("procedural", tmp_path / "a", workers=1, **kw)
    b = synthesize_bop_dataset("procedural", tmp_path / "b", workers=2, **kw)
    assert a.n_images == b.n_images == 4
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert files_a == files_b and len(files_a) > 20
    mismatch = [f for f in files_a if not filecmp.cmp(tmp_path / "a" / f, tmp_path / "b" / f, shallow=False)]
    assert mismatch == []
