"""Articulated human bodies: an SMPL-format body model, poses, point clouds and an ArtEq-style fitter.

- :mod:`~posekit.body.model`: :class:`BodyModel`, the SMPL file format with linear blend
  skinning and forward kinematics (Loper et al., "SMPL", SIGGRAPH Asia 2015), batched torch;
- :mod:`~posekit.body.procedural`: an openly usable body in that format (the default model);
- :mod:`~posekit.body.poses`: joint-limited pose sampler ("common" and "unseen" poses);
- :mod:`~posekit.body.clouds`: full-surface, single-view partial and Kinect-like point clouds;
- :mod:`~posekit.body.network`: the ArtEq-style rotation-equivariant network;
- :mod:`~posekit.body.energy`: the one energy every fit is scored by (chamfer on the visible
  surface, free space seen by the camera, joint limits, shape prior);
- :mod:`~posekit.body.optimization`: orientation check, refinement and the optimisation
  baseline (coarse to fine: orientations, joint search down the tree, Adam);
- :mod:`~posekit.body.fitter`: :class:`BodyFitter`, the public API.

Conventions: metres; the body frame of SMPL (y up, x to the body's left, z forward); per-joint
rotations are *local* (relative to the parent joint) unless named ``global``.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "BodyModel": "model", "BodyOutput": "model", "load_body_model": "model",
    "default_body_model_path": "model", "JOINT_NAMES": "skeleton", "PARENTS": "skeleton",
    "BodyFitter": "fitter", "BodyFit": "fitter",
}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "JOINT_NAMES",
    "PARENTS",
    "BodyFit",
    "BodyFitter",
    "BodyModel",
    "BodyOutput",
    "default_body_model_path",
    "load_body_model",
]
