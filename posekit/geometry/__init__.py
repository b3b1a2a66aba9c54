"""Geometry core: SO(3) and SE(3) maps, sampling, distances and alignment (torch, batched).

See :mod:`posekit.geometry.se3` for the conventions shared by all engines.
"""

from posekit.geometry.alignment import weighted_kabsch
from posekit.geometry.igso3 import igso3_angle_density, igso3_density, igso3_log_density, igso3_sample
from posekit.geometry.se3 import (
    make_transform,
    se3_compose,
    se3_exp,
    se3_inverse,
    se3_log,
    se3_perturb,
    split_transform,
    transform_points,
    translation_distance,
)
from posekit.geometry.so3 import (
    chordal_distance,
    chordal_mean,
    geodesic_distance,
    hat,
    is_rotation,
    project_to_so3,
    random_rotation,
    rotation_angle,
    so3_exp,
    so3_log,
    vee,
)

__all__ = [
    "chordal_distance", "chordal_mean", "geodesic_distance", "hat", "igso3_angle_density",
    "igso3_density", "igso3_log_density", "igso3_sample", "is_rotation", "make_transform",
    "project_to_so3", "random_rotation", "rotation_angle", "se3_compose", "se3_exp",
    "se3_inverse", "se3_log", "se3_perturb", "so3_exp", "so3_log", "split_transform",
    "transform_points", "translation_distance", "vee", "weighted_kabsch",
]
