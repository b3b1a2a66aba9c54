"""Start rotations for the object engine from a view distribution (RGB seeds the depth engine).

:func:`start_rotations_from_view` turns the image's ``p(R_cam_obj | image)`` into ``k`` distinct
rotations, most probable first, for the diffusion chains of
:class:`posekit.registration.estimator.ObjectPoseEstimator` to start from (in place of, or ahead
of, its fixed anchor rotations). A symmetric object's modes are all kept: the depth engine
scores them.
"""

from __future__ import annotations

import numpy as np

from posekit.errors import BadInputError
from posekit.validation import check_count
from posekit.view.distribution import SO3GridDistribution


def start_rotations_from_view(distribution: SO3GridDistribution, k: int, min_separation_deg: float = 20.0,
                              rng: np.random.Generator | None = None) -> np.ndarray:
    """``(k, 3, 3)`` float64 rotations ``R_cam_obj``: the ``k`` most probable local maxima of the
    distribution, at least ``min_separation_deg`` apart (greedy, :meth:`SO3GridDistribution.top_modes`).

    When the distribution has fewer separated modes than ``k`` (a sharp, unimodal one), the
    remaining rows are drawn from the distribution itself (with ``rng``, seeded 0 by default),
    so that the chains still cover its spread. Rows are proper rotations (orthonormal, det +1).
    """
    if not isinstance(distribution, SO3GridDistribution):
        raise BadInputError(f"distribution must be an SO3GridDistribution, got {type(distribution).__name__}")
    k = check_count(k, "number of start rotations k")
    modes = [R for R, _ in distribution.top_modes(k, min_separation_deg)]
    if len(modes) < k:
        rng = np.random.default_rng(0) if rng is None else rng
        modes += list(distribution.sample(k - len(modes), rng))
    return np.ascontiguousarray(np.stack(modes[:k]).astype(np.float64))


def start_rotations_from_image(view_estimator, rgb, obj_id, K, *, bbox=None, mask=None, k: int = 8,
                               min_separation_deg: float = 20.0) -> tuple[np.ndarray, SO3GridDistribution]:
    """Predict with ``view_estimator`` (a :class:`~posekit.view.estimator.ViewPoseEstimator`) on the full
    image ``rgb (H, W, 3)`` for object ``obj_id`` in ``bbox`` or ``mask`` with intrinsics ``K (3, 3)``;
    returns ``(k, 3, 3)`` start rotations ``R_cam_obj`` (:func:`start_rotations_from_view`) and the
    distribution they came from."""
    dist = view_estimator.predict(rgb, obj_id=obj_id, bbox=bbox, mask=mask, K=K)
    return start_rotations_from_view(dist, k, min_separation_deg), dist
