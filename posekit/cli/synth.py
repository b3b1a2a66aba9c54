"""``posekit synth ...``: write synthetic datasets. Sub-commands: ``bop`` (tabletop BOP scenes)."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    synth = subparsers.add_parser("synth", help="write synthetic datasets (BOP scenes, ...)")
    sub = synth.add_subparsers(dest="synth_command", metavar="KIND")
    synth.set_defaults(func=lambda args: (synth.print_help(), 2)[1])

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
    bop.add_argument("--width", type=int, default=640)
    bop.add_argument("--height", type=int, default=480)
    bop.add_argument("--objects-per-scene", type=int, nargs="+", default=[3, 6], metavar="K",
                     help="objects per scene: K, or MIN MAX")
    bop.add_argument("--procedural-objects", type=int, default=8,
                     help="number of procedural models (with --models procedural)")
    bop.add_argument("--split", default="test")
    bop.add_argument("--clean-depth", action="store_true", help="store the perfect depth (no sensor model)")
    bop.add_argument("--quiet", action="store_true", help="no progress bar")
    bop.set_defaults(func=run_bop)


def run_bop(args) -> int:
    from posekit.data.scenes import synthesize_bop_dataset
    from posekit.data.sensor import DepthSensorModel
    from posekit.errors import BadInputError

    k = args.objects_per_scene
    if len(k) not in (1, 2) or min(k) < 1:
        raise BadInputError("--objects-per-scene takes K or MIN MAX (positive integers)")
    summary = synthesize_bop_dataset(
        args.models, args.out, n_scenes=args.scenes, n_images=args.images, seed=args.seed,
        width=args.width, height=args.height, objects_per_scene=(k[0], k[-1]),
        n_procedural_objects=args.procedural_objects, split=args.split,
        sensor=None if args.clean_depth else DepthSensorModel(), progress=not args.quiet,
    )
    print(f"wrote {summary.n_images} images in {summary.n_scenes} scenes ({summary.n_objects} object models) "
          f"to {summary.out_dir}")
    print(f"{summary.seconds:.1f} s, {summary.images_per_second:.2f} images/s")
    return 0
