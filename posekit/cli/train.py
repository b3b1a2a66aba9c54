"""``posekit train ENGINE``: train an engine's network (the subcommands live in each engine's adapter)."""

from __future__ import annotations

from posekit.cli import add_command_group, engine_hooks


def register(subparsers) -> None:
    sub = add_command_group(subparsers, "train", "train an engine's network (checkpoints, resume, torchrun)",
                            "ENGINE")
    for register_engine in engine_hooks("register_train"):
        register_engine(sub)
