"""Geometry core: SO(3) and SE(3) maps, sampling, distances and alignment.

The batched, differentiable torch functions live in :mod:`~posekit.geometry.so3`,
:mod:`~posekit.geometry.se3`, :mod:`~posekit.geometry.igso3` and
:mod:`~posekit.geometry.alignment` (see :mod:`posekit.geometry.se3` for the conventions
shared by all engines); their numpy counterparts for I/O, data and metrics code live in
:mod:`~posekit.geometry.rigid_np`; HEALPix grids on SO(3) (the view engine's output grid, also
used to render SYMSOL data) in :mod:`~posekit.geometry.so3_grid`; the finite rotation groups
(tetrahedral, octahedral, icosahedral) in :mod:`~posekit.geometry.rotation_groups`; crop cameras
(a box of an image seen as a second pinhole camera) in :mod:`~posekit.geometry.crop`; cloud
normals in :mod:`~posekit.geometry.normals` and batched k-NN in
:mod:`~posekit.geometry.neighbours`. Importing this package loads numpy only: the torch
functions are imported on first use, so numpy-only code does not pay for importing torch.
"""

from __future__ import annotations

import importlib

from posekit.geometry.rigid_np import (
    make_pose,
    project_points_np,
    random_rotation_np,
    rotation_about_axis,
    transform_points_np,
)

# Torch-backed public names -> the submodule defining them (imported lazily, PEP 562).
_TORCH_NAMES = {
    "weighted_kabsch": "alignment",
    **dict.fromkeys(
        ["igso3_angle_density", "igso3_density", "igso3_log_density", "igso3_sample"], "igso3"
    ),
    **dict.fromkeys(
        ["make_transform", "se3_compose", "se3_exp", "se3_inverse", "se3_log", "se3_perturb",
         "split_transform", "transform_points", "translation_distance"], "se3"
    ),
    **dict.fromkeys(
        ["chordal_distance", "chordal_mean", "geodesic_distance", "hat", "is_rotation",
         "project_to_so3", "random_rotation", "rotation_angle", "so3_exp", "so3_log", "vee"],
        "so3",
    ),
}


def __getattr__(name: str):
    module = _TORCH_NAMES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_TORCH_NAMES))


__all__ = [
    "chordal_distance", "chordal_mean", "geodesic_distance", "hat", "igso3_angle_density",
    "igso3_density", "igso3_log_density", "igso3_sample", "is_rotation", "make_pose",
    "make_transform", "project_points_np", "project_to_so3", "random_rotation",
    "random_rotation_np", "rotation_about_axis", "rotation_angle", "se3_compose", "se3_exp",
    "se3_inverse", "se3_log", "se3_perturb", "so3_exp", "so3_log", "split_transform",
    "transform_points", "transform_points_np", "translation_distance", "vee", "weighted_kabsch",
]
