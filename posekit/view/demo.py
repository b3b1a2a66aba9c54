"""View-pose demo: render a symmetric SYMSOL shape, predict p(R | image) with the shipped model,
and plot the distribution (its modes should sit on the shape's symmetric rotations)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def run_demo(out_dir: Path, device: str = "cpu", seed: int = 0) -> list[str]:
    """Write ``view_<shape>.png`` plots into ``out_dir``; return the lines to print."""
    from posekit.data.symsol import equivalent_rotations, render_symsol
    from posekit.geometry.rigid_np import random_rotation_np
    from posekit.view.distribution import plot_so3_distribution
    from posekit.view.estimator import ViewPoseEstimator

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    est = ViewPoseEstimator.from_pretrained("view-symsol", device=device, grid_level=3)
    rng = np.random.default_rng(seed)
    lines = [(f"view: model {est.name} ({est.config['model']['head']} head), "
              f"grid of {72 * 8 ** est.grid_level} rotations")]
    for shape in ("cube", "cone"):
        R = random_rotation_np(rng)
        image = render_symsol(shape, R, est.image_size)
        eq = equivalent_rotations(shape, R, est.image_size, image=image)
        dist = est.predict(image)
        modes = dist.top_modes(30, min_separation_deg=25)
        strong = [m for m in modes if m[1] > 0.5 * modes[0][1]]
        path = plot_so3_distribution(dist, out_dir / f"view_{shape}.png", gt_rotations=eq, image=image,
                                     title=f"{shape}: p(R | image), circles = {len(eq)} equivalent true rotations")
        lines.append(f"view: {shape}: log-likelihood {dist.log_likelihood(eq):.2f} (uniform -2.29), "
                     f"mode error {np.rad2deg(dist.mode_error(eq)):.1f} deg to the nearest of {len(eq)} "
                     f"equivalent rotations, {len(strong)} strong modes; plot {path}")
    return lines
