"""How well does a pose explain the measured depth? Render the model, compare depth per pixel.

A hypothesis ``T_cam_model`` is scored by rendering the model's surface into the camera
that took the depth (the image's K, or a virtual pinhole for a bare point cloud) and
comparing rendered and measured depth cell by cell on a pixel grid around the object:

- a cell where both exist is an **inlier** with weight ``exp(-(dz / sigma)^2 / 2)``, where
  ``sigma`` combines the calibrated sensor noise at that depth
  (:class:`posekit.data.sensor.DepthSensorModel`), the cell's footprint and a small
  fraction of the object's size (CAD models are not the real object);
- model surface clearly **in front** of the measurement (``dz < -k sigma``) is a
  free-space violation: the sensor saw through where the model says there is surface;
- model surface clearly **behind** it is occluded and neither helps nor hurts.

Two numbers follow: ``coverage``, the fraction of the region the object should explain
(the mask, the box, the observed points; without one, the model's own rendered cells) that
the rendered model explains, and ``support``, the fraction of the model's unoccluded
rendered cells that agree with the measurement (violations count against it).
``score = coverage * support`` in [0, 1]: continuous, and it does not saturate: noise keeps
a right pose below 1, a pose a few degrees off loses inliers, a pose on the wrong object
loses both terms.

Rendering is a z-buffer of dense surface samples (back faces culled) scattered into the
grid with ``scatter_reduce(amin)``; the grid's stride is chosen so that several samples
fall in each cell. Everything runs in torch on the estimator's device, all hypotheses in
one batch, so the score costs no host round trip per hypothesis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from posekit.errors import BadInputError

# Virtual focal length (pixels) for clouds without a camera: a Kinect/RealSense-like pinhole.
VIRTUAL_FOCAL_PX = 575.0


@dataclass
class ScoreConfig:
    """Settings of the depth-rendering score (the ``scoring:`` part of ``inference``)."""

    samples_per_cell: float = 3.0  # model surface samples per grid cell (sets the grid stride)
    max_cells: int = 6000  # cap on the grid size (a coarser stride beyond it)
    margin: float = 0.35  # grid margin around the region, fraction of the projected diameter
    sigma_size: float = 0.006  # model-vs-object discrepancy, fraction of the diameter
    violation_sigmas: float = 3.0  # |dz| beyond this many sigmas: violation (in front) / occluded (behind)
    coarse_sigma: float = 0.05  # tolerance (fraction of the diameter) of the coarse score that picks ICP's starts


@dataclass
class DepthView:
    """Measured depth around the object, where hypotheses are compared with it.

    ``depth (Hf, Wf)`` float32 metres (0 = no measurement): fine pixel (r, c) is image pixel
    (u0 + fine * c, v0 + fine * r) (``fine`` = 1 for a real depth image). Visibility and
    coverage use a coarser grid of cells ``cell`` fine pixels wide (several surface samples per
    cell); ``roi (Hf, Wf)`` bool marks the pixels the object should explain (None: unknown).
    K (3, 3) of the camera.
    """

    K: np.ndarray
    depth: torch.Tensor
    roi: torch.Tensor | None
    u0: float
    v0: float
    fine: int
    cell: int

    @property
    def stride(self) -> int:
        """Image pixels per cell."""
        return self.fine * self.cell

    @property
    def grid_shape(self) -> tuple[int, int]:
        H, W = self.depth.shape
        return (int(H) + self.cell - 1) // self.cell, (int(W) + self.cell - 1) // self.cell


@dataclass
class PoseScores:
    """Per-hypothesis arrays (H,): score, coverage, support, violation fraction."""

    score: np.ndarray
    coverage: np.ndarray
    support: np.ndarray
    violations: np.ndarray

    def row(self, i: int) -> dict:
        return {"score": float(self.score[i]), "coverage": float(self.coverage[i]),
                "support": float(self.support[i]), "violations": float(self.violations[i])}


def grid_stride(K: np.ndarray, z: float, spacing: float, cfg: ScoreConfig, extent_px: float = 0.0) -> int:
    """Pixel stride of the grid: cells large enough for ``cfg.samples_per_cell`` surface samples
    (``spacing`` metres apart) at depth ``z``, and at most ``cfg.max_cells`` over ``extent_px``."""
    f = float(np.sqrt(K[0, 0] * K[1, 1]))
    px = f * spacing / max(z, 1e-3)
    stride = max(1, math.ceil(px * math.sqrt(cfg.samples_per_cell)))
    if extent_px > 0:
        stride = max(stride, math.ceil(extent_px / math.sqrt(cfg.max_cells)))
    return stride


def view_from_depth(depth: np.ndarray, K: np.ndarray, region: np.ndarray | None, diameter: float,
                    spacing: float, cfg: ScoreConfig | None = None, device="cpu",
                    roi: np.ndarray | None = None) -> DepthView:
    """A view of a depth image (H, W) metres around ``region`` (H, W) bool (the pixels searched;
    the whole image if None). ``roi`` (H, W) bool: the pixels the object should explain
    (default: ``region`` when given and not the whole image, else none)."""
    cfg = cfg or ScoreConfig()
    H, W = depth.shape
    whole = region is None or region.all()
    region = np.ones((H, W), bool) if region is None else region
    roi = region if roi is None and not whole else roi
    rows = np.flatnonzero(region.any(1))
    cols = np.flatnonzero(region.any(0))
    if len(rows) == 0:
        raise BadInputError("the region to score selects no pixels")
    sel = region & (depth > 0)
    z = float(np.median(depth[sel])) if sel.any() else float(np.median(depth[depth > 0]))
    f = float(np.sqrt(K[0, 0] * K[1, 1]))
    margin = math.ceil(cfg.margin * f * diameter / max(z, 1e-3))
    v0, v1 = max(rows[0] - margin, 0), min(rows[-1] + margin + 1, H)
    u0, u1 = max(cols[0] - margin, 0), min(cols[-1] + margin + 1, W)
    cell = grid_stride(K, z, spacing, cfg, math.sqrt((v1 - v0) * (u1 - u0)))
    d = np.ascontiguousarray(depth[v0:v1, u0:u1], dtype=np.float32)
    r = None if roi is None else torch.from_numpy(np.ascontiguousarray(roi[v0:v1, u0:u1])).to(device)
    return DepthView(np.asarray(K, np.float64), torch.from_numpy(d).to(device), r, float(u0), float(v0), 1, cell)


def view_from_points(points: np.ndarray, diameter: float, spacing: float, cfg: ScoreConfig | None = None,
                     K: np.ndarray | None = None, device="cpu") -> DepthView:
    """A grid view of a bare point cloud (N, 3) camera frame, metres: the points z-buffered into a
    virtual pinhole camera (``K``, default f = 575 px, principal point 0); roi = cells with points."""
    cfg = cfg or ScoreConfig()
    pts = np.asarray(points, dtype=np.float64)
    pts = pts[pts[:, 2] > 1e-3]
    if len(pts) == 0:
        raise BadInputError("no observed point lies in front of the camera (z > 0)")
    K = np.array([[VIRTUAL_FOCAL_PX, 0, 0], [0, VIRTUAL_FOCAL_PX, 0], [0, 0, 1.0]]) if K is None else K
    uv = pts @ K.T
    uv = uv[:, :2] / uv[:, 2:]
    z = float(np.median(pts[:, 2]))
    # the cloud's own density limits the grid too: a sparse cloud needs larger cells
    from scipy.spatial import cKDTree

    sample = uv[:: max(1, len(uv) // 2000)]
    px_gap = float(np.median(cKDTree(uv).query(sample, k=2)[0][:, 1])) if len(uv) > 1 else 1.0
    f = float(np.sqrt(K[0, 0] * K[1, 1]))
    margin = cfg.margin * f * diameter / max(z, 1e-3)
    lo, hi = uv.min(0) - margin, uv.max(0) + margin
    extent = float(np.sqrt(np.prod(hi - lo)))
    stride = max(grid_stride(K, z, spacing, cfg, extent), math.ceil(1.5 * px_gap))
    fine = max(1, math.ceil(px_gap))  # about one observed point per fine pixel
    cell = max(1, math.ceil(stride / fine))
    Wg, Hg = (np.floor((hi - lo) / fine).astype(int) + 1)
    j = np.clip(np.floor((uv[:, 0] - lo[0]) / fine + 0.5).astype(int), 0, Wg - 1)
    i = np.clip(np.floor((uv[:, 1] - lo[1]) / fine + 0.5).astype(int), 0, Hg - 1)
    d = torch.full((Hg * Wg,), math.inf, dtype=torch.float32)
    d.scatter_reduce_(0, torch.from_numpy(i * Wg + j), torch.from_numpy(pts[:, 2].astype(np.float32)), "amin")
    d = torch.where(torch.isfinite(d), d, torch.zeros_like(d)).view(Hg, Wg)
    return DepthView(K, d.to(device), (d > 0).to(device), float(lo[0]), float(lo[1]), fine, cell)


def score_poses(T_cam_model, points: torch.Tensor, normals: torch.Tensor, view: DepthView, diameter: float,
                cfg: ScoreConfig | None = None, sensor=None, coarse: bool = False) -> PoseScores:
    """Score poses ``T_cam_model (B, 4, 4)`` (numpy or torch) against ``view`` (see module doc).

    ``points, normals (M, 3)`` torch: dense surface samples of the model (model frame, m).
    Each front-facing sample is projected; a z-buffer over the view's cells decides which
    samples are visible; a visible sample is compared with the measured depth at its own
    pixel. ``sensor``: a :class:`posekit.data.sensor.DepthSensorModel` for the noise
    (default: the calibrated Kinect model). ``coarse``: a tolerance of at least
    ``cfg.coarse_sigma`` x diameter, so that a near miss (10-20 degrees off, which ICP fixes)
    still ranks above a wrong pose: used to pick the hypotheses worth refining.
    """
    return _score(T_cam_model, points, normals, view, diameter, cfg, sensor, (coarse,))[0]


def score_poses_fine_and_coarse(T_cam_model, points: torch.Tensor, normals: torch.Tensor, view: DepthView,
                                diameter: float, cfg: ScoreConfig | None = None,
                                sensor=None) -> tuple[PoseScores, PoseScores]:
    """:func:`score_poses` with and without ``coarse``, from one rendering (half the cost of two calls)."""
    fine, coarse = _score(T_cam_model, points, normals, view, diameter, cfg, sensor, (False, True))
    return fine, coarse


def _score(T_cam_model, points, normals, view: DepthView, diameter: float, cfg: ScoreConfig | None, sensor,
           coarse: tuple[bool, ...]) -> list[PoseScores]:
    """The poses rendered once, then scored once per entry of ``coarse`` (see :func:`score_poses`)."""
    from posekit.data.sensor import DepthSensorModel

    cfg = cfg or ScoreConfig()
    sensor = sensor or DepthSensorModel()
    T = torch.as_tensor(np.asarray(T_cam_model) if not torch.is_tensor(T_cam_model) else T_cam_model,
                        dtype=points.dtype, device=points.device).reshape(-1, 4, 4)
    B = T.shape[0]
    Hf, Wf = view.depth.shape
    Hc, Wc = view.grid_shape
    R, t = T[:, :3, :3], T[:, :3, 3]
    p = points @ R.transpose(1, 2) + t[:, None]  # (B, M, 3) camera frame
    n = normals @ R.transpose(1, 2)
    K = torch.as_tensor(np.array(view.K), dtype=p.dtype, device=p.device)
    z = p[..., 2]
    zc = z.clamp_min(1e-3)
    u = (K[0, 0] * p[..., 0] + K[0, 1] * p[..., 1]) / zc + K[0, 2]
    v = K[1, 1] * p[..., 1] / zc + K[1, 2]
    c = torch.floor((u - view.u0) / view.fine + 0.5).long()  # fine pixel
    r = torch.floor((v - view.v0) / view.fine + 0.5).long()
    keep = ((n * p).sum(-1) < 0) & (z > 1e-3) & (c >= 0) & (c < Wf) & (r >= 0) & (r < Hf)
    c, r = c.clamp(0, Wf - 1), r.clamp(0, Hf - 1)
    b = torch.arange(B, device=p.device)[:, None].expand_as(z)
    cell = b * (Hc * Wc) + (r // view.cell) * Wc + (c // view.cell)
    zbuf = torch.full((B * Hc * Wc,), math.inf, dtype=z.dtype, device=z.device)
    zbuf.scatter_reduce_(0, cell[keep], z[keep], "amin")
    f = float(np.sqrt(view.K[0, 0] * view.K[1, 1]))
    cell_m = view.stride * z / f
    visible = keep & (z <= zbuf[cell] + 1.5 * cell_m)  # not hidden behind the model's own front surface
    m = view.depth.to(z.dtype)[r, c]  # measured depth at each sample's pixel
    has = visible & (m > 0)
    noise = sensor.sigma_base + sensor.sigma_quadratic * (m.clamp_min(0.4) - 0.4) ** 2
    sigma = torch.sqrt(noise ** 2 + (0.5 * view.fine * z / f) ** 2 + (cfg.sigma_size * diameter) ** 2)
    out = []
    for is_coarse in coarse:
        out.append(_agreement(z, m, has, cell, sigma.clamp_min(cfg.coarse_sigma * diameter) if is_coarse else sigma,
                              view, cfg, B, Hc, Wc))
    return out


def _agreement(z, m, has, cell, sigma, view: DepthView, cfg: ScoreConfig, B: int, Hc: int, Wc: int) -> PoseScores:
    """Coverage, support and violations of rendered samples (depth ``z``) against the measured
    ``m`` at their pixels, with tolerance ``sigma`` (see module doc)."""
    dz = z - m
    w = torch.exp(-0.5 * (dz / sigma) ** 2) * has
    occluded = has & (dz > cfg.violation_sigmas * sigma)
    violation = has & (dz < -cfg.violation_sigmas * sigma)
    n_has = has.sum(1).to(w.dtype)
    support = w.sum(1) / (n_has - occluded.sum(1)).clamp_min(1.0)
    support = torch.where(n_has > 0, support, torch.zeros_like(support))
    # coverage: per cell, the best agreement of a visible sample; over the cells to explain
    cell_w = torch.zeros(B * Hc * Wc, dtype=w.dtype, device=w.device)
    cell_w.scatter_reduce_(0, cell[has], w[has], "amax")
    cell_w = cell_w.view(B, Hc, Wc)
    measured = view.depth[:: view.cell, :: view.cell] > 0
    if view.roi is not None:
        target = view.roi[:: view.cell, :: view.cell] & measured
        coverage = (cell_w * target).sum((1, 2)) / target.sum().clamp_min(1).to(w.dtype)
    else:  # no region known: the cells the model covers and the sensor measured, occluded ones included
        seen = torch.zeros(B * Hc * Wc, dtype=w.dtype, device=w.device)
        seen.scatter_reduce_(0, cell[has], torch.ones_like(w[has]), "amax")
        coverage = cell_w.sum((1, 2)) / seen.view(B, Hc, Wc).sum((1, 2)).clamp_min(1.0)
    score = coverage * support
    return PoseScores(score.cpu().double().numpy(), coverage.cpu().double().numpy(),
                      support.cpu().double().numpy(), (violation.sum(1) / n_has.clamp_min(1.0)).cpu().double().numpy())
