"""Object engine commands: ``posekit register``, ``posekit train registration``, ``bench``/``predict``.

Adapter only: parse arguments, call :mod:`posekit.registration`, print and write files.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "register",
        help="6D pose of an object model in a scan (points or depth image) by SE(3) diffusion",
        description=(
            "Register an object model (mesh or points, metres) to a scan: a segmented object cloud "
            "(--observed), or a raw scene cloud (--scene: tabletop fallback finds the object), or a "
            "depth image + intrinsics (--depth, --K, optional --mask/--bbox). Prints the pose and "
            "score; writes JSON and a PNG overlay."
        ),
    )
    p.add_argument("--model", required=True,
                   help="object model: mesh (PLY/OBJ/STL/OFF) or cloud (PLY/PCD/XYZ/NPY/NPZ), metres")
    p.add_argument("--model-scale", type=float, default=1.0, help="multiply the model by this (0.001 for mm)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--observed", help="segmented object points (PLY/PCD/XYZ/NPY), camera frame, metres")
    src.add_argument("--scene", help="raw scene cloud (camera frame, metres): the object is searched in it")
    src.add_argument("--depth", help="depth image (16-bit PNG/TIFF in mm, or 32-bit float in m)")
    cam = p.add_mutually_exclusive_group()
    cam.add_argument("--K", type=float, nargs=4, metavar=("FX", "FY", "CX", "CY"), help="intrinsics for --depth")
    cam.add_argument("--camera", type=Path, help="camera JSON for --depth (fx, fy, cx, cy, width, height, "
                                                 "optional depth_scale: BOP camera.json)")
    p.add_argument("--depth-scale", type=float, default=None,
                   help="millimetres per unit of a 16-bit depth image (BOP depth_scale; default: the camera "
                        "JSON's depth_scale, else 1 as Kinect/PrimeSense/RealSense PNGs)")
    p.add_argument("--mask", help="object mask image for --depth (nonzero = object; a detector's mask is fine)")
    p.add_argument("--bbox", type=float, nargs=4, metavar=("X0", "Y0", "X1", "Y1"),
                   help="2D box to search in for --depth (pixels)")
    p.add_argument("--rgb", help="RGB-D: a colour image registered to --depth (same size); with --view, its "
                                 "orientation distribution seeds the chains")
    p.add_argument("--view", metavar="NAME|PATH",
                   help="with --rgb: a view model that knows the object (e.g. view-lmo for the LM-O models)")
    p.add_argument("--view-starts", type=int, default=8, metavar="K",
                   help="with --view: chains seeded from the image (default 8)")
    p.add_argument("--obj-id", type=int, default=None,
                   help="the object's dataset id, as the view model knows it (default: from a BOP model file "
                        "name, obj_000005.ply -> 5)")
    p.add_argument("--weights", default="registration-procedural", help="shipped model name or weights path")
    p.add_argument("--hypotheses", type=int, default=None,
                   help="diffusion chains per object (default: the weights' setting, as the model card measured)")
    p.add_argument("--icp", dest="icp", action="store_true", default=None, help="refine with point-to-plane ICP")
    p.add_argument("--no-icp", dest="icp", action="store_false")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, help="write the result as JSON")
    p.add_argument("--png", type=Path, help="write an overlay picture")
    p.set_defaults(func=run_register)


def register_train(sub) -> None:
    p = sub.add_parser(
        "registration",
        help="train the object-agnostic registration denoiser on rendered views",
        description="Train the SE(3) diffusion denoiser on views rendered on the fly (procedural meshes by "
                    "default). Checkpoints and resumes in --out; runs under torchrun for DDP.",
    )
    p.add_argument("--config", type=Path, help="YAML config (default: configs/registration.yaml values)")
    p.add_argument("--models", help="'procedural' or a BOP models folder to train on (config: data.models)")
    p.add_argument("--out", type=Path, required=True, help="run folder (checkpoint.pt, model.pt, history.jsonl)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set train.steps=100 (repeatable)")
    p.add_argument("--device", help="cpu or cuda (config: train.device)")
    p.add_argument("--no-resume", action="store_true", help="start over even if --out has a checkpoint")
    p.set_defaults(func=run_train)


def register_bench(sub) -> None:
    from posekit.cli.registration_bench import register_bench as add

    add(sub)


def register_predict(sub) -> None:
    from posekit.cli.registration_bench import register_predict as add

    add(sub)


def run_train(args: argparse.Namespace) -> int:
    from posekit.registration.train import load_train_config, run_training

    overrides = list(args.overrides)
    if args.models:
        overrides.append(f"data.models={args.models}")
    if args.device:
        overrides.append(f"train.device={args.device}")
    cfg = load_train_config(args.config, overrides)
    result = run_training(cfg, args.out, resume=not args.no_resume)
    if result.weights_path is not None:
        print(f"weights: {result.weights_path} ({result.steps} steps, {result.seconds:.0f} s)")
        for k, v in result.metrics.items():
            print(f"  {k}: {v:.4g}")
    return 0


def estimator_from_args(args: argparse.Namespace):
    """The estimator ``posekit register`` runs: the weights' settings unless a flag says otherwise."""
    from posekit.registration.estimator import ObjectPoseEstimator

    return ObjectPoseEstimator.from_pretrained(args.weights, device=args.device, num_hypotheses=args.hypotheses,
                                               refine_icp=args.icp)


def run_register(args: argparse.Namespace) -> int:
    from posekit.io.mesh import read_object_model

    est = estimator_from_args(args)
    view, rgb, obj_id = _view_prior(args)
    model = est.prepare_model(read_object_model(args.model, args.model_scale), obj_id=obj_id)
    depth = K = None
    if args.observed or args.scene:
        from posekit.io.pointcloud import read_point_cloud

        cloud = read_point_cloud(args.observed or args.scene)
        if args.observed:
            result = est.estimate(model, cloud.points, return_hypotheses=True)
        else:
            result = est.estimate_scene(model, cloud.points, return_hypotheses=True)
        points = cloud.points
    else:
        from posekit.errors import BadInputError
        from posekit.io.depth import read_depth_image

        depth_scale = 1.0
        if args.camera:
            from posekit.io.bop import read_camera

            K, _, _, depth_scale = read_camera(args.camera)
        elif args.K:
            fx, fy, cx, cy = args.K
            K = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1.0]])
        else:
            raise BadInputError("--depth needs the camera: --K FX FY CX CY or --camera FILE")
        if args.depth_scale is not None:
            depth_scale = args.depth_scale
        depth = read_depth_image(args.depth, depth_scale=depth_scale)
        mask = None
        if args.mask:
            from posekit.io.bop import read_mask

            mask = read_mask(args.mask) > 0
        result = est.estimate(model, depth=depth, K=K, mask=mask, bbox=args.bbox, return_hypotheses=True,
                              rgb=rgb, view=view, view_starts=args.view_starts)
        points = None
    _print_result(result)
    if args.out:
        from posekit.io.atomic import atomic_write_text

        atomic_write_text(args.out, json.dumps(result.to_dict(), indent=2) + "\n")
        print(f"wrote {args.out}")
    if args.png:
        from posekit.registration.overlay import save_overlay

        save_overlay(args.png, result, model.cloud, points=points, depth=depth, K=K)
        print(f"wrote {args.png}")
    return 0 if result.success else 1


def _view_prior(args: argparse.Namespace):
    """(view estimator, RGB image, object id) for ``--rgb``/``--view`` (Nones without them); clear
    errors for a half-given prior, a point-cloud input or an object the view model does not know."""
    from posekit.errors import BadInputError

    if args.rgb is None and args.view is None:
        return None, None, args.obj_id or 0
    if args.rgb is None or args.view is None:
        raise BadInputError("the RGB prior needs both --rgb IMAGE and --view NAME|PATH")
    if not args.depth or (args.mask is None and args.bbox is None):
        raise BadInputError("--rgb/--view need --depth with --mask or --bbox (where the object is in the image)")
    from posekit.io.bop import obj_id_from_model_path
    from posekit.view.estimator import ViewPoseEstimator, load_image

    obj_id = args.obj_id if args.obj_id is not None else obj_id_from_model_path(args.model)
    view = ViewPoseEstimator.from_pretrained(args.view, device=args.device)
    if view.object_conditioned and obj_id is None:
        raise BadInputError(f"the view model knows objects {view.obj_ids}: give --obj-id (the model file name "
                            f"{Path(args.model).name!r} is not a BOP obj_NNNNNN name)")
    view.object_index(obj_id)  # a clear error for an object it does not know
    return view, load_image(args.rgb), obj_id or 0


def _print_result(result) -> None:
    if not result.success:
        print(f"no pose: {result.reason}")
        return
    np.set_printoptions(precision=4, suppress=True)
    terms = ", ".join(f"{k} {v:.3f}" for k, v in result.score_terms.items())
    print(f"score {result.score:.3f}{f' ({terms})' if terms else ''}  "
          f"({result.time_ms:.0f} ms, {result.n_observed} observed points)")
    print(f"R =\n{result.R}\nt = {result.t} m")
    if result.reason:
        print(result.reason)
