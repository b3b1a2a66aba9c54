"""The object engine's part of ``posekit demo``: poses of unseen procedural objects in a synthetic scene."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def run_demo(out_dir: Path, device: str = "cpu", seed: int = 0, dataset_dir: Path | None = None) -> list[str]:
    """Estimate every visible object of a synthetic BOP scene with the shipped weights.

    Uses the scene in ``dataset_dir`` (a BOP dataset such as the demo's) or synthesizes a
    small one. Oracle visible masks, as in the paper's protocol. Writes
    ``object_poses.png`` (estimated models drawn over the RGB) and ``object_results.csv``
    (BOP results format) into ``out_dir``; returns the lines to print.
    """
    from posekit import viz
    from posekit.eval.bop_scoring import evaluate_bop
    from posekit.io.bop import BopDataset, PoseEstimate, symmetry_transformations, write_results_csv
    from posekit.registration.estimator import ObjectPoseEstimator
    from posekit.registration.overlay import overlay_image
    from posekit.registration.train import pose_within_tenth_diameter, rotation_error_deg

    out_dir = Path(out_dir)
    if dataset_dir is None:
        from posekit.data.scenes import synthesize_bop_dataset

        dataset_dir = out_dir / "synthetic_bop"
        synthesize_bop_dataset("procedural", dataset_dir, n_scenes=1, n_images=1, seed=seed, width=640,
                               height=480, objects_per_scene=4, n_procedural_objects=6)
    ds = BopDataset(dataset_dir)
    est = ObjectPoseEstimator.from_pretrained("registration-procedural", device=device)
    models = {}
    lines = [(f"object engine: {est.name}, {est.num_hypotheses} diffusion chains x "
              f"{est.schedule.steps} steps per object, oracle masks")]
    lines.append(f"  {'obj':>4s} {'visible':>8s} {'rot err':>9s} {'trans err':>10s} {'ADD(-S)':>8s} {'score':>6s} {'ms':>6s}")
    estimates = []
    scene_id = ds.scene_ids[0]
    im_id = ds.image_ids(scene_id)[0]
    img = ds.load_image(scene_id, im_id, masks=True)
    picture = img.rgb.copy()
    for gt, info, mask in zip(img.gt, img.gt_info, img.masks_visib):
        if info.visib_fract < 0.1:
            continue
        if gt.obj_id not in models:
            mi = ds.models_info[gt.obj_id]
            models[gt.obj_id] = est.prepare_model(ds.model(gt.obj_id), obj_id=gt.obj_id,
                                                  symmetries=symmetry_transformations(mi), diameter=mi.diameter)
        model = models[gt.obj_id]
        res = est.estimate(model, depth=img.depth, K=img.K, mask=mask)
        if not res.success:
            lines.append(f"  {gt.obj_id:4d} {info.visib_fract:8.0%}  failed: {res.reason}")
            continue
        estimates.append(PoseEstimate(scene_id, im_id, gt.obj_id, res.score, res.R, res.t, res.time_ms / 1e3))
        rot = rotation_error_deg(res.R, gt.T_cam_model[:3, :3], model.cloud.symmetries)
        trans = np.linalg.norm(res.t - gt.T_cam_model[:3, 3]) * 1e3
        add_ok = pose_within_tenth_diameter(res.T_cam_model, gt.T_cam_model, model.cloud)
        lines.append(f"  {gt.obj_id:4d} {info.visib_fract:8.0%} {rot:8.1f}° {trans:8.1f} mm {'yes' if add_ok else 'no':>8s}"
                     f" {res.score:6.2f} {res.time_ms:6.0f}")
        picture = overlay_image(picture, img.K, res.T_cam_model, model.cloud)
    csv = write_results_csv(out_dir / "object_results.csv", estimates)
    png = viz.save_panels(out_dir / "object_poses.png", [("RGB", img.rgb), ("estimated poses (model points + axes)",
                                                                          picture)],
                          title="posekit object engine: SE(3) diffusion registration, unseen objects")
    targets = [t for t in ds.targets() if (t.scene_id, t.im_id) == (scene_id, im_id)]
    scores = evaluate_bop(ds, estimates, targets=targets, progress=False)["overall"] if estimates else {}
    if scores:
        lines.append("  BOP scores of this image: " + ", ".join(
            f"{k} {scores[k]:.3f}" for k in ("ar", "add_s_recall", "rot_recall_5deg", "trans_recall_1cm")))
    lines.append(f"  wrote {png} and {csv}")
    return lines

