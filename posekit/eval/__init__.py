"""Metrics and benchmarks: BOP pose errors and scores (:mod:`~posekit.eval.pose_error`,
:mod:`~posekit.eval.bop_scoring`) and the ``posekit bench`` benchmarks
(:mod:`~posekit.eval.benchmarks`)."""

from posekit.eval.bop_scoring import evaluate_bop, score_bop

__all__ = ["evaluate_bop", "score_bop"]
