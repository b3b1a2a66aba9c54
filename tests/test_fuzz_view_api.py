"""Hypothesis strategies over the view engine's public arguments (issue 14, item 6).

The distribution's methods, the crop geometry and the estimator's ``predict`` (a tiny,
untrained object-conditioned network: the argument handling is under test, not the network)
must return a sane value or raise a posekit error; anything else is a finding, counted by
tests/fuzzing.py. The fast slice draws a few dozen examples per function; the slow sweep a
few hundred.
"""

from __future__ import annotations

import fuzzing
import numpy as np
import pytest
from fuzzing import probe
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

FAST = settings(max_examples=25, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))
FULL = settings(max_examples=250, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))

anything = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**6), st.floats(), st.text(max_size=4),
                     st.binary(max_size=4), st.lists(st.floats(), max_size=4))
small_arrays = st.one_of(
    hnp.arrays(st.sampled_from(["f8", "f4", "i4", "u1", "b1", "U2"]),
               hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5)),
    hnp.arrays("f8", st.sampled_from([(3, 3), (2, 3, 3), (4,), (4, 4)]),
               elements=st.floats(allow_nan=True, allow_infinity=True, width=64)))
K_GOOD = np.array([[60.0, 0, 31.5], [0, 60.0, 23.5], [0, 0, 1]])
STATE: dict = {}


def _distribution():
    from posekit.view.distribution import SO3GridDistribution

    if "dist" not in STATE:
        z = np.random.default_rng(0).normal(size=576) * 3
        STATE["dist"] = SO3GridDistribution.from_logits(z, 1)
    return STATE["dist"]


def _estimator():
    if "est" not in STATE:
        STATE["est"] = fuzzing.tiny_view_estimator("posekit_fuzz_view_")
    return STATE["est"]


def _modes_check(k):
    def check(modes):
        if isinstance(k, (int, np.integer)) and not isinstance(k, bool) and len(modes) > k:
            return f"{len(modes)} modes for k={k}"
        if any(not np.isfinite(R).all() or abs(np.linalg.det(R) - 1) > 1e-6 for R, _ in modes):
            return "a mode that is not a rotation"
        return None

    return check


def _finite_float(x):
    return None if isinstance(x, float) and np.isfinite(x) else f"not a finite float: {x!r}"


def _rotations_check(n):
    def check(R):
        if not isinstance(n, (int, np.integer)) or R.shape != (int(n), 3, 3):
            return f"shape {getattr(R, 'shape', None)} for n={n!r}"
        return None

    return check


def _dist_check(dist):
    p = dist.probs
    return None if np.isfinite(p).all() and abs(p.sum() - 1) < 1e-9 else "probabilities not a distribution"


# ------------------------------------------------------------------ the properties

def prop_distribution(k, sep, n, value):
    d = _distribution()
    probe("api SO3GridDistribution", f"top_modes({k!r}, {sep!r})", lambda: d.top_modes(k, sep), _modes_check(k))
    probe("api SO3GridDistribution", f"sample({n!r})", lambda: d.sample(n, 0), _rotations_check(n))
    for method in (d.log_likelihood, d.spread, d.mode_error):
        probe("api SO3GridDistribution", method.__name__, lambda f=method: f(value), _finite_float)
    probe("api SO3GridDistribution", "to_dict", lambda: d.to_dict(top=k, min_separation_deg=sep))


def prop_distribution_constructor(probs, level):
    from posekit.view.distribution import SO3GridDistribution

    probe("api SO3GridDistribution constructor", f"({type(probs).__name__}, {level!r})",
          lambda: SO3GridDistribution(probs, level), _dist_check)
    probe("api SO3GridDistribution constructor", f"from_logits(level={level!r})",
          lambda: SO3GridDistribution.from_logits(probs, level), _dist_check)


def prop_crop_geometry(bbox, K, size, mask):
    from posekit.geometry.crop import bbox_from_mask, check_bbox, crop_camera

    def camera_check(cam):
        ok = np.isfinite(cam.R_cam_crop).all() and np.isfinite(cam.K_crop).all() and cam.K_crop[0, 0] > 0
        return None if ok else "a crop camera that is not finite"

    probe("api crop geometry", f"check_bbox({bbox!r})"[:40], lambda: check_bbox(bbox, 64, 48))
    probe("api crop geometry", "crop_camera", lambda: crop_camera(bbox, K, size), camera_check)
    probe("api crop geometry", "bbox_from_mask", lambda: bbox_from_mask(mask),
          lambda b: None if np.isfinite(b).all() and (b[2:] >= 1).all() else f"box {b}")


GOOD_CALL = {"image": np.full((48, 64, 3), 90, np.uint8), "obj_id": 7, "bbox": [10.0, 8.0, 20.0, 16.0],
             "K": K_GOOD, "level": 1}


@st.composite
def predict_calls(draw):
    """A valid call with none, one or all of its arguments replaced by hostile values."""
    hostile = {"image": images, "obj_id": anything, "bbox": st.one_of(st.none(), boxes),
               "K": st.one_of(st.none(), intrinsics), "level": st.one_of(st.none(), anything, st.integers(-1, 8))}
    which = draw(st.sampled_from(["none", "all", *hostile]))
    call = dict(GOOD_CALL)
    for name, strategy in hostile.items():
        if which in ("all", name):
            call[name] = draw(strategy)
    return call


def prop_predict(call):
    image, obj_id, bbox, K, level = (call[k] for k in ("image", "obj_id", "bbox", "K", "level"))
    est = _estimator()
    probe("api ViewPoseEstimator.predict", f"obj_id={obj_id!r} level={level!r}"[:40],
          lambda: est.predict(image, obj_id=obj_id, bbox=bbox, K=K, level=level), _dist_check)


images = st.one_of(anything, small_arrays,
                   hnp.arrays("u1", st.sampled_from([(48, 64, 3), (48, 64), (48, 64, 4), (20, 20, 3)])),
                   hnp.arrays("f8", (48, 64, 3), elements=st.floats(allow_nan=True, allow_infinity=True, width=64)))
boxes = st.one_of(anything, small_arrays, st.lists(st.floats(-100, 200), min_size=4, max_size=4))
intrinsics = st.one_of(anything, small_arrays, st.just(K_GOOD))

PROPERTIES = {
    "SO3GridDistribution": (given(anything, st.one_of(anything, st.floats(-10, 200)), anything,
                                  st.one_of(anything, small_arrays)), prop_distribution),
    "SO3GridDistribution constructor": (given(st.one_of(anything, small_arrays,
                                                        hnp.arrays("f8", 576, elements=st.floats(width=64)),
                                                        hnp.arrays("f8", 576, elements=st.floats(0, 1e3))),
                                              st.one_of(anything, st.integers(-2, 8), st.just(1))),
                                        prop_distribution_constructor),
    "crop geometry": (given(boxes, intrinsics, st.one_of(anything, st.integers(-3, 300)),
                            st.one_of(anything, small_arrays, hnp.arrays("b1", (48, 64)))),
                      prop_crop_geometry),
    "ViewPoseEstimator.predict": (given(predict_calls()), prop_predict),
}


def _finish(name):
    found = fuzzing.failures(f"api {name}")
    assert found == [], "\n".join(found[:30])


@pytest.mark.parametrize("name", sorted(PROPERTIES))
def test_fuzz_view_api_fast(name):
    decorate, prop = PROPERTIES[name]
    FAST(decorate(prop))()
    _finish(name)


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", sorted(PROPERTIES))
def test_fuzz_view_api_full(name):
    decorate, prop = PROPERTIES[name]
    FULL(decorate(prop))()
    _finish(name)
