"""``ViewPoseEstimator``: the view engine's public API, one image -> distribution over SO(3).

>>> est = ViewPoseEstimator.from_pretrained("view-symsol", device="cpu")
>>> dist = est.predict(image)          # image (H, W, 3) uint8 RGB, one centred object
>>> R_cam_obj = dist.mode()            # (3, 3)

Models trained on a dataset's objects (``posekit train view --models``, e.g. ``view-lmo``) take
a full camera image, the object's id and its box or mask, and the intrinsics:

>>> est = ViewPoseEstimator.from_pretrained("view-lmo")
>>> dist = est.predict(image, obj_id=5, bbox=(x, y, w, h), K=K)   # or mask=(H, W) bool
>>> R_cam_obj = dist.mode()

The crop is the view of a virtual camera turned towards the box (:mod:`posekit.geometry.crop`), as
in training; the network's allocentric distribution over ``R_crop_obj`` is turned into one over
``R_cam_obj`` exactly, in the Fourier domain (``F_l -> D^l(R_cam_crop) F_l``). Without a box or
mask the image itself is the crop and no conversion is made (centred objects).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from posekit.errors import BadInputError, CorruptFileError
from posekit.geometry.so3_grid import check_grid_level
from posekit.view.distribution import SO3GridDistribution


def load_image(path: str | Path) -> np.ndarray:
    """Read an image file as uint8 ``(H, W)``, ``(H, W, 3)`` or ``(H, W, 4)``: posekit's one image
    reader, :func:`posekit.io.image.read_image` (16-bit grey scaled, decompression bombs refused)."""
    from posekit.io.image import read_image

    return read_image(path)


def prepare_image(image, size: int) -> np.ndarray:
    """Convert any usual image to ``(size, size, 3)`` uint8 RGB.

    Grayscale ``(H, W)``/``(H, W, 1)`` is replicated to RGB; RGBA is composited on black (the
    training background); float images must be in [0, 1]; other sizes are resized (bilinear)
    with a warning (non-square images are stretched: crop them around the object first).
    """
    from PIL import Image

    a = as_rgb_uint8(image)
    if a.shape[0] != size or a.shape[1] != size:
        warnings.warn(f"image is {a.shape[1]}x{a.shape[0]} px, the model expects {size}x{size}: resizing "
                      "(crop the image around the object for best results)", stacklevel=3)
        a = np.asarray(Image.fromarray(a).resize((size, size), Image.BILINEAR))
    return np.ascontiguousarray(a)


def as_rgb_uint8(image) -> np.ndarray:
    """Any usual image as ``(H, W, 3)`` uint8 RGB (grey replicated, RGBA on black, floats in [0, 1])."""
    if image is None or isinstance(image, (str, bytes)):
        raise BadInputError(f"image must be an (H, W, 3) uint8 RGB array (or a file path to predict()), "
                            f"got {type(image).__name__}")
    a = np.asarray(image)
    if a.dtype.kind not in "biuf":
        raise BadInputError(f"image must hold numbers (uint8 RGB, or floats in [0, 1]), got dtype {a.dtype}")
    if a.size == 0:
        raise BadInputError(f"image is empty (shape {a.shape}); pass an (H, W, 3) uint8 RGB image")
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=-1)
    if a.ndim != 3 or a.shape[-1] not in (3, 4):
        raise BadInputError(f"image must be (H, W), (H, W, 3) or (H, W, 4), got shape {a.shape}")
    if a.dtype != np.uint8:
        a = a.astype(np.float64)
        if not np.isfinite(a).all():
            raise BadInputError("image contains NaN or inf")
        if a.min() < 0 or a.max() > 1.0 + 1e-6:
            if a.max() <= 255 and a.min() >= 0:
                a = a / 255.0
            else:
                raise BadInputError(f"float images must be in [0, 1] (or 0..255), got range [{a.min()}, {a.max()}]")
        a = np.round(np.clip(a, 0, 1) * 255).astype(np.uint8)
    if a.shape[-1] == 4:
        alpha = a[..., 3:4].astype(np.float64) / 255.0
        a = np.round(a[..., :3] * alpha).astype(np.uint8)
    return np.ascontiguousarray(a)


class ViewPoseEstimator:
    """Orientation distribution ``p(R_cam_obj | image)`` on a HEALPix SO(3) grid."""

    def __init__(self, model, config: dict, device: str = "cpu", grid_level: int | None = None,
                 name: str = ""):
        from posekit.device import resolve_device

        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.config = config
        self.name = name
        self.image_size = int(model.cfg.image_size)
        self.grid_level = check_grid_level(grid_level if grid_level is not None
                                           else config.get("data", {}).get("eval_grid_level", 3))
        self.last_input_image: np.ndarray | None = None
        self.last_crop_camera = None  # posekit.geometry.crop.CropCamera of the last predict() with a box/mask
        data = config.get("data", {}) or {}
        self.obj_ids: list[int] = [int(i) for i in data.get("obj_ids", [])] if model.cfg.num_objects > 0 else []
        self.padding = float((data.get("crop") or {}).get("padding", 1.2))

    @property
    def object_conditioned(self) -> bool:
        """True for models trained on a dataset's objects (``predict`` needs ``obj_id``)."""
        return self.model.cfg.num_objects > 0

    def object_index(self, obj_id) -> int | None:
        """The network's index of ``obj_id`` (None for a model that knows no object ids)."""
        if not self.object_conditioned:
            return None
        if obj_id is None:
            raise BadInputError(f"this view model knows objects {self.obj_ids}: pass obj_id=")
        if isinstance(obj_id, (bool, np.bool_)) or not isinstance(obj_id, (int, np.integer)) \
                or int(obj_id) not in self.obj_ids:
            raise BadInputError(f"obj_id {obj_id!r} is not one of this model's objects {self.obj_ids} "
                                "(pass the dataset's integer object id)")
        return self.obj_ids.index(int(obj_id))

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path = "view-symsol", device: str = "cpu",
                        grid_level: int | None = None) -> ViewPoseEstimator:
        """Load shipped weights (``posekit/pretrained/view-*.pt``) or a training run's model.pt."""
        from posekit import pretrained
        from posekit.device import resolve_device
        from posekit.io.weights import fit_state_dict
        from posekit.view.training import build_model

        device = resolve_device(device)
        if grid_level is not None:
            check_grid_level(grid_level)
        weights = pretrained.load(name_or_path, engine="view")
        cfg = weights.config
        if not isinstance(cfg.get("model"), dict):
            raise CorruptFileError(f"{weights.path} has no model config in its metadata; not a view model")
        try:
            model = build_model(dict(cfg["model"]))
        except (TypeError, ValueError) as exc:
            raise CorruptFileError(f"{weights.path}: its model config does not build a view network ({exc})") from exc
        # shipped files hold the parameters only (see posekit.view.training.export_weights): the
        # buffers escnn samples at construction (kernel bases) are rebuilt from the config
        buffers = {k for k, _ in model.named_buffers(remove_duplicate=False)}
        fit_state_dict(model, weights.state_dict, weights.path, optional=buffers)
        return cls(model, cfg, device, grid_level, weights.name)

    def _obj_tensor(self, obj_index, n: int):
        import torch

        if not self.object_conditioned:
            return None
        if obj_index is None:
            raise BadInputError(f"this view model knows objects {self.obj_ids}: pass obj_id=")
        idx = np.broadcast_to(np.asarray(obj_index, dtype=np.int64), (n,))
        return torch.tensor(idx, dtype=torch.int64, device=self.device)

    def predict_logits(self, images: np.ndarray, level: int | None = None, obj_index=None):
        """Logits ``(B, N)`` float64 numpy for prepared images ``(B, S, S, 3)`` uint8
        (``obj_index``: the network's object index, one or one per image, for object models)."""
        import torch

        from posekit.view.training import images_to_tensor

        with torch.inference_mode():
            z = self.model(images_to_tensor(images, self.device), level=self.grid_level if level is None else level,
                           obj_index=self._obj_tensor(obj_index, len(images)))
        return z.double().cpu().numpy()

    def crop(self, image, bbox=None, mask=None, K=None):
        """The network's input crop ``(S, S, 3)`` uint8 of a full image and its
        :class:`~posekit.geometry.crop.CropCamera` (see :func:`posekit.geometry.crop.crop_camera`)."""
        from posekit.geometry.crop import bbox_from_mask, check_bbox, crop_camera, warp_crop
        from posekit.validation import check_intrinsics

        img = as_rgb_uint8(image)
        H, W = img.shape[:2]
        if (bbox is None) == (mask is None):
            raise BadInputError("pass exactly one of bbox=(x, y, w, h) or mask=(H, W)")
        if K is None:
            raise BadInputError("cropping needs the camera intrinsics K (3, 3)")
        K = check_intrinsics(K)
        if mask is not None:
            m = np.asarray(mask)
            if m.ndim == 3 and m.shape[-1] in (1, 3, 4):
                m = m[..., 0]
            if m.shape != (H, W):
                raise BadInputError(f"mask shape {m.shape} does not match the image ({H}, {W})")
            bbox = bbox_from_mask(m)
        box = check_bbox(bbox, W, H)
        cam = crop_camera(box, K, self.image_size, self.padding)
        return warp_crop(img, cam, K), cam

    def predict(self, image, *, obj_id=None, bbox=None, mask=None, K=None,
                level: int | None = None) -> SO3GridDistribution:
        """Distribution over ``R_cam_obj`` for one image (array or file path).

        With ``bbox=(x, y, w, h)`` px or ``mask (H, W)`` and ``K (3, 3)`` the image is a full
        camera image: it is cropped as in training and the prediction is converted to the camera
        frame. Without them the image is one centred object (see :func:`prepare_image`).
        ``obj_id`` (the dataset's object id) is required by object-conditioned models.
        """
        import torch

        from posekit.view.so3_fourier import rotate_distribution_coefficients
        from posekit.view.training import images_to_tensor

        if isinstance(image, (str, Path)):
            image = load_image(image)
        idx = self.object_index(obj_id)
        lvl = self.grid_level if level is None else check_grid_level(level)
        if bbox is None and mask is None:
            img = prepare_image(image, self.image_size)
            self.last_input_image, self.last_crop_camera = img, None
            return SO3GridDistribution.from_logits(self.predict_logits(img[None], lvl, idx)[0], lvl)
        img, cam = self.crop(image, bbox=bbox, mask=mask, K=K)
        self.last_input_image, self.last_crop_camera = img, cam
        with torch.inference_mode():
            coeffs = self.model.coefficients(images_to_tensor(img[None], self.device),
                                             self._obj_tensor(idx, 1)).double()
            coeffs = rotate_distribution_coefficients(coeffs, cam.R_cam_crop, self.model.cfg.lmax)
            z = self.model.logits_from_coefficients(coeffs.float(), lvl)
        return SO3GridDistribution.from_logits(z[0].double().cpu().numpy(), lvl)

    def predict_batch(self, images, level: int | None = None, obj_id=None) -> list[SO3GridDistribution]:
        """Distributions for centred-object images (no box, no conversion); one ``obj_id`` for all."""
        if isinstance(images, (str, bytes)) or not hasattr(images, "__len__") or len(images) == 0:
            raise BadInputError("predict_batch takes a non-empty list of images (or a (B, H, W, 3) array)")
        imgs = np.stack([prepare_image(im, self.image_size) for im in images])
        lvl = self.grid_level if level is None else check_grid_level(level)
        return [SO3GridDistribution.from_logits(z, lvl)
                for z in self.predict_logits(imgs, lvl, self.object_index(obj_id))]
