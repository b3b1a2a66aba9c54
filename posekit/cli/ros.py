"""ROS 2 commands: ``posekit replay`` (offline, through the nodes' own code) and ``posekit bench ros``.

Adapter only. The library (``posekit`` outside this module) imports nothing from ROS: the
replay and benchmark code lives in ``ros_nodes`` (``ros_nodes.replay``,
``ros_nodes.benchmark``) and is imported here only when a command runs. Replay needs only
``rosbags``; the benchmark runs real nodes and needs the ``ros`` extra.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from posekit.errors import BadInputError, MissingFileError

ENGINES = ("object", "body", "view")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "replay",
        help="run recorded sensor topics of a rosbag2 through a posekit node's code, offline",
        description=(
            "Feed a bag's sensor topics to the same per-frame code the ROS 2 node runs (message "
            "decoding, frame assembly, engine, output messages), every frame, in bag order. "
            "Writes results.csv and results.json to --out and, with --out-bag, a copy of the bag "
            "with the node's output topics added (/detections, /pose/..., /tf, /markers for "
            "the object engine). No ROS install needed."
        ),
    )
    p.add_argument("--bag", required=True, type=Path, help="rosbag2 folder (or a .db3/.mcap in it)")
    p.add_argument("--engine", required=True, choices=ENGINES, help="which node to replay")
    p.add_argument("--config", type=Path, default=None,
                   help="the node's ROS parameters file (default: the node's defaults), "
                        "e.g. configs/ros/object_pose_node.yaml")
    p.add_argument("--out", required=True, type=Path, help="output folder for results.csv/json")
    p.add_argument("--out-bag", type=Path, default=None, help="write a new bag with the results added")
    p.add_argument("--topic", action="append", default=[], metavar="INPUT=TOPIC",
                   help="bag topic of a node input, e.g. points=/camera/depth/points "
                        "(repeatable; inputs not named are found by message type)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_replay)


def parse_topic_remaps(items: list[str]) -> dict[str, str]:
    remaps = {}
    for item in items:
        name, sep, topic = item.partition("=")
        if not sep or not name or not topic:
            raise BadInputError(f"--topic {item!r} must look like INPUT=TOPIC, e.g. points=/camera/points")
        remaps[name.strip()] = topic.strip()
    return remaps


def _import_ros_nodes(module: str, needs: str):
    """``ros_nodes.MODULE``, or MissingFileError saying what to install when it cannot load."""
    import importlib

    try:
        return importlib.import_module(f"ros_nodes.{module}")
    except ImportError as err:
        raise MissingFileError(
            f"this command needs {needs}, which cannot be imported here ({err}); "
            "install posekit with its ROS 2 extra: pip install -e '.[ros]' (then make setup)"
        ) from err


def run_replay(args: argparse.Namespace) -> int:
    replay_bag = _import_ros_nodes("replay", "posekit's ros_nodes package").replay_bag

    summary = replay_bag(args.bag, args.engine, args.out, config=args.config, out_bag=args.out_bag,
                         topics=parse_topic_remaps(args.topic), progress=not args.no_progress)
    print(f"replayed {summary.messages} messages: {summary.frames} frames, "
          f"{summary.successes}/{summary.estimates} estimates succeeded, "
          f"mean {summary.mean_time_ms:.1f} ms per frame")
    for reason, count in sorted(summary.skipped.items()):
        print(f"  skipped {count}x {reason}")
    for path in summary.files:
        print(f"wrote {path}")
    return 0


def register_bench_ros(sub: argparse._SubParsersAction) -> None:
    """Add ``posekit bench ros`` to the ``bench`` group's subparsers."""
    p = sub.add_parser(
        "ros",
        help="ROS 2 node latency (publish to result) at several input rates and cloud sizes",
        description=(
            "Start each posekit node that exists in an isolated in-process ROS 2 graph (real Fast "
            "DDS), publish synthetic inputs at several rates and sizes, and measure publish-to-"
            "result latency (p50/p95), dropped frames and the highest rate sustained without "
            "growing latency. Needs the ros extra and the generated interfaces (make setup)."
        ),
    )
    p.add_argument("--json", type=Path, default=None, metavar="OUT", help="write the results as JSON")
    p.add_argument("--quick", action="store_true", help="CI size: one size, two rates, a few seconds each")
    p.add_argument("--seconds", type=float, default=None, help="seconds per rate (default 8, quick 3)")
    p.add_argument("--nodes", nargs="+", default=None, choices=("object_node", "body_node", "view_node"),
                   help="nodes to measure (default: every node whose engine is installed)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run_bench_ros)


def run_bench_ros(args: argparse.Namespace) -> int:
    import importlib.util

    from posekit.io.atomic import atomic_write_text

    if importlib.util.find_spec("rclpy") is None:
        raise MissingFileError(
            "posekit bench ros runs real ROS 2 nodes and needs rclpy, which is not installed; "
            "install the ROS 2 extra: pip install -e '.[ros]' (then make setup)"
        )
    benchmark = _import_ros_nodes("benchmark", "the ROS 2 node benchmark (ros_nodes.benchmark)")
    format_table, run_ros_benchmark = benchmark.format_table, benchmark.run_ros_benchmark
    result = run_ros_benchmark(quick=args.quick, seconds=args.seconds, nodes=args.nodes, seed=args.seed)
    print(format_table(result))
    if args.json is not None:
        atomic_write_text(args.json, json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0
