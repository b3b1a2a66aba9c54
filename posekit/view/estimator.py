"""``ViewPoseEstimator``: the view engine's public API, one image -> distribution over SO(3).

>>> est = ViewPoseEstimator.from_pretrained("view-symsol", device="cpu")
>>> dist = est.predict(image)          # image (H, W, 3) uint8 RGB, one centred object
>>> R_cam_obj = dist.mode()            # (3, 3)

The image is the crop of one object centred on the optical axis (for off-centre crops the
predicted rotation is allocentric: see :func:`posekit.data.symsol.allocentric_rotation`).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from posekit.errors import BadInputError, CorruptFileError, MissingFileError
from posekit.view.distribution import SO3GridDistribution


def load_image(path: str | Path) -> np.ndarray:
    """Read an image file as it is stored (``(H, W)``, ``(H, W, 3)`` or ``(H, W, 4)`` uint8)."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"image file not found: {path}")
    if path.stat().st_size == 0:
        raise CorruptFileError(f"{path} is empty (0 bytes); pass a PNG or JPG image")
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode not in ("L", "RGB", "RGBA"):
                im = im.convert("RGBA" if "A" in im.mode else "RGB")
            return np.asarray(im)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise CorruptFileError(f"{path} is not a readable image ({exc}); pass a PNG or JPG image") from exc


def prepare_image(image, size: int) -> np.ndarray:
    """Convert any usual image to ``(size, size, 3)`` uint8 RGB.

    Grayscale ``(H, W)``/``(H, W, 1)`` is replicated to RGB; RGBA is composited on black (the
    training background); float images must be in [0, 1]; other sizes are resized (bilinear)
    with a warning (non-square images are stretched: crop them around the object first).
    """
    from PIL import Image

    a = np.asarray(image)
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
    if a.shape[0] != size or a.shape[1] != size:
        warnings.warn(f"image is {a.shape[1]}x{a.shape[0]} px, the model expects {size}x{size}: resizing "
                      "(crop the image around the object for best results)", stacklevel=3)
        a = np.asarray(Image.fromarray(a).resize((size, size), Image.BILINEAR))
    return np.ascontiguousarray(a)


class ViewPoseEstimator:
    """Orientation distribution ``p(R_cam_obj | image)`` on a HEALPix SO(3) grid."""

    def __init__(self, model, config: dict, device: str = "cpu", grid_level: int | None = None,
                 name: str = ""):
        self.model = model.eval()
        self.config = config
        self.device = device
        self.name = name
        self.image_size = int(model.cfg.image_size)
        self.grid_level = int(grid_level if grid_level is not None
                              else config.get("data", {}).get("eval_grid_level", 3))
        self.last_input_image: np.ndarray | None = None

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path = "view-symsol", device: str = "cpu",
                        grid_level: int | None = None) -> ViewPoseEstimator:
        """Load shipped weights (``posekit/pretrained/view-*.pt``) or a training run's model.pt."""
        import torch

        from posekit import pretrained
        from posekit.view.training import build_model

        if str(device).startswith("cuda") and not torch.cuda.is_available():
            raise BadInputError("device='cuda' requested but torch sees no CUDA GPU; use device='cpu'")
        weights = pretrained.load(name_or_path, engine="view")
        cfg = weights.config
        if "model" not in cfg:
            raise CorruptFileError(f"{weights.path} has no model config in its metadata; not a view model")
        model = build_model(dict(cfg["model"]))
        try:
            missing, unexpected = model.load_state_dict(weights.state_dict, strict=False)
        except RuntimeError as exc:
            raise CorruptFileError(f"{weights.path}: weights do not fit the network in its config ({exc})") from exc
        # shipped files hold the parameters only (see posekit.view.training.export_weights): the
        # buffers escnn samples at construction (kernel bases) are rebuilt from the config
        parameters = {name for name, _ in model.named_parameters()}
        lacking = [k for k in missing if k in parameters]
        if lacking or unexpected:
            raise CorruptFileError(f"{weights.path}: weights do not fit the network in its config "
                                   f"(missing {lacking[:5]}, unexpected {list(unexpected)[:5]})")
        return cls(model.to(device), cfg, device, grid_level, weights.name)

    def predict_logits(self, images: np.ndarray, level: int | None = None):
        """Logits ``(B, N)`` float64 numpy for prepared images ``(B, S, S, 3)`` uint8."""
        import torch

        from posekit.view.training import images_to_tensor

        with torch.no_grad():
            z = self.model(images_to_tensor(images, self.device), level=self.grid_level if level is None else level)
        return z.double().cpu().numpy()

    def predict(self, image, level: int | None = None) -> SO3GridDistribution:
        """Distribution over ``R_cam_obj`` for one image (array or file path); see :func:`prepare_image`."""
        if isinstance(image, (str, Path)):
            image = load_image(image)
        img = prepare_image(image, self.image_size)
        self.last_input_image = img
        lvl = self.grid_level if level is None else int(level)
        return SO3GridDistribution.from_logits(self.predict_logits(img[None], lvl)[0], lvl)

    def predict_batch(self, images, level: int | None = None) -> list[SO3GridDistribution]:
        imgs = np.stack([prepare_image(im, self.image_size) for im in images])
        lvl = self.grid_level if level is None else int(level)
        return [SO3GridDistribution.from_logits(z, lvl) for z in self.predict_logits(imgs, lvl)]
