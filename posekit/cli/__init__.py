"""The ``posekit`` command: a thin adapter that parses arguments and calls the library.

Each command group lives in its own module of this package and exposes
``register(subparsers)``, which adds its parser(s) and sets ``func`` to a callable
taking the parsed arguments and returning an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys

from posekit import __version__
from posekit.errors import PosekitError

# Modules of posekit.cli, each with register(subparsers). Order is the order of --help.
COMMAND_MODULES = ["demo", "synth", "train", "predict", "eval", "bench", "ros"]
# One adapter module per engine. Besides register(subparsers) for its own top-level commands
# (e.g. ``posekit register``), it may define register_synth/register_train/register_predict/
# register_bench(sub), which the group modules call to add ``posekit <group> <engine>``.
ENGINE_MODULES = ["registration", "body", "view"]


def engine_hooks(hook: str) -> list:
    """The ``hook`` functions (e.g. ``"register_train"``) of the engine adapter modules."""
    hooks = []
    for name in ENGINE_MODULES:
        if importlib.util.find_spec(f"posekit.cli.{name}") is None:
            continue  # engine not present in this build
        func = getattr(importlib.import_module(f"posekit.cli.{name}"), hook, None)
        if func is not None:
            hooks.append(func)
    return hooks


def add_command_group(subparsers: argparse._SubParsersAction, name: str, help: str,
                      metavar: str) -> argparse._SubParsersAction:
    """Add ``posekit NAME SUBCOMMAND ...``; ``posekit NAME`` alone prints its help and exits 2."""
    parser = subparsers.add_parser(name, help=help, description=help[:1].upper() + help[1:] + ".")
    sub = parser.add_subparsers(dest=f"{name}_command", metavar=metavar)

    def print_help(args: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    parser.set_defaults(func=print_help)
    return sub


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="posekit",
        description="3D pose estimation for robotics: bodies, 6D objects and view orientation.",
    )
    parser.add_argument("--version", action="version", version=f"posekit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"posekit.cli.{name}").register(sub)
    for register_engine in engine_hooks("register"):
        register_engine(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except PosekitError as exc:
        print(f"posekit {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
