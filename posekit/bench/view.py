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
from pathlib import Path

import numpy as np

from posekit.data.symsol import SYMSOL_I

METHODS = ("induced", "i2s")


def _test_set(per_shape: int, size: int, seed: int):
    from posekit.view.training import ViewDataConfig, validation_set

    return validation_set(ViewDataConfig(shapes=list(SYMSOL_I), val_per_shape=per_shape, val_seed=seed), size)


def equivariance_error(estimator, images: np.ndarray, level: int) -> float:
    """Max over images and grid points of ``|p(R | rot(img)) - p(Rz(-90) R | img)|`` (quarter turns)."""
    from posekit.geometry.so3_grid import quarter_turn_permutation

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
    from posekit.geometry.so3_grid import grid_size
    from posekit.view.distribution import SO3GridDistribution
    from posekit.view.estimator import ViewPoseEstimator
    from posekit.view.evaluation import evaluate_distributions

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


# ----------------------------------------------------------------------------- objects (view-lmo)

OBJECT_METHODS = ("induced", "i2s")


def crop_statistics(images: np.ndarray) -> dict:
    """Per-crop image statistics, mean and std over crops ``(N, S, S, 3)`` uint8: ``brightness``
    (mean grey level), ``contrast`` (grey std), ``saturation`` (mean of max-min over channels),
    ``sharpness`` (std of the grey Laplacian), ``noise`` (robust std of the grey minus its 3x3
    median: sensor noise and fine texture)."""
    import cv2

    rows = []
    for im in np.asarray(images):
        g = im.astype(np.float32).mean(-1)
        lap = cv2.Laplacian(g, cv2.CV_32F)
        hp = g - cv2.medianBlur(im.mean(-1).astype(np.uint8), 3).astype(np.float32)
        rows.append([g.mean(), g.std(), (im.max(-1).astype(float) - im.min(-1)).mean(), lap.std(),
                     1.4826 * np.median(np.abs(hp - np.median(hp)))])
    a = np.asarray(rows)
    names = ("brightness", "contrast", "saturation", "sharpness", "noise")
    return {n: {"mean": float(a[:, i].mean()), "std": float(a[:, i].std())} for i, n in enumerate(names)}


def real_frame_crops(frames: list[np.ndarray], K: np.ndarray, n: int, size: int, padding: float,
                     rng: np.random.Generator) -> np.ndarray:
    """``n`` crops of real frames through the prediction crop pipeline (random square boxes of
    10-45 % of the shorter image side: 48-216 px on a 640x480 frame)."""
    from posekit.geometry.crop import crop_camera, warp_crop

    out = []
    for i in range(n):
        im = frames[i % len(frames)]
        H, W = im.shape[:2]
        side = float(rng.uniform(0.1, 0.45) * min(H, W))
        x, y = rng.uniform(0, W - side), rng.uniform(0, H - side)
        out.append(warp_crop(im, crop_camera([x, y, side, side], K, size, padding), K))
    return np.stack(out)


def real_crop_check(image: np.ndarray, mask: np.ndarray, K: np.ndarray, points_cam: np.ndarray, size: int = 64,
                    padding: float = 1.2) -> dict:
    """The prediction crop pipeline on a real frame with a known object pose: the crop of the
    image and of its object ``mask (H, W)`` through ``crop_camera(bbox_from_mask(mask))`` /
    ``warp_crop``, against the object's points ``(N, 3)`` in the camera frame (metres) projected
    by that crop camera (``K_crop R_cam_crop^T p``). Returns ``iou`` of the warped mask and the
    projected points' pixels (3x3-closed), ``centre_offset_px`` between their centroids (crop px),
    and ``colour_shift`` (grey levels: mean object colour in the crop minus in the full frame)."""
    import cv2

    from posekit.geometry.crop import bbox_from_mask, crop_camera, warp_crop

    m = np.asarray(mask) > 0
    cam = crop_camera(bbox_from_mask(m), K, size, padding)
    crop = warp_crop(np.asarray(image), cam, K)
    crop_mask = warp_crop(m.astype(np.float32), cam, K) >= 0.5
    p = np.asarray(points_cam, float) @ cam.R_cam_crop
    p = p[p[:, 2] > 0]
    uv = np.round((p @ cam.K_crop.T)[:, :2] / p[:, 2:3]).astype(int)
    uv = uv[(uv >= 0).all(1) & (uv < size).all(1)]
    proj = np.zeros((size, size), np.uint8)
    proj[uv[:, 1], uv[:, 0]] = 1
    proj = cv2.morphologyEx(proj, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8)) > 0
    iou = float((proj & crop_mask).sum() / max(1, (proj | crop_mask).sum()))
    centre = np.argwhere(proj).mean(0) - np.argwhere(crop_mask).mean(0) if proj.any() and crop_mask.any() else [np.inf]
    shift = crop[crop_mask].mean(0) - np.asarray(image)[m].mean(0)
    return {"iou": iou, "centre_offset_px": float(np.linalg.norm(centre)), "colour_shift": [float(v) for v in shift],
            "object_pixels_frame": int(m.sum()), "object_pixels_crop": int(crop_mask.sum()), "crop_size": int(size)}


def synthetic_frames(n: int, height: int, width: int, crop, rng: np.random.Generator) -> list[np.ndarray]:
    """``n`` frames ``(height, width, 3)`` uint8 of the synthetic background kinds training uses
    (:func:`posekit.data.view_crops.random_background` without real photos)."""
    from posekit.data.view_crops import random_background

    side = max(height, width)
    return [np.round(random_background(rng, side, [], crop)[:height, :width]).astype(np.uint8) for _ in range(n)]


CAMERA_LOOK = {"blur_sigma_px": 1.0, "jpeg_quality": 75}


def camera_look(image: np.ndarray, blur_sigma_px: float = 1.0, jpeg_quality: int = 75) -> np.ndarray:
    """A soft consumer-camera look on a whole frame ``(H, W, 3)`` uint8: Gaussian blur, then JPEG
    compression (the real Kinect frames are softer than the renders, see ``crop_statistics``)."""
    import cv2

    x = cv2.GaussianBlur(image, (0, 0), blur_sigma_px) if blur_sigma_px > 0 else image
    _, buf = cv2.imencode(".jpg", np.ascontiguousarray(x[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
    return np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])


def frame_composite_benchmark(estimators: dict, objects, frames: list[np.ndarray], K: np.ndarray, per_object: int,
                              crop, level: int, seed: int) -> dict:
    """Each head on renders pasted into real ``frames`` (:func:`posekit.data.view_crops.paste_view_render`),
    predicted through the full-image API (``predict(image, obj_id=, bbox=, K=)``: crop warp and
    conversion to the camera frame), plain and with :func:`camera_look`; per variant and head the
    metrics of :func:`evaluate_distributions` (labels ``R_cam_obj`` and its symmetries). The poses
    depend only on ``seed`` and the frame size, so groups of same-sized frames are paired."""
    from posekit.data.view_crops import paste_view_render
    from posekit.view.evaluation import evaluate_distributions

    targets = []
    for i in range(len(objects.ids)):
        rng, pick = np.random.default_rng([seed, 13, i]), np.random.default_rng([seed, 14, i])
        for _ in range(per_object):
            frame = frames[int(pick.integers(len(frames)))]  # its own generator: poses do not depend on the frames
            targets.append(paste_view_render(objects, i, frame, K, rng, crop))
    names = [f"obj{objects.ids[c.obj_index]}" for c in targets]
    eqs = [c.R_cam_obj[None] @ objects.symmetries[c.obj_index] for c in targets]
    out = {}
    for variant in ("plain", "camera_look"):
        images = [c.image if variant == "plain" else camera_look(c.image, **CAMERA_LOOK) for c in targets]
        out[variant] = {}
        for head, est in estimators.items():
            dists = [est.predict(im, obj_id=objects.ids[c.obj_index], bbox=c.bbox, K=K, level=level)
                     for im, c in zip(images, targets)]
            m = evaluate_distributions(dists, eqs, names, with_spread=False)
            m["loglik_per_object"] = m.pop("loglik_per_shape")
            out[variant][head] = m
    return out


def run_object_view_benchmark(models: str, induced: str = "view-lmo", i2s: str = "view-lmo-i2s", *,
                              per_object: int | None = None, level: int | None = None, quick: bool = False,
                              seed: int = 2024, device: str = "cpu", backgrounds=None, real_frames=None,
                              real_K=None, composites=None, crop_check=None) -> dict:
    """Both heads on the same held-out renders of a models folder (crops made as in training from
    the induced model's ``data.crop`` config, seeds never used by training), per object and overall;
    with ``real_frames``, image statistics of real crops next to rendered ones; with ``composites``
    (paths: each file or folder of real frames is one group) both heads on renders pasted into
    those frames (:func:`frame_composite_benchmark`), noting which groups the induced model saw as
    training backgrounds; with ``crop_check`` = (frame, mask, camera.json, points) the crop
    pipeline on a real frame with a known pose (:func:`real_crop_check`)."""
    import torch

    from posekit.data.view_crops import ViewCropConfig, load_backgrounds
    from posekit.errors import BadInputError
    from posekit.geometry.so3_grid import grid_size, quarter_turn_permutation
    from posekit.view.distribution import SO3GridDistribution
    from posekit.view.estimator import ViewPoseEstimator
    from posekit.view.evaluation import errors_by_visibility, evaluate_distributions
    from posekit.view.object_training import (
        ObjectViewDataConfig,
        ObjectViewTrainConfig,
        load_objects,
        validation_set,
    )

    per_object = per_object or (4 if quick else 40)
    level = level if level is not None else (2 if quick else 3)
    estimators = {"induced": ViewPoseEstimator.from_pretrained(induced, device=device, grid_level=level),
                  "i2s": ViewPoseEstimator.from_pretrained(i2s, device=device, grid_level=level)}
    for name, est in estimators.items():
        if not est.object_conditioned:
            raise BadInputError(f"{name} model {est.name} was not trained on objects (posekit train view --models)")
    ids = estimators["induced"].obj_ids
    if estimators["i2s"].obj_ids != ids:
        raise BadInputError(f"the two models know different objects ({ids} vs {estimators['i2s'].obj_ids})")
    data_cfg = dict(estimators["induced"].config.get("data", {}))
    crop = ViewCropConfig(**dict(data_cfg.get("crop", {})))
    cfg = ObjectViewTrainConfig(data=ObjectViewDataConfig(models=str(models), obj_ids=list(ids), crop=crop))
    objects = load_objects(cfg.data)
    bgs = load_backgrounds(backgrounds or [])
    t0 = time.perf_counter()
    images, idx, _labels, eqs, visible = validation_set(cfg, objects, bgs, per_object=per_object, seed=seed + 7919,
                                                        visibility=True)
    render_s = time.perf_counter() - t0
    names = [f"obj{ids[i]}" for i in idx]
    methods = {}
    for name, est in estimators.items():
        logits = np.concatenate([est.predict_logits(images[s:s + 16], level, idx[s:s + 16])
                                 for s in range(0, len(images), 16)])
        dists = [SO3GridDistribution.from_logits(z, level) for z in logits]
        m = evaluate_distributions(dists, eqs, names, with_spread=not quick)
        m["loglik_per_object"] = m.pop("loglik_per_shape")
        errs = np.array([np.rad2deg(d.mode_error(e)) for d, e in zip(dists, eqs)])
        m["acc30_per_object"] = {n: float(np.mean(errs[np.array(names) == n] < 30)) for n in dict.fromkeys(names)}
        m["median_err_per_object"] = {n: float(np.median(errs[np.array(names) == n])) for n in dict.fromkeys(names)}
        # the same errors by how much of the target is visible (occluders); the headline keeps every target
        m["by_visibility"] = errors_by_visibility(errs, visible)
        valid = visible >= 0.1  # BOP evaluates targets with visib_fract >= 0.1 only
        m["visible_at_least_10pct"] = {"n": int(valid.sum()), "acc30": float(np.mean(errs[valid] < 30)),
                                       "median_err_deg": float(np.median(errs[valid]))}
        lat = []
        for img, i in list(zip(images, idx))[: 8 if quick else 30]:
            t1 = time.perf_counter()
            est.predict(img, obj_id=ids[i])
            lat.append(1e3 * (time.perf_counter() - t1))
        m["latency_ms_median"] = float(np.median(lat))
        perm = quarter_turn_permutation(level)
        sub, sub_idx = images[:8], idx[:8]
        p = _softmax(est.predict_logits(sub, level, sub_idx))
        p_t = _softmax(est.predict_logits(np.ascontiguousarray(np.rot90(sub, -1, axes=(1, 2))), level, sub_idx))
        m["equivariance_error"] = float(np.abs(p_t[:, perm] - p).max())
        m["parameters"] = int(sum(q.numel() for q in est.model.parameters()))
        m["model"] = est.name
        m["trained_steps"] = int(est.config.get("train", {}).get("steps", 0))
        methods[name] = m
    result = {
        "benchmark": "view-objects",
        "settings": {"quick": quick, "seed": seed, "models": str(models), "obj_ids": ids, "per_object": per_object,
                     "grid_level": level, "grid_size": grid_size(level), "image_size": crop.image_size,
                     "device": device, "backgrounds": [str(b) for b in (backgrounds or [])],
                     "render_seconds": render_s, "weights": {"induced": str(induced), "i2s": str(i2s)},
                     "torch_threads": torch.get_num_threads()},
        "methods": methods,
        "rendered_crop_statistics": crop_statistics(images),
        "visible_fraction": {"mean": float(np.mean(visible)), "below_10pct": int(np.sum(visible < 0.1)),
                             "zero": int(np.sum(visible == 0)), "n": int(visible.size)},
    }
    if real_frames:
        frames = load_backgrounds(real_frames)
        if not frames:
            raise BadInputError(f"no images found in {real_frames}")
        K = np.asarray(real_K if real_K is not None else [[525.0, 0, 320], [0, 525.0, 240], [0, 0, 1]], float)
        real = real_frame_crops(frames, K, 4 * len(frames) if quick else 60, crop.image_size, crop.padding,
                                np.random.default_rng(seed))
        result["real_crop_statistics"] = crop_statistics(real)
        result["settings"]["real_frames"] = len(frames)
    if composites:
        K = np.asarray(real_K if real_K is not None else [[525.0, 0, 320], [0, 525.0, 240], [0, 0, 1]], float)
        seen = {Path(b).resolve() for b in data_cfg.get("backgrounds", [])}
        per = max(1, per_object // 2)
        groups = {}
        t0 = time.perf_counter()
        sets = [(Path(path).name, str(path), load_backgrounds([path])) for path in composites]
        for name, path, frames in sets:
            if not frames:
                raise BadInputError(f"no images found in {path}")
        H, W = sets[0][2][0].shape[:2]
        # control: the same poses on synthetic frames of the training kinds (paired when the sizes agree)
        sets.append(("synthetic (control)", "", synthetic_frames(8, H, W, crop, np.random.default_rng(seed))))
        for name, path, frames in sets:
            groups[name] = {
                "path": path, "frames": len(frames), "per_object": per,
                "training_backgrounds": bool(path) and Path(path).resolve() in seen, "synthetic": not path,
                "variants": frame_composite_benchmark(estimators, objects, frames, K, per, crop, level, seed + 7919)}
        result["composites"] = groups
        result["settings"]["composite_seconds"] = time.perf_counter() - t0
        result["settings"]["camera_look"] = dict(CAMERA_LOOK)
    if crop_check:
        from PIL import Image

        from posekit.io.bop import read_camera
        from posekit.io.pointcloud import read_point_cloud

        frame_path, mask_path, camera_path, points_path = crop_check
        (frame,) = load_backgrounds([frame_path], max_side=1 << 16)
        with Image.open(mask_path) as im:
            mask = np.asarray(im.convert("L"))
        if mask.shape != frame.shape[:2]:
            raise BadInputError(f"{mask_path}: mask {mask.shape} does not match the frame {frame.shape[:2]}")
        check = real_crop_check(frame, mask, read_camera(camera_path)[0], read_point_cloud(points_path).points,
                                crop.image_size, crop.padding)
        result["real_crop_check"] = {**check, "files": [str(f) for f in crop_check]}
    return result


def format_object_table(result: dict) -> str:
    """Fixed-width table: overall and per-object metrics, one column per head; image statistics."""
    methods = list(result["methods"])
    s = result["settings"]
    w = 17
    lines = [(f"View benchmark (objects): {s['models']}, {s['per_object']} held-out renders per object "
             f"(occluders, clutter, backgrounds), grid level {s['grid_level']} ({s['grid_size']} rotations), "
             f"{s['image_size']} px"),
             "".ljust(36) + "".join(f"{m:>{w}}" for m in methods), "-" * (36 + w * len(methods))]

    def row(label, get, fmt="{:.3f}"):
        vals = []
        for m in methods:
            v = get(result["methods"][m])
            text = "" if v is None else fmt.format(*v) if isinstance(v, tuple) else fmt.format(v)
            missing = v is None or (isinstance(v, float) and not np.isfinite(v))
            vals.append(f"{'-':>{w}}" if missing else f"{text:>{w}}")
        lines.append(label.ljust(36) + "".join(vals))

    row("log-likelihood (mean over objects)", lambda r: r["loglik_mean"])
    row("Acc@15 [%]", lambda r: 100 * r["acc15"], "{:.1f}")
    row("Acc@30 [%]", lambda r: 100 * r["acc30"], "{:.1f}")
    row("median error [deg]", lambda r: r["median_err_deg"], "{:.1f}")
    row("spread [deg]", lambda r: r.get("spread_deg"), "{:.1f}")
    for obj in result["methods"][methods[0]]["loglik_per_object"]:
        row(f"  {obj}: loglik, Acc@30 %, median deg", lambda r, o=obj: (r["loglik_per_object"][o], 100 * r["acc30_per_object"][o],
                                                                r["median_err_per_object"][o]), "{0:5.2f} {1:4.0f} {2:5.1f}")
    if "by_visibility" in result["methods"][methods[0]]:
        for b, part in enumerate(result["methods"][methods[0]]["by_visibility"]):
            row(f"  visible {part['lo']:.1f}-{part['hi']:.1f}, n={part['n']}: Acc30, med",
                lambda r, b=b: (100 * r["by_visibility"][b]["acc30"], r["by_visibility"][b]["median_err_deg"]),
                "{0:5.1f} {1:6.1f}")
        n_valid = result["methods"][methods[0]]["visible_at_least_10pct"]["n"]
        row(f"visible >= 0.1, n={n_valid}: Acc30, med",
            lambda r: (100 * r["visible_at_least_10pct"]["acc30"], r["visible_at_least_10pct"]["median_err_deg"]),
            "{0:5.1f} {1:6.1f}")
    row("latency / image [ms]", lambda r: r["latency_ms_median"], "{:.1f}")
    row("equivariance error (90 deg)", lambda r: r["equivariance_error"], "{:.1e}")
    row("parameters", lambda r: r["parameters"], "{:d}")
    row("trained steps", lambda r: r["trained_steps"], "{:d}")
    for group, g in result.get("composites", {}).items():
        seen = ("synthetic, as in training" if g.get("synthetic") else
                "seen in training as backgrounds" if g["training_backgrounds"] else "never seen in training")
        lines += ["", (f"Renders pasted into frames: {group} ({g['frames']} frames, {seen}), {g['per_object']} "
                       "per object, predicted from the full frame (crop warp, camera-frame conversion)")]
        for variant, label in (("plain", "plain"), ("camera_look", "blur+JPEG")):
            heads = g["variants"][variant]
            lines.append(f"  {label}: " + "; ".join(
                f"{h} LL {m['loglik_mean']:.2f}, Acc@30 {100 * m['acc30']:.1f} %, median {m['median_err_deg']:.1f} deg"
                for h, m in heads.items()))
    if "real_crop_check" in result:
        c = result["real_crop_check"]
        lines += ["", (f"Crop pipeline on a real frame with a known pose ({Path(c['files'][0]).name}): mask vs projected "
                       f"points IoU {c['iou']:.3f}, centre offset {c['centre_offset_px']:.2f} px (of {c['crop_size']}), "
                       "colour shift " + " / ".join(f"{v:+.1f}" for v in c["colour_shift"]) + " grey levels")]
    if "real_crop_statistics" in result:
        lines += ["", "Crop image statistics (mean +- std over crops): rendered vs real frames",
                  "".ljust(20) + f"{'rendered':>20}{'real':>20}"]
        for k, v in result["rendered_crop_statistics"].items():
            r = result["real_crop_statistics"][k]
            lines.append(k.ljust(20) + f"{v['mean']:>12.1f} +- {v['std']:<5.1f}" + f"{r['mean']:>12.1f} +- {r['std']:<5.1f}")
    return "\n".join(lines)
