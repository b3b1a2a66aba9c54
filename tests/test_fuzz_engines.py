"""Hostile inputs to the three engines' public calls (report only: the engines have owners).

posekit/registration, posekit/body and posekit/view are being rewritten by their owners
(issue 14); their findings are listed here and in the fuzz report, not fixed. Each test is
xfail(strict=False) while it has findings (object): it passes once the owner's fixes land,
and never blocks the suite; the body and view engines' probes pass and are plain tests.
Expected outcomes: a posekit error, or a result that is sane (finite pose, success=False for
unusable input, no mode count beyond what was asked).
"""

from __future__ import annotations

import fuzzing
import numpy as np
import pytest
from fuzzing import probe


def _finish(kind):
    found = fuzzing.failures(kind)
    assert found == [], "\n".join(found[:40])


def _pose_check(result):
    if getattr(result, "success", False):
        T = np.asarray(result.T_cam_model, dtype=np.float64)
        if T.shape != (4, 4) or not np.isfinite(T).all():
            return "success=True with a non-finite pose"
    return None


def _degenerate_check(result):
    if getattr(result, "success", False):
        return f"success=True (score {getattr(result, 'score', '?')}) on a degenerate cloud"
    return None


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_fuzz_object_engine():
    import posekit
    from posekit.data.meshes import procedural_mesh

    kind = "engine object"
    est = posekit.ObjectPoseEstimator.from_pretrained("registration-procedural")
    mesh, _ = procedural_mesh(3)
    model = est.prepare_model(mesh)
    rng = np.random.default_rng(0)
    good = (mesh.sample_points(300, seed=1) + [0.0, 0.0, 0.7]).astype(np.float32)
    outliers = good.copy()
    outliers[::40] = 1e30
    clouds = {
        "empty": np.zeros((0, 3)), "nan": np.full((50, 3), np.nan), "one point": good[:1],
        "identical": np.tile(good[:1], (300, 1)), "colinear": np.outer(np.linspace(0, 0.1, 300), [1, 0, 0]) + [0, 0, 0.7],
        "sub-millimetre": good[:1] + rng.normal(0, 1e-5, (300, 3)), "8 outliers at 1e30": outliers,
        "transposed": good.T[:, :50], "millimetres": good * 1000, "strings": np.array([["a", "b", "c"]]),
    }
    for label, cloud in clouds.items():
        check = _degenerate_check if label in ("identical", "colinear", "sub-millimetre", "one point") else _pose_check
        probe(kind, f"observed {label}", lambda c=cloud: est.estimate(model, c), check)
    depth = np.full((48, 64), 0.7, np.float32)
    K = np.array([[60.0, 0, 32], [0, 60, 24], [0, 0, 1]])
    for bbox in ([-5, -5, -1, -1], [np.nan, 0, 10, 10], [0, 0, np.inf, 10], [0, 0, 10], "abc", [200, 200, 300, 300],
                 [10, 10, 5, 5], [0.5, 0.5, 0.6, 0.6]):
        probe(kind, f"bbox {bbox!r}", lambda b=bbox: est.estimate(model, depth=depth, K=K, bbox=b),
              lambda r: "bbox outside the image gave success=True" if getattr(r, "success", False) else None)
    for n in (0, -1, 2.5, "x"):
        probe(kind, f"num_hypotheses={n!r}",
              lambda n=n: posekit.ObjectPoseEstimator.from_pretrained("registration-procedural", num_hypotheses=n),
              lambda e, n=n: f"num_hypotheses={n!r} accepted" if n in (0, -1) else None)
    probe(kind, "model centred at the origin, NaN normals",
          lambda: est.prepare_model(mesh.scaled(1.0), symmetries=np.full((2, 4, 4), np.nan)))
    probe(kind, "negative scale model", lambda: est.prepare_model(mesh.scaled(-1.0)),
          lambda m: "a negative scale mirrors the model silently")
    _finish(kind)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_fuzz_view_engine():  # no xfail: guards the view engine
    import posekit

    kind = "engine view"
    est = posekit.ViewPoseEstimator.from_pretrained("view-symsol")
    rng = np.random.default_rng(0)
    images = {"empty": np.zeros((0, 0, 3), np.uint8), "1x1": np.zeros((1, 1, 3), np.uint8),
              "nan float": np.full((64, 64, 3), np.nan), "5 channels": np.zeros((64, 64, 5), np.uint8),
              "uint16 grey": (rng.random((64, 64)) * 65535).astype(np.uint16), "bool": np.ones((64, 64), bool),
              "strings": np.array([["a"]]), "None": None, "huge values": np.full((64, 64, 3), 1e9)}
    for label, image in images.items():
        probe(kind, f"image {label}", lambda i=image: est.predict(i))
    dist = est.predict(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    for k in (0, -1, 2.5, "3"):
        probe(kind, f"top_modes({k!r})", lambda k=k: dist.top_modes(k),
              lambda modes, k=k: f"top_modes({k!r}) returned {len(modes)} modes"
              if isinstance(k, int) and k <= 0 and len(modes) else None)
    for n in (0, -1, 2.5):
        probe(kind, f"sample({n!r})", lambda n=n: dist.sample(n))
    for value in (None, np.eye(4), np.full((3, 3), np.nan), "x", np.zeros((0, 3, 3)), np.zeros((3, 3))):
        probe(kind, f"log_likelihood({type(value).__name__})", lambda v=value: dist.log_likelihood(v))
    for level in (-1, 9, 2.5, "2"):
        probe(kind, f"predict level={level!r}", lambda lv=level: est.predict(np.zeros((64, 64, 3), np.uint8), level=lv))
    probe(kind, "predict_batch []", lambda: est.predict_batch([]))
    for kw in ({"device": "x"}, {"grid_level": "x"}, {"grid_level": 99}):
        probe(kind, f"from_pretrained {kw}", lambda kw=kw: posekit.ViewPoseEstimator.from_pretrained("view-symsol", **kw))
    lmo = posekit.ViewPoseEstimator.from_pretrained("view-lmo")
    frame = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    K = np.array([[100.0, 0, 80], [0, 100, 60], [0, 0, 1]])
    for bbox in ([-5, -5, -1, -1], [np.nan, 0, 10, 10], [0, 0, np.inf, 10], [0, 0, 10], "abc", [200, 200, 300, 300],
                 [[1, 2], [3, 4]], np.array(["1", "2", "3", "4"])):
        probe(kind, f"view-lmo bbox {bbox!r}", lambda b=bbox: lmo.predict(frame, obj_id=1, bbox=b, K=K))
    for obj_id in (None, 2, "1", 1.5, True):
        probe(kind, f"view-lmo obj_id {obj_id!r}", lambda o=obj_id: lmo.predict(frame, obj_id=o, bbox=[10, 10, 40, 40], K=K))
    for K_bad in (None, np.zeros((3, 3)), "K", np.full((3, 3), np.nan), np.eye(4)):
        probe(kind, f"view-lmo K {K_bad!r}", lambda k=K_bad: lmo.predict(frame, obj_id=1, bbox=[10, 10, 40, 40], K=k))
    for label, mask in {"empty": np.zeros((120, 160), bool), "other size": np.ones((10, 10), bool),
                        "NaN": np.full((120, 160), np.nan), "text": "mask"}.items():
        probe(kind, f"view-lmo mask {label}", lambda m=mask: lmo.predict(frame, obj_id=1, mask=m, K=K))
    _finish(kind)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_fuzz_body_engine():  # passes today: no xfail, so it guards the body engine's rewrite
    import posekit

    kind = "engine body"
    fitter = posekit.BodyFitter.from_pretrained("body-default")
    rng = np.random.default_rng(0)
    clouds = {"empty": np.zeros((0, 3)), "nan": np.full((100, 3), np.nan), "one point": np.ones((1, 3)),
              "identical": np.ones((500, 3)), "1e30 outliers": np.r_[rng.normal(0, 0.3, (492, 3)), np.full((8, 3), 1e30)],
              "millimetres": rng.normal(0, 300, (500, 3)), "transposed": rng.normal(0, 0.3, (3, 500)),
              "strings": np.array([["a", "b", "c"]]), "None": None}
    for label, cloud in clouds.items():
        probe(kind, f"fit {label}", lambda c=cloud: fitter.fit(c),
              lambda f: None if np.isfinite(np.asarray(f.joints)).all() else "non-finite joints")
    _finish(kind)
