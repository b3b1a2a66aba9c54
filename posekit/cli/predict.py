"""``posekit predict KIND``: run an engine over a whole dataset (e.g. ``predict bop`` -> results CSV)."""

from __future__ import annotations

from posekit.cli import add_command_group, engine_hooks


def register(subparsers) -> None:
    sub = add_command_group(subparsers, "predict", "run an engine over a dataset and write its results",
                            "KIND")
    for register_engine in engine_hooks("register_predict"):
        register_engine(sub)
