"""Joint-limited body pose sampling: "common" poses for training, "unseen" ones for evaluation.

Local joint rotations are drawn as Euler angles ``R = Rz(c) Ry(b) Rx(a)`` in each joint's rest
frame (SMPL body frame: x to the body's left, y up, z forward), within per-joint ranges given
for the left side and mirrored (y and z angles negated) for the right. Two distributions,
like ArtEq's split of DFAUST (training) and PosePrior (unseen) poses:

- ``common``: standing, walking, reaching, sitting-like poses (moderate angles);
- ``unseen``: large angles and combinations absent from ``common``: deep squats, arms
  overhead, straight-leg raises, lunges, twisted and side-bent spines, with every other joint
  drawn within the full anatomical limits.

:func:`joint_limits` (the full anatomical box) is also the pose prior of the optimiser.
"""

from __future__ import annotations

import numpy as np

from posekit.body.skeleton import JOINT_NAMES, MERGED_JOINTS, N_JOINTS
from posekit.errors import BadInputError

POSE_KINDS = ("common", "unseen")

# Degrees, (x, y, z) low and high, for the left side / centre joints.
_COMMON = {
    "pelvis": ((-8, -10, -6), (8, 10, 6)),
    "hip": ((-50, -12, -6), (15, 12, 22)),
    "knee": ((0, -3, -3), (70, 3, 3)),
    "ankle": ((-15, -6, -6), (20, 6, 6)),
    "spine": ((-6, -6, -5), (12, 6, 5)),
    "neck": ((-12, -20, -8), (18, 20, 8)),
    "head": ((-10, -15, -8), (12, 15, 8)),
    "collar": ((-5, -8, -8), (5, 8, 8)),
    "shoulder": ((-30, -60, -72), (30, 20, 25)),
    "elbow": ((-10, -90, -3), (10, 0, 3)),
    "wrist": ((-20, -15, -25), (20, 15, 25)),
}
_FULL = {
    "pelvis": ((-20, -30, -15), (20, 30, 15)),
    "hip": ((-125, -40, -20), (30, 40, 75)),
    "knee": ((0, -5, -5), (150, 5, 5)),
    "ankle": ((-35, -12, -12), (45, 12, 12)),
    "spine": ((-15, -25, -18), (35, 25, 18)),
    "neck": ((-30, -45, -20), (40, 45, 20)),
    "head": ((-25, -35, -20), (30, 35, 20)),
    "collar": ((-10, -20, -15), (10, 20, 25)),
    "shoulder": ((-60, -100, -85), (60, 45, 170)),
    "elbow": ((-20, -150, -5), (20, 0, 5)),
    "wrist": ((-45, -30, -60), (45, 30, 60)),
}
_GROUP = {
    "pelvis": "pelvis", "left_hip": "hip", "right_hip": "hip", "spine1": "spine", "left_knee": "knee",
    "right_knee": "knee", "spine2": "spine", "left_ankle": "ankle", "right_ankle": "ankle",
    "spine3": "spine", "neck": "neck", "left_collar": "collar", "right_collar": "collar",
    "head": "head", "left_shoulder": "shoulder", "right_shoulder": "shoulder", "left_elbow": "elbow",
    "right_elbow": "elbow", "left_wrist": "wrist", "right_wrist": "wrist",
}


def _table(ranges: dict) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = np.zeros((N_JOINTS, 3)), np.zeros((N_JOINTS, 3))
    for j, name in enumerate(JOINT_NAMES):
        group = _GROUP.get(name)
        if group is None:  # hands and feet stay at rest (merged into wrists and ankles)
            continue
        a, b = np.radians(ranges[group][0]), np.radians(ranges[group][1])
        if name.startswith("right_"):  # mirror: negate the y and z angles
            a, b = a.copy(), b.copy()
            a[1:], b[1:] = -b[1:], -a[1:]
        lo[j], hi[j] = a, b
    return lo, hi


def joint_limits(kind: str = "full") -> tuple[np.ndarray, np.ndarray]:
    """Euler-angle limits (24,3) low and high, radians: ``"full"`` anatomical or ``"common"`` ranges."""
    if kind not in ("full", "common"):
        raise BadInputError(f"joint limits kind must be 'full' or 'common', got {kind!r}")
    return _table(_FULL if kind == "full" else _COMMON)


def euler_to_matrix(angles: np.ndarray) -> np.ndarray:
    """``R = Rz(c) Ry(b) Rx(a)`` (...,3,3) from angles (...,3) = (a, b, c) radians (scipy's
    extrinsic ``"xyz"``)."""
    from scipy.spatial.transform import Rotation

    angles = np.asarray(angles, dtype=np.float64)
    return Rotation.from_euler("xyz", angles.reshape(-1, 3)).as_matrix().reshape(*angles.shape[:-1], 3, 3)


def matrix_to_rotvec(R: np.ndarray) -> np.ndarray:
    """Axis-angle (...,3) of rotation matrices (...,3,3) (scipy's quaternion route, accurate near pi)."""
    from scipy.spatial.transform import Rotation

    shape = R.shape[:-2]
    return Rotation.from_matrix(R.reshape(-1, 3, 3)).as_rotvec().reshape(*shape, 3)


def _index(name: str) -> int:
    return JOINT_NAMES.index(name)


def _set(angles: np.ndarray, name: str, axis: int, lo: float, hi: float, rng: np.random.Generator,
         mirror: bool = True) -> None:
    """Set one Euler angle (degrees range) of a left/centre joint and, mirrored, of its right twin."""
    value = np.radians(rng.uniform(lo, hi))
    angles[_index(name), axis] = value
    if mirror and name.startswith("left_"):
        twin = _index("right_" + name[5:])
        angles[twin, axis] = value if axis == 0 else -value


def _common_angles(rng: np.random.Generator) -> np.ndarray:
    lo, hi = joint_limits("common")
    angles = rng.uniform(lo, hi)
    style = rng.choice(["free", "walk", "sit", "reach"], p=[0.45, 0.25, 0.15, 0.15])
    if style == "walk":
        swing = np.radians(rng.uniform(10, 35))
        angles[_index("left_hip"), 0], angles[_index("right_hip"), 0] = -swing, swing * 0.4
        angles[_index("right_knee"), 0] = np.radians(rng.uniform(5, 60))
        angles[_index("left_shoulder"), 1] = np.radians(rng.uniform(-25, 10))
    elif style == "sit":
        for side in ("left_", "right_"):
            angles[_index(side + "hip"), 0] = np.radians(rng.uniform(-95, -70))
            angles[_index(side + "knee"), 0] = np.radians(rng.uniform(70, 100))
    elif style == "reach":
        _set(angles, "left_shoulder", 1, -80, -40, rng, mirror=rng.random() < 0.5)
        _set(angles, "left_elbow", 1, -30, 0, rng, mirror=False)
    return angles


_UNSEEN_STYLES = ("deep_squat", "arms_overhead", "leg_raise", "lunge", "twist", "side_bend")


def _unseen_angles(rng: np.random.Generator) -> np.ndarray:
    lo, hi = joint_limits("full")
    mid = 0.5 * (lo + hi)
    angles = mid + 0.7 * (rng.uniform(lo, hi) - mid)
    styles = rng.choice(len(_UNSEEN_STYLES), size=2, replace=False)
    for style in (_UNSEEN_STYLES[s] for s in styles):
        if style == "deep_squat":
            _set(angles, "left_hip", 0, -125, -100, rng)
            _set(angles, "left_knee", 0, 115, 150, rng)
            _set(angles, "left_ankle", 0, 20, 40, rng)
            _set(angles, "spine1", 0, 10, 30, rng)
        elif style == "arms_overhead":
            _set(angles, "left_shoulder", 2, 120, 168, rng)
            _set(angles, "left_elbow", 1, -40, 0, rng)
        elif style == "leg_raise":
            side = "left_" if rng.random() < 0.5 else "right_"
            angles[_index(side + "hip"), 0] = np.radians(rng.uniform(-115, -80))
            angles[_index(side + "knee"), 0] = np.radians(rng.uniform(0, 25))
        elif style == "lunge":
            front, back = ("left_", "right_") if rng.random() < 0.5 else ("right_", "left_")
            angles[_index(front + "hip"), 0] = np.radians(rng.uniform(-100, -75))
            angles[_index(front + "knee"), 0] = np.radians(rng.uniform(85, 115))
            angles[_index(back + "hip"), 0] = np.radians(rng.uniform(15, 30))
            angles[_index(back + "knee"), 0] = np.radians(rng.uniform(70, 110))
        elif style == "twist":
            sign = 1 if rng.random() < 0.5 else -1
            for name in ("spine1", "spine2", "spine3"):
                angles[_index(name), 1] = sign * np.radians(rng.uniform(15, 25))
        elif style == "side_bend":
            sign = 1 if rng.random() < 0.5 else -1
            for name in ("spine1", "spine2", "spine3"):
                angles[_index(name), 2] = sign * np.radians(rng.uniform(10, 18))
    return np.clip(angles, lo, hi)


def sample_poses(rng: np.random.Generator, n: int, kind: str = "common") -> np.ndarray:
    """Local joint rotations (n,24,3) axis-angle, radians, with the root near upright (no global rotation)."""
    if kind not in POSE_KINDS:
        raise BadInputError(f"pose kind must be one of {POSE_KINDS}, got {kind!r}")
    draw = _common_angles if kind == "common" else _unseen_angles
    angles = np.stack([draw(rng) for _ in range(int(n))]) if n else np.zeros((0, N_JOINTS, 3))
    for j in MERGED_JOINTS:
        angles[:, j] = 0.0
    return matrix_to_rotvec(euler_to_matrix(angles))


def sample_betas(rng: np.random.Generator, n: int, n_betas: int = 10, scale: float = 1.0,
                 clip: float = 2.5) -> np.ndarray:
    """Shape coefficients (n, n_betas) ~ N(0, scale^2), clipped to +-clip (the model's shape space)."""
    return np.clip(rng.normal(0.0, scale, size=(int(n), int(n_betas))), -clip, clip)


__all__ = ["POSE_KINDS", "euler_to_matrix", "joint_limits", "matrix_to_rotvec", "sample_betas",
           "sample_poses"]
