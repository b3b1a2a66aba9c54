"""Metrics: BOP pose errors and scores (:mod:`~posekit.eval.pose_error`,
:mod:`~posekit.eval.bop_scoring`), body metrics and score calibration. No engine is imported
here: engines import their metrics from eval, and the benchmarks that run engines live one
layer up, in :mod:`posekit.bench`."""

from posekit.eval.bop_scoring import evaluate_bop, score_bop

__all__ = ["evaluate_bop", "score_bop"]
