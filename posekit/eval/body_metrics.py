"""Body fitting errors, as the human-fitting literature reports them (ArtEq, IP-Net, LoopReg, PTF).

- V2V: mean Euclidean distance between corresponding vertices of the fitted and true meshes
  (same topology), in cm (ArtEq, Feng et al. ICCV 2023, Sec. 5);
- MPJPE: mean per-joint position error over the 24 joints, in cm, without Procrustes or root
  alignment (the fit is in the input frame, so global errors count);
- part accuracy: fraction of input points given their true part label.
"""

from __future__ import annotations

import numpy as np

from posekit.errors import BadInputError
from posekit.validation import as_float_array


def _paired(pred, true, name: str) -> tuple[np.ndarray, np.ndarray]:
    p = as_float_array(pred, f"predicted {name}", (None, 3))
    t = as_float_array(true, f"true {name}", (None, 3))
    if p.shape != t.shape:
        raise BadInputError(f"predicted and true {name} differ in shape: {p.shape} vs {t.shape}")
    return p, t


def v2v_cm(pred_vertices, true_vertices) -> float:
    """Mean vertex-to-vertex distance (cm) between (V,3) meshes in metres with the same topology."""
    p, t = _paired(pred_vertices, true_vertices, "vertices")
    return float(100.0 * np.linalg.norm(p - t, axis=1).mean())


def mpjpe_cm(pred_joints, true_joints) -> float:
    """Mean per-joint position error (cm) between (J,3) joint sets in metres."""
    p, t = _paired(pred_joints, true_joints, "joints")
    return float(100.0 * np.linalg.norm(p - t, axis=1).mean())


def part_accuracy(pred_labels, true_labels) -> float:
    """Fraction (0-1) of points whose predicted part label equals the true one."""
    p, t = np.asarray(pred_labels).ravel(), np.asarray(true_labels).ravel()
    if p.shape != t.shape or p.size == 0:
        raise BadInputError(f"label arrays must be non-empty and equal in length ({p.size} vs {t.size})")
    return float((p == t).mean())


__all__ = ["mpjpe_cm", "part_accuracy", "v2v_cm"]
