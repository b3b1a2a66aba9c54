"""SMPL's 24-joint kinematic tree: joint names, parents, body parts and a rest (T-pose) skeleton.

The tree and names are those of SMPL (Loper et al. 2015, Fig. 3). Part labels follow ArtEq
(Feng et al., ICCV 2023): the part of a vertex is the argmax of its skinning weights, with each
hand merged into its wrist and each foot into its ankle (20 parts; the hand and foot joints
keep their rest orientation relative to their parents).
"""

from __future__ import annotations

import numpy as np

JOINT_NAMES = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar",
    "right_collar", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hand", "right_hand",
)
PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)
N_JOINTS = 24
# Joints merged into their parent for part labels and never rotated by the network.
MERGED_JOINTS = {10: 7, 11: 8, 22: 20, 23: 21}
PART_JOINTS = tuple(j for j in range(N_JOINTS) if j not in MERGED_JOINTS)  # joint of each part
N_PARTS = len(PART_JOINTS)


def joint_to_part() -> np.ndarray:
    """(24,) int: the part index of each joint (merged joints map to their parent's part)."""
    index = {j: p for p, j in enumerate(PART_JOINTS)}
    return np.array([index[MERGED_JOINTS.get(j, j)] for j in range(N_JOINTS)], dtype=np.int64)


def part_parents() -> np.ndarray:
    """(N_PARTS,) int: the parent part of each part (-1 for the pelvis)."""
    j2p = joint_to_part()
    return np.array([-1 if PARENTS[j] < 0 else j2p[PARENTS[j]] for j in PART_JOINTS], dtype=np.int64)


def kintree_table() -> np.ndarray:
    """(2, 24) int64 as SMPL files store it: row 0 parents (root: 2**32 - 1), row 1 joint ids."""
    parents = np.array(PARENTS, dtype=np.int64)
    parents[0] = 4294967295
    return np.stack([parents, np.arange(N_JOINTS, dtype=np.int64)])


# Rest joint locations (metres, SMPL body frame: x left, y up, z forward), T-pose, about 1.7 m
# tall with the feet at y = -1.17; values chosen by hand for a generic adult.
REST_JOINTS = np.array([
    [0.000, -0.225, 0.025],   # pelvis
    [0.070, -0.315, 0.020],   # left_hip
    [-0.070, -0.315, 0.020],  # right_hip
    [0.000, -0.115, -0.005],  # spine1
    [0.100, -0.690, 0.015],   # left_knee
    [-0.100, -0.690, 0.015],  # right_knee
    [0.000, 0.020, 0.000],    # spine2
    [0.090, -1.100, -0.025],  # left_ankle
    [-0.090, -1.100, -0.025], # right_ankle
    [0.000, 0.075, 0.025],    # spine3
    [0.115, -1.155, 0.100],   # left_foot
    [-0.115, -1.155, 0.100],  # right_foot
    [0.000, 0.285, -0.015],   # neck
    [0.075, 0.190, -0.015],   # left_collar
    [-0.075, 0.190, -0.015],  # right_collar
    [0.000, 0.375, 0.040],    # head
    [0.195, 0.235, -0.018],   # left_shoulder
    [-0.195, 0.235, -0.018],  # right_shoulder
    [0.455, 0.222, -0.040],   # left_elbow
    [-0.455, 0.222, -0.040],  # right_elbow
    [0.718, 0.233, -0.045],   # left_wrist
    [-0.718, 0.233, -0.045],  # right_wrist
    [0.805, 0.225, -0.058],   # left_hand
    [-0.805, 0.225, -0.058],  # right_hand
])

__all__ = ["JOINT_NAMES", "MERGED_JOINTS", "N_JOINTS", "N_PARTS", "PARENTS", "PART_JOINTS",
           "REST_JOINTS", "joint_to_part", "kintree_table", "part_parents"]
