"""Reliability at posekit's edges (issue 14): every failure is a posekit error, never a raw one.

Output paths that cannot be written, evaluations asked about targets without ground truth,
bad synth settings, and datasets whose writer was interrupted.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from posekit.cli import main
from posekit.errors import (
    BadInputError,
    CorruptFileError,
    IncompleteDatasetError,
    MissingFileError,
    OutputPathError,
    PosekitError,
)
from posekit.io import bop


def _writers():
    """(name, write(path)) for every file writer posekit has."""
    from posekit.config import save_config
    from posekit.data.scenes import SceneConfig
    from posekit.io.atomic import atomic_write_text
    from posekit.io.depth import write_depth_image
    from posekit.io.mesh import Mesh, write_mesh
    from posekit.io.pointcloud import write_point_cloud
    from posekit.io.weights import save_weights
    from posekit.viz import save_panels

    cloud = np.random.default_rng(0).random((10, 3)).astype(np.float32)
    mesh = Mesh(np.eye(3), [[0, 1, 2]])
    import torch

    return [
        ("text", lambda p: atomic_write_text(p.with_suffix(".json"), "{}")),
        ("ply", lambda p: write_point_cloud(cloud, p.with_suffix(".ply"))),
        ("pcd", lambda p: write_point_cloud(cloud, p.with_suffix(".pcd"))),
        ("npy", lambda p: write_point_cloud(cloud, p.with_suffix(".npy"))),
        ("mesh", lambda p: write_mesh(mesh, p.with_suffix(".obj"))),
        ("depth", lambda p: write_depth_image(np.ones((4, 4), np.float32), p.with_suffix(".png"))),
        ("weights", lambda p: save_weights({"w": torch.zeros(2)}, p.with_suffix(".pt"))),
        ("config", lambda p: save_config(SceneConfig(), p.with_suffix(".yaml"))),
        ("bop json", lambda p: bop.save_json(p.with_suffix(".json"), {"a": 1})),
        ("plot", lambda p: save_panels(p.with_suffix(".png"), [("x", np.zeros((4, 4, 3), np.uint8))])),
    ]


WRITERS = _writers()


@pytest.mark.parametrize("name,write", WRITERS, ids=[w[0] for w in WRITERS])
def test_output_path_that_is_a_folder(tmp_path, name, write):
    target = tmp_path / "out"
    for suffix in (".json", ".ply", ".pcd", ".npy", ".obj", ".png", ".pt", ".yaml"):
        target.with_suffix(suffix).mkdir()
    with pytest.raises(OutputPathError, match="folder"):
        write(target)


@pytest.mark.parametrize("name,write", WRITERS, ids=[w[0] for w in WRITERS])
def test_output_path_under_a_file(tmp_path, name, write):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputPathError, match="file"):
        write(tmp_path / "file" / "sub" / "out")


@pytest.mark.parametrize("name,write", WRITERS[:3], ids=[w[0] for w in WRITERS[:3]])
def test_output_path_without_permission(tmp_path, name, write):
    if os.geteuid() == 0:  # root writes anywhere on a normal file system; /sys refuses even root
        with pytest.raises(OutputPathError):
            write(__import__("pathlib").Path("/sys/posekit_test_out"))
        return
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(OutputPathError, match="ermission"):
            write(ro / "out")
    finally:
        ro.chmod(0o700)


def test_output_path_of_wrong_type():
    from posekit.io.atomic import atomic_write_text

    for bad in (None, 3, b"out.json"):
        with pytest.raises(BadInputError, match="path"):
            atomic_write_text(bad, "x")


def test_output_folder_that_is_a_file(tmp_path):
    from posekit.io.atomic import atomic_directory, output_directory

    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputPathError, match="existing file"):
        output_directory(tmp_path / "f")
    with pytest.raises(OutputPathError, match="exists already"), atomic_directory(tmp_path / "f"):
        pass


# ------------------------------------------------------------------ eval bop counts every target


@pytest.fixture
def tiny_dataset(tmp_path):
    from test_bop_io import write_tiny_dataset

    root = tmp_path / "ds"
    _, _, _, gts, _, _ = write_tiny_dataset(root, np.random.default_rng(0))
    ests = [bop.PoseEstimate(7, im, g.obj_id, 1.0, g.R, g.t) for im, gs in gts.items() for g in gs]
    return root, ests


def _score(root, ests, targets=None):
    from posekit.eval.bop_scoring import evaluate_bop

    return evaluate_bop(bop.BopDataset(root), ests, targets=targets, progress=False)


def test_eval_counts_every_target(tiny_dataset):
    root, ests = tiny_dataset
    full = _score(root, ests)
    assert full["n_targets"] == 4 and full["overall"]["add_s_recall"] == 1.0
    half = _score(root, [e for e in ests if e.im_id == 0])  # missing estimates score 0
    assert half["n_targets"] == 4 and half["overall"]["add_s_recall"] == 0.5


def test_eval_refuses_targets_of_a_scene_without_ground_truth(tiny_dataset):
    root, ests = tiny_dataset
    targets = bop.BopDataset(root).targets()
    gt_file = root / "test" / "000007" / "scene_gt.json"
    gt_file.unlink()
    with pytest.raises(MissingFileError, match="scene 7.*scene_gt.json is missing"):
        _score(root, ests, targets)
    with pytest.raises(MissingFileError, match="scene 7"):  # no targets file either
        bop.BopDataset(root).targets()
    gt_file.write_text("{}")
    with pytest.raises(CorruptFileError, match="scene 7.*no ground truth"):
        _score(root, ests, targets)


def test_eval_refuses_a_target_object_absent_from_its_image(tiny_dataset):
    root, ests = tiny_dataset
    targets = bop.BopDataset(root).targets() + [bop.BopTarget(7, 1, 5, 1)]
    with pytest.raises(CorruptFileError, match="scene 7 image 1: no ground truth of object 5"):
        _score(root, ests, targets)


def test_cli_eval_bop_with_missing_ground_truth_fails_clearly(tiny_dataset, tmp_path, capsys):
    root, ests = tiny_dataset
    bop.write_test_targets(root / "test_targets_bop19.json", bop.BopDataset(root).targets())
    (root / "test" / "000007" / "scene_gt.json").unlink()
    csv = bop.write_results_csv(tmp_path / "r.csv", ests)
    assert main(["eval", "bop", "--dataset", str(root), "--results", str(csv), "--no-progress"]) == 1
    assert "scene 7" in capsys.readouterr().err


def test_cli_json_to_a_folder_fails_clearly(tiny_dataset, tmp_path, capsys):
    root, ests = tiny_dataset
    csv = bop.write_results_csv(tmp_path / "r.csv", ests)
    (tmp_path / "scores.json").mkdir()
    rc = main(["eval", "bop", "--dataset", str(root), "--results", str(csv), "--no-progress",
               "--json", str(tmp_path / "scores.json")])
    assert rc == 1 and "is an existing folder" in capsys.readouterr().err


# ------------------------------------------------------------------ synth settings and completeness

SYNTH = ["synth", "bop", "--models", "procedural", "--scenes", "1", "--images", "1", "--quiet",
         "--procedural-objects", "2", "--objects-per-scene", "1"]


@pytest.mark.parametrize("extra,message", [
    (["--width", "1000000000"], "width must be an integer from 8 to 8192"),
    (["--width", "4"], "width must be an integer from 8 to 8192"),
    (["--set", "scene.camera_distance=[a,b]"], "camera_distance"),
    (["--set", "scene.camera_distance=[0.5]"], "expected 2 values"),
    (["--set", "scene=3"], "section"),
    (["--set", "scene.roll_deg=.nan"], "finite"),
    (["--set", "width=true"], "expected int"),
    (["--set", "nonsense"], "key.subkey=value"),
])
def test_synth_bad_settings_are_clean_errors(tmp_path, capsys, extra, message):
    assert main(SYNTH + ["--out", str(tmp_path / "out")] + extra) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # nothing written before the inputs are checked


def test_synth_out_that_is_a_file(tmp_path, capsys):
    (tmp_path / "out").write_text("x")
    assert main(SYNTH + ["--out", str(tmp_path / "out")]) == 1
    assert "existing file" in capsys.readouterr().err


def test_interrupted_dataset_is_refused_until_rewritten(tmp_path):
    out = tmp_path / "ds"
    assert main(SYNTH + ["--out", str(out), "--width", "32", "--height", "24"]) == 0
    assert not (out / bop.INCOMPLETE_MARKER).exists()
    bop.BopDataset(out)  # complete: accepted

    class Killed(Exception):
        pass

    with pytest.raises(Killed), bop.writing_dataset(out):
        raise Killed  # a writer that dies half-way leaves the marker
    with pytest.raises(IncompleteDatasetError, match="incomplete"):
        bop.BopDataset(out)
    assert main(SYNTH + ["--out", str(out), "--width", "32", "--height", "24"]) == 0  # rerun
    assert len(bop.BopDataset(out).targets()) == 1


def test_new_errors_are_posekit_errors():
    for cls in (OutputPathError, IncompleteDatasetError):
        assert issubclass(cls, PosekitError)
