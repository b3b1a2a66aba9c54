"""posekit: 3D pose estimation for robotics.

The three engines' estimators are importable from here; each is loaded on first use so that
``import posekit`` stays cheap (no torch until an engine is touched)::

    posekit.ObjectPoseEstimator   # 6D object pose, SE(3) diffusion registration
    posekit.BodyFitter            # SMPL-format body fitting, ArtEq-style network
    posekit.ViewPoseEstimator     # SO(3) orientation distribution from one RGB image
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "ObjectPoseEstimator": "posekit.registration.estimator",
    "BodyFitter": "posekit.body.fitter",
    "ViewPoseEstimator": "posekit.view.estimator",
}

__all__ = ["BodyFitter", "ObjectPoseEstimator", "ViewPoseEstimator", "__version__"]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'posekit' has no attribute {name!r}")
