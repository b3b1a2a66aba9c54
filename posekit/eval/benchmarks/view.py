"""View benchmark: induced-representation head vs I2S-style head on SYMSOL I (Implicit-PDF protocol).

Both models share the encoder, data (SYMSOL I renders on the fly) and training budget
(``configs/view.yaml`` with ``model.head`` set). On the same fixed test renders (seeded) each
method gets: ``loglik_mean`` (mean over shapes of the mean per-image log-likelihood
``log(p_nearest * N / pi^2)`` averaged over all equivalent rotations), ``loglik_per_shape``,
``spread_deg``, ``acc15``/``acc30`` (mode within 15/30 deg of an equivalent rotation),
``median_err_deg``, ``latency_ms_median`` (one image, CPU, grid logits included),
``n_images`` and ``equivariance_error``: the largest probability difference between the
prediction for an image turned a quarter turn and the prediction for the image with the grid
turned by the matching ``Rz(90 deg)``.
"""

from __future__ import annotations

import time

import numpy as np

from posekit.data.symsol import SYMSOL_I

METHODS = ("induced", "i2s")


def _test_set(per_shape: int, size: int, seed: int):
    from posekit.view.training import ViewDataConfig, validation_set

    return validation_set(ViewDataConfig(shapes=list(SYMSOL_I), val_per_shape=per_shape, val_seed=seed), size)


def equivariance_error(estimator, images: np.ndarray, level: int) -> float:
    """Max over images and grid points of ``|p(R | rot(img)) - p(Rz(-90) R | img)|`` (quarter turns)."""
    from posekit.view.so3_grid import quarter_turn_permutation

    perm = quarter_turn_permutation(level)
    p = _softmax(estimator.predict_logits(images, level))
    turned = np.ascontiguousarray(np.rot90(images, -1, axes=(1, 2)))  # Rz(+90 deg) in the camera frame
    p_turned = _softmax(estimator.predict_logits(turned, level))
    return float(np.abs(p_turned[:, perm] - p).max())


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def run_view_benchmark(induced: str = "view-symsol", i2s: str = "view-symsol-i2s", *, per_shape: int | None = None,
                       level: int | None = None, quick: bool = False, seed: int = 2024, device: str = "cpu") -> dict:
    """Evaluate both models on the same seeded SYMSOL I test renders; returns the JSON dict."""
    from posekit.view.distribution import SO3GridDistribution
    from posekit.view.estimator import ViewPoseEstimator
    from posekit.view.evaluation import evaluate_distributions
    from posekit.view.so3_grid import grid_size

    per_shape = per_shape or (6 if quick else 50)
    level = level if level is not None else (2 if quick else 3)
    estimators = {"induced": ViewPoseEstimator.from_pretrained(induced, device=device, grid_level=level),
                  "i2s": ViewPoseEstimator.from_pretrained(i2s, device=device, grid_level=level)}
    sizes = {e.image_size for e in estimators.values()}
    if len(sizes) != 1:
        from posekit.errors import BadInputError

        raise BadInputError(f"the two models take different image sizes {sorted(sizes)}; train both with one config")
    size = sizes.pop()
    images, eqs, names = _test_set(per_shape, size, seed)
    methods = {}
    for name, est in estimators.items():
        logits = np.concatenate([est.predict_logits(images[s:s + 16], level) for s in range(0, len(images), 16)])
        dists = [SO3GridDistribution.from_logits(z, level) for z in logits]
        metrics = evaluate_distributions(dists, eqs, names, with_spread=True)
        lat = []
        for img in images[: min(len(images), 10 if quick else 30)]:
            t0 = time.perf_counter()
            est.predict(img)
            lat.append(1e3 * (time.perf_counter() - t0))
        metrics["latency_ms_median"] = float(np.median(lat))
        metrics["equivariance_error"] = equivariance_error(est, images[: min(len(images), 8 if quick else 25)], level)
        metrics["model"] = est.name
        metrics["trained_steps"] = int(est.config.get("train", {}).get("steps", 0))
        methods[name] = metrics
    return {
        "benchmark": "view",
        "settings": {"quick": quick, "seed": seed, "shapes": list(SYMSOL_I), "per_shape": per_shape,
                     "grid_level": level, "grid_size": grid_size(level), "image_size": size, "device": device,
                     "models": {"induced": str(induced), "i2s": str(i2s)}},
        "methods": methods,
    }


def format_table(result: dict) -> str:
    """Fixed-width table: one row per metric, one column per method."""
    methods = list(result["methods"])
    shapes = result["settings"]["shapes"]
    rows = [("log-likelihood (mean over shapes)", "loglik_mean", 1.0)]
    rows += [(f"  log-likelihood {s}", ("loglik_per_shape", s), 1.0) for s in shapes]
    rows += [("spread [deg]", "spread_deg", 1.0), ("Acc@15 [%]", "acc15", 100.0), ("Acc@30 [%]", "acc30", 100.0),
             ("median error [deg]", "median_err_deg", 1.0), ("latency / image [ms]", "latency_ms_median", 1.0),
             ("equivariance error (90 deg)", "equivariance_error", 1.0), ("images", "n_images", 1.0)]
    s = result["settings"]
    lines = [(f"View benchmark: SYMSOL I, {s['per_shape']} images per shape, grid level {s['grid_level']} "
              f"({s['grid_size']} rotations), {s['image_size']} px"),
             "".ljust(36) + "".join(f"{m:>14}" for m in methods), "-" * (36 + 14 * len(methods))]
    for label, key, scale in rows:
        vals = []
        for m in methods:
            v = result["methods"][m]
            v = v[key[0]].get(key[1]) if isinstance(key, tuple) else v.get(key)
            if v is None:
                vals.append(f"{'-':>14}")
            elif key == "equivariance_error":
                vals.append(f"{v:>14.1e}")
            else:
                vals.append(f"{v * scale:>14.3f}" if key != "n_images" else f"{v:>14d}")
        lines.append(label.ljust(36) + "".join(vals))
    return "\n".join(lines)
