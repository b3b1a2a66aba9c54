"""Hostile inputs to the three engines' public calls (report only: the engines have owners).

posekit/registration, posekit/body and posekit/view are being rewritten by their owners
(issue 14); their findings are listed here and in the fuzz report, not fixed. Each test is
xfail(strict=False) while it has findings (object, view): it passes once the owner's fixes
land, and never blocks the suite; the body engine's probes pass today and are a plain test.
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
@pytest.mark.xfail(strict=False, reason="owner: view engine helper, issue 14")
def test_fuzz_view_engine():
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
    for value in (None, np.eye(4), np.full((3, 3), np.nan), "x", np.zeros((0, 3, 3))):
        probe(kind, f"log_likelihood({type(value).__name__})", lambda v=value: dist.log_likelihood(v))
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
