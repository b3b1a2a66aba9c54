"""The ``posekit`` command: a thin adapter that parses arguments and calls the library.

Each command group lives in its own module of this package and exposes
``register(subparsers)``, which adds its parser(s) and sets ``func`` to a callable
taking the parsed arguments and returning an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from posekit import __version__
from posekit.errors import PosekitError

# Modules of posekit.cli, each with register(subparsers). Order is the order of --help.
COMMAND_MODULES = ["demo", "synth", "eval", "bench"]


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
