"""``posekit synth ...``: write synthetic datasets. Sub-commands: ``bop`` (tabletop BOP scenes)."""

from __future__ import annotations

import argparse

from posekit.cli import add_command_group, engine_hooks


def register(subparsers) -> None:
    sub = add_command_group(subparsers, "synth", "write synthetic datasets (BOP scenes, ...)", "KIND")

    bop = sub.add_parser(
        "bop",
        help="tabletop scenes in the BOP format (depth with a Kinect-like sensor model, RGB, masks, GT)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    bop.add_argument("--models", required=True,
                     help="BOP models folder (PLY in mm + models_info.json), or 'procedural'")
    bop.add_argument("--out", required=True, help="output dataset folder")
    bop.add_argument("--scenes", type=int, default=1, help="number of scenes")
    bop.add_argument("--images", type=int, default=10, help="images per scene")
    bop.add_argument("--seed", type=int, default=0)
    bop.add_argument("--config", help="YAML config (default: built-in defaults, as in configs/synth_bop.yaml)")
    bop.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config key, e.g. --set scene.camera_distance=[0.5,0.9] (repeatable)")
    bop.add_argument("--width", type=int, help="image width (config key: width)")
    bop.add_argument("--height", type=int, help="image height (config key: height)")
    bop.add_argument("--objects-per-scene", type=int, nargs="+", metavar="K",
                     help="objects per scene: K, or MIN MAX (config key: objects_per_scene)")
    bop.add_argument("--procedural-objects", type=int,
                     help="number of procedural models with --models procedural (config key: n_procedural_objects)")
    bop.add_argument("--split", default="test")
    bop.add_argument("--clean-depth", action="store_true",
                     help="store the perfect depth, no sensor model (config key: sensor_noise=false)")
    bop.add_argument("--workers", type=int, default=1,
                     help="processes rendering in parallel (the output does not depend on it)")
    bop.add_argument("--quiet", action="store_true", help="no progress bar")
    bop.set_defaults(func=run_bop)
    for register_engine in engine_hooks("register_synth"):
        register_engine(sub)


def run_bop(args) -> int:
    from posekit.config import load_config
    from posekit.data.scenes import SynthConfig, synthesize_from_config
    from posekit.errors import BadInputError

    overrides = list(args.overrides)
    if args.width is not None:
        overrides.append(f"width={args.width}")
    if args.height is not None:
        overrides.append(f"height={args.height}")
    if args.objects_per_scene is not None:
        k = args.objects_per_scene
        if len(k) not in (1, 2) or min(k) < 1:
            raise BadInputError("--objects-per-scene takes K or MIN MAX (positive integers)")
        overrides.append(f"objects_per_scene=[{k[0]},{k[-1]}]")
    if args.procedural_objects is not None:
        overrides.append(f"n_procedural_objects={args.procedural_objects}")
    if args.clean_depth:
        overrides.append("sensor_noise=false")
    cfg = load_config(SynthConfig, args.config, overrides)
    summary = synthesize_from_config(args.models, args.out, args.scenes, args.images, args.seed, cfg,
                                     split=args.split, progress=not args.quiet,
                                     workers=args.workers)
    print(f"wrote {summary.n_images} images in {summary.n_scenes} scenes ({summary.n_objects} object models) "
          f"to {summary.out_dir}")
    print(f"{summary.seconds:.1f} s, {summary.images_per_second:.2f} images/s")
    return 0
