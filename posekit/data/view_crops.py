"""Training crops for the view engine on real objects: coloured meshes rendered as a detector
would crop them from a full camera image, with clutter, occluders and sensor effects.

One sample (:func:`render_view_crop`):

1. a full camera (``camera_width x camera_height``, focal ``focal`` px) sees the object at a
   Haar-random rotation ``R_cam_obj``, a distance of ``distance_diameters`` object diameters
   and a random image position;
2. the object's projected box is jittered like a detector's (centre, scale, aspect) and turned
   into a crop camera by :func:`posekit.geometry.crop.crop_camera`, the very function prediction
   uses; the label is the allocentric ``R_crop_obj = R_cam_crop^T R_cam_obj``;
3. the object, occluders in front of it and distractors behind it (other models) are
   ray-cast directly in the crop camera at ``supersample`` x the crop size (exact, no
   resampling of a full image), with a random distant light and ambient level;
4. background pixels get a random background: flat colour + noise, smooth random texture,
   stripes / checkerboard, or a random window of a real photo (``backgrounds``);
5. area-averaging to the crop size, colour jitter (brightness, contrast, saturation, per
   channel gain), Gaussian blur, sensor noise.

Symmetric objects: the ground-truth set is ``R_crop_obj S`` over the rotations ``S`` of the
model's symmetries (``models_info.json``, continuous ones every ``symmetry_step_deg``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from posekit.errors import BadInputError, MissingFileError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


@dataclass
class ViewCropConfig:
    """How training crops are made (the ``data.crop:`` section of configs/view_lmo.yaml)."""

    image_size: int = 64  # crop px (the network's input size)
    padding: float = 1.2  # crop side = padding x the box's larger side (as at prediction)
    supersample: int = 2  # render at this multiple of the crop size, then area-average
    camera_width: int = 640
    camera_height: int = 480
    focal: float = 572.0  # px (LINEMOD's Kinect: 572.4)
    distance_diameters: list = field(default_factory=lambda: [2.5, 8.0])  # camera distance / diameter
    image_margin: float = 0.1  # object centres stay this fraction of the image away from its border
    box_centre_jitter: float = 0.06  # std of the box centre shift, fraction of the box size
    box_scale_jitter: float = 0.12  # std of the log box scale
    box_aspect_jitter: float = 0.08  # std of the log aspect change
    occluder_probability: float = 0.4
    max_occluders: int = 2
    occluder_offset: list = field(default_factory=lambda: [0.6, 1.3])  # lateral offset, box half-sizes
    distractor_probability: float = 0.5  # other objects behind the target
    ambient: list = field(default_factory=lambda: [0.15, 0.6])
    background_real_probability: float = 0.35  # when real background images are given
    brightness: float = 0.25  # max relative change
    contrast: float = 0.25
    saturation: float = 0.3
    channel_gain: float = 0.08
    blur_probability: float = 0.35
    blur_sigma_max: float = 1.2  # crop px
    noise_std_max: float = 6.0  # grey levels
    symmetry_step_deg: float = 3.0


@dataclass
class ViewObjects:
    """The objects a view model knows: ``ids`` (BOP obj ids, index order), meshes (metres),
    per object the rotations ``(K, 3, 3)`` of its symmetries (identity first), a few hundred
    surface points for boxes, the model-frame centre and diameter."""

    ids: list[int]
    meshes: list
    symmetries: list[np.ndarray]
    box_points: list[np.ndarray]
    centres: list[np.ndarray]
    diameters: list[float]

    def index_of(self, obj_id: int) -> int:
        try:
            return self.ids.index(int(obj_id))
        except ValueError:
            raise BadInputError(f"obj_id {obj_id} is not one of this model's objects {self.ids}") from None


def symmetry_rotations(info, step_deg: float = 3.0) -> np.ndarray:
    """Rotation parts ``(K, 3, 3)`` of a model's symmetries (identity first), continuous ones
    sampled every ``step_deg`` degrees (bop_toolkit's discretisation, see
    :func:`posekit.io.bop.symmetry_transformations`)."""
    from posekit.io.bop import symmetry_transformations

    T = symmetry_transformations(info, max_sym_disc_step=np.deg2rad(step_deg) / 2.0)
    return np.ascontiguousarray(T[:, :3, :3])


def load_view_objects(models: str | Path, n_procedural: int = 4, seed: int = 0,
                      step_deg: float = 3.0, obj_ids: list | None = None) -> ViewObjects:
    """Objects from a BOP models folder (mm, ``models_info.json``) or ``'procedural'``."""
    from posekit.data.scenes import _load_models

    if str(models) != "procedural" and not Path(models).is_dir():
        raise MissingFileError(f"models folder not found: {models}; pass a BOP models/ folder or 'procedural'")
    objs = _load_models(models, n_procedural, seed)
    ids = sorted(objs) if not obj_ids else [int(i) for i in obj_ids]
    missing = [i for i in ids if i not in objs]
    if missing:
        raise BadInputError(f"objects {missing} are not in {models} (it has {sorted(objs)})")
    rng = np.random.default_rng(0)
    meshes, syms, pts, centres, diams = [], [], [], [], []
    for i in ids:
        mesh, info = objs[i]
        v = mesh.vertices
        meshes.append(mesh)
        syms.append(symmetry_rotations(info, step_deg))
        pts.append(v[rng.choice(len(v), size=min(len(v), 600), replace=False)])
        centres.append(0.5 * (v.min(0) + v.max(0)))
        diams.append(float(info.diameter) if info.diameter > 0 else float(mesh.diameter))
    return ViewObjects(ids, meshes, syms, pts, centres, diams)


def organized_cloud_image(path: str | Path) -> np.ndarray:
    """The RGB image ``(H, W, 3)`` uint8 of an organized PCD point cloud with colours (a
    Kinect/PrimeSense scene as PCL saves it: one point per pixel)."""
    from posekit.io.pcd import read_pcd, read_pcd_header

    header = read_pcd_header(path)
    _, colors, _ = read_pcd(path)
    if header.height <= 1 or colors is None:
        raise BadInputError(f"{path}: not an organized point cloud with colours (height {header.height}, "
                            f"colours {'yes' if colors is not None else 'no'}); pass an image or an organized PCD")
    return np.round(colors.reshape(header.height, header.width, 3) * 255).astype(np.uint8)


def load_backgrounds(paths, max_side: int = 640) -> list[np.ndarray]:
    """RGB images ``(H, W, 3)`` uint8 from files and folders (every image file inside); an
    organized PCD file gives its colour image (:func:`organized_cloud_image`)."""
    from PIL import Image

    files = []
    for p in paths or []:
        p = Path(p)
        if p.is_dir():
            files += sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES
                            and "depth" not in f.name.lower())
        elif p.is_file():
            files.append(p)
        else:
            raise MissingFileError(f"background image or folder not found: {p}")
    out = []
    for f in files:
        if f.suffix.lower() == ".pcd":
            im = Image.fromarray(organized_cloud_image(f))
        else:
            with Image.open(f) as opened:
                im = opened.convert("RGB")
        if max(im.size) > max_side:
            s = max_side / max(im.size)
            im = im.resize((round(im.size[0] * s), round(im.size[1] * s)), Image.BILINEAR)
        out.append(np.asarray(im).copy())
    return out


@dataclass
class ViewCrop:
    """One training crop: ``image (S, S, 3)`` uint8, ``R_crop_obj (3, 3)`` (the label),
    ``R_cam_obj (3, 3)``, ``R_cam_crop (3, 3)``, ``obj_index``, full-camera ``K (3, 3)`` and
    the jittered ``bbox (4,)`` (x, y, w, h) the crop was made from; ``visible_fraction``: the
    object's visible pixels over its pixels when rendered alone (BOP's ``visib_fract``; NaN unless
    asked for, see :func:`render_view_raw`)."""

    image: np.ndarray
    R_crop_obj: np.ndarray
    R_cam_obj: np.ndarray
    R_cam_crop: np.ndarray
    obj_index: int
    K: np.ndarray
    bbox: np.ndarray
    visible_fraction: float = float("nan")


def camera_matrix(cfg: ViewCropConfig) -> np.ndarray:
    """The full camera ``K (3, 3)`` of the simulated images."""
    return np.array([[cfg.focal, 0, (cfg.camera_width - 1) / 2], [0, cfg.focal, (cfg.camera_height - 1) / 2],
                     [0, 0, 1.0]])


def projected_box(points: np.ndarray, R: np.ndarray, t: np.ndarray, K: np.ndarray) -> np.ndarray:
    """``(x, y, w, h)`` of the projection of model points ``(N, 3)`` at pose ``(R, t)``."""
    from posekit.geometry.rigid_np import project_points_np

    uv = project_points_np(points, K, R, t)
    lo, hi = np.floor(uv.min(0)), np.ceil(uv.max(0))
    return np.array([lo[0], lo[1], hi[0] - lo[0] + 1, hi[1] - lo[1] + 1])


def jitter_box(box: np.ndarray, rng: np.random.Generator, cfg: ViewCropConfig) -> np.ndarray:
    """A detector-like box: centre shifted, scale and aspect changed (lognormal)."""
    x, y, w, h = box
    c = np.array([x + (w - 1) / 2, y + (h - 1) / 2]) + rng.normal(0, cfg.box_centre_jitter, 2) * [w, h]
    s = np.exp(rng.normal(0, cfg.box_scale_jitter))
    a = np.exp(rng.normal(0, cfg.box_aspect_jitter))
    w2, h2 = max(2.0, w * s * a), max(2.0, h * s / a)
    return np.array([c[0] - (w2 - 1) / 2, c[1] - (h2 - 1) / 2, w2, h2])


def random_background(rng: np.random.Generator, size: int, real: list[np.ndarray],
                      cfg: ViewCropConfig) -> np.ndarray:
    """``(size, size, 3)`` float64 in [0, 255]: flat + noise, smooth texture, stripes or checker,
    or a random window of a real image."""
    import cv2

    if real and rng.random() < cfg.background_real_probability:
        im = real[int(rng.integers(len(real)))]
        H, W = im.shape[:2]
        side = int(rng.uniform(0.15, 0.8) * min(H, W))
        y0, x0 = int(rng.integers(0, H - side + 1)), int(rng.integers(0, W - side + 1))
        win = im[y0:y0 + side, x0:x0 + side]
        win = np.rot90(win, int(rng.integers(4)))
        if rng.random() < 0.5:
            win = win[:, ::-1]
        return cv2.resize(np.ascontiguousarray(win), (size, size), interpolation=cv2.INTER_AREA).astype(np.float64)
    kind = int(rng.integers(4))
    if kind == 0:  # flat colour + pixel noise
        bg = rng.uniform(0, 255, 3) + rng.normal(0, rng.uniform(0, 25), (size, size, 3))
    elif kind == 1:  # smooth random texture (upsampled coarse noise), a few octaves
        bg = np.zeros((size, size, 3))
        for cells in (2, 4, 8, 16):
            coarse = rng.uniform(-1, 1, (cells, cells, 3)).astype(np.float32)
            bg += cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC) * rng.uniform(10, 60)
        bg += rng.uniform(40, 200, 3)
    elif kind == 2:  # stripes at a random angle and period
        v, u = np.mgrid[0:size, 0:size]
        a = rng.uniform(0, np.pi)
        phase = (u * np.cos(a) + v * np.sin(a)) / rng.uniform(3, 20)
        mix = (0.5 + 0.5 * np.sin(2 * np.pi * phase))[..., None]
        bg = mix * rng.uniform(0, 255, 3) + (1 - mix) * rng.uniform(0, 255, 3)
    else:  # checkerboard
        v, u = np.mgrid[0:size, 0:size]
        p = rng.uniform(4, 24)
        mix = (((u // p) + (v // p)) % 2)[..., None]
        bg = mix * rng.uniform(0, 255, 3) + (1 - mix) * rng.uniform(0, 255, 3)
    return np.clip(bg, 0, 255)


def photometric_jitter(img: np.ndarray, rng: np.random.Generator, cfg: ViewCropConfig) -> np.ndarray:
    """Colour jitter, blur and sensor noise on a float image in [0, 255]; returns uint8."""
    import cv2

    x = img.astype(np.float64)
    x = x * (1 + rng.uniform(-cfg.brightness, cfg.brightness))
    mean = x.mean()
    x = (x - mean) * (1 + rng.uniform(-cfg.contrast, cfg.contrast)) + mean
    grey = x.mean(axis=-1, keepdims=True)
    x = (x - grey) * (1 + rng.uniform(-cfg.saturation, cfg.saturation)) + grey
    x = x * (1 + rng.uniform(-cfg.channel_gain, cfg.channel_gain, 3))
    if rng.random() < cfg.blur_probability:
        s = rng.uniform(0.3, cfg.blur_sigma_max)
        x = cv2.GaussianBlur(x, (0, 0), s)
    x = x + rng.normal(0, rng.uniform(0, cfg.noise_std_max), x.shape)
    return np.round(np.clip(x, 0, 255)).astype(np.uint8)


def _place_in_crop(offset_px: np.ndarray, depth: float, K_crop: np.ndarray) -> np.ndarray:
    """Point in the crop camera frame at ``depth`` (m) behind crop pixel centre + offset."""
    c = K_crop[:2, 2] + offset_px
    return depth * np.linalg.inv(K_crop) @ np.array([c[0], c[1], 1.0])


@dataclass
class ViewRender:
    """The ray-cast part of one crop, before background and photometric effects: ``rgb``
    ``(s, s, 3)`` uint8 and ``mask`` ``(s, s)`` bool (any object) at ``s = supersample x
    image_size``, with the label and camera of :class:`ViewCrop`."""

    rgb: np.ndarray
    mask: np.ndarray
    R_crop_obj: np.ndarray
    R_cam_obj: np.ndarray
    R_cam_crop: np.ndarray
    obj_index: int
    K: np.ndarray
    bbox: np.ndarray
    visible_fraction: float = float("nan")


def render_view_raw(objects: ViewObjects, obj_index: int, rng: np.random.Generator, cfg: ViewCropConfig,
                    visibility: bool = False) -> ViewRender:
    """Steps 1-3 of the module docstring: the object, its occluders and distractors ray-cast in
    the crop camera of a jittered box. With ``visibility`` the object is also ray-cast alone (one
    more ray cast, no random draw: the crop is the same) for its ``visible_fraction``."""
    from posekit.data.render import render_scene
    from posekit.geometry.crop import crop_camera
    from posekit.geometry.rigid_np import make_pose, random_rotation_np

    K = camera_matrix(cfg)
    diam = objects.diameters[obj_index]
    R = random_rotation_np(rng)
    m = cfg.image_margin
    u = rng.uniform(m, 1 - m) * cfg.camera_width
    v = rng.uniform(m, 1 - m) * cfg.camera_height
    z = diam * rng.uniform(*cfg.distance_diameters)
    centre_cam = z * np.linalg.inv(K) @ np.array([u, v, 1.0])
    t = centre_cam - R @ objects.centres[obj_index]
    box = jitter_box(projected_box(objects.box_points[obj_index], R, t, K), rng, cfg)
    S, k = int(cfg.image_size), max(1, int(cfg.supersample))
    cam = crop_camera(box, K, S, cfg.padding)
    Q = cam.R_cam_crop
    K_fine = np.diag([k, k, 1.0]) @ np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1]]) @ cam.K_crop
    K_fine = np.array([[1, 0, -0.5], [0, 1, -0.5], [0, 0, 1]]) @ K_fine
    meshes = [objects.meshes[obj_index]]
    poses = [make_pose(Q.T @ R, Q.T @ t)]
    centre_crop = Q.T @ centre_cam
    half_px = 0.5 * S / cfg.padding  # the box's half size in crop px
    others = [i for i in range(len(objects.ids)) if i != obj_index] or [obj_index]
    n_occ = int(rng.integers(1, cfg.max_occluders + 1)) if rng.random() < cfg.occluder_probability else 0
    n_dis = int(rng.integers(1, 3)) if rng.random() < cfg.distractor_probability else 0
    for j in range(n_occ + n_dis):
        o = int(rng.choice(others))
        front = j < n_occ
        d_o = centre_crop[2] - diam * rng.uniform(0.6, 1.2) if front else centre_crop[2] + diam * rng.uniform(0.8, 2.5)
        d_o = max(d_o, 0.3 * centre_crop[2])
        ang = rng.uniform(0, 2 * np.pi)
        r = rng.uniform(*cfg.occluder_offset) if front else rng.uniform(0.8, 2.0)
        off = r * half_px * np.array([np.cos(ang), np.sin(ang)])
        c_o = _place_in_crop(off, d_o, cam.K_crop)
        R_o = random_rotation_np(rng)
        meshes.append(objects.meshes[o])
        poses.append(make_pose(R_o, c_o - R_o @ objects.centres[o]))
    light = rng.normal(size=3)
    light[2] = -abs(light[2]) - 0.3
    res = render_scene(meshes, poses, K_fine, S * k, S * k, rgb=True, light_dir=light,
                       ambient=float(rng.uniform(*cfg.ambient)))
    visible = float("nan")
    if visibility:
        alone = int((render_scene(meshes[:1], poses[:1], K_fine, S * k, S * k).instance == 0).sum())
        visible = float((res.instance == 0).sum()) / alone if alone else 0.0
    return ViewRender(res.rgb, res.instance >= 0, Q.T @ R, R, Q, obj_index, K, box, visible)


def inplane_rotation(angle: float) -> np.ndarray:
    """``R (3, 3)``: the crop camera turned by ``angle`` (rad) about its optical axis, as
    :func:`composite_view_crop` turns the image: pixel offsets from the principal point go to
    ``A (u - c)`` with ``A`` = OpenCV's ``getRotationMatrix2D`` (content turns counter-clockwise on
    screen), so a label ``R_crop_obj`` becomes ``R @ R_crop_obj``."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])


def composite_view_crop(raw: ViewRender, rng: np.random.Generator, cfg: ViewCropConfig,
                        backgrounds: list[np.ndarray] | None = None, angle: float | None = None) -> ViewCrop:
    """Steps 4-5 of the module docstring on a ray-cast :class:`ViewRender`: background,
    area-averaging, photometric effects. With ``angle`` (rad) the render is first turned about
    the crop centre (the crop camera rolled about its axis: an exact new view of the same scene,
    label ``inplane_rotation(angle) @ R_crop_obj``); the corners it uncovers get background."""
    import cv2

    S, k = int(cfg.image_size), max(1, int(cfg.supersample))
    rgb, alpha = raw.rgb.astype(np.float64), raw.mask.astype(np.float64)
    R_crop_obj, Q = raw.R_crop_obj, raw.R_cam_crop
    if angle is not None:
        n = rgb.shape[0]
        M = cv2.getRotationMatrix2D(((n - 1) / 2.0, (n - 1) / 2.0), float(np.rad2deg(angle)), 1.0)
        warp = {"dsize": (n, n), "flags": cv2.INTER_LINEAR, "borderMode": cv2.BORDER_CONSTANT, "borderValue": 0}
        rgb = cv2.warpAffine(rgb * alpha[..., None], M, **warp)  # premultiplied
        alpha = cv2.warpAffine(alpha, M, **warp)
        R_crop_obj = inplane_rotation(angle) @ R_crop_obj
        Q = Q @ inplane_rotation(angle).T  # the rolled crop camera; R_cam_obj is unchanged
    else:
        rgb = rgb * alpha[..., None]
    bg = random_background(rng, S * k, backgrounds or [], cfg)
    img = rgb + (1.0 - alpha[..., None]) * bg
    if k > 1:
        img = cv2.resize(img, (S, S), interpolation=cv2.INTER_AREA)
    img = photometric_jitter(img, rng, cfg)
    return ViewCrop(img, R_crop_obj, raw.R_cam_obj, Q, raw.obj_index, raw.K, raw.bbox, raw.visible_fraction)


def render_view_crop(objects: ViewObjects, obj_index: int, rng: np.random.Generator, cfg: ViewCropConfig,
                     backgrounds: list[np.ndarray] | None = None, visibility: bool = False) -> ViewCrop:
    """One training crop of object ``obj_index`` (see the module docstring; ``visibility``: see
    :func:`render_view_raw`)."""
    return composite_view_crop(render_view_raw(objects, obj_index, rng, cfg, visibility), rng, cfg, backgrounds)


@dataclass
class FrameComposite:
    """A render of one object pasted into a full real frame: ``image (H, W, 3)`` uint8, the
    true ``R_cam_obj (3, 3)`` and ``t_cam_obj (3,)`` metres (model frame), ``obj_index``, the
    object's ``mask (H, W)`` bool (alpha >= 0.5) and a detector-like ``bbox (4,)`` (x, y, w, h)."""

    image: np.ndarray
    R_cam_obj: np.ndarray
    t_cam_obj: np.ndarray
    obj_index: int
    mask: np.ndarray
    bbox: np.ndarray


def paste_view_render(objects: ViewObjects, obj_index: int, frame: np.ndarray, K: np.ndarray,
                      rng: np.random.Generator, cfg: ViewCropConfig) -> FrameComposite:
    """The object at a Haar-random rotation, a distance of ``distance_diameters`` diameters and a
    random position in ``frame`` (a real photo taken with intrinsics ``K``), ray-cast alone in
    the window of its box at ``supersample`` x resolution with a random light, and alpha-blended
    into the frame (the rest of the frame is untouched); the box is jittered as in training.
    For measuring a view model on real background pixels through the full-image API."""
    import cv2

    from posekit.data.render import render_scene
    from posekit.geometry.rigid_np import make_pose, random_rotation_np

    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise BadInputError(f"frame must be (H, W, 3) uint8, got {frame.shape} {frame.dtype}")
    H, W = frame.shape[:2]
    diam = objects.diameters[obj_index]
    R = random_rotation_np(rng)
    m = cfg.image_margin
    u, v = rng.uniform(m, 1 - m) * W, rng.uniform(m, 1 - m) * H
    z = diam * rng.uniform(*cfg.distance_diameters)
    t = z * np.linalg.inv(K) @ np.array([u, v, 1.0]) - R @ objects.centres[obj_index]
    x, y, w, h = projected_box(objects.box_points[obj_index], R, t, K)
    x0, y0 = int(max(0, np.floor(x - 0.2 * w))), int(max(0, np.floor(y - 0.2 * h)))
    x1, y1 = int(min(W, np.ceil(x + 1.2 * w))), int(min(H, np.ceil(y + 1.2 * h)))
    if x1 - x0 < 2 or y1 - y0 < 2:
        raise BadInputError(f"the object falls outside the {W}x{H} frame; check K")
    k = max(1, int(cfg.supersample))
    K_win = K.astype(np.float64) - np.array([[0, 0, x0], [0, 0, y0], [0, 0, 0]])
    K_fine = np.array([[k, 0, (k - 1) / 2], [0, k, (k - 1) / 2], [0, 0, 1.0]]) @ K_win
    light = rng.normal(size=3)
    light[2] = -abs(light[2]) - 0.3
    res = render_scene([objects.meshes[obj_index]], [make_pose(R, t)], K_fine, k * (x1 - x0), k * (y1 - y0),
                       rgb=True, light_dir=light, ambient=float(rng.uniform(*cfg.ambient)))
    alpha = (res.instance >= 0).astype(np.float64)
    rgb = res.rgb.astype(np.float64) * alpha[..., None]
    if k > 1:
        size = (x1 - x0, y1 - y0)
        rgb, alpha = (cv2.resize(a, size, interpolation=cv2.INTER_AREA) for a in (rgb, alpha))
    image = frame.copy()
    win = image[y0:y1, x0:x1].astype(np.float64)
    image[y0:y1, x0:x1] = np.round(np.clip(rgb + (1 - alpha[..., None]) * win, 0, 255)).astype(np.uint8)
    mask = np.zeros((H, W), bool)
    mask[y0:y1, x0:x1] = alpha >= 0.5
    box = jitter_box(np.array([x, y, w, h]), rng, cfg)
    return FrameComposite(image, R, t, obj_index, mask, box)


class ReusedViewRenders:
    """Crops of which only ``fresh`` per batch are ray-cast; the rest re-use one of the last
    ``window`` renders, each turned by a new random angle about the crop axis and given a new
    background and new photometric effects (:func:`composite_view_crop`). Ray casting is most of
    a crop's cost, so this makes batches several times cheaper; the rotations keep the labels
    Haar-distributed. Until ``window`` is large enough for a batch every crop is fresh. The kept
    renders live in memory only: a resumed run refills them and its batches differ from an
    uninterrupted run's (the fresh renders are still seeded by the step)."""

    def __init__(self, objects: ViewObjects, cfg: ViewCropConfig, backgrounds=None, fresh: int = 4,
                 window: int = 1024):
        from collections import deque

        if fresh < 1 or window < 1:
            raise BadInputError(f"fresh ({fresh}) and window ({window}) must be >= 1")
        self.objects, self.cfg, self.backgrounds = objects, cfg, backgrounds or []
        self.fresh, self.window = int(fresh), int(window)
        self.renders = deque(maxlen=self.window)
        self.ray_casts = 0

    def batch(self, rng: np.random.Generator, n: int) -> list[ViewCrop]:
        """``n`` crops (fresh ones first)."""
        kept = len(self.renders)
        n_fresh = n if kept < n else min(n, self.fresh)
        old = [self.renders[int(i)] for i in rng.choice(kept, size=n - n_fresh, replace=False)] if n > n_fresh else []
        new = [render_view_raw(self.objects, int(i), rng, self.cfg)
               for i in rng.integers(len(self.objects.ids), size=n_fresh)]
        self.ray_casts += n_fresh
        self.renders.extend(new)
        return [composite_view_crop(r, rng, self.cfg, self.backgrounds, angle=rng.uniform(0, 2 * np.pi))
                for r in new + old]


def write_view_crops(models: str | Path, out_dir: str | Path, per_model: int = 20, size: int = 64, seed: int = 0,
                     progress: bool = True, backgrounds=None, n_procedural: int = 6) -> tuple[Path, int]:
    """Write ``out_dir/views.npz``: ``crops (N, S, S, 3)`` uint8, ``R_crop_obj`` (the allocentric
    label, ``(N, 3, 3)``), ``R_cam_obj`` and ``R_cam_crop`` (``(N, 3, 3)``), ``bbox (N, 4)``
    (x, y, w, h) px in the full camera image, ``K (3, 3)``, ``obj_id (N,)``; plus a preview PNG.
    Crops are made as for training (:func:`render_view_crop`, default :class:`ViewCropConfig`)."""
    from tqdm import tqdm

    from posekit.io.atomic import atomic_path
    from posekit.io.bop import write_rgb

    if per_model < 1:
        raise BadInputError("per_model must be >= 1")
    cfg = ViewCropConfig(image_size=int(size))
    objects = load_view_objects(models, n_procedural, seed, cfg.symmetry_step_deg)
    bgs = load_backgrounds(backgrounds or [])
    rng = np.random.default_rng(seed)
    crops = [render_view_crop(objects, i, rng, cfg, bgs)
             for i in tqdm(np.repeat(np.arange(len(objects.ids)), per_model), desc="views", disable=not progress)]
    from posekit.io.atomic import output_directory

    out_dir = output_directory(out_dir, "output folder")  # a clear error for a file or read-only path
    path = out_dir / "views.npz"
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, crops=np.stack([c.image for c in crops]),
                            R_crop_obj=np.stack([c.R_crop_obj for c in crops]),
                            R_cam_obj=np.stack([c.R_cam_obj for c in crops]),
                            R_cam_crop=np.stack([c.R_cam_crop for c in crops]),
                            bbox=np.stack([c.bbox for c in crops]), K=camera_matrix(cfg),
                            obj_id=np.array([objects.ids[c.obj_index] for c in crops]))
    write_rgb(out_dir / "preview.png", np.concatenate([c.image for c in crops[:8]], axis=1))
    return path, len(crops)
