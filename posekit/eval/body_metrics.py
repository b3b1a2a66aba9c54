"""Body fitting errors, as the human-fitting literature reports them (ArtEq, IP-Net, LoopReg, PTF).

- V2V: mean Euclidean distance between corresponding vertices of the fitted and true meshes
  (same topology), in cm (ArtEq, Feng et al. ICCV 2023, Sec. 5);
- MPJPE: mean per-joint position error over the 24 joints, in cm, without Procrustes or root
  alignment (the fit is in the input frame, so global errors count);
- part accuracy: fraction of input points given their true part label;
- orientation error: the angle of the rotation that best aligns (Kabsch) the fitted torso
  joints (pelvis, hips, spine, neck, collars, shoulders, head) to the true ones; a fit more than
  90 deg off is a *flip* (upside down or facing backwards). The root joint's own rotation is
  not used: a twisted pelvis with compensating spine rotations is not a flipped body;
- AUROC: the probability that a random good fit (V2V below a threshold) gets a higher score
  (confidence) than a random bad one, ties counting half (Mann-Whitney U / (n_good n_bad)).
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


TORSO_JOINTS = (0, 1, 2, 3, 6, 9, 12, 13, 14, 15, 16, 17)
FLIP_DEG = 90.0


def orientation_error_deg(pred_joints, true_joints) -> float:
    """Angle (deg) of the Kabsch rotation taking the true torso joints onto the fitted ones; (24,3) each."""
    p, t = _paired(pred_joints, true_joints, "joints")
    if len(p) != 24:
        raise BadInputError(f"orientation error needs the 24 SMPL joints, got {len(p)}")
    a = p[list(TORSO_JOINTS)] - p[list(TORSO_JOINTS)].mean(axis=0)
    b = t[list(TORSO_JOINTS)] - t[list(TORSO_JOINTS)].mean(axis=0)
    U, _, Vt = np.linalg.svd(b.T @ a)
    d = np.sign(np.linalg.det(Vt.T @ U.T))
    R = Vt.T @ np.diag([1.0, 1.0, d]) @ U.T  # a ~ R b
    return float(np.degrees(np.arccos(np.clip((np.trace(R) - 1) / 2, -1.0, 1.0))))


def flip_rate(errors_deg) -> float:
    """Fraction of fits whose orientation error exceeds :data:`FLIP_DEG`."""
    e = np.asarray(errors_deg, dtype=np.float64).ravel()
    if e.size == 0:
        raise BadInputError("flip_rate needs at least one orientation error")
    return float((e > FLIP_DEG).mean())


from posekit.eval.confidence import auroc  # one home; re-exported for the body bench

__all__ = ["FLIP_DEG", "TORSO_JOINTS", "auroc", "flip_rate", "mpjpe_cm", "orientation_error_deg", "part_accuracy",
           "v2v_cm"]
