"""A structured-light (Kinect v1 / PrimeSense-like) depth sensor model for synthetic depth.

Turns a perfect rendered depth map (metres, z in the camera frame) into a plausible sensor
frame: lateral jitter, depth-dependent axial noise (partly spatially correlated),
disparity quantisation, rounding to millimetres, projector shadows next to depth
discontinuities, dropouts at edges and at grazing angles, random dropouts and a working
range. Axial noise follows Nguyen, Izadi & Lovell, "Modeling Kinect sensor noise for
improved 3D reconstruction and tracking" (3DIMPVT 2012):
``sigma_z(z, theta) = a + b (z - 0.4)^2 + c / sqrt(z) * theta^2 / (pi/2 - theta)^2``.

Calibration on three real Kinect frames (PCL test data, 640x480, fx = fy = 525, static
tabletop/floor scene 0.6-1.7 m), measured and fitted by :mod:`posekit.data.sensor_calibration`
(``posekit bench sensor --frames /work/shared/data/kinect/sequence --json s.json`` reproduces
every number, the JSON's ``stats`` of ``real``; tests never read the frames):

* Depth levels: consecutive distinct depth values are 2 mm apart at 0.7 and 0.9 m, 4 at 1.1,
  5 at 1.3 and 7 mm at 1.5 m, evenly spaced in inverse depth with a median step of
  2.93e-3 1/m -> ``inverse_depth_step = 2.9e-3``.
* Local plane-fit residuals (hole-free tiles seen at < 60 deg, along the ray, RMS per
  depth bin at 0.7 / 0.9 / 1.1 / 1.3 m): 21x21 tiles 1.02 / 1.26 / 2.05 / 2.65 mm, 5x5
  tiles 0.68 / 0.86 / 1.35 / 1.71 mm. The smaller 5x5 residuals show that most of the
  noise is correlated over a few pixels (the block-matching window). Fitting the model by
  simulation (quantisation and the angle term included) gives sigma_base = 0.75e-3,
  sigma_quadratic = 2.15e-3 (Nguyen's quadratic term, a lower constant) and a correlated
  fraction of 0.89 over ``correlation_px = 3`` -> ``sigma_base = 0.75e-3``,
  ``sigma_quadratic = 2.15e-3``, ``correlated_fraction = 0.9``.
* Holes: 0.082 % of the pixels inside the valid area, almost all of them at horizontal
  depth jumps > 3 cm (163 runs; 73 % lie right of the nearer surface: projector left).
  Of the 1060 jumps whose far surface is on the right, only 11 % have a hole: those whose
  geometric shadow is wide (fx 7.5 cm (1/z_near - 1/z_far) > 10 px), and narrower than
  that geometry (median 4 px). Least squares of width = max(0, round(fx b (1/z_near -
  1/z_far) - fill)) over all of them (:func:`~posekit.data.sensor_calibration.fit_shadow_width`)
  -> ``shadow_baseline = -0.015`` m (effective, projector left), ``shadow_fill_px = 1.0``;
  shadows are cast only behind occluding edges (:func:`row_discontinuities`), never on a
  steep but continuous surface. 3.8 % of the 1168 jumps with the far surface on the left
  have a hole, mean width 3.75 px -> ``edge_dropout = 0.038`` (one run per jump),
  ``edge_run_px = 3.75``. Isolated holes on flat surfaces: 6.2e-6 of the pixels ->
  ``random_dropout = 6e-6``.
* Grazing angles: 99 % of the valid 11x11 tiles see the surface at < 70.5 deg from its
  normal; nothing steeper is in view, so dropout (on the normal smoothed over 2 px, in
  correlated patches rather than single pixels) ramps from 71 deg to certain at 90 deg.
* The frame border is invalid (8 columns left, 18 rows top, 34 columns right, 9 rows
  bottom with < 50 % valid pixels: the depth-to-RGB registration) -> ``invalid_border``,
  off by default since BOP images do not have it.
* Lateral noise cannot be separated from edge holes in three frames; ``lateral_px =
  0.5`` follows Nguyen et al. (0.5-1 px at these depths).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from posekit.errors import BadInputError
from posekit.io.depth import normals_from_depth


@dataclass
class DepthSensorModel:
    """Parameters of the sensor model (metres, pixels, degrees). See the module docstring."""

    sigma_base: float = 0.75e-3
    sigma_quadratic: float = 2.15e-3
    sigma_angle: float = 1.0e-4
    correlated_fraction: float = 0.9
    correlation_px: float = 3.0
    lateral_px: float = 0.5
    inverse_depth_step: float = 2.9e-3
    round_to_mm: bool = True
    shadow_baseline: float = -0.015
    shadow_fill_px: float = 1.0
    edge_jump: float = 0.02
    edge_dropout: float = 0.038
    edge_run_px: float = 3.75
    grazing_start_deg: float = 71.0
    grazing_end_deg: float = 90.0
    grazing_smooth_px: float = 2.0
    random_dropout: float = 6e-6
    min_depth: float = 0.4
    max_depth: float = 4.0
    invalid_border: tuple[int, int, int, int] = (0, 0, 0, 0)  # left, top, right, bottom

    def axial_sigma(self, z: np.ndarray, theta: np.ndarray | None = None) -> np.ndarray:
        """Axial noise std (metres) at depth z (metres), angle theta (radians) between the
        surface normal and the viewing ray (Nguyen et al. 2012, eq. for sigma_z)."""
        z = np.asarray(z, dtype=np.float64)
        s = self.sigma_base + self.sigma_quadratic * (z - 0.4) ** 2
        if theta is not None:
            th = np.clip(np.asarray(theta, dtype=np.float64), 0.0, math.pi / 2 - 1e-3)
            s = s + self.sigma_angle / np.sqrt(np.maximum(z, 1e-6)) * th ** 2 / (math.pi / 2 - th) ** 2
        return s

    def apply(self, depth: np.ndarray, K: np.ndarray, normals: np.ndarray | None = None,
              rng: np.random.Generator | int | None = None) -> np.ndarray:
        """Simulated sensor depth (H, W) float32 metres, 0 = missing, from a perfect depth map.

        depth (H, W) metres (0 = no surface), K (3, 3), normals (H, W, 3) unit camera-frame
        normals (from the renderer; estimated from depth when None), rng seed or Generator.
        """
        depth = np.asarray(depth, dtype=np.float64)
        if depth.ndim != 2:
            raise BadInputError(f"depth must be (H, W), got {depth.shape}")
        if not np.isfinite(depth).all() or (depth < 0).any():
            raise BadInputError("depth must be finite and >= 0 (0 = missing)")
        K = np.asarray(K, dtype=np.float64)
        rng = np.random.default_rng(rng)
        H, W = depth.shape
        if normals is None:
            normals = normals_from_depth(depth, K)
        normals = np.asarray(normals, dtype=np.float64)

        # Lateral noise: each pixel reads the scene slightly off its nominal position.
        if self.lateral_px > 0:
            v, u = np.mgrid[0:H, 0:W]
            du = np.rint(rng.normal(0, self.lateral_px, (H, W))).astype(int)
            dv = np.rint(rng.normal(0, self.lateral_px, (H, W))).astype(int)
            us, vs = np.clip(u + du, 0, W - 1), np.clip(v + dv, 0, H - 1)
            # Only where the shifted read crosses a discontinuity: edges become ragged while
            # smooth surfaces keep their (separately modelled) axial noise.
            shifted = depth[vs, us]
            take = np.abs(shifted - depth) > self.edge_jump
            depth = np.where(take, shifted, depth)
            normals = np.where(take[..., None], normals[vs, us], normals)
        valid = depth > 0
        z = np.where(valid, depth, 1.0)

        # Holes need true occluding edges: a neighbour step larger than edge_jump and than
        # 3x the slope beside it, so a steep but continuous surface is not one.
        jumps = row_discontinuities(depth, self.edge_jump) if self.edge_jump > 0 else None
        dropped = np.zeros((H, W), dtype=bool)
        if self.shadow_baseline != 0 and jumps is not None:
            dropped |= jump_shadow(depth, K[0, 0], self.shadow_baseline, jumps, self.shadow_fill_px)

        rays = _unit_rays(K, W, H)
        cos_theta = np.abs((normals * rays).sum(-1))
        theta = np.where(valid, np.arccos(np.clip(cos_theta, 0.0, 1.0)), 0.0)
        sigma = self.axial_sigma(z, theta)
        noise = rng.standard_normal((H, W))
        if self.correlated_fraction > 0 and self.correlation_px > 0:
            from scipy.ndimage import gaussian_filter

            smooth = gaussian_filter(rng.standard_normal((H, W)), self.correlation_px, mode="reflect")
            smooth *= 2.0 * math.sqrt(math.pi) * self.correlation_px  # unit variance for white input
            noise = math.sqrt(1 - self.correlated_fraction) * noise + math.sqrt(self.correlated_fraction) * smooth
        # Clipped so that grazing pixels (dropped below anyway) cannot produce absurd values.
        z = np.maximum(z + np.minimum(sigma, 0.05) * noise, 1e-3)

        if self.inverse_depth_step > 0:  # disparity is measured in 1/8 px steps
            levels = np.maximum(np.round(1.0 / z / self.inverse_depth_step), 1.0)
            z = 1.0 / (levels * self.inverse_depth_step)
        if self.round_to_mm:
            z = np.round(z * 1000.0) / 1000.0

        if self.edge_dropout > 0 and jumps is not None:
            dropped |= edge_dropout_runs(depth, jumps, self.edge_dropout, self.edge_run_px, rng)
        if self.grazing_end_deg > self.grazing_start_deg:
            dropped |= self._grazing_dropout(normals, rays, valid, rng)
        if self.random_dropout > 0:
            dropped |= rng.random((H, W)) < self.random_dropout
        out_of_range = (z < self.min_depth) | (z > self.max_depth)
        out = np.where(valid & ~dropped & ~out_of_range, z, 0.0)
        left, top, right, bottom = self.invalid_border
        if top:
            out[:top] = 0
        if bottom:
            out[H - bottom:] = 0
        if left:
            out[:, :left] = 0
        if right:
            out[:, W - right:] = 0
        return out.astype(np.float32)


    def _grazing_dropout(self, normals: np.ndarray, rays: np.ndarray, valid: np.ndarray,
                         rng: np.random.Generator) -> np.ndarray:
        """(H, W) bool: dropouts where the smoothed surface is seen beyond grazing_start_deg.

        The normal is smoothed over grazing_smooth_px (the matching window sees a patch, not
        a pixel) and the drop probability, ramping to 1 at grazing_end_deg, is compared with
        a spatially correlated uniform field, so that dropouts form patches, not salt noise.
        """
        from scipy.ndimage import gaussian_filter
        from scipy.special import ndtr

        H, W = valid.shape
        if self.grazing_smooth_px > 0:
            n = np.stack([gaussian_filter(normals[..., i] * valid, self.grazing_smooth_px, mode="nearest")
                          for i in range(3)], -1)
        else:
            n = normals
        norm = np.linalg.norm(n, axis=-1)
        cos_theta = np.abs((n * rays).sum(-1)) / np.maximum(norm, 1e-12)
        theta = np.where(valid & (norm > 1e-6), np.arccos(np.clip(cos_theta, 0.0, 1.0)), 0.0)
        t0, t1 = math.radians(self.grazing_start_deg), math.radians(self.grazing_end_deg)
        p_drop = np.clip((theta - t0) / (t1 - t0), 0.0, 1.0)
        if not (p_drop > 0).any():
            return np.zeros((H, W), dtype=bool)
        field = rng.standard_normal((H, W))
        if self.correlation_px > 0:
            field = gaussian_filter(field, self.correlation_px, mode="reflect")
            field *= 2.0 * math.sqrt(math.pi) * self.correlation_px  # back to unit variance
        return valid & (ndtr(field) < p_drop)


def row_discontinuities(depth: np.ndarray, edge_jump: float) -> np.ndarray:
    """(H, W - 1) bool: occluding depth edges between columns u and u + 1 along the rows.

    Both pixels have depth, their step exceeds ``edge_jump`` metres and 3x the step to the
    next pixel on either side: a steep but continuous surface (a face seen almost edge-on)
    changes depth by about the same step from pixel to pixel and is not an edge.
    """
    depth = np.asarray(depth, dtype=np.float64)
    valid = depth > 0
    step = np.abs(np.diff(depth, axis=1))
    both = valid[:, 1:] & valid[:, :-1]
    step_ok = np.where(both, step, 0.0)
    left = np.zeros_like(step_ok)
    left[:, 1:] = step_ok[:, :-1]
    right = np.zeros_like(step_ok)
    right[:, :-1] = step_ok[:, 1:]
    return both & (step > np.maximum(edge_jump, 3.0 * np.maximum(left, right)))


def jump_shadow(depth: np.ndarray, fx: float, baseline: float, jumps: np.ndarray, fill_px: float = 0.0) -> np.ndarray:
    """(H, W) bool: projector shadows behind occluding edges, less what the sensor fills.

    The geometric shadow (:func:`projector_shadow`, width about fx |baseline| (1/z_near -
    1/z_far) px) is kept only for runs that start at an occluding edge (``jumps``, from
    :func:`row_discontinuities`), and each run is shortened by ``fill_px`` at its far end
    (rounded): structured-light matching still finds the pattern there, so thin shadows
    vanish and wide ones shrink, as measured on real frames.
    """
    shadow = projector_shadow(depth, fx, baseline)
    if baseline > 0:  # projector on the right: shadows lie left of the nearer surface
        shadow, jumps = shadow[:, ::-1], jumps[:, ::-1]
    H, W = shadow.shape
    u = np.broadcast_to(np.arange(W), (H, W))
    prev = np.zeros_like(shadow)
    prev[:, 1:] = shadow[:, :-1]
    start = shadow & ~prev
    at_edge = np.zeros_like(shadow)
    at_edge[:, 1:] = jumps
    first = np.maximum.accumulate(np.where(start, u, 0), axis=1)
    nxt = np.zeros_like(shadow)
    nxt[:, :-1] = shadow[:, 1:]
    end = shadow & ~nxt
    last = np.minimum.accumulate(np.where(end, u, W - 1)[:, ::-1], axis=1)[:, ::-1]
    keep_len = (last - first + 1) - fill_px
    keep = shadow & np.take_along_axis(at_edge & start, first, axis=1) & (u - first + 0.5 < keep_len)
    return keep[:, ::-1] if baseline > 0 else keep


def edge_dropout_runs(depth: np.ndarray, jumps: np.ndarray, probability: float, mean_width_px: float,
                      rng: np.random.Generator) -> np.ndarray:
    """(H, W) bool: at each occluding edge along a row, with ``probability``, a run of missing
    pixels on the far side next to the edge, geometric width of mean ``mean_width_px`` (>= 1).

    Matching along the baseline fails when its window straddles the edge, so these holes
    are horizontal runs, as on real frames.
    """
    H, W = depth.shape
    out = np.zeros((H, W), dtype=bool)
    r, u = np.nonzero(jumps & (rng.random(jumps.shape) < probability))
    if r.size == 0:
        return out
    far_right = depth[r, u + 1] > depth[r, u]
    width = rng.geometric(1.0 / max(mean_width_px, 1.0), r.size)
    for k in range(int(width.max())):
        sel = width > k
        cols = np.where(far_right[sel], u[sel] + 1 + k, u[sel] - k)
        inside = (cols >= 0) & (cols < W)
        out[r[sel][inside], cols[inside]] = True
    return out & (depth > 0)


def _unit_rays(K: np.ndarray, W: int, H: int) -> np.ndarray:
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    d = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1)
    return d / np.linalg.norm(d, axis=-1, keepdims=True)


def projector_shadow(depth: np.ndarray, fx: float, baseline: float, tolerance_px: float = 0.25) -> np.ndarray:
    """(H, W) bool: pixels whose surface point the projector cannot see.

    The projector sits at x = ``baseline`` metres in the camera frame (rectified, same
    rows). A point at column u, depth z lands on projector column u - fx * baseline / z;
    along a row the projector sees, for each of its columns, only the nearest point, so
    a pixel is in shadow when a pixel on the projector's side maps further than it.
    """
    depth = np.asarray(depth, dtype=np.float64)
    valid = depth > 0
    u = np.arange(depth.shape[1], dtype=np.float64)[None, :]
    u_proj = u - fx * baseline / np.where(valid, depth, np.inf)
    if baseline < 0:  # projector on the left: scan left to right, running max of u_proj
        a = np.where(valid, u_proj, -np.inf)
        run = np.maximum.accumulate(a, axis=1)
        before = np.concatenate([np.full((a.shape[0], 1), -np.inf), run[:, :-1]], axis=1)
        return valid & (a < before - tolerance_px)
    a = np.where(valid, u_proj, np.inf)[:, ::-1]
    run = np.minimum.accumulate(a, axis=1)
    before = np.concatenate([np.full((a.shape[0], 1), np.inf), run[:, :-1]], axis=1)
    return (valid[:, ::-1] & (a > before + tolerance_px))[:, ::-1]


