"""``posekit eval ...``: benchmarks. ``posekit eval bop`` scores a BOP results CSV.

Adapter only: parse arguments, call :func:`posekit.eval.bop_scoring.score_bop`, print a
table and write JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from posekit.cli import add_command_group

# Table columns: (score key, header).
_COLUMNS = [
    ("ar", "AR"),
    ("ar_vsd", "AR_VSD"),
    ("ar_mssd", "AR_MSSD"),
    ("ar_mspd", "AR_MSPD"),
    ("add_s_recall", "ADD(-S)"),
    ("add_recall", "ADD"),
    ("adi_recall", "ADI"),
    ("rot_recall_5deg", "R<5deg"),
    ("trans_recall_1cm", "t<1cm"),
]

def register(subparsers: argparse._SubParsersAction) -> None:
    sub = add_command_group(subparsers, "eval", "evaluate pose estimates on benchmarks", "BENCHMARK")

    bop = sub.add_parser(
        "bop",
        help="BOP19 scores (AR_VSD, AR_MSSD, AR_MSPD, ADD(-S), ...) of a results CSV",
        description=(
            "Score 6D pose estimates in the BOP19 results format (scene_id,im_id,obj_id,score,"
            "R,t,time; mm) against a BOP dataset, as bop_toolkit's eval_bop19_pose.py does: "
            "AR = mean of AR_VSD, AR_MSSD, AR_MSPD; recalls pooled over all targets. Also "
            "ADD(-S) at 0.1 diameter and rotation < 5 deg / translation < 1 cm recalls."
        ),
    )
    bop.add_argument("--dataset", required=True, type=Path, metavar="DIR", help="BOP dataset folder (with camera.json)")
    bop.add_argument("--results", required=True, type=Path, metavar="CSV", help="results CSV in the BOP19 format")
    bop.add_argument("--split", default="test", help="dataset split to score (default: test)")
    bop.add_argument("--targets", type=Path, default=None, metavar="FILE",
                     help="targets JSON (default: DATASET/test_targets_bop19.json, "
                          "or every GT object if absent)")
    bop.add_argument("--models", type=Path, default=None, metavar="DIR",
                     help="models folder for the errors (default: DATASET/models; BOP evaluates "
                          "on models_eval)")
    bop.add_argument("--json", type=Path, default=None, metavar="OUT", help="write the scores to this JSON file")
    bop.add_argument("--no-progress", action="store_true", help="do not show a progress bar")
    bop.set_defaults(func=run_bop)


def format_table(scores, title: str = "") -> str:
    """Fixed-width table of a :class:`~posekit.eval.bop_scoring.BopScores`: one row per object, then all."""
    header = f"{'object':>7} {'targets':>8} " + " ".join(f"{h:>8}" for _, h in _COLUMNS)
    rule = "-" * len(header)
    lines = [title] if title else []
    lines += [header, rule]

    def row(name: str, n: int, values: dict) -> str:
        return f"{name:>7} {n:>8d} " + " ".join(f"{values[k]:>8.3f}" for k, _ in _COLUMNS)

    for obj_id in sorted(scores.per_object):
        lines.append(row(str(obj_id), scores.n_targets_per_object[obj_id], scores.per_object[obj_id]))
    lines.append(rule)
    lines.append(row("all", scores.n_targets, scores.overall))
    return "\n".join(lines)


def run_bop(args: argparse.Namespace) -> int:
    from posekit.eval.bop_scoring import score_bop
    from posekit.io.atomic import atomic_write_text
    from posekit.io.bop import BopDataset, read_results_csv, read_test_targets

    dataset = BopDataset(args.dataset, split=args.split, models_dir=args.models)
    estimates = read_results_csv(args.results)
    targets = read_test_targets(args.targets) if args.targets is not None else None
    scores = score_bop(dataset, estimates, split=args.split, targets=targets,
                       progress=not args.no_progress)
    title = (f"BOP19 evaluation of {args.results.name} on {scores.dataset} ({args.split}): "
             f"{len(estimates)} estimates, {scores.n_targets} targets")
    print(format_table(scores, title))
    print("Recalls pooled over all targets; AR = mean(AR_VSD, AR_MSSD, AR_MSPD).")
    if args.json is not None:
        atomic_write_text(args.json, json.dumps(scores.to_dict(), indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0
