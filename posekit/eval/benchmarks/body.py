"""Body benchmark: the posekit network vs network + refinement vs the optimisation baseline.

The same synthetic clouds of the body model go to every method (seeded, 2048 points each,
random translation within +-1 m, shapes from the model's shape space):

* ``common``: "common" poses (the training distribution), full clouds, canonical (upright);
* ``unseen``: "unseen" poses (deep squats, arms overhead, leg raises, twists...), full, canonical;
* ``unseen_rotated``: unseen poses, full clouds, uniformly random global rotation;
* ``unseen_partial``: unseen poses, single-view partial scans (random viewpoint), upright.

Methods: ``posekit`` (:meth:`BodyFitter.fit`, one network pass), ``posekit+refine``
(:meth:`BodyFitter.refine` from it), ``optimization`` (:func:`fit_by_optimization` alone, 8
initial orientations). Metrics (:mod:`posekit.eval.body_metrics`): V2V and MPJPE in cm, part
accuracy, median latency per cloud. JSON: ``{"benchmark": "body", "settings": {...},
"methods": {name: {v2v_cm_common, v2v_cm_unseen, v2v_cm_unseen_rotated, v2v_cm_unseen_partial,
mpjpe_cm_unseen, part_acc_unseen, latency_ms_median, n_samples}}}``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from posekit.eval.body_metrics import mpjpe_cm, part_accuracy, v2v_cm

METHODS = ("posekit", "posekit+refine", "optimization")
SETS = {  # name: (pose kind, rotate, partial)
    "common": ("common", False, False),
    "unseen": ("unseen", False, False),
    "unseen_rotated": ("unseen", True, False),
    "unseen_partial": ("unseen", False, True),
}
CLOUD_POINTS = 2048


def make_sets(body, samples: int, seed: int) -> dict:
    """The benchmark's clouds and ground truth per set (:class:`~posekit.body.clouds.BodyBatch`)."""
    from posekit.body.clouds import make_body_batch

    sets = {}
    for i, (name, (kind, rotate, partial)) in enumerate(SETS.items()):
        rng = np.random.default_rng([seed, i])
        sets[name] = make_body_batch(body, rng, samples, CLOUD_POINTS, kind, rotate=rotate,
                                     partial_fraction=1.0 if partial else 0.0)
    return sets


def run_body_benchmark(weights: str | Path = "body-default", body_model: str | Path | None = None,
                       samples: int | None = None, quick: bool = False, seed: int = 0,
                       device: str = "cpu", optimization=None) -> dict:
    """Run every method on every set; returns the JSON-ready result (see the module docstring).

    ``optimization``: :class:`~posekit.body.optimization.OptimizationSettings` of the baseline
    (default: 150 steps from 8 orientations; --quick: 60 steps from 4); refinement runs a third
    as many steps from the network's fit.
    """
    from posekit.body.fitter import BodyFitter
    from posekit.body.optimization import OptimizationSettings

    samples = samples or (2 if quick else 16)
    fitter = BodyFitter.from_pretrained(weights, body_model=body_model, device=device)
    opt = optimization or (OptimizationSettings(seed=seed) if not quick else OptimizationSettings(
        seed=seed, iterations=60, global_iterations=20, n_inits=4))
    refine = OptimizationSettings(seed=seed, iterations=opt.iterations)
    sets = make_sets(fitter.body.cpu(), samples, seed)
    fitter.body.to(fitter.device)
    per = {m: {s: {"v2v": [], "mpjpe": [], "acc": []} for s in SETS} for m in METHODS}
    latency = {m: [] for m in METHODS}
    for set_name, batch in sets.items():
        for i in range(len(batch)):
            pts = batch.points[i].numpy()
            truth_v, truth_j, truth_l = batch.vertices[i].numpy(), batch.joints[i].numpy(), batch.labels[i].numpy()
            t0 = time.perf_counter()
            net_fit = fitter.fit(pts)
            t_net = time.perf_counter() - t0
            t0 = time.perf_counter()
            refined = fitter.refine(pts, net_fit, settings=refine)
            t_ref = time.perf_counter() - t0 + t_net
            t0 = time.perf_counter()
            optimised = fitter.fit_by_optimization(pts, settings=opt)
            t_opt = time.perf_counter() - t0
            for method, fit, seconds in (("posekit", net_fit, t_net), ("posekit+refine", refined, t_ref),
                                         ("optimization", optimised, t_opt)):
                row = per[method][set_name]
                row["v2v"].append(v2v_cm(fit.vertices, truth_v))
                row["mpjpe"].append(mpjpe_cm(fit.joints, truth_j))
                row["acc"].append(part_accuracy(fit.part_labels, truth_l))
                latency[method].append(1e3 * seconds)
    methods = {}
    for m in METHODS:
        methods[m] = {
            "v2v_cm_common": float(np.mean(per[m]["common"]["v2v"])),
            "v2v_cm_unseen": float(np.mean(per[m]["unseen"]["v2v"])),
            "v2v_cm_unseen_rotated": float(np.mean(per[m]["unseen_rotated"]["v2v"])),
            "v2v_cm_unseen_partial": float(np.mean(per[m]["unseen_partial"]["v2v"])),
            "mpjpe_cm_unseen": float(np.mean(per[m]["unseen"]["mpjpe"])),
            "part_acc_unseen": float(np.mean(per[m]["unseen"]["acc"])),
            "latency_ms_median": float(np.median(latency[m])),
            "n_samples": int(sum(len(per[m][s]["v2v"]) for s in SETS)),
        }
    settings = {
        "samples_per_set": samples, "sets": {k: {"poses": v[0], "rotated": v[1], "partial": v[2]}
                                             for k, v in SETS.items()},
        "n_points": CLOUD_POINTS, "network_points": fitter.net.config.n_points, "group": fitter.net.config.group,
        "weights": str(weights), "body_model": str(body_model or "default procedural body"),
        "quick": bool(quick), "seed": seed, "device": str(device),
        "optimization": {"iterations": opt.iterations, "n_inits": opt.n_inits},
        "refine_iterations": max(refine.iterations // 3, 1),
    }
    return {"benchmark": "body", "settings": settings, "methods": methods}


def format_table(result: dict) -> str:
    """Fixed-width table: one row per metric, one column per method, then the issue's targets."""
    methods = list(result["methods"])
    rows = (("V2V common [cm]", "v2v_cm_common"), ("V2V unseen [cm]", "v2v_cm_unseen"),
            ("V2V unseen rotated [cm]", "v2v_cm_unseen_rotated"), ("V2V unseen partial [cm]", "v2v_cm_unseen_partial"),
            ("MPJPE unseen [cm]", "mpjpe_cm_unseen"), ("part accuracy unseen", "part_acc_unseen"),
            ("latency median [ms]", "latency_ms_median"), ("clouds", "n_samples"))
    w = max(len(r[0]) for r in rows) + 2
    lines = ["".ljust(w) + "".join(f"{m:>16}" for m in methods), "-" * (w + 16 * len(methods))]
    for label, key in rows:
        lines.append(label.ljust(w) + "".join(f"{result['methods'][m][key]:>16.3f}" for m in methods))
    net, base = result["methods"].get("posekit"), result["methods"].get("optimization")
    if net and base:
        gain = 1 - net["v2v_cm_unseen"] / max(base["v2v_cm_unseen"], 1e-9)
        speed = base["latency_ms_median"] / max(net["latency_ms_median"], 1e-9)
        rot = net["v2v_cm_unseen_rotated"] / max(net["v2v_cm_unseen"], 1e-9) - 1
        lines.append("")
        lines.append(f"targets: unseen V2V {net['v2v_cm_unseen']:.2f} cm (<= 3), {100 * gain:.0f}% lower than "
                     f"optimisation (>= 44%), {speed:.0f}x faster (>= 100x), rotated vs canonical "
                     f"{100 * rot:+.0f}% (within 10%)")
    return "\n".join(lines)


__all__ = ["METHODS", "SETS", "format_table", "make_sets", "run_body_benchmark"]
