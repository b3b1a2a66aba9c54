"""``posekit demo``: the main job on built-in data, end to end, with a picture.

Synthesizes a small BOP-format tabletop scene from procedural objects, reads it back with
the BOP reader and draws RGB + GT axes, depth and visible masks into one PNG; then runs each
engine with its shipped weights: 6D poses of the scene's (never seen) objects scored with the
BOP metrics, a body fit to a procedural body in an unseen pose, and an SO(3) distribution
for a symmetric shape, each with its picture.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="synthesize a scene, draw it, score poses on it (built-in data)")
    p.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder (default: demo_out)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from posekit import viz
    from posekit.data.scenes import synthesize_bop_dataset
    from posekit.io.bop import BopDataset

    out: Path = args.out
    data_dir = out / "synthetic_bop"
    print(f"[1/5] synthesizing a BOP scene of procedural objects in {data_dir}")
    summary = synthesize_bop_dataset(
        "procedural", data_dir, n_scenes=1, n_images=2, seed=args.seed,
        width=args.width, height=args.height, objects_per_scene=4, n_procedural_objects=6,
    )
    print(f"      {summary.n_images} images, {summary.n_objects} objects, {summary.images_per_second:.2f} images/s")

    ds = BopDataset(data_dir)
    scene_id = ds.scene_ids[0]
    im_id = ds.image_ids(scene_id)[0]
    img = ds.load_image(scene_id, im_id, masks=True)

    print("[2/5] drawing the scene")
    annotated = img.rgb.copy()
    for gt in img.gt:
        pts = ds.model(gt.obj_id).sample_points(1500, seed=gt.obj_id)
        annotated = viz.draw_model_silhouette(annotated, pts, img.K, gt.T_cam_model)
        annotated = viz.draw_axes(annotated, img.K, gt.T_cam_model, length=0.05)
    panels = [
        ("RGB + GT axes and model points", annotated),
        ("depth (sensor model)", viz.depth_to_colour(img.depth)),
        ("visible masks", viz.overlay_masks(img.rgb, img.masks_visib)),
    ]
    png = viz.save_panels(out / "scene.png", panels, title=f"posekit demo: scene {scene_id}, image {im_id}")
    print(f"      wrote {png}")
    for gid, (gt, info) in enumerate(zip(img.gt, img.gt_info)):
        t = gt.T_cam_model[:3, 3]
        print(f"      gt {gid}: obj {gt.obj_id:2d}  t = ({t[0]:+.3f}, {t[1]:+.3f}, {t[2]:+.3f}) m  "
              f"visible {info.visib_fract:5.1%}")

    print("[3/5] object engine: 6D poses of the scene's objects (never seen in training)")
    from posekit.registration.demo import run_demo as object_demo

    for line in object_demo(out, device=args.device, seed=args.seed, dataset_dir=data_dir):
        print("      " + line)
    for step, (engine, label) in enumerate((("body", "body engine: SMPL-format fit to a point cloud, unseen pose"),
                                            ("view", "view engine: SO(3) distribution from one image")), start=4):
        print(f"[{step}/5] {label}")
        import importlib.util

        if importlib.util.find_spec(f"posekit.{engine}.demo") is None:
            print("      (engine not in this build)")
            continue
        demo = importlib.import_module(f"posekit.{engine}.demo")
        for line in demo.run_demo(out, device=args.device, seed=args.seed):
            print("      " + line)
    print(f"done: open {png}")
    return 0
