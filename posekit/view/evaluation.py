"""Implicit-PDF evaluation of SO(3) grid distributions: log-likelihood, spread, accuracy, errors."""

from __future__ import annotations

from collections import defaultdict
from itertools import pairwise

import numpy as np

from posekit.view.distribution import SO3GridDistribution


def evaluate_distributions(dists: list[SO3GridDistribution], equivalents: list[np.ndarray], shapes: list[str],
                           with_spread: bool = True) -> dict:
    """Metrics over images: ``loglik_mean`` (mean of per-shape means, as SYMSOL reports it),
    ``loglik_per_shape``, ``spread_deg``, ``acc15``/``acc30`` (mode within 15/30 deg of an
    equivalent ground truth), ``median_err_deg``, ``n_images``."""
    ll = defaultdict(list)
    errs, spreads = [], []
    for d, eq, s in zip(dists, equivalents, shapes):
        ll[s].append(d.log_likelihood(eq))
        errs.append(np.rad2deg(d.mode_error(eq)))
        if with_spread:
            spreads.append(np.rad2deg(d.spread(eq)))
    per_shape = {s: float(np.mean(v)) for s, v in ll.items()}
    errs = np.asarray(errs)
    return {
        "loglik_mean": float(np.mean(list(per_shape.values()))) if per_shape else float("nan"),
        "loglik_per_shape": per_shape,
        "spread_deg": float(np.mean(spreads)) if spreads else float("nan"),
        "acc15": float(np.mean(errs < 15)) if errs.size else float("nan"),
        "acc30": float(np.mean(errs < 30)) if errs.size else float("nan"),
        "median_err_deg": float(np.median(errs)) if errs.size else float("nan"),
        "n_images": len(dists),
    }


VISIBILITY_BINS = (0.0, 0.1, 0.3, 0.6, 0.9, 1.0)


def errors_by_visibility(errors_deg, visible, bins=VISIBILITY_BINS) -> list[dict]:
    """Acc@15/Acc@30 and median of mode errors ``errors_deg (N,)`` per bin of the targets' visible
    fractions ``visible (N,)`` (BOP's ``visib_fract``; the last bin includes 1.0): one dict per bin
    with ``lo``, ``hi``, ``n`` (NaN metrics for an empty bin)."""
    e, v = np.asarray(errors_deg, float), np.asarray(visible, float)
    out = []
    for i, (lo, hi) in enumerate(pairwise(bins)):
        sel = (v >= lo) & ((v <= hi) if i == len(bins) - 2 else (v < hi))
        n = int(sel.sum())
        out.append({"lo": float(lo), "hi": float(hi), "n": n,
                    "acc15": float(np.mean(e[sel] < 15)) if n else float("nan"),
                    "acc30": float(np.mean(e[sel] < 30)) if n else float("nan"),
                    "median_err_deg": float(np.median(e[sel])) if n else float("nan")})
    return out
