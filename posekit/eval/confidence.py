"""Does a confidence separate right answers from wrong ones? AUROC, one home for every engine.

Every engine reports how well its answer explains the data (the object engine's ``score``,
the body engine's ``confidence``, the view engine's density); the benchmarks report the
area under the ROC curve of that number for "right" (e.g. ADD(-S) < 0.1 d) vs "wrong".
"""

from __future__ import annotations

import numpy as np

from posekit.errors import BadInputError


def auroc(scores, correct) -> float | None:
    """Area under the ROC curve of ``scores (N,)`` for ``correct (N,)`` bool: the probability
    that a right answer scores higher than a wrong one (ties count one half; Mann-Whitney U).

    Returns None when one of the two classes is empty (the AUROC is undefined). Non-finite
    scores (a failed answer) rank lowest.
    """
    from scipy.stats import rankdata

    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    y = np.asarray(correct, dtype=bool).reshape(-1)
    if s.shape != y.shape:
        raise BadInputError(f"scores {s.shape} and correct {y.shape} must have the same length")
    s = np.where(np.isfinite(s), s, -np.inf)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = rankdata(s)  # average ranks for ties
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))
