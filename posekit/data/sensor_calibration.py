"""Measure a depth sensor's noise, quantisation and holes from frames, and fit a sensor model.

The statistics are the ones :mod:`posekit.data.sensor` is calibrated on, measured the same
way on any list of depth frames ((H, W) float32 metres, 0 = missing) with intrinsics K
(3, 3), so real frames and frames simulated by :class:`DepthSensorModel` can be compared
and the model's parameters re-derived (:func:`fit_sensor_model`):

* depth levels: distinct depth values are evenly spaced in inverse depth (structured light
  measures disparity in fixed sub-pixel steps) -> :func:`depth_level_step`;
* local plane-fit residuals per depth bin, on 21x21 and 5x5 tiles without holes, viewed at
  < 60 deg, converted to depth along the ray -> :func:`plane_residuals_by_depth`;
* holes: fraction inside the valid area, isolated single-pixel holes on flat surfaces,
  side and width of the hole runs at horizontal depth jumps -> :func:`hole_statistics`;
* viewing angles of the surface on valid 11x11 tiles -> :func:`grazing_angle_quantiles`;
* the invalid frame border -> :func:`invalid_border`.

Axial noise model: Nguyen, Izadi & Lovell, "Modeling Kinect sensor noise for improved 3D
reconstruction and tracking" (3DIMPVT 2012).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from posekit.data.sensor import DepthSensorModel
from posekit.errors import BadInputError

# Depth bins (metres) of the residual statistics: centres 0.7, 0.9, ..., 1.5 m.
DEFAULT_DEPTH_BINS = (0.6, 0.8, 1.0, 1.2, 1.4, 1.6)
# A residual bin needs this many hole-free tiles to be reported.
MIN_TILES_PER_BIN = 20
# Tiles seen at more than this angle from their normal are left out of the residuals.
MAX_RESIDUAL_ANGLE_DEG = 60.0
# Depth jumps (metres) between neighbouring surfaces that count as discontinuities.
JUMP_THRESHOLD = 0.03
# Hole runs wider than this (pixels) along a row are not shadows of a depth jump.
MAX_JUMP_HOLE_PX = 40
# A border column/row is invalid when fewer than this fraction of its pixels have depth.
BORDER_VALID_FRACTION = 0.5
# A depth value is a sensor level when at least this many pixels share it.
MIN_LEVEL_COUNT = 3


def _check_depth(depth, name: str = "depth") -> np.ndarray:
    depth = np.asarray(depth)
    if depth.ndim != 2 or depth.size == 0:
        raise BadInputError(f"{name} must be a non-empty (H, W) array in metres, got shape {depth.shape}")
    depth = depth.astype(np.float64)
    if not np.isfinite(depth).all() or (depth < 0).any():
        raise BadInputError(f"{name} must be finite and >= 0 metres (0 = missing); replace NaN/inf by 0")
    return depth


def _check_frames(depths) -> list[np.ndarray]:
    if isinstance(depths, np.ndarray) and depths.ndim == 2:
        depths = [depths]
    frames = [_check_depth(d, f"depths[{i}]") for i, d in enumerate(depths)]
    if not frames:
        raise BadInputError("no depth frames given: pass a list of (H, W) depth arrays in metres")
    return frames


def _check_K(K) -> np.ndarray:
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3) or not np.isfinite(K).all() or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise BadInputError(f"K must be a finite 3x3 intrinsics matrix with fx, fy > 0, got {K.tolist()}")
    return K


# ----------------------------------------------------------------------------- levels


def depth_level_step(depths: Sequence[np.ndarray] | np.ndarray) -> tuple[float, dict[float, float]]:
    """Step (1/m) between consecutive depth levels in inverse depth, and level spacing per bin.

    depths: list of (H, W) metres. Distinct depth values shared by >= MIN_LEVEL_COUNT pixels
    are the sensor's levels; the step is the median of 1/z_i - 1/z_(i+1) over consecutive
    levels (robust to the odd missing level). Returns (step, {bin centre m: median spacing
    mm}); step is 0.0 when the depth is continuous (fewer than half of the pixels lie on
    levels), e.g. an unquantised render.
    """
    frames = _check_frames(depths)
    values = np.concatenate([np.round(d[d > 0] * 1e6) for d in frames])  # micrometres: exact keys
    if values.size == 0:
        return 0.0, {}
    levels, counts = np.unique(values, return_counts=True)
    keep = counts >= MIN_LEVEL_COUNT
    if counts[keep].sum() < 0.5 * values.size or keep.sum() < 3:
        return 0.0, {}
    z = levels[keep] / 1e6
    inv_step = 1.0 / z[:-1] - 1.0 / z[1:]
    mid = 0.5 * (z[:-1] + z[1:])
    spacing = {}
    edges = np.asarray(DEFAULT_DEPTH_BINS)
    for lo, hi in itertools.pairwise(edges):
        sel = (mid >= lo) & (mid < hi)
        if sel.sum() >= 3:
            spacing[round((lo + hi) / 2, 3)] = float(np.median(np.diff(z)[sel]) * 1e3)
    return float(np.median(inv_step)), spacing


# ----------------------------------------------------------------------------- plane fits


@dataclass
class TileFits:
    """Plane fits on the hole-free tiles of one frame (arrays of length n_tiles).

    depth: mean depth (m); sigma_depth: residual std converted to depth along the ray (m),
    with n - 3 degrees of freedom; sigma_normal: residual std perpendicular to the plane
    (m); angle_deg: angle between the plane normal and the viewing ray of the tile centre.
    """

    depth: np.ndarray
    sigma_depth: np.ndarray
    sigma_normal: np.ndarray
    angle_deg: np.ndarray


def fit_tiles(depth: np.ndarray, K: np.ndarray, patch: int) -> TileFits:
    """Least-squares planes (total least squares, in 3D) on the non-overlapping patch x patch
    tiles of ``depth`` (H, W, metres) without missing pixels; K (3, 3)."""
    depth = _check_depth(depth)
    K = _check_K(K)
    if patch < 3:
        raise BadInputError(f"patch must be >= 3 pixels for a plane fit, got {patch}")
    H, W = depth.shape
    th, tw = H // patch, W // patch
    if th == 0 or tw == 0:
        empty = np.zeros(0)
        return TileFits(empty, empty, empty, empty)
    d = depth[: th * patch, : tw * patch]
    v, u = np.mgrid[0: th * patch, 0: tw * patch].astype(np.float64)
    rx, ry = (u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1]

    def tiles(a):
        return a.reshape(th, patch, tw, patch).transpose(0, 2, 1, 3).reshape(th * tw, patch * patch)

    z, rx, ry = tiles(d), tiles(rx), tiles(ry)
    full = (z > 0).all(axis=1)
    z, rx, ry = z[full], rx[full], ry[full]
    P = np.stack([rx * z, ry * z, z], axis=-1)  # (N, n, 3)
    centre = P.mean(axis=1, keepdims=True)
    Q = P - centre
    cov = np.einsum("nki,nkj->nij", Q, Q)
    _, vecs = np.linalg.eigh(cov)
    normal = vecs[:, :, 0]  # smallest eigenvalue
    dist = np.einsum("nki,ni->nk", Q, normal)
    # A depth error dz moves the point by dz * (rx, ry, 1), i.e. by dz * (n . r) off the plane.
    n_dot_r = np.abs(normal[:, None, 0] * rx + normal[:, None, 1] * ry + normal[:, None, 2])
    dz = dist / np.maximum(n_dot_r, 1e-6)
    dof = patch * patch - 3
    c = centre[:, 0]
    cos_view = np.abs(np.einsum("ni,ni->n", c, normal)) / np.linalg.norm(c, axis=1)
    return TileFits(
        depth=z.mean(axis=1),
        sigma_depth=np.sqrt((dz ** 2).sum(axis=1) / dof),
        sigma_normal=np.sqrt((dist ** 2).sum(axis=1) / dof),
        angle_deg=np.degrees(np.arccos(np.clip(cos_view, 0.0, 1.0))),
    )


@dataclass
class ResidualBins:
    """Plane-fit residuals per depth bin: centres (m), sigma (m, NaN where too few tiles),
    n_tiles, median viewing angle (deg)."""

    centres: list[float]
    sigma: list[float]
    n_tiles: list[int]
    angle_deg: list[float]


def _bin_residuals(fits: list[TileFits], bins: Sequence[float]) -> ResidualBins:
    depth = np.concatenate([f.depth for f in fits])
    sig = np.concatenate([f.sigma_depth for f in fits])
    ang = np.concatenate([f.angle_deg for f in fits])
    ok = ang < MAX_RESIDUAL_ANGLE_DEG
    edges = np.asarray(bins, dtype=np.float64)
    out = ResidualBins([], [], [], [])
    for lo, hi in itertools.pairwise(edges):
        sel = ok & (depth >= lo) & (depth < hi)
        var = sig[sel] ** 2
        # Tiles across an edge or on a curved surface have far larger residuals than the
        # noise: drop them relative to the bin's median, then average the variances.
        if var.size:
            var = var[var <= 4.0 * np.median(var)]
        out.centres.append(round(float(lo + hi) / 2, 3))
        out.n_tiles.append(int(var.size))
        out.sigma.append(float(np.sqrt(var.mean())) if var.size >= MIN_TILES_PER_BIN else math.nan)
        out.angle_deg.append(float(np.median(ang[sel])) if sel.any() else math.nan)
    return out


def plane_residuals_by_depth(depth: np.ndarray | Sequence[np.ndarray], K: np.ndarray, patch: int = 21,
                             bins: Sequence[float] = DEFAULT_DEPTH_BINS) -> ResidualBins:
    """Local plane-fit residual std (metres, along the ray) per depth bin.

    depth: one (H, W) frame or a list of frames, metres; K (3, 3); patch: tile side in
    pixels; bins: depth bin edges in metres. Tiles without holes seen at < 60 deg; per bin
    the RMS over tiles of the per-tile std (n - 3 dof), after dropping tiles above 4x the
    bin's median variance (edges, curved surfaces).
    """
    frames = _check_frames(depth)
    K = _check_K(K)
    return _bin_residuals([fit_tiles(d, K, patch) for d in frames], bins)


def grazing_angle_quantiles(depth: np.ndarray | Sequence[np.ndarray], K: np.ndarray, patch: int = 11,
                            quantiles: Sequence[float] = (0.5, 0.9, 0.99)) -> dict[str, float]:
    """Quantiles (degrees) of the angle between surface normal and viewing ray on the valid
    patch x patch tiles whose plane fits (residual < 5 mm perpendicular and along the ray:
    not across an edge or crease).

    Returns {"p50": ..., "p90": ..., "p99": ..., "n_tiles": n}; NaN quantiles without tiles.
    """
    frames = _check_frames(depth)
    K = _check_K(K)
    fits = [fit_tiles(d, K, patch) for d in frames]
    # Tiles across a crease or an edge fit badly along the ray; a true plane stays within the noise.
    ang = np.concatenate([f.angle_deg[(f.sigma_normal < 5e-3) & (f.sigma_depth < 5e-3)] for f in fits])
    out = {f"p{round(q * 100):d}": (float(np.quantile(ang, q)) if ang.size else math.nan) for q in quantiles}
    out["n_tiles"] = int(ang.size)
    return out


# ----------------------------------------------------------------------------- holes


def invalid_border(depth: np.ndarray) -> tuple[int, int, int, int]:
    """(left, top, right, bottom): leading columns/rows at each side of the frame in which
    fewer than half of the pixels have depth (the depth-to-RGB registration's margin)."""
    valid = _check_depth(depth) > 0

    def leading(fractions: np.ndarray) -> int:
        good = np.nonzero(fractions >= BORDER_VALID_FRACTION)[0]
        return int(good[0]) if good.size else len(fractions)

    cols, rows = valid.mean(axis=0), valid.mean(axis=1)
    return leading(cols), leading(rows), leading(cols[::-1]), leading(rows[::-1])


@dataclass
class HoleStats:
    """Holes of one or more frames.

    hole_fraction: missing pixels inside the valid area (inside the invalid border, not
    connected to the frame's edge) over the area's pixels. random_fraction: isolated
    single-pixel holes whose 8 neighbours are valid and within JUMP_THRESHOLD of each
    other, over the pixels of such flat neighbourhoods. At horizontal depth jumps >
    JUMP_THRESHOLD: runs of holes between the two surfaces, ``right_runs`` (hole to the
    right of the nearer surface) and ``left_runs``; their widths (px) and, for right runs,
    width / (fx (1/z_near - 1/z_far)) = the projector baseline (m) that explains the width.
    ``direct_left`` / ``direct_right``: jumps with no hole in between, by the side the far
    surface lies on. ``right_jumps`` / ``left_jumps``: every jump (with or without a hole)
    by the side of its far surface, as (fx (1/z_near - 1/z_far) in px per metre of
    baseline, hole width px), the data the shadow width model is fitted to.
    """

    hole_fraction: float
    random_fraction: float
    right_widths: list[int] = field(default_factory=list)
    left_widths: list[int] = field(default_factory=list)
    right_baselines: list[float] = field(default_factory=list)
    direct_left: int = 0
    direct_right: int = 0
    right_jumps: list[tuple[float, int]] = field(default_factory=list)
    left_jumps: list[tuple[float, int]] = field(default_factory=list)

    @property
    def shadow_right_fraction(self) -> float:
        n = len(self.right_widths) + len(self.left_widths)
        return len(self.right_widths) / n if n else math.nan

    @property
    def left_edge_hole_fraction(self) -> float:
        """Of the jumps whose far surface lies to the left (no projector shadow there for a
        projector left of the camera), the fraction with a hole between the surfaces."""
        n = len(self.left_widths) + self.direct_left
        return len(self.left_widths) / n if n else math.nan


def _side_slope(depth: np.ndarray, r: np.ndarray, u: np.ndarray, direction: int) -> np.ndarray:
    """|z(u + direction) - z(u)| along rows r (0 where that neighbour is missing or off-image):
    how steep the surface is next to a jump, so that a steep slope is not taken for one."""
    W = depth.shape[1]
    un = u + direction
    inside = (un >= 0) & (un < W)
    zn = np.where(inside, depth[r, np.clip(un, 0, W - 1)], 0.0)
    return np.where(zn > 0, np.abs(zn - depth[r, u]), 0.0)


def _frame_holes(depth: np.ndarray, fx: float, jump: float):
    from scipy.ndimage import label, maximum_filter, minimum_filter, uniform_filter

    H, W = depth.shape
    valid = depth > 0
    left, top, right, bottom = invalid_border(depth)
    area = np.zeros((H, W), dtype=bool)
    area[top: H - bottom, left: W - right] = True
    # Holes connected to the area's edge are the ragged border, not holes in the scene.
    holes_in_area = area & ~valid
    lab, n = label(holes_in_area, structure=np.ones((3, 3)))
    inner = holes_in_area.copy()
    if n:
        edge_labels = np.unique(np.concatenate([lab[top, :], lab[H - bottom - 1, :] if H - bottom - 1 >= 0 else [],
                                                lab[:, left], lab[:, W - right - 1] if W - right - 1 >= 0 else []]))
        inner &= ~np.isin(lab, edge_labels[edge_labels > 0])
    n_area = int(area.sum())
    n_holes = int(inner.sum())

    # Isolated holes: all 8 neighbours valid, and they lie on one surface.
    hi = maximum_filter(np.where(valid, depth, -np.inf), size=3, mode="constant", cval=-np.inf)
    lo = minimum_filter(np.where(valid, depth, np.inf), size=3, mode="constant", cval=np.inf)
    n_valid_nb = np.rint(uniform_filter(valid.astype(np.float64), size=3, mode="constant") * 9).astype(int)
    flat = (hi - lo < jump) & np.isfinite(hi - lo)
    flat[[0, -1], :] = False
    flat[:, [0, -1]] = False
    isolated = ~valid & flat & (n_valid_nb == 8)
    n_flat = int((flat & (valid | isolated)).sum())

    # Hole runs along rows, bounded by valid pixels on both sides.
    pad = np.ones((H, W + 2), dtype=bool)
    pad[:, 1:-1] = valid
    step = np.diff((~pad).astype(np.int8), axis=1)
    r0, s = np.nonzero(step == 1)
    _, e = np.nonzero(step == -1)  # both in row-major order: the k-th start pairs with the k-th end
    inside = (s > 0) & (e < W) & (e - s <= MAX_JUMP_HOLE_PX)
    r, s, e = r0[inside], s[inside], e[inside]
    zl, zr = depth[r, s - 1], depth[r, e]
    slope = np.maximum(_side_slope(depth, r, s - 1, -1), _side_slope(depth, r, e, 1))
    at_jump = np.abs(zl - zr) > np.maximum(jump, 3.0 * slope)
    r, s, e, zl, zr = r[at_jump], s[at_jump], e[at_jump], zl[at_jump], zr[at_jump]
    width = e - s
    right = zl < zr  # the nearer surface is on the left: the hole lies to its right
    z_near, z_far = np.minimum(zl, zr), np.maximum(zl, zr)
    predicted_per_m = fx * (1.0 / z_near - 1.0 / z_far)
    rr, uu = np.nonzero((depth[:, :-1] > 0) & (depth[:, 1:] > 0))
    dz = depth[rr, uu + 1] - depth[rr, uu]
    slope = np.maximum(_side_slope(depth, rr, uu, -1), _side_slope(depth, rr, uu + 1, 1))
    big = np.abs(dz) > np.maximum(jump, 3.0 * slope)
    direct_right = int((big & (dz > 0)).sum())  # far surface on the right
    direct_left = int((big & (dz < 0)).sum())
    z0, z1 = depth[rr[big], uu[big]], depth[rr[big], uu[big] + 1]
    direct_per_m = fx * np.abs(1.0 / z0 - 1.0 / z1)
    far_right_direct = z1 > z0
    return {
        "n_area": n_area, "n_holes": n_holes, "n_isolated": int(isolated.sum()), "n_flat": n_flat,
        "right_widths": width[right].tolist(), "left_widths": width[~right].tolist(),
        "right_baselines": (width[right] / predicted_per_m[right]).tolist(),
        "direct_left": direct_left, "direct_right": direct_right,
        "right_jumps": list(zip(predicted_per_m[right].tolist(), width[right].tolist()))
        + [(x, 0) for x in direct_per_m[far_right_direct].tolist()],
        "left_jumps": list(zip(predicted_per_m[~right].tolist(), width[~right].tolist()))
        + [(x, 0) for x in direct_per_m[~far_right_direct].tolist()],
    }


def hole_statistics(depth: np.ndarray | Sequence[np.ndarray], fx: float = 525.0,
                    jump: float = JUMP_THRESHOLD) -> HoleStats:
    """Hole statistics (see :class:`HoleStats`) of one (H, W) frame or a list, metres;
    fx: focal length in pixels (for the baseline that explains the shadow widths)."""
    frames = _check_frames(depth)
    if not fx > 0:
        raise BadInputError(f"fx must be > 0 pixels, got {fx}")
    per = [_frame_holes(d, float(fx), float(jump)) for d in frames]

    def total(key: str):
        return sum(p[key] for p in per)

    return HoleStats(
        hole_fraction=total("n_holes") / max(total("n_area"), 1),
        random_fraction=total("n_isolated") / max(total("n_flat"), 1),
        right_widths=[w for p in per for w in p["right_widths"]],
        left_widths=[w for p in per for w in p["left_widths"]],
        right_baselines=[w for p in per for w in p["right_baselines"]],
        direct_left=total("direct_left"),
        direct_right=total("direct_right"),
        right_jumps=[j for p in per for j in p["right_jumps"]],
        left_jumps=[j for p in per for j in p["left_jumps"]],
    )


def _away_hole_fraction(holes: HoleStats) -> float:
    """For a projector on the right: the fraction of far-on-the-right jumps with a hole."""
    n = len(holes.right_widths) + holes.direct_right
    return len(holes.right_widths) / n if n else math.nan


def fit_shadow_width(jumps: Sequence[tuple[float, int]], max_baseline: float = 0.1,
                     max_fill_px: float = 15.0) -> tuple[float, float]:
    """(baseline m >= 0, fill px) of the shadow width model max(0, round(b p - fill)).

    jumps: (p = fx (1/z_near - 1/z_far) px per metre, observed hole width px, 0 = none) of
    every depth jump on the projector's side (see :class:`HoleStats`). Least squares on a
    grid (0.5 mm, 0.25 px); (0.0, 0.0) without jumps. The geometric shadow is b p with b
    the projector baseline (Kinect v1: 7.5 cm); the fill is what the sensor recovers next
    to the edge.
    """
    if len(jumps) == 0:
        return 0.0, 0.0
    p, w = np.asarray(jumps, dtype=np.float64).T
    b = np.arange(0.0, max_baseline + 1e-9, 5e-4)[:, None, None]
    c = np.arange(0.0, max_fill_px + 1e-9, 0.25)[None, :, None]
    err = np.zeros((b.shape[0], c.shape[1]))
    for chunk in range(0, p.size, 2000):  # bounded memory for many jumps
        pc, wc = p[None, None, chunk:chunk + 2000], w[None, None, chunk:chunk + 2000]
        err += ((np.maximum(np.round(b * pc - c), 0.0) - wc) ** 2).sum(-1)
    i, j = np.unravel_index(np.argmin(err), err.shape)
    return float(b[i, 0, 0]), float(c[0, j, 0])


# ----------------------------------------------------------------------------- all together


def _nan_to_none(x):
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _nan_to_none(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_nan_to_none(v) for v in x]
    return x


@dataclass
class SensorStats:
    """Statistics of a set of depth frames (metres, pixels, degrees; NaN = not measurable).

    residual_21 / residual_5: plane-fit residual std (m) per depth bin ``depth_bins``
    (centres, m) on 21x21 / 5x5 tiles, with their tile counts and median viewing angles;
    inverse_depth_step (1/m, 0 = continuous depth) and level_spacing_mm per bin; holes (see
    :class:`HoleStats`; left_edge_hole_fraction is for the side away from the projector;
    shadow_baseline (m, negative = projector left) and shadow_fill_px from
    :func:`fit_shadow_width`; edge_run_px: mean width of the holes away from the projector);
    grazing angle quantiles (deg); invalid border (left, top, right,
    bottom) px, the median over frames; fx (px) of the frames.
    """

    n_frames: int
    image_size: tuple[int, int]  # (width, height)
    fx: float
    depth_bins: list[float]
    residual_21: list[float]
    residual_5: list[float]
    n_tiles_21: list[int]
    n_tiles_5: list[int]
    angle_21_deg: list[float]
    inverse_depth_step: float
    level_spacing_mm: dict[float, float]
    hole_fraction: float
    random_hole_fraction: float
    shadow_right_fraction: float
    shadow_width_px: float
    other_hole_width_px: float
    n_jump_holes: int
    left_edge_hole_fraction: float
    shadow_baseline: float
    shadow_fill_px: float
    edge_run_px: float
    grazing_deg: dict[str, float]
    invalid_border: tuple[int, int, int, int]

    def residual_mm_at(self, centre: float, patch: int = 21) -> float:
        """Residual std (mm) of the depth bin centred at ``centre`` metres (NaN if absent)."""
        values = self.residual_21 if patch == 21 else self.residual_5
        for c, s in zip(self.depth_bins, values):
            if abs(c - centre) < 1e-6:
                return s * 1e3
        return math.nan

    def to_dict(self) -> dict:
        """JSON-ready dict: metres as stored plus residuals in mm; NaN becomes None."""
        d = asdict(self)
        d["level_spacing_mm"] = {f"{k:.2f}": v for k, v in self.level_spacing_mm.items()}
        d["residual_21_mm"] = [s * 1e3 for s in self.residual_21]
        d["residual_5_mm"] = [s * 1e3 for s in self.residual_5]
        d["invalid_border"] = list(self.invalid_border)
        d["image_size"] = list(self.image_size)
        return _nan_to_none(d)


def measure_sensor(depths: Sequence[np.ndarray] | np.ndarray, K: np.ndarray,
                   bins: Sequence[float] = DEFAULT_DEPTH_BINS) -> SensorStats:
    """All the statistics of :mod:`posekit.data.sensor_calibration` on depth frames.

    depths: list of (H, W) float metres (0 = missing), all seen with intrinsics K (3, 3).
    """
    frames = _check_frames(depths)
    K = _check_K(K)
    r21 = _bin_residuals([fit_tiles(d, K, 21) for d in frames], bins)
    r5 = _bin_residuals([fit_tiles(d, K, 5) for d in frames], bins)
    step, spacing = depth_level_step(frames)
    holes = hole_statistics(frames, K[0, 0])
    borders = np.array([invalid_border(d) for d in frames])
    projector_left = not holes.shadow_right_fraction < 0.5  # shadows on the right (NaN: no holes)
    shadow_jumps = holes.right_jumps if projector_left else holes.left_jumps
    other_widths = holes.left_widths if projector_left else holes.right_widths
    baseline, fill = fit_shadow_width(shadow_jumps)
    return SensorStats(
        n_frames=len(frames),
        image_size=(int(frames[0].shape[1]), int(frames[0].shape[0])),
        fx=float(K[0, 0]),
        depth_bins=r21.centres,
        residual_21=r21.sigma,
        residual_5=r5.sigma,
        n_tiles_21=r21.n_tiles,
        n_tiles_5=r5.n_tiles,
        angle_21_deg=r21.angle_deg,
        inverse_depth_step=step,
        level_spacing_mm=spacing,
        hole_fraction=holes.hole_fraction,
        random_hole_fraction=holes.random_fraction,
        shadow_right_fraction=holes.shadow_right_fraction,
        shadow_width_px=float(np.median(holes.right_widths)) if holes.right_widths else math.nan,
        other_hole_width_px=float(np.median(holes.left_widths)) if holes.left_widths else math.nan,
        n_jump_holes=len(holes.right_widths) + len(holes.left_widths),
        left_edge_hole_fraction=holes.left_edge_hole_fraction if projector_left else _away_hole_fraction(holes),
        shadow_baseline=-baseline if projector_left else baseline,
        shadow_fill_px=fill,
        edge_run_px=float(np.mean(other_widths)) if other_widths else math.nan,
        grazing_deg=grazing_angle_quantiles(frames, K),
        invalid_border=tuple(int(x) for x in np.median(borders, axis=0)),
    )


# ----------------------------------------------------------------------------- fit


def fit_sensor_model(stats: SensorStats, base: DepthSensorModel | None = None, seed: int = 0) -> DepthSensorModel:
    """DepthSensorModel parameters derived from measured :class:`SensorStats`.

    Parameters the statistics do not determine are taken from ``base`` (default: the
    current defaults): sigma_angle, correlation_px, lateral_px, the working range and
    ``edge_jump``. Derivations:

    * inverse_depth_step: the measured level step (0 if the depth is continuous).
    * Noise, by simulation (indirect inference): for each depth bin a plane at the bin's
      depth and median viewing angle is passed through the model (same quantisation,
      correlation length and angle term, fixed ``seed``) and measured like the frames. The
      correlated fraction f is interpolated so that the pooled 5x5 / 21x21 residual ratio
      matches; the per-bin axial std is scaled until the simulated residuals match the
      measured ones; a + b (z - 0.4)^2 is then fitted to those stds (least squares,
      a >= 0): sigma_base, sigma_quadratic. Quantisation and the plane fit's absorption of
      correlated noise are thereby accounted for exactly as the model produces them.
    * random_dropout: the isolated-hole fraction. edge_dropout: the fraction of jumps on
      the side away from the projector with a hole between the surfaces (one run per
      jump); edge_run_px: those holes' mean width.
    * shadow_baseline, shadow_fill_px: :func:`fit_shadow_width` on the jumps on the
      projector's side, negative (projector left) when most jump holes lie right of the
      nearer surface.
    * grazing_start_deg: the 99th percentile of the viewing angles (ramp width kept);
      invalid_border: the measured border.
    """
    base = base or DepthSensorModel()
    params = asdict(base)
    step = stats.inverse_depth_step if math.isfinite(stats.inverse_depth_step) else 0.0
    params["inverse_depth_step"] = float(step)
    params["round_to_mm"] = step > 0

    noise = _fit_axial_noise(stats, replace(base, inverse_depth_step=float(step), round_to_mm=step > 0), seed)
    if noise is not None:
        params.update(noise)

    if math.isfinite(stats.random_hole_fraction):
        params["random_dropout"] = float(stats.random_hole_fraction)
    if math.isfinite(stats.left_edge_hole_fraction):
        params["edge_dropout"] = float(stats.left_edge_hole_fraction)
    if math.isfinite(stats.edge_run_px):
        params["edge_run_px"] = float(stats.edge_run_px)
    params["shadow_baseline"] = float(stats.shadow_baseline)
    params["shadow_fill_px"] = float(stats.shadow_fill_px)
    p99 = stats.grazing_deg.get("p99", math.nan)
    if math.isfinite(p99):
        width = base.grazing_end_deg - base.grazing_start_deg
        params["grazing_start_deg"] = float(math.ceil(p99))
        params["grazing_end_deg"] = float(math.ceil(p99) + width)
    params["invalid_border"] = tuple(int(x) for x in stats.invalid_border)
    return DepthSensorModel(**params)


def _plane_depth(z: float, theta: float, fx: float, width: int, height: int):
    """Depth (H, W) and normals of a plane through (0, 0, z) tilted by theta about the camera's
    x axis (a floor seen from above), principal point at the image centre."""
    v = np.arange(height, dtype=np.float64)[:, None] - height / 2
    ry = np.broadcast_to(v / fx, (height, width))
    normal = np.array([0.0, -math.sin(theta), -math.cos(theta)])
    denom = ry * math.sin(theta) + math.cos(theta)
    depth = np.where(denom > 1e-3, z * math.cos(theta) / np.maximum(denom, 1e-3), 0.0)
    depth = np.where(depth < 20.0 * z, depth, 0.0)  # rays near the horizon: no surface
    return depth, np.broadcast_to(normal, (height, width, 3))


def _simulated_residuals(model: DepthSensorModel, sigmas, planes, rng_seed: int):
    """Pooled 21x21 and 5x5 residual variances per bin of planes passed through ``model``
    with a constant axial std per bin (sigma_quadratic = 0)."""
    v21, v5 = [], []
    for sigma, (lo, hi, depth, normals, K) in zip(sigmas, planes):
        m = replace(model, sigma_base=float(sigma), sigma_quadratic=0.0)
        sim = m.apply(depth, K, normals, rng=rng_seed)
        r21 = _bin_residuals([fit_tiles(sim, K, 21)], (lo, hi)).sigma[0]
        r5 = _bin_residuals([fit_tiles(sim, K, 5)], (lo, hi)).sigma[0]
        v21.append(r21 ** 2)
        v5.append(r5 ** 2)
    return np.asarray(v21), np.asarray(v5)


def _fit_axial_noise(stats: SensorStats, base: DepthSensorModel, seed: int) -> dict | None:
    """sigma_base, sigma_quadratic, correlated_fraction that reproduce the measured residuals
    (see :func:`fit_sensor_model`); None when fewer than two bins have both residuals."""
    centres = np.asarray(stats.depth_bins, dtype=np.float64)
    m21 = np.asarray(stats.residual_21, dtype=np.float64) ** 2
    m5 = np.asarray(stats.residual_5, dtype=np.float64) ** 2
    ok = np.isfinite(m21) & np.isfinite(m5) & (m21 > 0) & (m5 > 0)
    if ok.sum() < 2:
        return None
    sim_model = replace(base, lateral_px=0.0, shadow_baseline=0.0, edge_dropout=0.0, random_dropout=0.0,
                        grazing_start_deg=89.0, grazing_end_deg=90.0, min_depth=0.0, max_depth=np.inf,
                        invalid_border=(0, 0, 0, 0))
    planes = []
    for z, ang in zip(centres[ok], np.asarray(stats.angle_21_deg, dtype=np.float64)[ok]):
        theta = math.radians(min(ang, MAX_RESIDUAL_ANGLE_DEG) if math.isfinite(ang) else 30.0)
        # Wide and short (160 21x21 tiles): the depth stays near z whatever the tilt.
        width, height = 40 * 21, 4 * 21
        fx = stats.fx
        K = np.array([[fx, 0.0, width / 2], [0.0, fx, height / 2], [0.0, 0.0, 1.0]])
        depth, normals = _plane_depth(float(z), theta, fx, width, height)
        planes.append((0.0, np.inf, depth, normals, K))
    m21, m5 = m21[ok], m5[ok]
    sigmas = np.sqrt(m21)
    f_grid = np.linspace(0.0, 0.9, 7)
    f = base.correlated_fraction
    for _ in range(2):
        ratios = []
        for fg in f_grid:
            s21, s5 = _simulated_residuals(replace(sim_model, correlated_fraction=float(fg)), sigmas, planes, seed)
            ratios.append(s5.sum() / s21.sum())
        ratios = np.asarray(ratios)  # decreasing in f
        target = m5.sum() / m21.sum()
        f = float(np.interp(-target, -ratios, f_grid))
        model_f = replace(sim_model, correlated_fraction=f)
        for _ in range(2):
            s21, s5 = _simulated_residuals(model_f, sigmas, planes, seed)
            sigmas = sigmas * np.sqrt((m21 + m5) / (s21 + s5))
    z = centres[ok]
    A = np.stack([np.ones_like(z), (z - 0.4) ** 2], axis=1)
    a, b = np.linalg.lstsq(A, sigmas, rcond=None)[0]
    if a < 0:
        a, b = 0.0, float((A[:, 1] @ sigmas) / (A[:, 1] @ A[:, 1]))
    return {"sigma_base": float(a), "sigma_quadratic": float(max(b, 0.0)), "correlated_fraction": f}
