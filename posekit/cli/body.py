"""Body engine commands: ``posekit fit-body``, ``posekit body make-model``, ``posekit train body``,
``posekit bench body``. Adapter only: parse arguments, call :mod:`posekit.body`, print, write files."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from posekit.cli import add_command_group


def register(subparsers: argparse._SubParsersAction) -> None:
    fit = subparsers.add_parser(
        "fit-body", help="fit the body model to a point cloud of a person (ArtEq-style network)",
        description="Fit pose, shape and translation of an SMPL-format body model to a point cloud "
                    "(PLY/PCD/XYZ/NPY/NPZ, metres) with the shipped network; optionally refine by optimisation.")
    fit.add_argument("cloud", type=Path, help="point cloud file of one person, metres")
    fit.add_argument("--out", type=Path, default=None, help="write the fitted mesh (.ply/.obj)")
    fit.add_argument("--png", type=Path, default=None, help="write an overlay picture (points, mesh, skeleton)")
    fit.add_argument("--json", type=Path, default=None, help="write the fit (rotations, betas, joints...) as JSON")
    fit.add_argument("--weights", default="body-default", help="shipped model name or model.pt path")
    fit.add_argument("--body-model", type=Path, default=None, help="SMPL-format .npz (default: procedural body)")
    fit.add_argument("--allow-pickle", action="store_true", help="allow a trusted .pkl body model")
    fit.add_argument("--scale", type=float, default=1.0, help="multiply coordinates (0.001 for mm files)")
    fit.add_argument("--refine", action="store_true", help="refine the network's fit by optimisation")
    fit.add_argument("--up", default=None, metavar="X,Y,Z",
                     help="direction away from the floor in the cloud's frame, if known (e.g. 0,-1,0 for a "
                          "level camera's frame): head-down fits are then rejected")
    fit.add_argument("--viewpoint", default="auto", metavar="X,Y,Z|none|auto",
                     help="the depth camera's position in the cloud's frame (auto: the origin when the cloud "
                          "is more than 1.2 m from it; none: no camera, e.g. a merged scan)")
    fit.add_argument("--device", default="cpu")
    fit.set_defaults(func=run_fit)

    body = add_command_group(subparsers, "body", "body model tools", "COMMAND")
    make = body.add_parser("make-model", help="write the procedural SMPL-format body model (.npz)",
                           description="Generate the openly usable procedural body (SMPL's 24-joint tree, "
                                       "a closed mesh, skinning weights, 10 shape components) as an .npz.")
    make.add_argument("--out", type=Path, required=True, help="output .npz")
    make.add_argument("--voxel", type=float, default=0.02, help="meshing voxel size, metres (default 0.02)")
    make.set_defaults(func=run_make_model)


def register_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("body", help="train the ArtEq-style body network on synthetic clouds",
                       description="Train the body network on clouds of the body model (configs/body.yaml "
                                   "on CPU, configs/body_gpu.yaml on a GPU; torchrun for several processes).")
    p.add_argument("--config", type=Path, default=Path("configs/body.yaml"), help="YAML config")
    p.add_argument("--body-model", type=Path, default=None, help="SMPL-format .npz (default: procedural body)")
    p.add_argument("--out", type=Path, default=Path("runs/body"), help="output folder (model.pt, checkpoints)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set train.steps=100 (repeatable)")
    p.add_argument("--no-resume", action="store_true", help="start over even if a checkpoint exists")
    p.add_argument("--resume-from", default=None, metavar="NAME_OR_PATH",
                   help="continue these weights (e.g. body-default); the file is replaced when validation improves")
    p.add_argument("--budget-minutes", type=float, default=None,
                   help="stop after this much wall-clock time (the learning-rate schedule follows it)")
    p.set_defaults(func=run_train)


def register_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("body", help="body fitting: posekit network vs + refinement vs optimisation baseline",
                       description="V2V, MPJPE, part accuracy, flip rate, confidence AUROC and latency on synthetic "
                                   "clouds of common and unseen poses (full, partial, canonical, rotated, Kinect-like "
                                   "single views, and a sweep of random rotations).")
    p.add_argument("--weights", default="body-default", help="shipped model name or model.pt path")
    p.add_argument("--body-model", type=Path, default=None, help="SMPL-format .npz (default: procedural body)")
    p.add_argument("--samples", type=int, default=None, help="clouds per set (default 16, --quick 2)")
    p.add_argument("--quick", action="store_true", help="CI size: a few clouds per set, short optimisation")
    p.add_argument("--sweep", type=int, default=None, help="clouds in the flip sweep (default 100, --quick 8)")
    p.add_argument("--sweep-refine", type=int, default=None, help="of the sweep's clouds, refine this many (default all)")
    p.add_argument("--kinect", type=int, default=None, help="Kinect-like views (default: --samples)")
    p.add_argument("--json", type=Path, default=None, metavar="OUT", help="write the results as JSON")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=run_bench)


def run_make_model(args: argparse.Namespace) -> int:
    from posekit.body.model import BodyModel, save_body_arrays
    from posekit.body.procedural import make_body_arrays

    arrays = make_body_arrays(voxel=args.voxel)
    path = save_body_arrays(arrays, args.out)
    body = BodyModel(arrays)
    print(f"wrote {path}: {body.n_vertices} vertices, {len(body.faces)} faces, 24 joints, {body.n_betas} shape components")
    return 0


def run_train(args: argparse.Namespace) -> int:
    from posekit.body.training import BodyTrainConfig, train_body
    from posekit.config import load_config, save_config
    from posekit.io.atomic import output_directory

    cfg = load_config(BodyTrainConfig, args.config, args.set)
    if args.resume_from:
        cfg.resume_from = args.resume_from
    if args.budget_minutes is not None:
        cfg.train.budget_minutes = args.budget_minutes
        if not any(o.startswith("train.steps=") for o in args.set):
            cfg.train.steps = 10**7  # the budget ends the run
    output_directory(args.out, "training output folder")
    save_config(cfg, args.out / "config.yaml")
    result = train_body(cfg, args.out, body_model=args.body_model, resume=not args.no_resume)
    if result.weights_path is not None:
        print(f"wrote {result.weights_path} ({result.steps} steps, {result.seconds:.0f} s)")
        for k, v in sorted(result.metrics.items()):
            print(f"  {k}: {v:.4g}")
        if cfg.resume_from:
            verdict = "replaced" if result.metrics.get("promoted") else "kept (validation did not improve)"
            print(f"{cfg.resume_from}: {verdict}; model card: {args.out / 'model_card.json'}")
    return 0


def run_fit(args: argparse.Namespace) -> int:
    from posekit.body.fitter import BodyFitter
    from posekit.io.pointcloud import read_point_cloud

    cloud = read_point_cloud(args.cloud, scale=args.scale)
    up = _vector(args.up, "--up")
    viewpoint = args.viewpoint if args.viewpoint in ("auto", "none") else _vector(args.viewpoint, "--viewpoint")
    viewpoint = None if viewpoint == "none" else viewpoint
    fitter = BodyFitter.from_pretrained(args.weights, body_model=args.body_model, device=args.device,
                                        allow_pickle=args.allow_pickle)
    fit = fitter.fit(cloud.points, viewpoint=viewpoint, up=up)
    if args.refine:
        fit = fitter.refine(cloud.points, fit, viewpoint=viewpoint, up=up)
    t = fit.terms
    print(f"fitted {len(cloud)} points in {fit.timing_ms['total']:.1f} ms: confidence {fit.confidence:.2f}, "
          f"translation {[round(float(x), 3) for x in fit.translation]} m, mean point-to-mesh {100 * fit.residual_m:.2f} cm, "
          f"model surface where the camera saw free space {100 * t.get('free_space', 0.0):.0f}%")
    if fit.low_confidence:
        print(f"warning: low confidence ({fit.confidence:.2f}): do not trust this fit; the cloud may not be one whole "
              "person, or the body's orientation is ambiguous (try --refine, or give --up)")
        if t.get("unknown_side"):
            print("  the cloud shows one side of the person and no camera position is known, so front and back "
                  "cannot be told apart: give --viewpoint X,Y,Z (the camera in the cloud's frame)")
    if args.out is not None:
        print(f"wrote {fitter.write_mesh(fit, args.out)}")
    if args.png is not None:
        print(f"wrote {fitter.write_overlay(cloud.points, fit, args.png, up=up, viewpoint=viewpoint)}")
    if args.json is not None:
        from posekit.io.atomic import atomic_write_text

        atomic_write_text(args.json, json.dumps(fit.to_dict(), indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0


def _vector(text: str | None, name: str):
    """'x,y,z' -> (3,) floats, or None; a clear error otherwise."""
    if text is None:
        return None
    from posekit.errors import BadInputError

    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 3:
        raise BadInputError(f"{name} takes three numbers x,y,z (got {text!r})")
    return values


def run_bench(args: argparse.Namespace) -> int:
    from posekit.bench.body import format_table, run_body_benchmark
    from posekit.io.atomic import atomic_write_text

    result = run_body_benchmark(args.weights, body_model=args.body_model, samples=args.samples,
                                quick=args.quick, seed=args.seed, device=args.device, sweep=args.sweep,
                                kinect=args.kinect, sweep_refine=args.sweep_refine)
    s = result["settings"]
    o = s["optimization"]
    print(f"Body benchmark: {s['samples_per_set']} clouds per set, {s['kinect']['clouds']} Kinect-like views, "
          f"{s['sweep']['clouds']} in the flip sweep ({s['sweep']['refined']} refined), {s['n_points']} points, "
          f"body model {s['body_model']}, "
          f"weights {s['weights']}")
    print(f"optimisation baseline: {o['n_inits']} orientations -> {o['keep']} kept, {o['sweeps']} joint sweeps, "
          f"{o['iterations']} Adam steps (the refinement's energy and priors)")
    print(format_table(result))
    if args.json is not None:
        atomic_write_text(args.json, json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0
