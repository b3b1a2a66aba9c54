"""A structured-light (Kinect v1 / PrimeSense-like) depth sensor model for synthetic depth.

Turns a perfect rendered depth map (metres, z in the camera frame) into a plausible sensor
frame: lateral jitter, depth-dependent axial noise (partly spatially correlated),
disparity quantisation, rounding to millimetres, projector shadows next to depth
discontinuities, dropouts at edges and at grazing angles, random dropouts and a working
range. Axial noise follows Nguyen, Izadi & Lovell, "Modeling Kinect sensor noise for
improved 3D reconstruction and tracking" (3DIMPVT 2012):
``sigma_z(z, theta) = a + b (z - 0.4)^2 + c / sqrt(z) * theta^2 / (pi/2 - theta)^2``.

Calibration on three real Kinect frames (PCL test data, 640x480, fx = fy = 525, static
tabletop/floor scene 0.6-1.7 m; measured once by hand, never read by tests):

* Depth levels: consecutive distinct depth values are 1 mm apart at 0.7 m, 2 at 0.9, 3 at
  1.1, 5 at 1.3 and 7 mm at 1.5 m, i.e. evenly spaced in inverse depth with a step of
  about 3.1e-3 1/m (1/8 pixel of disparity for fx * baseline = 525 * 0.075 m).
  -> ``inverse_depth_step = 3.1e-3``.
* Local plane-fit residuals (patches without holes, viewing angle < 60 deg, residual
  converted to depth along the ray), median per depth bin at 0.7 / 0.9 / 1.1 / 1.3 m:
  21x21 patches 0.98 / 1.20 / 2.00 / 2.53 mm, 5x5 patches 0.64 / 0.79 / 1.28 / 1.63 mm
  (Nguyen's curve: 1.37 / 1.67 / 2.13 / 2.74 mm). The smaller 5x5 residuals show that
  much of the noise is correlated over a few pixels (the block-matching window).
  -> ``sigma_base = 0.7e-3``, ``sigma_quadratic = 1.9e-3`` (Nguyen's quadratic term, a
  lower constant), ``correlated_fraction = 0.7`` over ``correlation_px = 3``. Running the
  same measurement on simulated floor planes gives 0.96 / 1.33 / 1.85 / 2.38 mm (21x21)
  and 0.74 / 1.04 / 1.45 / 1.91 mm (5x5).
* Holes: 0.4 % of the pixels inside the valid area. At horizontal depth jumps > 3 cm
  the holes lie to the right of the nearer surface in 105 of 142 cases, median width
  3 px, where a 7.5 cm projector baseline would predict 13 px: the shadows are narrower
  than the full baseline predicts (the driver fills part of them).
  -> ``shadow_baseline = -0.017`` m (projector left of the camera, an effective baseline);
  the other 37 runs (median 2 px) are edge dropouts: ``edge_dropout = 0.3``.
  Isolated holes away from edges: about 3e-5 of the pixels -> ``random_dropout = 3e-5``.
* Grazing angles: 99 % of the valid 11x11 patches see the surface at < 69 deg from its
  normal -> dropout ramps from 70 to 85 deg.
* The frame border is invalid (8 columns left, 31 right, 18 rows top, 9 bottom: the
  depth-to-RGB registration) -> ``invalid_border``, off by default since BOP images do
  not have it.
* Lateral noise cannot be separated from edge holes in three frames; ``lateral_px =
  0.5`` follows Nguyen et al. (0.5-1 px at these depths).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from posekit.errors import BadInputError


@dataclass
class DepthSensorModel:
    """Parameters of the sensor model (metres, pixels, degrees). See the module docstring."""

    sigma_base: float = 0.7e-3
    sigma_quadratic: float = 1.9e-3
    sigma_angle: float = 1.0e-4
    correlated_fraction: float = 0.7
    correlation_px: float = 3.0
    lateral_px: float = 0.5
    inverse_depth_step: float = 3.1e-3
    round_to_mm: bool = True
    shadow_baseline: float = -0.017
    edge_jump: float = 0.02
    edge_dropout: float = 0.3
    grazing_start_deg: float = 70.0
    grazing_end_deg: float = 85.0
    random_dropout: float = 3e-5
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

        dropped = np.zeros((H, W), dtype=bool)
        if self.shadow_baseline != 0:
            dropped |= projector_shadow(depth, K[0, 0], self.shadow_baseline)

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

        if self.edge_dropout > 0 and self.edge_jump > 0:
            from scipy.ndimage import maximum_filter, minimum_filter

            hi = maximum_filter(depth, size=3, mode="nearest")
            lo = minimum_filter(np.where(valid, depth, np.inf), size=3, mode="nearest")
            edge = valid & ((hi - lo > self.edge_jump) | ~np.isfinite(lo) | (minimum_filter(depth, 3) == 0))
            dropped |= edge & (rng.random((H, W)) < self.edge_dropout)
        if self.grazing_end_deg > self.grazing_start_deg:
            t0, t1 = math.radians(self.grazing_start_deg), math.radians(self.grazing_end_deg)
            p_drop = np.clip((theta - t0) / (t1 - t0), 0.0, 1.0)
            dropped |= rng.random((H, W)) < p_drop
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


def normals_from_depth(depth: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Unit normals (H, W, 3) in the camera frame, facing the camera, from central differences
    of the back-projected depth map; 0 where depth or a neighbour is missing."""
    depth = np.asarray(depth, dtype=np.float64)
    H, W = depth.shape
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    P = np.stack([(u - K[0, 2]) / K[0, 0] * depth, (v - K[1, 2]) / K[1, 1] * depth, depth], -1)
    du = np.zeros_like(P)
    dv = np.zeros_like(P)
    du[:, 1:-1] = P[:, 2:] - P[:, :-2]
    dv[1:-1] = P[2:] - P[:-2]
    n = np.cross(du, dv)
    norm = np.linalg.norm(n, axis=-1, keepdims=True)
    n = np.where(norm > 0, n / np.maximum(norm, 1e-12), 0.0)
    n[(n * P).sum(-1) > 0] *= -1
    ok = depth > 0
    ok[:, 1:-1] &= (depth[:, 2:] > 0) & (depth[:, :-2] > 0)
    ok[1:-1] &= (depth[2:] > 0) & (depth[:-2] > 0)
    n[~ok] = 0
    return n
