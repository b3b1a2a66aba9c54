"""Registration benchmark (posekit.bench.registration), BOP prediction
(posekit.registration.bop_predict) and their CLI adapters, with stand-in methods."""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from posekit.bench import registration as bench
from posekit.errors import BadInputError
from posekit.geometry.rigid_np import make_pose, rotation_about_axis
from posekit.registration import baselines


def _above_the_object(obj, points):
    """Deliberately wrong: identity rotation, 20 cm behind the observed centroid."""
    return make_pose(np.eye(3), points.mean(0) + np.array([0.0, 0.0, 0.2]))


def _always_fails(obj, points):
    raise BadInputError("stand-in failure")


class _SlowIcp:
    """ICP from the centroid plus 30 ms, and a prepare hook that must run before timing."""

    def __init__(self):
        self.prepared = set()

    def prepare(self, obj):
        self.prepared.add(obj.obj_id)

    def __call__(self, obj, points):
        assert obj.obj_id in self.prepared, "prepare() must run before the timed calls"
        time.sleep(0.03)
        return baselines.register_open3d_icp(obj.points, obj.normals, points, obj.diameter)[0]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    records: list = []
    slow = _SlowIcp()
    methods = {"open3d_fpfh_ransac_icp": bench.PeerMethod(baselines.register_open3d_fpfh_ransac_icp),
               "wrong": _above_the_object, "failing": _always_fails, "slow_icp": slow}
    result = bench.run_registration_benchmark(
        "procedural", seed=3, methods=methods, noise_levels=("kinect", "clean"), n_scenes=1, n_images=2,
        width=160, height=120, n_procedural_objects=4, work_dir=tmp_path_factory.mktemp("bench"),
        progress=False, records=records)
    return result, records


def test_benchmark_json_shape(tiny_run):
    result, _ = tiny_run
    assert set(result) == {"benchmark", "settings", "methods"}
    assert result["benchmark"] == "registration"
    assert list(result["methods"]) == ["open3d_fpfh_ransac_icp", "wrong", "failing", "slow_icp"]
    for m in result["methods"].values():
        assert set(bench.METRIC_KEYS) <= set(m)
        assert set(m["by_visible_fraction"]) == {"0.1-0.5", "0.5-0.7", "0.7-0.9", "0.9-1.0"}
        assert set(m["by_noise"]) == {"kinect", "clean"}
    s = result["settings"]
    assert s["models"] == "procedural" and s["dataset_seed"] == bench.HELD_OUT_SEED_OFFSET + 3
    assert s["headline"]["noise"] == "kinect" and s["headline"]["n_targets"] > 0
    assert s["noise_levels"]["clean"] is None
    json.dumps(result, allow_nan=False)  # no NaN/inf: medians of failures are null


def test_benchmark_numbers_tell_methods_apart(tiny_run):
    result, records = tiny_run
    methods = result["methods"]
    n = result["settings"]["headline"]["n_targets"]
    head = [r for r in records if r["method"] == "wrong" and r["noise"] == "kinect" and r["visib_fract"] >= 0.5]
    assert len(head) == n
    assert all(m["n_targets"] == n for m in methods.values())
    # the wrong answer is 20 cm off: nothing counts as correct
    wrong = methods["wrong"]
    assert wrong["add_s_recall"] == 0.0 and wrong["trans_recall_1cm"] == 0.0
    assert wrong["median_trans_err_mm"] > 100.0
    # a method that always raises: all failed, recalls 0, medians undefined
    failing = methods["failing"]
    assert failing["n_failed"] == n and failing["add_s_recall"] == 0.0
    assert failing["median_rot_err_deg"] is None and failing["median_trans_err_mm"] is None
    # the real peer finds objects and is far more accurate than the wrong answer
    fpfh = methods["open3d_fpfh_ransac_icp"]
    assert fpfh["add_s_recall"] > 0.3
    assert fpfh["median_trans_err_mm"] < wrong["median_trans_err_mm"] / 5
    # latency is the timed call: 30 ms of sleep are in it, prepare() is not
    assert methods["slow_icp"]["latency_ms_median"] >= 30.0
    assert methods["slow_icp"]["latency_ms_p95"] >= methods["slow_icp"]["latency_ms_median"]
    # per-noise counts add up: the same targets at both noise levels
    assert fpfh["by_noise"]["kinect"]["n_targets"] == fpfh["by_noise"]["clean"]["n_targets"] == n
    bins = fpfh["by_visible_fraction"]
    assert sum(bins[k]["n_targets"] for k in ("0.5-0.7", "0.7-0.9", "0.9-1.0")) == n


def test_format_table_lists_methods(tiny_run):
    result, _ = tiny_run
    table = bench.format_table(result)
    for name in result["methods"]:
        assert name in table
    assert "ADD(-S)%" in table and "by visible fraction" in table and "kinect" in table


def test_pose_errors_are_symmetry_aware():
    from posekit.data.meshes import procedural_mesh
    from posekit.io.bop import symmetry_transformations

    mesh, info = procedural_mesh(1, family="box")
    syms = symmetry_transformations(info)
    assert len(syms) > 1
    # ADD(-S) on the box's corners, which its symmetries map onto each other exactly
    obj = bench.BenchObject(1, mesh, info.diameter, True, syms, mesh.vertices, mesh.vertices, mesh.vertices)
    T_gt = make_pose(rotation_about_axis((0, 1, 1), 0.4), (0.1, 0.0, 0.8))
    flipped = T_gt @ syms[1]  # the box in a pose indistinguishable from the GT
    e = bench.pose_errors(flipped, T_gt, obj)
    assert e["rot_deg"] < 1e-6 and e["trans_m"] < 1e-9 and e["add_rel"] < 1e-6
    turned = T_gt @ make_pose(rotation_about_axis((0, 0, 1), math.radians(10)))
    e = bench.pose_errors(turned, T_gt, obj)
    assert e["rot_deg"] == pytest.approx(10.0, abs=1e-6)
    assert bench.pose_errors(None, T_gt, obj)["add_rel"] == math.inf
    # the same flip is a full error (the symmetry's angle) for an asymmetric object
    asym = bench.BenchObject(1, mesh, info.diameter, False, np.eye(4)[None], mesh.vertices, mesh.vertices,
                             obj.eval_points)
    angle = math.degrees(math.acos((np.trace(syms[1][:3, :3]) - 1.0) / 2.0))
    assert angle > 80.0
    assert bench.pose_errors(flipped, T_gt, asym)["rot_deg"] == pytest.approx(angle, abs=1e-6)


def test_unknown_method_and_noise_are_clear_errors():
    with pytest.raises(BadInputError, match="not available"):
        bench.run_registration_benchmark("procedural", methods=["no_such_method"], progress=False)
    with pytest.raises(BadInputError, match="noise level"):
        bench.run_registration_benchmark("procedural", methods={"w": _above_the_object}, noise_levels=["loud"],
                                         n_scenes=1, n_images=1, width=64, height=48, progress=False)


# ----------------------------------------------------------------------------- predict bop


class _OracleEstimator:
    """Estimator-shaped stand-in that answers the GT pose of the instance whose mask it gets."""

    def __init__(self, dataset):
        self.poses = {}
        for scene_id in dataset.scene_ids:
            for im_id in dataset.image_ids(scene_id):
                for gt_id, gt in enumerate(dataset.scene_gt(scene_id)[im_id]):
                    mask = dataset.load_mask(scene_id, im_id, gt_id, visible=True)
                    self.poses[hashlib.sha1(mask.tobytes()).hexdigest()] = gt.T_cam_model
        self.prepared: list[int] = []

    def prepare_model(self, mesh, obj_id=None, symmetries=None):
        self.prepared.append(obj_id)
        return obj_id

    def estimate(self, model, points=None, *, depth=None, K=None, mask=None, bbox=None):
        if mask is None:
            return SimpleNamespace(success=False, reason="needs a mask", time_ms=2.0)
        T = self.poses[hashlib.sha1(mask.tobytes()).hexdigest()]
        return SimpleNamespace(success=True, reason="", R=T[:3, :3], t=T[:3, 3], score=0.9, time_ms=5.0,
                               T_cam_model=T)


@pytest.fixture(scope="module")
def tiny_bop(tmp_path_factory):
    from posekit.data.scenes import synthesize_bop_dataset
    from posekit.io.bop import BopDataset

    root = tmp_path_factory.mktemp("bop")
    synthesize_bop_dataset("procedural", root, n_scenes=2, n_images=2, seed=5, width=160, height=120,
                           n_procedural_objects=3, objects_per_scene=(2, 3), progress=False)
    return root, BopDataset(root)


def test_predict_bop_gt_masks_scores_perfectly(tiny_bop, tmp_path):
    from posekit.eval.bop_scoring import evaluate_bop
    from posekit.io.bop import read_results_csv, write_results_csv
    from posekit.registration.bop_predict import predict_bop

    root, dataset = tiny_bop
    estimator = _OracleEstimator(dataset)
    summary: dict = {}
    estimates = predict_bop(root, estimator, masks="gt", progress=False, summary=summary)
    assert estimates and summary["estimates"] == len(estimates)
    assert sorted(estimator.prepared) == sorted(set(estimator.prepared)), "each model is prepared once"
    # per-image time: the sum of the estimator's times over the image's calls
    for key in {(e.scene_id, e.im_id) for e in estimates}:
        rows = [e for e in estimates if (e.scene_id, e.im_id) == key]
        assert len({e.time for e in rows}) == 1
        assert rows[0].time == pytest.approx(0.005 * len(rows))
    path = write_results_csv(tmp_path / "results.csv", estimates)
    scores = evaluate_bop(dataset, read_results_csv(path), progress=False)
    assert scores["overall"]["ar"] == pytest.approx(1.0)
    assert scores["overall"]["add_s_recall"] == pytest.approx(1.0)


def test_predict_bop_without_masks_uses_the_fallback_path(tiny_bop):
    from posekit.registration.bop_predict import predict_bop

    root, dataset = tiny_bop
    summary: dict = {}
    estimates = predict_bop(root, _OracleEstimator(dataset), masks="none", progress=False, summary=summary)
    assert estimates == []
    assert summary["failures"] == {"needs a mask": summary["targets"]}
    with pytest.raises(BadInputError, match="masks"):
        predict_bop(root, _OracleEstimator(dataset), masks="oracle")


def test_predict_bop_survives_an_unusable_model(tiny_bop):
    from posekit.registration.bop_predict import predict_bop

    root, dataset = tiny_bop
    bad_id = dataset.targets()[0].obj_id

    class Picky(_OracleEstimator):
        def prepare_model(self, mesh, obj_id=None, symmetries=None):
            if obj_id == bad_id:
                raise BadInputError("stand-in: this model is unusable")
            return super().prepare_model(mesh, obj_id, symmetries)

    summary: dict = {}
    estimates = predict_bop(root, Picky(dataset), progress=False, summary=summary)
    n_bad = sum(1 for t in dataset.targets() if t.obj_id == bad_id)
    assert estimates and all(e.obj_id != bad_id for e in estimates)
    assert summary["failures"] == {f"model {bad_id}: BadInputError: stand-in: this model is unusable": n_bad}


def test_predict_bop_splits_scenes_across_ranks(tiny_bop):
    from posekit.registration.bop_predict import predict_bop

    root, dataset = tiny_bop
    full = predict_bop(root, _OracleEstimator(dataset), progress=False)
    shards = [predict_bop(root, _OracleEstimator(dataset), progress=False, rank=r, world_size=2) for r in (0, 1)]
    scenes = [{e.scene_id for e in shard} for shard in shards]
    assert scenes[0] and scenes[1] and not scenes[0] & scenes[1]

    def key(e):
        return (e.scene_id, e.im_id, e.obj_id, tuple(np.round(e.t, 9)))

    assert sorted(map(key, shards[0] + shards[1])) == sorted(map(key, full))
    with pytest.raises(BadInputError, match="rank"):
        predict_bop(root, _OracleEstimator(dataset), rank=2, world_size=2)


@pytest.mark.slow
def test_predict_bop_under_torchrun_merges_on_rank_0(tiny_bop, tmp_path):
    root, dataset = tiny_bop
    script = tmp_path / "predict_ddp.py"
    script.write_text(textwrap.dedent(f"""
        import json, sys
        import torch.distributed as dist
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_registration_bench import _OracleEstimator
        from posekit.io.bop import BopDataset
        from posekit.registration.bop_predict import predict_bop
        dist.init_process_group("gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
        root = {str(root)!r}
        out = predict_bop(root, _OracleEstimator(BopDataset(root)), progress=False, rank=rank, world_size=world)
        # One file per rank: the two processes' stdout lines can interleave.
        with open({str(tmp_path)!r} + f"/rank{{rank}}.txt", "w") as fh:
            fh.write(" ".join(["RANK", str(rank), "N", str(len(out)), "SCENES",
                               json.dumps(sorted({{e.scene_id for e in out}}), separators=(",", ":"))]))
        dist.destroy_process_group()
    """))
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          str(script)], capture_output=True, text=True, timeout=240, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    from posekit.registration.bop_predict import predict_bop

    n_full = len(predict_bop(root, _OracleEstimator(dataset), progress=False))
    lines = {str(r): (tmp_path / f"rank{r}.txt").read_text().split() for r in (0, 1)
             if (tmp_path / f"rank{r}.txt").is_file()}
    assert set(lines) == {"0", "1"}, out.stdout[-2000:] + out.stderr[-2000:]
    assert int(lines["0"][3]) == n_full and json.loads(lines["0"][5]) == dataset.scene_ids
    assert int(lines["1"][3]) == 0  # only rank 0 holds the merged list


# ----------------------------------------------------------------------------- CLI


def _parser():
    from posekit.cli.registration_bench import register_bench, register_predict

    parser = argparse.ArgumentParser()
    groups = parser.add_subparsers(dest="group")
    register_bench(groups.add_parser("bench").add_subparsers(dest="what"))
    register_predict(groups.add_parser("predict").add_subparsers(dest="what"))
    return parser


def test_cli_parses_bench_and_predict():
    args = _parser().parse_args(["bench", "registration", "--quick", "--models", "/some/models", "--json", "o.json"])
    assert args.quick and args.models == "/some/models" and args.weights == "registration-procedural"
    assert args.noise == ["kinect", "kinect_x2"] and callable(args.func)
    args = _parser().parse_args(["predict", "bop", "--dataset", "d", "--out", "r.csv", "--masks", "none"])
    assert args.masks == "none" and args.split == "test" and str(args.out) == "r.csv" and callable(args.func)
    with pytest.raises(SystemExit):
        _parser().parse_args(["predict", "bop", "--dataset", "d", "--out", "r.csv", "--masks", "maybe"])


def test_cli_bench_writes_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    args = _parser().parse_args(["bench", "registration", "--quick", "--scenes", "1", "--images", "1",
                                 "--methods", "open3d_icp", "--noise", "clean", "--json", str(out), "--quiet"])
    assert args.func(args) == 0
    result = json.loads(out.read_text())
    assert list(result["methods"]) == ["open3d_icp"] and result["settings"]["width"] == 320
    assert "open3d_icp" in capsys.readouterr().out


def test_the_diffusion_ablation_is_a_benchmark_method():
    """The benchmark reports posekit+icp without the reverse diffusion beside it (issue 11)."""
    methods = bench.default_methods(names=["posekit+icp", "ablation_no_diffusion"])
    full, ablation = methods["posekit+icp"].estimator, methods["ablation_no_diffusion"].estimator
    assert full.schedule is not None and full.refine_icp
    assert ablation.schedule is None and ablation.refine_icp
class _RecordingEstimator(_OracleEstimator):
    """The oracle, recording the RGB prior it is given (the +view methods must pass it)."""

    num_hypotheses = 24

    def __init__(self, dataset):
        super().__init__(dataset)
        self.calls: list[dict] = []

    def estimate(self, model, points=None, *, depth=None, K=None, mask=None, bbox=None, rgb=None, view=None,
                 view_starts=None):
        self.calls.append({"rgb": rgb, "view": view, "view_starts": view_starts})
        return super().estimate(model, points, depth=depth, K=K, mask=mask, bbox=bbox)


class _StandInView:
    def predict(self, *args, **kwargs):  # never called by the recording estimator
        raise AssertionError


def test_rgb_view_prior_runs_each_posekit_method_with_and_without_it(tiny_bop):
    root, dataset = tiny_bop
    est = _RecordingEstimator(dataset)
    view = _StandInView()
    result = bench.run_registration_benchmark(dataset=root, methods={"posekit": bench.EstimatorMethod(est)},
                                              view=view, view_starts=6, progress=False)
    assert list(result["methods"]) == ["posekit", "posekit+view"]
    with_view = [c for c in est.calls if c["view"] is not None]
    without = [c for c in est.calls if c["view"] is None]
    assert len(with_view) == len(without) == result["methods"]["posekit"]["n_targets"] > 0
    for call in with_view:
        assert call["view"] is view and call["view_starts"] == 6
        assert call["rgb"].dtype == np.uint8 and call["rgb"].shape == (120, 160, 3)
    assert all(c["rgb"] is None for c in without)
    row = result["view_prior"]["posekit"]
    assert row["depth_only"] == "posekit" and row["with_view"] == "posekit+view"
    assert row["chains"] == [24, 6] and row["chain_ratio"] == pytest.approx(0.25)
    assert row["add_s_recall"] == [1.0, 1.0] and len(row["latency_ms_median"]) == 2
    assert result["settings"]["view_prior"]["view_starts"] == 6
    table = bench.format_table(result)
    assert "RGB view prior" in table and "24/6" in table
    json.dumps(result)


def test_rgb_view_prior_needs_a_posekit_method_and_a_mask(tiny_bop):
    root, dataset = tiny_bop
    with pytest.raises(BadInputError, match="posekit"):
        bench.run_registration_benchmark(dataset=root, methods={"wrong": _above_the_object}, view=_StandInView(),
                                         progress=False)
    with pytest.raises(BadInputError, match="masks"):
        bench.run_registration_benchmark(dataset=root, methods={"posekit": bench.EstimatorMethod(_OracleEstimator(dataset))},
                                         view=_StandInView(), masks="none", progress=False)
    with pytest.raises(BadInputError, match="view"):
        bench.run_registration_benchmark(dataset=root, methods={"posekit": bench.EstimatorMethod(_OracleEstimator(dataset))},
                                         view=42, progress=False)
    with pytest.raises(BadInputError, match="view_starts"):
        bench.run_registration_benchmark(dataset=root, methods={"posekit": bench.EstimatorMethod(_OracleEstimator(dataset))},
                                         view=_StandInView(), view_starts=0, progress=False)


@pytest.mark.slow
def test_rgb_view_prior_with_the_real_estimators(tiny_bop, tmp_path):
    """The shipped object engine with an (untrained) object view model of the dataset's ids: the
    +view method runs the estimator's RGB path end to end, with fewer chains."""
    from dataclasses import asdict

    from posekit.io.weights import save_weights
    from posekit.view.network import ViewNetConfig
    from posekit.view.object_training import ObjectViewDataConfig, ObjectViewTrainConfig
    from posekit.view.training import build_model

    root, dataset = tiny_bop
    tiny = {"image_size": 32, "encoder_channels": [4, 6], "lmax": 3, "s2_channels": 4, "so3_channels": 3,
            "nonlinearity_grid_level": 1, "train_grid_level": 1, "num_objects": len(dataset.obj_ids)}
    cfg = ObjectViewTrainConfig(model=ViewNetConfig(**tiny),
                                data=ObjectViewDataConfig(models="procedural", obj_ids=list(dataset.obj_ids),
                                                          eval_grid_level=1))
    cfg.data.crop.image_size = 32
    weights = save_weights(build_model(cfg.model).state_dict(), tmp_path / "view.pt",
                           metadata={"engine": "view", "config": asdict(cfg)})
    result = bench.run_registration_benchmark(dataset=root, methods=["posekit"], view=str(weights), view_starts=4,
                                              progress=False)
    assert list(result["methods"]) == ["posekit", "posekit+view"]
    assert result["methods"]["posekit+view"]["n_failed"] == 0
    assert result["view_prior"]["posekit"]["chains"][1] == 4
    assert result["methods"]["posekit+view"]["stage_ms"]["coarse_search"] >= 0
    assert result["methods"]["posekit+view"]["stage_ms"]["view"] > 0  # the view network's time is a stage
    assert "view" not in result["methods"]["posekit"]["stage_ms"]


def test_cli_rgb_flag_names_the_view_model():
    args = _parser().parse_args(["bench", "registration", "--quick", "--rgb"])
    assert args.rgb == "view-lmo" and args.view_starts == 8
    args = _parser().parse_args(["bench", "registration", "--rgb", "my.pt", "--view-starts", "4"])
    assert args.rgb == "my.pt" and args.view_starts == 4
    assert _parser().parse_args(["bench", "registration"]).rgb is None


def test_predict_bop_with_a_view_model_passes_each_image_rgb(tiny_bop):
    """predict bop --view: every estimate gets the image's RGB, the view model and view_starts;
    without masks there is nothing to crop and the prior is refused."""
    from posekit.registration.bop_predict import predict_bop

    root, dataset = tiny_bop
    est = _RecordingEstimator(dataset)
    view = _StandInView()
    estimates = predict_bop(root, est, masks="gt", progress=False, view=view, view_starts=5)
    assert estimates and len(est.calls) >= len(estimates)
    for call in est.calls:
        assert call["view"] is view and call["view_starts"] == 5
        assert call["rgb"].dtype == np.uint8 and call["rgb"].ndim == 3
    est.calls.clear()
    predict_bop(root, est, masks="gt", progress=False)
    assert est.calls and all(c["view"] is None and c["rgb"] is None for c in est.calls)
    with pytest.raises(BadInputError, match="view prior"):
        predict_bop(root, est, masks="none", progress=False, view=view)


def test_cli_predict_bop_view_flags():
    args = _parser().parse_args(["predict", "bop", "--dataset", "d", "--out", "o.csv", "--view", "view-lmo",
                                 "--view-starts", "4"])
    assert args.view == "view-lmo" and args.view_starts == 4
    assert _parser().parse_args(["predict", "bop", "--dataset", "d", "--out", "o.csv"]).view is None
