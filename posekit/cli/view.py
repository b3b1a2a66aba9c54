"""CLI adapter of the view engine: ``posekit predict-view``, ``posekit train view``,
``posekit synth symsol``, ``posekit synth views`` and ``posekit bench view``.

Parse arguments, call :mod:`posekit.view` / :mod:`posekit.data.symsol` /
:mod:`posekit.bench.view`, print a table, write files.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "predict-view", help="orientation distribution over SO(3) of the object in one image",
        description="Predict p(R_cam_obj | image) with a view model, print the top modes and "
                    "optionally plot the distribution (Mollweide: z-axis direction as position, "
                    "in-plane angle as colour).")
    p.add_argument("image", type=Path, help="RGB image (PNG/JPG): one centred object, or a full camera image "
                                             "with --bbox/--mask and --K")
    p.add_argument("--model", "--weights", dest="model", default=None,
                   help="shipped model name or path to a model.pt (default view-symsol; view-lmo with --obj-id)")
    p.add_argument("--obj-id", type=int, default=None, help="object id (models trained with --models)")
    p.add_argument("--bbox", type=float, nargs=4, default=None, metavar=("X", "Y", "W", "H"),
                   help="the object's box in the full image, px (BOP bbox_obj convention)")
    p.add_argument("--mask", type=Path, default=None, help="the object's mask (PNG, non-zero on the object)")
    p.add_argument("--K", dest="K", nargs="+", default=None, metavar="K",
                   help="intrinsics: fx fy cx cy, nine numbers row by row, or a BOP camera.json")
    p.add_argument("--png", type=Path, default=None, metavar="OUT", help="write the distribution plot here")
    p.add_argument("--top", type=int, default=5, help="number of modes to print (default 5)")
    p.add_argument("--level", type=int, default=None, help="HEALPix grid level of the output (default: model's)")
    p.add_argument("--json", type=Path, default=None, metavar="OUT", help="write the modes as JSON")
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=run_predict_view)


def run_predict_view(args: argparse.Namespace) -> int:
    import numpy as np

    from posekit.io.atomic import atomic_write_text
    from posekit.view.estimator import ViewPoseEstimator, load_image

    image = load_image(args.image)
    name = args.model or ("view-lmo" if args.obj_id is not None else "view-symsol")
    est = ViewPoseEstimator.from_pretrained(name, device=args.device, grid_level=args.level)
    mask = load_image(args.mask) if args.mask is not None else None
    K = parse_intrinsics(args.K) if args.K is not None else None
    dist = est.predict(image, obj_id=args.obj_id, bbox=args.bbox, mask=mask, K=K)
    summary = dist.to_dict(top=args.top)
    frame = "camera frame, converted from the crop" if est.last_crop_camera is not None else "image as the crop"
    print(f"{args.image}: {dist.probs.size} grid rotations (level {dist.level}, {frame}); top {len(summary['modes'])} modes:")
    print(f"{'#':>2} {'prob (20 deg)':>13}  {'rotation vector (rad)':>30}  R_cam_obj rows")
    for i, row in enumerate(summary["modes"]):
        print(f"{i:>2} {row['probability_mass']:>13.3f}  {np.array2string(np.array(row['rotvec']), precision=3):>30}  "
              + " ".join(np.array2string(np.array(r), precision=2) for r in row["R_cam_obj"]))
    if args.json:
        doc = {"image": str(args.image), "model": est.name, "obj_id": args.obj_id, **summary}
        if est.last_crop_camera is not None:
            doc["R_cam_crop"] = est.last_crop_camera.R_cam_crop.tolist()
            doc["bbox"] = est.last_crop_camera.bbox.tolist()
        atomic_write_text(args.json, json.dumps(doc, indent=2) + "\n")
        print(f"wrote {args.json}")
    if args.png:
        from posekit.view.distribution import plot_so3_distribution

        plot_so3_distribution(dist, args.png, image=est.last_input_image, title=f"p(R | {args.image.name})")
        print(f"wrote {args.png}")
    return 0


def parse_intrinsics(values: list[str]):
    """``K (3, 3)`` from ``fx fy cx cy``, nine numbers, or a BOP camera.json path."""
    import numpy as np

    from posekit.errors import BadInputError
    from posekit.validation import check_intrinsics

    if len(values) == 1:
        from posekit.io.bop import read_camera

        return read_camera(values[0])[0]
    try:
        nums = [float(v) for v in values]
    except ValueError as exc:
        raise BadInputError(f"--K takes fx fy cx cy, nine numbers or a camera.json path, got {values}") from exc
    if len(nums) == 4:
        fx, fy, cx, cy = nums
        return check_intrinsics(np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1.0]]))
    if len(nums) == 9:
        return check_intrinsics(np.array(nums).reshape(3, 3))
    raise BadInputError(f"--K takes 4 numbers (fx fy cx cy) or 9 (row by row), got {len(nums)}")


def register_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("view", help="SO(3) distribution network (induced or I2S head) on SYMSOL renders "
                                    "or, with --models, on a dataset's CAD models",
                       description="Train the view network with posekit's training loop (checkpoints, "
                                   "resume, torchrun DDP). Without --models: SYMSOL renders "
                                   "(configs/view.yaml). With --models DIR: object crops of a BOP models "
                                   "folder rendered on the fly (configs/view_lmo.yaml), the I2S-style "
                                   "baseline trained alongside on the same batches.")
    p.add_argument("--config", type=Path, default=None, help="YAML config (e.g. configs/view.yaml, configs/view_lmo.yaml)")
    p.add_argument("--models", default=None, help="BOP models/ folder (mm, vertex colours) or 'procedural' "
                                                   "(config key data.models)")
    p.add_argument("--backgrounds", nargs="+", default=None, metavar="PATH",
                   help="real photos (files or folders) used as crop backgrounds (config key data.backgrounds)")
    p.add_argument("--export", type=Path, default=None, metavar="DIR",
                   help="with --models: also write DIR/<name>.pt and DIR/<name>-i2s.pt (parameters only)")
    p.add_argument("--name", default="view-objects", help="file name stem for --export (default view-objects)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set model.head=i2s (repeatable)")
    p.add_argument("--out", type=Path, default=None, help="output folder (config key out_dir)")
    p.add_argument("--no-resume", action="store_true", help="start over even if a checkpoint exists")
    p.add_argument("--resume-from", default=None, metavar="NAME_OR_PATH",
                   help="with --models: continue exported weights (e.g. view-lmo; the baseline from view-lmo-i2s) "
                        "with a fresh schedule (config key resume_from)")
    p.add_argument("--budget-minutes", type=float, default=None,
                   help="stop after this much wall-clock time (the learning-rate schedule follows it; "
                        "without --set train.steps=N the budget alone ends the run)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> int:
    from posekit.config import load_config

    if getattr(args, "models", None) is not None:
        from posekit.view.object_training import (
            ObjectViewTrainConfig,
            export_paired_weights,
            train_object_view,
        )

        cfg = load_config(ObjectViewTrainConfig, args.config, args.overrides)
        _apply_budget(cfg, args)
        if getattr(args, "resume_from", None):
            cfg.resume_from = str(args.resume_from)
        cfg.data.models = str(args.models)
        if args.backgrounds is not None:
            cfg.data.backgrounds = [str(b) for b in args.backgrounds]
        result = train_object_view(cfg, out_dir=args.out, resume=not args.no_resume, progress=not args.quiet)
        if result.weights_path is not None and args.export is not None:
            for head, path in export_paired_weights(result.weights_path, args.export, args.name).items():
                print(f"exported {head} head: {path}")
    else:
        from posekit.view.training import ViewTrainConfig, train_view

        cfg = load_config(ViewTrainConfig, args.config, args.overrides)
        if getattr(args, "resume_from", None):
            from posekit.errors import BadInputError

            raise BadInputError("--resume-from needs --models (object view models)")
        _apply_budget(cfg, args)
        result = train_view(cfg, out_dir=args.out, resume=not args.no_resume, progress=not args.quiet)
    if result.weights_path is not None:
        print(f"trained {result.steps} steps in {result.seconds:.0f} s; weights: {result.weights_path}")
        for k, v in sorted(result.metrics.items()):
            print(f"  {k}: {v:.4f}")
    return 0


def _apply_budget(cfg, args: argparse.Namespace) -> None:
    budget = getattr(args, "budget_minutes", None)
    if budget is None:
        return
    if not budget > 0:
        from posekit.errors import BadInputError

        raise BadInputError(f"--budget-minutes must be > 0, got {budget}")
    cfg.train.budget_minutes = float(budget)
    if not any(o.startswith("train.steps=") for o in args.overrides):
        cfg.train.steps = 10**7  # the budget ends the run


def register_synth(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("symsol", help="SYMSOL I/II-like renders with all equivalent rotations per image",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="output folder (symsol.npz + previews)")
    p.add_argument("--shapes", nargs="+", default=["tet", "cube", "icosa", "cone", "cyl"],
                   help="shapes: tet cube icosa cone cyl (SYMSOL I), tetX cylO sphX (SYMSOL II)")
    p.add_argument("--per-shape", type=int, default=100, help="images per shape")
    p.add_argument("--size", type=int, default=64, help="image size in px")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run_synth_symsol)

    v = sub.add_parser("views", help="object crops of coloured meshes as the view training makes them "
                                     "(allocentric labels, clutter, occluders, backgrounds)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    v.add_argument("--models", required=True, help="BOP models/ folder (mm) or 'procedural'")
    v.add_argument("--out", type=Path, required=True)
    v.add_argument("--per-model", type=int, default=20)
    v.add_argument("--size", type=int, default=64)
    v.add_argument("--seed", type=int, default=0)
    v.add_argument("--backgrounds", nargs="+", default=None, metavar="PATH", help="real photos for backgrounds")
    v.add_argument("--quiet", action="store_true")
    v.set_defaults(func=run_synth_views)


def run_synth_symsol(args: argparse.Namespace) -> int:
    import time

    from posekit.data.symsol import write_symsol_dataset

    t0 = time.perf_counter()
    path = write_symsol_dataset(args.out, args.shapes, args.per_shape, args.size, args.seed, progress=not args.quiet)
    print(f"wrote {len(args.shapes) * args.per_shape} images to {path} in {time.perf_counter() - t0:.1f} s")
    return 0


def run_synth_views(args: argparse.Namespace) -> int:
    import time

    from posekit.data.view_crops import write_view_crops

    t0 = time.perf_counter()
    path, n = write_view_crops(args.models, args.out, args.per_model, args.size, args.seed, progress=not args.quiet,
                               backgrounds=args.backgrounds)
    print(f"wrote {n} crops to {path} in {time.perf_counter() - t0:.1f} s")
    return 0


def register_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("view", help="induced head vs I2S-style head on SYMSOL: log-likelihood, spread, accuracy",
                       description="Evaluate the induced and I2S-style view models on the same SYMSOL images "
                                   "(Implicit-PDF protocol) and measure in-plane equivariance and latency.")
    p.add_argument("--induced", default=None, help="induced-head model (default view-symsol; view-lmo with --models)")
    p.add_argument("--i2s", default=None, help="I2S-style model (default view-symsol-i2s; view-lmo-i2s with --models)")
    p.add_argument("--models", default=None, help="BOP models/ folder: benchmark object models on held-out renders "
                                                  "of these objects instead of SYMSOL")
    p.add_argument("--per-object", type=int, default=None, help="with --models: renders per object (default 40; --quick 4)")
    p.add_argument("--backgrounds", nargs="+", default=None, metavar="PATH",
                   help="with --models: real photos used as backgrounds of the held-out renders")
    p.add_argument("--real-frames", nargs="+", default=None, metavar="PATH",
                   help="with --models: real RGB frames (files or folders) cropped by the prediction pipeline "
                        "for image statistics next to the renders")
    p.add_argument("--composites", nargs="+", default=None, metavar="PATH",
                   help="with --models: real frames (each file or folder a group; organized .pcd clouds give their "
                        "colour image) into which held-out renders are pasted and predicted from the full frame")
    p.add_argument("--real-K", nargs="+", default=None, metavar="K",
                   help="intrinsics of the --real-frames / --composites frames: fx fy cx cy, nine numbers or a "
                        "camera.json (default Kinect 525 525 320 240)")
    p.add_argument("--crop-check", nargs=4, default=None, metavar=("FRAME", "MASK", "CAMERA", "POINTS"),
                   help="with --models: check the crop pipeline on a real frame (image or organized .pcd) with the "
                        "object's mask, its camera.json and the object's points in the camera frame")
    p.add_argument("--per-shape", type=int, default=None, help="test images per shape (default 50; --quick 6)")
    p.add_argument("--level", type=int, default=None, help="evaluation grid level (default 3; --quick 2)")
    p.add_argument("--quick", action="store_true", help="CI size: few images, coarse grid")
    p.add_argument("--json", type=Path, default=None, metavar="OUT")
    p.add_argument("--seed", type=int, default=2024)
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=run_bench)


def run_bench(args: argparse.Namespace) -> int:
    from posekit.bench.view import format_table, run_view_benchmark
    from posekit.io.atomic import atomic_write_text

    if args.models is not None:
        from posekit.bench.view import format_object_table, run_object_view_benchmark

        result = run_object_view_benchmark(args.models, args.induced or "view-lmo", args.i2s or "view-lmo-i2s",
                                           per_object=args.per_object, level=args.level, quick=args.quick,
                                           seed=args.seed, device=args.device, backgrounds=args.backgrounds,
                                           real_frames=args.real_frames, composites=args.composites, crop_check=args.crop_check,
                                           real_K=None if args.real_K is None else parse_intrinsics(args.real_K))
        print(format_object_table(result))
    else:
        result = run_view_benchmark(args.induced or "view-symsol", args.i2s or "view-symsol-i2s",
                                    per_shape=args.per_shape, level=args.level, quick=args.quick, seed=args.seed,
                                    device=args.device)
        print(format_table(result))
    if args.json is not None:
        atomic_write_text(args.json, json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0
