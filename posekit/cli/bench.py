"""``posekit bench ...``: benchmarks against real data and naive peers.

``posekit bench sensor`` compares the simulated depth sensor with real frames. Adapter only:
parse arguments, call :mod:`posekit.bench`, print a table, write JSON and a PNG.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from posekit.cli import add_command_group, engine_hooks


def register(subparsers: argparse._SubParsersAction) -> None:
    sub = add_command_group(subparsers, "bench", "benchmarks against real data and naive peers", "BENCHMARK")

    sensor = sub.add_parser(
        "sensor",
        help="depth sensor statistics: real frames vs posekit's sensor model vs Gaussian noise vs clean",
        description=(
            "Measure depth-sensor statistics (plane-fit residuals per depth on 21x21 and 5x5 tiles, "
            "inverse-depth level step, holes, shadow side and width at depth jumps, grazing angles) "
            "on synthetic tabletop frames through posekit's DepthSensorModel, through i.i.d. 1 mm "
            "Gaussian noise and without noise, and on real frames when --frames is given; fit the "
            "sensor model to the real and simulated frames."
        ),
    )
    sensor.add_argument("--frames", nargs="+", default=None, metavar="DIR_OR_FILE",
                        help="real depth frames: a folder of *_depth.tiff/png (uint16 mm) or the files")
    sensor.add_argument("--fx", type=float, default=525.0, help="focal length of the real frames, px (default 525)")
    sensor.add_argument("--cx", type=float, default=320.0, help="principal point x of the real frames (default 320)")
    sensor.add_argument("--cy", type=float, default=240.0, help="principal point y of the real frames (default 240)")
    sensor.add_argument("--json", type=Path, default=None, metavar="OUT", help="write the results to this JSON file")
    sensor.add_argument("--png", type=Path, default=None, metavar="OUT", help="write the figure to this PNG file")
    sensor.add_argument("--quick", action="store_true", help="small images (320x240) and 2 synthetic frames")
    sensor.add_argument("--seed", type=int, default=0, help="seed of the synthetic scenes and noise (default 0)")
    sensor.set_defaults(func=run_sensor)
    for register_engine in engine_hooks("register_bench"):
        register_engine(sub)
    from posekit.cli.ros import register_bench_ros

    register_bench_ros(sub)


def run_sensor(args: argparse.Namespace) -> int:
    import numpy as np

    from posekit.bench.sensor import format_table, run_sensor_benchmark, write_figure
    from posekit.io.atomic import atomic_write_text

    K_real = np.array([[args.fx, 0.0, args.cx], [0.0, args.fx, args.cy], [0.0, 0.0, 1.0]])
    result, images = run_sensor_benchmark(args.frames, quick=args.quick, seed=args.seed, K_real=K_real)
    s = result["settings"]
    print(f"Sensor benchmark: {s['n_frames']} synthetic {s['width']}x{s['height']} frames"
          + (f", {s['real_frames']} real frames" if s["real_frames"] else " (no real frames: --frames)"))
    print(format_table(result))
    for name in ("real", "posekit_sensor"):
        fitted = result["methods"].get(name, {}).get("fitted_model")
        if fitted:
            keys = ("sigma_base", "sigma_quadratic", "correlated_fraction", "inverse_depth_step",
                    "random_dropout", "edge_dropout", "edge_run_px", "shadow_baseline", "shadow_fill_px",
                    "grazing_start_deg")
            print(f"fitted to {name}: " + ", ".join(f"{k}={fitted[k]:.3g}" for k in keys))
    if args.json is not None:
        atomic_write_text(args.json, json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    if args.png is not None:
        write_figure(result, images, args.png)
        print(f"wrote {args.png}")
    return 0
