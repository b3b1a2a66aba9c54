"""``posekit bench registration`` and ``posekit predict bop``: adapters of the object engine.

Parse arguments, call :func:`posekit.bench.registration.run_registration_benchmark`
or :func:`posekit.registration.bop_predict.predict_bop`, print a table, write files.
``posekit/cli/registration.py`` calls :func:`register_bench` and :func:`register_predict`
from its hooks of the same names.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

DEFAULT_WEIGHTS = "registration-procedural"


def register_bench(sub: argparse._SubParsersAction) -> None:
    bench = sub.add_parser(
        "registration",
        help="6D object registration: posekit diffusion (+ICP) vs open3d FPFH+RANSAC+ICP, ICP, small_gicp",
        description=(
            "Render a held-out synthetic BOP set (procedural shapes from unseen seeds, or a BOP models "
            "folder such as LM-O) at two depth-noise levels, cut each object's cloud with its oracle "
            "visible mask and register the model with every method on the same cloud. Reports "
            "ADD(-S)@0.1d recall, rotation recall @5deg, translation recall @1cm, median errors and "
            "latency, overall (Kinect noise, visible fraction >= 0.5) and per visible-fraction bin and "
            "noise level."
        ),
    )
    bench.add_argument("--models", default="procedural", metavar="procedural|DIR",
                       help="'procedural' (held-out seeds) or a BOP models folder (PLY in mm + models_info.json)")
    bench.add_argument("--weights", default=DEFAULT_WEIGHTS, metavar="NAME|PATH",
                       help=f"posekit weights: shipped name or model.pt path (default {DEFAULT_WEIGHTS})")
    bench.add_argument("--quick", action="store_true", help="CI size: 2 scenes x 3 images at 320x240")
    bench.add_argument("--scenes", type=int, default=None, help="number of scenes (default 2 quick, 6 full)")
    bench.add_argument("--images", type=int, default=None, help="images per scene (default 3 quick, 5 full)")
    bench.add_argument("--methods", nargs="+", default=None, metavar="NAME",
                       help="run only these methods (posekit, posekit+icp, ablation_no_diffusion, "
                            "open3d_fpfh_ransac_icp, open3d_icp, small_gicp)")
    bench.add_argument("--noise", nargs="+", default=["kinect", "kinect_x2"], metavar="LEVEL",
                       help="depth-noise levels: kinect (calibrated sensor), kinect_x2 (axial noise doubled), clean")
    bench.add_argument("--json", type=Path, default=None, metavar="OUT", help="write the results to this JSON file")
    bench.add_argument("--keep", type=Path, default=None, metavar="DIR",
                       help="write the rendered datasets here and keep them (default: a temporary folder)")
    bench.add_argument("--seed", type=int, default=0, help="seed of the scenes (procedural objects: 10000 + seed)")
    bench.add_argument("--device", default="cpu", help="device of the posekit network: cpu or cuda")
    bench.add_argument("--masks", choices=("gt", "detections", "none"), default="gt",
                       help="gt: oracle visible masks; detections: simulated detector masks (dilated/eroded, "
                            "bleeding over occluders, false positives); none: the whole depth image (peers register "
                            "against the whole scene cloud)")
    bench.add_argument("--dataset", type=Path, default=None, metavar="DIR",
                       help="bench on this BOP dataset (real or synthetic) instead of rendering one")
    bench.add_argument("--split", default="test", help="split of --dataset (default: test)")
    bench.add_argument("--rgb", nargs="?", const="view-lmo", default=None, metavar="VIEW_WEIGHTS",
                       help="also run each posekit method with the RGB view prior (<method>+view: chains seeded "
                            "from the image by this view model, default view-lmo; it must know the objects' ids, "
                            "e.g. --models ../shared/data/lmo/models) and print both side by side")
    bench.add_argument("--view-starts", type=int, default=8, metavar="K",
                       help="chains of the +view methods (default 8, a third of the depth-only 24)")
    bench.add_argument("--quiet", action="store_true", help="no progress bar")
    bench.set_defaults(func=run_bench)


def run_bench(args: argparse.Namespace) -> int:
    from posekit.bench.registration import format_table, run_registration_benchmark
    from posekit.io.atomic import atomic_write_text

    result = run_registration_benchmark(
        args.models, quick=args.quick, seed=args.seed, methods=args.methods, weights=args.weights,
        device=args.device, noise_levels=args.noise, n_scenes=args.scenes, n_images=args.images,
        work_dir=args.keep, progress=not args.quiet, masks=args.masks, dataset=args.dataset, split=args.split,
        view=args.rgb, view_starts=args.view_starts)
    s = result["settings"]
    print(f"Registration benchmark: models {s['models']}, {s['n_scenes']} scenes x {s['n_images']} images "
          f"at {s['width']}x{s['height']}, {s['n_objects']} objects, masks {args.masks}, "
          f"{s['headline']['n_targets']} headline targets")
    print(format_table(result))
    for note in s["notes"]:
        print(f"note: {note}")
    if args.json is not None:
        atomic_write_text(args.json, json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


def register_predict(sub: argparse._SubParsersAction) -> None:
    bop = sub.add_parser(
        "bop",
        help="6D object poses for a BOP dataset -> BOP19 results CSV (score it with `posekit eval bop`)",
        description=(
            "Register each target object of a BOP dataset with posekit's ObjectPoseEstimator and write the "
            "BOP19 results CSV (per-image time included). --masks gt uses the visible GT masks (the SE(3) "
            "diffusion paper's protocol); --masks none uses the whole depth image and the estimator's "
            "tabletop fallback. Under torchrun --nproc_per_node N the scenes are split across the "
            "processes and rank 0 writes the merged CSV."
        ),
    )
    bop.add_argument("--dataset", required=True, type=Path, metavar="DIR", help="BOP dataset folder (with camera.json)")
    bop.add_argument("--split", default="test", help="dataset split (default: test)")
    bop.add_argument("--targets", type=Path, default=None, metavar="FILE",
                     help="targets JSON (default: DATASET/test_targets_bop19.json, or every GT object)")
    bop.add_argument("--masks", choices=("gt", "detections", "none"), default=None,
                     help="gt: oracle visible masks; detections: the masks of --detections; none: the whole "
                          "image, the estimator's scene search (default: detections with --detections, else gt)")
    bop.add_argument("--detections", type=Path, default=None, metavar="FILE",
                     help="BOP default-detections JSON (scene_id, image_id, category_id, score, bbox, "
                          "segmentation RLE, time), e.g. a BOP challenge detector's output")
    bop.add_argument("--weights", default=DEFAULT_WEIGHTS, metavar="NAME|PATH",
                     help=f"shipped weights name or model.pt path (default {DEFAULT_WEIGHTS})")
    bop.add_argument("--view", default=None, metavar="NAME|PATH",
                     help="RGB-D: a view model of the dataset's objects (e.g. view-lmo) seeds the chains from "
                          "each image's RGB")
    bop.add_argument("--view-starts", type=int, default=8, metavar="K",
                     help="with --view: chains seeded from the image per target (default 8)")
    bop.add_argument("--device", default="cpu", help="cpu or cuda (under torchrun: cuda:LOCAL_RANK)")
    bop.add_argument("--out", required=True, type=Path, metavar="CSV", help="results CSV to write")
    bop.add_argument("--quiet", action="store_true", help="no progress bar")
    bop.set_defaults(func=run_predict)


def _join_process_group(device: str) -> tuple[int, int, str]:
    """(rank, world_size, device of this rank); joins torchrun's group (gloo: objects only)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world_size <= 1:
        return 0, 1, device
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="gloo")
    if device == "cuda":
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    return rank, world_size, device


def run_predict(args: argparse.Namespace) -> int:
    from posekit.io.bop import write_results_csv
    from posekit.registration.bop_predict import predict_bop
    from posekit.registration.estimator import ObjectPoseEstimator

    rank, world_size, device = _join_process_group(args.device)
    from posekit.errors import BadInputError

    masks = args.masks or ("detections" if args.detections else "gt")
    detections = None
    if args.detections is not None:
        from posekit.io.detections import read_detections

        detections = read_detections(args.detections)
    elif masks == "detections":
        raise BadInputError("--masks detections needs --detections FILE")
    estimator = ObjectPoseEstimator.from_pretrained(args.weights, device=device)
    view = None
    if args.view is not None:
        from posekit.view.estimator import ViewPoseEstimator

        view = ViewPoseEstimator.from_pretrained(args.view, device=device)
    summary: dict = {}
    estimates = predict_bop(args.dataset, estimator, split=args.split, targets_path=args.targets, masks=masks,
                            progress=not args.quiet and rank == 0, rank=rank, world_size=world_size,
                            summary=summary, detections=detections, view=view, view_starts=args.view_starts)
    if world_size > 1:
        import torch.distributed as dist

        dist.barrier()
    if rank != 0:
        return 0
    write_results_csv(args.out, estimates)
    times = {(e.scene_id, e.im_id): e.time for e in estimates}
    mean_time = sum(times.values()) / len(times) if times else 0.0
    print(f"wrote {len(estimates)} estimates for {summary['targets']} targets in {summary['images']} images"
          f"{f' (rank 0 share; {world_size} ranks)' if world_size > 1 else ''} to {args.out}; "
          f"mean time per image {mean_time:.3f} s")
    if summary["failures"]:
        print("failed: " + ", ".join(f"{n}x {reason}" for reason, n in sorted(summary["failures"].items())))
    print(f"score it with: posekit eval bop --dataset {args.dataset} --results {args.out}"
          + (f" --split {args.split}" if args.split != "test" else ""))
    return 0
