"""BodyFitter: the public API of the body engine (SMPL-format body fitting to point clouds).

    fitter = BodyFitter.from_pretrained("body-default", body_model=None, device="cpu")
    fit = fitter.fit(points)          # points (N,3) metres -> BodyFit (fit.low_confidence: do not trust)
    fit = fitter.refine(points, fit)  # optional: optimisation from the network's fit

The network (:mod:`posekit.body.network`) predicts each part's global rotation, the shape and
the pelvis position in one forward pass, checked by a rigid alignment (and, given ``up``, its
flips); :meth:`BodyFitter.refine` searches orientations and joint rotations and polishes by
the optimiser of :mod:`posekit.body.optimization`; every fit is scored by the energy of
:mod:`posekit.body.energy`, which gives its ``confidence``. Rotations in a :class:`BodyFit` are local
(parent frame, root: global); the mesh and joints are in the input cloud's frame, metres.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from posekit.body.model import BodyModel, load_body_model
from posekit.body.network import BodyNet, BodyNetConfig, decode_body
from posekit.body.skeleton import JOINT_NAMES, PARENTS, PART_JOINTS
from posekit.device import resolve_device
from posekit.errors import BadInputError
from posekit.io.weights import fit_state_dict

logger = logging.getLogger(__name__)

MIN_POINTS = 100
# Plausible size of a cloud of (part of) a person, metres: the largest bounding-box side.
PERSON_EXTENT_M = (0.25, 4.0)
# Confidence = 2^(-score / CONFIDENCE_SCALE), 0.5 at CONFIDENCE_SCALE, from how well
# the fitted mesh and the cloud explain each other at the mesh's full resolution
# (posekit.body.energy.surface_agreement): score = outliers (fraction of points more than 3 cm
# from the mesh) + 0.25 uncovered (fraction of the visible mesh with no point within 3 cm) +
# 0.3 free_space (fraction of the visible mesh where the camera saw nothing). Calibrated on
# 104 fits (network and refined) of 52 generated clouds that are not the benchmark's (seed
# 21: unseen, rotated, partial, common poses, Kinect-like views): AUROC of V2V < 5 cm 0.983
# for the refinement (the energy's mean distances, the previous confidence: 0.903); 0.5 falls
# between the 4-5 cm and the 6-10 cm fits (no fit under 5 cm flagged, 77 % of the others). Below LOW_CONFIDENCE a fit is flagged
# (``BodyFit.low_confidence``) and the CLI warns.
CONFIDENCE_SCALE = 0.15
CONFIDENCE_WEIGHTS = {"outliers": 1.0, "uncovered": 0.25, "free_space": 0.3}
LOW_CONFIDENCE = 0.5
# A cloud without a known camera that is one view of a person (posekit.body.energy.
# single_view_fraction >= SINGLE_VIEW_FRACTION) shows one side from an unknown side: its
# front/back is a guess, so the confidence is multiplied by UNKNOWN_SIDE_FACTOR (flagged), and
# fit() does not try the front/back flip - pass ``viewpoint`` to let free space decide instead.
UNKNOWN_SIDE_FACTOR = 0.5
TOP_ANCHORS = 3  # the network's best pelvis anchors tried by the orientation check


def confidence_from_terms(terms: dict) -> float:
    """Confidence in [0, 1] of a fit from its terms (see CONFIDENCE_SCALE), times
    UNKNOWN_SIDE_FACTOR when ``terms["unknown_side"]`` (a single view without its camera)."""
    score = sum(w * float(terms.get(k, 0.0)) for k, w in CONFIDENCE_WEIGHTS.items())
    confidence = float(2.0 ** (-score / CONFIDENCE_SCALE))
    return confidence * (UNKNOWN_SIDE_FACTOR if terms.get("unknown_side", 0.0) else 1.0)


@dataclass
class BodyFit:
    """A fitted body (numpy, metres, input frame).

    rotations (24,3,3) local joint rotations (root: global); axis_angle (24,3) radians, the
    same; global_rotations (24,3,3); betas (n_betas,); translation (3,) (SMPL ``transl``);
    joints (24,3); vertices (V,3); faces (F,3); part_labels (N,) part index of each input
    point (joint of the part: ``part_joint_names``); confidence in [0, 1] and
    ``low_confidence`` (below :data:`LOW_CONFIDENCE`: do not trust the fit); residual_m mean
    distance of the input points to the fitted surface; terms: the energy terms (to_model,
    to_data m; free_space fraction of the visible model surface where the camera saw nothing)
    and those the confidence comes from (outliers: fraction of points more than 3 cm from the
    mesh; uncovered: fraction of the visible mesh with no point within 3 cm; free_space;
    unknown_side); timing_ms per stage.
    """

    rotations: np.ndarray
    axis_angle: np.ndarray
    global_rotations: np.ndarray
    betas: np.ndarray
    translation: np.ndarray
    joints: np.ndarray
    vertices: np.ndarray
    faces: np.ndarray
    part_labels: np.ndarray
    confidence: float
    residual_m: float
    timing_ms: dict = field(default_factory=dict)
    method: str = "network"
    dropped_invalid: int = 0
    certainty: float = 1.0  # mean top part probability of the network (1.0 without a network)
    terms: dict = field(default_factory=dict)

    @property
    def low_confidence(self) -> bool:
        return bool(self.confidence < LOW_CONFIDENCE)

    @property
    def part_joint_names(self) -> list[str]:
        return [JOINT_NAMES[j] for j in PART_JOINTS]

    def to_dict(self, include_mesh: bool = False) -> dict:
        """JSON-ready dict (vertices and faces only with ``include_mesh``)."""
        out = {
            "method": self.method, "joint_names": list(JOINT_NAMES),
            "rotations": self.rotations.tolist(), "axis_angle": self.axis_angle.tolist(),
            "global_rotations": self.global_rotations.tolist(), "betas": self.betas.tolist(),
            "translation": self.translation.tolist(), "joints": self.joints.tolist(),
            "part_names": self.part_joint_names, "part_labels": self.part_labels.tolist(),
            "confidence": float(self.confidence), "low_confidence": self.low_confidence,
            "certainty": float(self.certainty), "terms": {k: float(v) for k, v in self.terms.items()},
            "residual_m": float(self.residual_m),
            "timing_ms": {k: float(v) for k, v in self.timing_ms.items()},
            "dropped_invalid": int(self.dropped_invalid),
        }
        if include_mesh:
            out["vertices"] = self.vertices.tolist()
            out["faces"] = self.faces.tolist()
        return out


def check_body_points(points, extent_m: tuple[float, float] = PERSON_EXTENT_M) -> tuple[np.ndarray, int]:
    """Finite points (N,3) float32 of a person-sized cloud and the number of NaN/inf rows dropped.

    BadInputError for a wrong shape, fewer than MIN_POINTS valid points, or a size that is not
    a person in metres (a cloud in millimetres says so).
    """
    from posekit.io.pointcloud import check_metric_units
    from posekit.validation import as_float_array

    pts = as_float_array(points, "points", (None, 3), finite=False)
    valid = np.isfinite(pts).all(axis=1)
    dropped = int((~valid).sum())
    pts = pts[valid]
    if len(pts) < MIN_POINTS:
        raise BadInputError(
            f"a body fit needs at least {MIN_POINTS} valid points, got {len(pts)}"
            + (f" ({dropped} NaN/inf dropped)" if dropped else "")
        )
    check_metric_units(pts, extent_m)
    return pts.astype(np.float32), dropped


class BodyFitter:
    """Fits an SMPL-format body model to point clouds with the ArtEq-style network (+ optional refinement)."""

    def __init__(self, net: BodyNet, body: BodyModel, device: str = "cpu", metadata: dict | None = None,
                 seed: int = 0):
        self.device = resolve_device(device)
        self.net = net.to(self.device).eval()
        self.body = body.to(self.device)
        self.metadata = dict(metadata or {})
        self.seed = seed

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path = "body-default", body_model: str | Path | BodyModel | None = None,
                        device: str = "cpu", allow_pickle: bool = False) -> BodyFitter:
        """Shipped weights by name (``posekit.pretrained.available("body")``) or a model.pt path.

        body_model: an SMPL-format file (.npz; .pkl with ``allow_pickle``), a :class:`BodyModel`,
        or None for the model the weights were trained on (the procedural default). Weights
        trained on one body model work mechanically with another (same 24-joint tree), but
        are accurate only on the one they were trained on: retrain with ``--body-model``.
        """
        from posekit import pretrained

        device = resolve_device(device)
        weights = pretrained.load(name_or_path, engine="body", map_location="cpu")
        cfg = weights.config
        net_cfg = BodyNetConfig(**cfg.get("network", {}))
        if isinstance(body_model, BodyModel):
            body = body_model
        else:
            path = body_model or (cfg.get("body_model") or None)
            if path is not None and not Path(path).is_file() and body_model is None:
                logger.warning("the weights' body model %s is not here; using the default body", path)
                path = None
            body = load_body_model(path, device="cpu", allow_pickle=allow_pickle, n_betas=net_cfg.n_betas)
        net = BodyNet(net_cfg)
        fit_state_dict(net, weights.state_dict, weights.path)
        return cls(net, body, device=device, metadata=weights.metadata)

    def _prepare(self, points, rng: np.random.Generator) -> tuple[np.ndarray, int, torch.Tensor]:
        pts, dropped = check_body_points(points)
        n = self.net.config.n_points
        pick = rng.choice(len(pts), n, replace=len(pts) < n)
        return pts, dropped, torch.as_tensor(pts[pick], device=self.device)[None]

    @torch.no_grad()
    def predict_batch(self, clouds: torch.Tensor) -> tuple[dict, tuple]:
        """Network outputs and decoded (local rotations, betas, transl, BodyOutput) for clouds (B,n,3) torch."""
        outputs = self.net(clouds.to(self.device))
        return outputs, decode_body(outputs, self.body)

    def fit(self, points, viewpoint="auto", up=None) -> BodyFit:
        """Fit the body to points (N,3) metres: one network pass, then the orientation check.

        The check aligns the network's body and the candidates around it rigidly to the points
        (torso ICP) and keeps the one the data (and ``up``) support best
        (:func:`~posekit.body.optimization.check_orientation`): its flip about the body's long
        axis (front/back) and the network's next-best anchors; with ``up`` also the other two
        flips, and a head-down body loses. The torso decides (ranked by its energy, free space
        included where the camera is known): the network's limbs are too far off to vote - scoring
        by the whole body after fitting the limbs to the network's part labels flipped 12 of 150
        rotated clouds, the torso 1 (the network's own orientation 3). viewpoint: the
        depth camera's position (3,) in the cloud's frame, None for a cloud without one (e.g.
        a merged full scan) or "auto" (the origin when the cloud is more than 1.2 m from it);
        up (3,): the direction away from the floor, if known (head-down fits then lose).
        NaN/inf rows are dropped.
        """
        from posekit.body.energy import resolve_viewpoint
        from posekit.body.optimization import check_orientation

        t0 = time.perf_counter()
        rng = np.random.default_rng(self.seed)
        pts, dropped, cloud = self._prepare(points, rng)
        view = resolve_viewpoint(pts, viewpoint)
        up = self._check_up(up)
        t1 = time.perf_counter()
        outputs, (local, betas, transl, _) = self.predict_batch(cloud)
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        t2 = time.perf_counter()
        weights = outputs["anchor_weights"][0, 0]
        unknown_side = self._unknown_side(pts, view)
        # One side of a person with the camera unknown: the data cannot tell front from back.
        group = "flips" if up is not None else ("identity" if unknown_side else "long_axis")
        top = weights.argsort(descending=True)[1: 1 + TOP_ANCHORS]
        local0, transl0, info = check_orientation(self.body, torch.as_tensor(pts, device=self.device), local[0],
                                                  betas[0], transl[0], outputs["pelvis_candidates"][0, top],
                                                  viewpoint=view, up=up, seed=self.seed,
                                                  group=group)
        t3 = time.perf_counter()
        centres = cloud[0, outputs["centre_index"][0]]
        labels = self._labels_from_centres(pts, centres, outputs["centre_logits"][0].argmax(-1))
        certainty = float(outputs["centre_logits"][0].softmax(-1).amax(-1).mean())
        fit = self._make_fit(pts, local0, betas[0], transl0, labels, certainty, dropped, "network", info, view,
                             unknown_side)
        fit.timing_ms = {"prepare": 1e3 * (t1 - t0), "network": 1e3 * (t2 - t1), "orientation": 1e3 * (t3 - t2),
                         "total": 1e3 * (time.perf_counter() - t0)}
        return fit

    @staticmethod
    def _check_up(up):
        if up is None:
            return None
        from posekit.validation import as_float_array

        u = as_float_array(up, "up", (3,)).astype(np.float64)
        if not np.isfinite(u).all() or np.linalg.norm(u) < 1e-9:
            raise BadInputError(f"up must be a non-zero direction (x, y, z), got {up!r}")
        return u / np.linalg.norm(u)

    def refine(self, points, fit: BodyFit | None = None, settings=None, viewpoint="auto", up=None) -> BodyFit:
        """Polish ``fit`` (default: :meth:`fit` of the points) by the coarse-to-fine optimiser
        (:func:`~posekit.body.optimization.fit_by_optimization`: orientation candidates, joint
        search down the tree, Adam), with the same energy as the orientation check."""
        from posekit.body.energy import resolve_viewpoint
        from posekit.body.optimization import OptimizationSettings, fit_by_optimization

        t0 = time.perf_counter()
        fit = fit if fit is not None else self.fit(points, viewpoint=viewpoint, up=up)
        pts, dropped = check_body_points(points)
        view = resolve_viewpoint(pts, viewpoint)
        s = settings or OptimizationSettings(seed=self.seed)
        init = tuple(torch.as_tensor(x, device=self.device, dtype=torch.float32)
                     for x in (fit.rotations, fit.betas, fit.translation))
        labels = None
        if fit.method == "network" and len(fit.part_labels) == len(pts):
            labels = torch.as_tensor(fit.part_labels, device=self.device)
        res = fit_by_optimization(self.body, torch.as_tensor(pts, device=self.device), s, init=init, viewpoint=view,
                                  up=self._check_up(up), labels=labels)
        out = self._make_fit(pts, res.local_rotations, res.betas, res.transl, None, fit.certainty, dropped,
                             "network+refine", res.terms, view)
        if out.low_confidence and s.retry_flips:
            out = self._retry_flips(pts, res, out, s, view, up, dropped)
        # Not for one view of a person without its camera: its confidence is always low
        # (UNKNOWN_SIDE_FACTOR, and its back is uncovered) and a wider search does not tell its
        # front from its back.
        if out.low_confidence and s.retry_wide and not out.terms.get("unknown_side"):
            out = self._retry_wide(pts, fit, out, s, view, up, dropped)
        out.timing_ms = {**{f"network_{k}": v for k, v in fit.timing_ms.items()},
                         "refine": 1e3 * (time.perf_counter() - t0), "total": fit.timing_ms.get("total", 0.0)
                         + 1e3 * (time.perf_counter() - t0)}
        out.part_labels = self._labels_from_mesh(pts, out.vertices)
        return out

    def _retry_flips(self, pts, res, out: BodyFit, settings, view, up, dropped) -> BodyFit:
        """A low-confidence refined fit, refined again from each of its three flips (180 deg about
        each body axis, about the pelvis); the fit with the highest confidence is kept.

        The refinement keeps the network's orientation unless a flip wins by ``turn_penalty``; when
        the network's body is upside down or back to front, the search from it rarely finds the
        way over (held out: 5 of 7 network flips stayed flipped), and the flipped fit leaves much
        of the cloud unexplained, which the confidence (surface agreement) sees. Costs three more
        refinements of one kept candidate, for low-confidence fits only.
        """
        from dataclasses import replace

        from posekit.body.optimization import FLIPS, fit_by_optimization, set_root

        p = torch.as_tensor(pts, device=self.device)
        local, betas, transl = res.local_rotations, res.betas, res.transl
        with torch.no_grad():
            pelvis = self.body(local[None], betas[None], transl[None]).joints[0, 0]
        retry = replace(settings, keep=1, retry_flips=False)
        for flip in torch.as_tensor(FLIPS, device=self.device, dtype=local.dtype):
            R = (local[0] @ flip @ local[0].T)[None]
            L, t = set_root(self.body, local[None], betas[None], transl[None], R, (pelvis - R[0] @ pelvis)[None])
            again = fit_by_optimization(self.body, p, retry, init=(L[0], betas, t[0]), viewpoint=view,
                                        up=self._check_up(up))
            candidate = self._make_fit(pts, again.local_rotations, again.betas, again.transl, None, out.certainty,
                                       dropped, "network+refine", {**again.terms, "retried_flip": 1.0}, view)
            if candidate.confidence > out.confidence:
                out = candidate
        return out

    def _retry_wide(self, pts, start: BodyFit, out: BodyFit, settings, view, up, dropped) -> BodyFit:
        """A fit still of low confidence after the flip retry, refined again with a wider joint
        search (``settings.retry_sweeps`` passes, ``retry_random_candidates`` per joint, the next
        seed) from two starts: the fit it was refined from (``start``, usually the network's)
        and itself; the fit with the highest confidence is kept.

        Low-confidence refined fits are mostly single limbs (or the whole body) in the wrong
        place, where the greedy search from the network's limbs found no way out; a wider search
        from the same start, or from the refined fit, often does. Held out (6 unseen clouds and
        6 Kinect-like views, seed 7, not the benchmark's): 4 low-confidence fits 41.5 -> 11.6,
        21.2 -> 20.3, 7.9 -> 5.1, 8.1 -> 7.6 cm; candidates of lower confidence (some worse) are
        never kept; on the quick benchmark's two partial scans without a camera (always flagged)
        it changed 10.76 -> 10.80 cm, so those are left out. A second held-out set (seed 8, 16
        clouds) had two Kinect-like fits of confidence < 0.2 that got 0.01 more confidence and 4-9 cm
        worse: a candidate must gain ``retry_min_gain`` (0.02; every gain above was >= 0.04). Costs two more refinements of one
        candidate, for low-confidence fits only.
        """
        from dataclasses import replace

        from posekit.body.optimization import fit_by_optimization

        p = torch.as_tensor(pts, device=self.device)
        best = out
        wide = replace(settings, keep=1, retry_flips=False, retry_wide=False, sweeps=settings.retry_sweeps,
                       random_candidates=settings.retry_random_candidates, seed=settings.seed + 1)
        for source in (start, out):
            init = tuple(torch.as_tensor(x, device=self.device, dtype=torch.float32)
                         for x in (source.rotations, source.betas, source.translation))
            again = fit_by_optimization(self.body, p, wide, init=init, viewpoint=view, up=self._check_up(up))
            candidate = self._make_fit(pts, again.local_rotations, again.betas, again.transl, None, out.certainty,
                                       dropped, "network+refine", {**again.terms, "retried_wide": 1.0}, view)
            if candidate.confidence > best.confidence + settings.retry_min_gain:
                best = candidate
        return best

    def fit_by_optimization(self, points, settings=None, viewpoint="auto", up=None) -> BodyFit:
        """The optimisation baseline alone (multi-start over orientations, no network)."""
        from posekit.body.energy import resolve_viewpoint
        from posekit.body.optimization import OptimizationSettings, fit_by_optimization

        t0 = time.perf_counter()
        pts, dropped = check_body_points(points)
        view = resolve_viewpoint(pts, viewpoint)
        res = fit_by_optimization(self.body, torch.as_tensor(pts, device=self.device),
                                  settings or OptimizationSettings(seed=self.seed), viewpoint=view, up=self._check_up(up))
        out = self._make_fit(pts, res.local_rotations, res.betas, res.transl, None, 1.0, dropped, "optimization",
                             res.terms, view)
        out.part_labels = self._labels_from_mesh(pts, out.vertices)
        out.timing_ms = {"total": 1e3 * (time.perf_counter() - t0)}
        return out

    @staticmethod
    def _unknown_side(pts: np.ndarray, viewpoint) -> bool:
        """No camera known and the cloud is one view of a person (see UNKNOWN_SIDE_FACTOR)."""
        from posekit.body.energy import SINGLE_VIEW_FRACTION, single_view_fraction

        return viewpoint is None and single_view_fraction(pts) >= SINGLE_VIEW_FRACTION

    def _agreement(self, points: torch.Tensor, vertices: torch.Tensor, viewpoint) -> dict:
        """``outliers`` and ``uncovered`` (1 - coverage of the camera-visible mesh) of a fitted mesh
        (:func:`~posekit.body.energy.surface_agreement`); the whole mesh counts without a camera."""
        from posekit.body.energy import BodyEnergy, surface_agreement

        visible = None
        if viewpoint is not None:
            view = BodyEnergy(self.body, points, viewpoint=viewpoint, seed=self.seed)
            visible = view.visibility(vertices[None])[0][0]
        agreement = surface_agreement(points, vertices, visible)
        return {"outliers": agreement["outliers"], "uncovered": 1.0 - agreement["coverage"]}

    def _labels_from_centres(self, pts: np.ndarray, centres: torch.Tensor, centre_labels: torch.Tensor) -> np.ndarray:
        p = torch.as_tensor(pts, device=self.device)
        nearest = torch.cat([torch.cdist(chunk, centres).argmin(-1) for chunk in p.split(8192)])
        return centre_labels[nearest].cpu().numpy()

    def _labels_from_mesh(self, pts: np.ndarray, vertices: np.ndarray) -> np.ndarray:
        parts = self.body.vertex_parts()
        v = torch.as_tensor(vertices, device=self.device)
        p = torch.as_tensor(pts, device=self.device)
        nearest = torch.cat([torch.cdist(chunk, v).argmin(-1) for chunk in p.split(4096)])
        return parts[nearest.cpu().numpy()]

    @torch.no_grad()
    def _make_fit(self, pts, local, betas, transl, labels, certainty, dropped, method, terms: dict,
                  viewpoint=None, unknown_side: bool | None = None) -> BodyFit:
        """The BodyFit of a posed body; ``viewpoint`` None: no camera known (see UNKNOWN_SIDE_FACTOR)."""
        from posekit.geometry.so3 import so3_log

        out = self.body(local[None], betas[None], transl[None])
        verts = out.vertices[0]
        p = torch.as_tensor(pts, device=self.device)
        sample = p[torch.as_tensor(np.random.default_rng(0).choice(len(p), min(len(p), 512), replace=False),
                                   device=self.device)]
        residual = float(torch.cdist(sample, verts).amin(-1).mean())
        terms = {k: float(v) for k, v in terms.items()}
        terms["unknown_side"] = float(self._unknown_side(pts, viewpoint) if unknown_side is None else unknown_side)
        terms.update(self._agreement(p, verts, viewpoint))
        confidence = confidence_from_terms(terms)
        return BodyFit(
            rotations=local.cpu().numpy(), axis_angle=so3_log(local).cpu().numpy(),
            global_rotations=out.global_rotations[0].cpu().numpy(), betas=betas.cpu().numpy(),
            translation=transl.cpu().numpy(), joints=out.joints[0].cpu().numpy(), vertices=verts.cpu().numpy(),
            faces=self.body.faces, part_labels=labels if labels is not None else np.zeros(len(pts), np.int64),
            confidence=float(confidence), residual_m=residual, method=method, dropped_invalid=dropped,
            certainty=float(certainty), terms=terms,
        )

    def write_mesh(self, fit: BodyFit, path: str | Path) -> Path:
        """Write the fitted mesh (.ply/.obj), metres."""
        from posekit.io.mesh import Mesh, write_mesh

        return write_mesh(Mesh(fit.vertices.astype(np.float64), fit.faces, name="body"), path)

    def write_overlay(self, points, fit: BodyFit, path: str | Path, title: str = "", up=None,
                      viewpoint="auto") -> Path:
        """PNG: input points, fitted mesh and skeleton, front and side views in the input's frame
        (:func:`overlay_axes`: ``up`` if given, else as the camera sees a camera-frame cloud)."""
        from posekit.body.energy import resolve_viewpoint

        pts = np.asarray(points, dtype=np.float64)
        finite = pts[np.isfinite(pts).all(axis=1)]
        view = resolve_viewpoint(finite, viewpoint) if len(finite) else None
        camera = view is not None and np.allclose(view, 0.0)
        return draw_body_overlay(pts, fit, path, title, up=up, camera_frame=camera)


def overlay_axes(up=None, camera_frame: bool = False) -> np.ndarray:
    """(3,3) rows: the picture's right, up and depth axes, in the *input* frame.

    ``up`` (3,) given: it is the picture's up. Otherwise a camera-frame cloud (``camera_frame``:
    x right, y down, z forward, as a depth camera's) is drawn as the camera sees it (up = -y),
    and any other cloud with its +y up. The fit never moves the axes: a tilted or upside-down
    fit looks tilted or upside down next to its points.
    """
    if up is not None:
        v = np.asarray(up, dtype=np.float64)
        v = v / np.linalg.norm(v)
        helper = np.array([1.0, 0.0, 0.0]) if abs(v[0]) < 0.9 else np.array([0.0, 0.0, 1.0])
        h = helper - (helper @ v) * v
        h /= np.linalg.norm(h)
    elif camera_frame:
        h, v = np.array([1.0, 0.0, 0.0]), np.array([0.0, -1.0, 0.0])
    else:
        h, v = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    return np.stack([h, v, np.cross(h, v)])


def draw_body_overlay(points: np.ndarray, fit: BodyFit, path: str | Path, title: str = "",
                      reference: np.ndarray | None = None, up=None, camera_frame: bool = False) -> Path:
    """Front and side views, in the input frame (:func:`overlay_axes`), of points (black), the
    fitted mesh's vertices (orange), its skeleton, and an optional reference mesh (green)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    axes3 = overlay_axes(up, camera_frame)
    points = points[np.isfinite(points).all(axis=1)]
    origin = points.mean(axis=0)

    def frame(x):
        return (x - origin) @ axes3.T  # (right, up, depth) coordinates

    views = (("front", 0, 1), ("side", 2, 1))
    names = {0: "right", 1: "up", 2: "depth"}
    fig, axes = plt.subplots(1, 2, figsize=(9, 5.5))
    p, v, j = frame(points), frame(fit.vertices), frame(fit.joints)
    for ax, (name, a, b) in zip(axes, views):
        ax.scatter(v[:, a], v[:, b], s=0.6, c="tab:orange", alpha=0.35, label="fitted mesh", linewidths=0)
        if reference is not None:
            r = frame(reference)
            ax.scatter(r[:, a], r[:, b], s=0.3, c="tab:green", alpha=0.2, linewidths=0, label="ground truth")
        ax.scatter(p[:, a], p[:, b], s=1.0, c="k", alpha=0.5, linewidths=0, label="input points")
        for k, parent in enumerate(PARENTS):
            if parent >= 0:
                ax.plot(j[[parent, k], a], j[[parent, k], b], "-", c="tab:blue", lw=2)
        ax.scatter(j[:, a], j[:, b], s=12, c="tab:red", zorder=5, label="joints")
        ax.scatter(j[15, a], j[15, b], s=40, c="tab:purple", zorder=6, marker="^", label="head joint")
        ax.set_aspect("equal")
        ax.set_title(f"{name}: input frame, {names[a]} = ({', '.join(f'{x:+.1f}' for x in axes3[a])})")
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0].legend(loc="lower left", fontsize=7, markerscale=1.5)
    flag = " LOW CONFIDENCE" if fit.low_confidence else ""
    fig.suptitle(title or f"{fit.method}: confidence {fit.confidence:.2f}{flag}, residual {100 * fit.residual_m:.1f} cm")
    fig.tight_layout()
    from posekit.io.atomic import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:  # creates the folder (OutputPathError)
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return path


__all__ = ["LOW_CONFIDENCE", "MIN_POINTS", "BodyFit", "BodyFitter", "check_body_points", "confidence_from_terms",
           "draw_body_overlay", "overlay_axes"]
