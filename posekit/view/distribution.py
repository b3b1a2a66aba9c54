"""A distribution over SO(3) on a HEALPix grid: mode, top modes, sampling, log-likelihood, plot.

Log-likelihood follows the Implicit-PDF protocol (Murphy et al., ICML 2021, Sec. 4): a grid of
N equal-volume cells gives each rotation the density ``p_nearest * N / pi^2`` with respect to
the Haar measure of total volume ``pi^2``; for a symmetric object the log-density is averaged
over all ground-truth-equivalent rotations. The uniform distribution thus scores
``log(1 / pi^2) = -2.289``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from posekit.errors import BadInputError
from posekit.geometry.so3_grid import (
    check_grid_level,
    geodesic_angle_np,
    grid_size,
    nearest_index,
    so3_healpix_grid,
)
from posekit.validation import STORED_ROTATION_ATOL, as_float_array, check_count

HAAR_VOLUME = np.pi ** 2  # volume of SO(3) in the Implicit-PDF normalisation


def _check_rotations(R, name: str = "rotations") -> np.ndarray:
    """``(K, 3, 3)`` float64 rotations from one ``(3, 3)`` or a stack; BadInputError for text,
    other shapes, NaN/inf and matrices that are not rotations (beyond dataset rounding)."""
    R = as_float_array(R, name, finite=False)
    if R.ndim == 2:
        R = R[None]
    if R.ndim != 3 or R.shape[-2:] != (3, 3) or R.shape[0] == 0:
        raise BadInputError(f"{name} must be (3, 3) or (K, 3, 3) rotation matrices, got shape {R.shape}")
    if not np.isfinite(R).all():
        raise BadInputError(f"{name} contain NaN or inf")
    with np.errstate(over="ignore", invalid="ignore"):
        err = np.abs(np.swapaxes(R, -1, -2) @ R - np.eye(3)).max(axis=(-2, -1))
        det = np.linalg.det(R)
    bad = ~(err <= STORED_ROTATION_ATOL) | ~(det > 0)
    if bad.any():
        i = int(np.argmax(bad))
        raise BadInputError(f"{name}[{i}] is not a rotation matrix (|R^T R - I| = {err[i]:.3g}, det = {det[i]:.3g}); "
                            "pass orthonormal matrices with determinant +1")
    return R


@dataclass
class SO3GridDistribution:
    """Probabilities ``probs (N,)`` float64 (sum 1) on the level-``level`` HEALPix grid.

    Rotations are ``R_cam_obj (3, 3)``: object orientation in the camera frame.
    """

    probs: np.ndarray
    level: int

    def __post_init__(self):
        self.level = check_grid_level(self.level)
        p = as_float_array(self.probs, "probabilities", finite=False).ravel()
        n = grid_size(self.level)
        if p.size != n:
            raise BadInputError(f"a level-{self.level} grid has {n} rotations, got {p.size} probabilities")
        if not np.isfinite(p).all() or (p < 0).any() or p.sum() <= 0:
            raise BadInputError("probabilities must be finite, non-negative and not all zero")
        self.probs = p / p.sum()

    @classmethod
    def from_logits(cls, logits, level: int) -> SO3GridDistribution:
        """The softmax of ``logits (N,)`` (finite) on the level-``level`` grid."""
        z = as_float_array(logits, "logits").ravel()
        if z.size == 0:
            raise BadInputError("logits are empty")
        z = np.exp(z - z.max())
        return cls(z, level)

    @classmethod
    def uniform(cls, level: int) -> SO3GridDistribution:
        return cls(np.ones(so3_healpix_grid(level).shape[0]), level)

    @property
    def rotations(self) -> np.ndarray:
        """Grid rotations ``(N, 3, 3)``."""
        return so3_healpix_grid(self.level)

    def mode(self) -> np.ndarray:
        """The most probable grid rotation ``(3, 3)``."""
        return np.array(self.rotations[int(np.argmax(self.probs))])

    def rotation_covariance(self, R_ref: np.ndarray | None = None) -> np.ndarray:
        """(3, 3) second moment (rad^2) of the rotation vectors log(R_i R_ref^T) under the
        distribution (``R_ref`` default: the mode).

        The left perturbation R = exp(w) R_ref puts w in the camera frame, as the orientation
        block of geometry_msgs/PoseWithCovariance is (rotations about the fixed x, y, z axes).
        A concentrated distribution gives a small covariance; a uniform one about pi^2/3 per axis.
        """
        from scipy.spatial.transform import Rotation

        R_ref = self.mode() if R_ref is None else np.asarray(R_ref, dtype=np.float64)
        w = Rotation.from_matrix(np.asarray(self.rotations) @ R_ref.T).as_rotvec()
        return (w * self.probs[:, None]).T @ w

    def top_modes(self, k: int = 5, min_separation_deg: float = 20.0) -> list[tuple[np.ndarray, float]]:
        """Up to ``k`` local maxima ``(R (3, 3), probability mass within min_separation / 2)``,
        greedily picked in decreasing probability, at least ``min_separation_deg`` apart.
        ``k`` is an integer >= 1, ``min_separation_deg`` a finite angle in [0, 180]."""
        k = check_count(k, "top_modes k")
        sep_deg = float(as_float_array(min_separation_deg, "min_separation_deg", ()))
        if not 0.0 <= sep_deg <= 180.0:
            raise BadInputError(f"min_separation_deg must be in [0, 180] degrees, got {min_separation_deg!r}")
        R = self.rotations
        sep = np.deg2rad(sep_deg)
        m = min(max(2000, 50 * k), len(self.probs))
        cands = np.argpartition(-self.probs, m - 1)[:m]  # the m most probable, then in decreasing order
        cands = cands[np.argsort(-self.probs[cands], kind="stable")]
        flat = R[cands].reshape(m, 9)
        max_trace = 1.0 + 2.0 * np.cos(sep)  # angle >= sep  <=>  trace(R_i^T R_j) <= 1 + 2 cos(sep)
        alive = np.ones(m, dtype=bool)
        picked: list[int] = []
        while len(picked) < k and alive.any():  # greedy, one vectorised suppression per pick
            pos = int(np.argmax(alive))
            picked.append(int(cands[pos]))
            alive &= flat @ flat[pos] <= max_trace + 1e-9
            alive[pos] = False  # even at zero separation
        # mass strictly within sep/2 of each pick (angle < sep/2 <=> trace > 1 + 2 cos(sep/2)), all picks
        # in one product; cells at exactly sep/2 (grid ties) are outside, not left to rounding
        trace = R.reshape(-1, 9) @ R[picked].reshape(-1, 9).T
        masses = self.probs @ (trace > 1.0 + 2.0 * np.cos(sep / 2) + 1e-9)
        return [(np.array(R[i]), float(mass)) for i, mass in zip(picked, masses)]

    def sample(self, n: int, rng: np.random.Generator | int | None = None) -> np.ndarray:
        """``n >= 0`` grid rotations ``(n, 3, 3)`` drawn with their probabilities (``rng``: a
        numpy Generator, an integer seed, or None for fresh entropy)."""
        n = check_count(n, "number of samples n", minimum=0)
        if rng is None or isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
            rng = np.random.default_rng(rng)
        elif not isinstance(rng, np.random.Generator):
            raise BadInputError(f"rng must be a numpy Generator, an integer seed or None, got {type(rng).__name__}")
        idx = rng.choice(self.probs.size, size=n, p=self.probs)
        return np.array(self.rotations[idx])

    def density(self, R) -> np.ndarray:
        """Density ``(K,)`` w.r.t. Haar measure of volume pi^2 at rotations ``R (K, 3, 3)``."""
        R = _check_rotations(R)
        idx = nearest_index(self.level).query(R)
        return self.probs[idx] * self.probs.size / HAAR_VOLUME

    def log_likelihood(self, equivalent_rotations) -> float:
        """Implicit-PDF log-likelihood: mean over the equivalent rotations ``(K, 3, 3)`` of
        ``log(p_nearest * N / pi^2)``."""
        d = self.density(equivalent_rotations)
        return float(np.mean(np.log(np.maximum(d, 1e-300))))

    def spread(self, equivalent_rotations) -> float:
        """Expected angle (radians) from a rotation drawn from this distribution to the nearest
        equivalent ground truth (Implicit-PDF's spread)."""
        G = _check_rotations(equivalent_rotations, "equivalent rotations")
        keep = self.probs > 1e-7 * self.probs.max()
        R, p = self.rotations[keep], self.probs[keep]
        err = np.full(R.shape[0], np.inf)
        for s in range(0, G.shape[0], 64):
            err = np.minimum(err, geodesic_angle_np(R[:, None], G[None, s:s + 64]).min(axis=1))
        return float(np.sum(p * err) / p.sum())

    def mode_error(self, equivalent_rotations) -> float:
        """Angle (radians) from the mode to the nearest equivalent ground-truth rotation."""
        G = _check_rotations(equivalent_rotations, "equivalent rotations")
        return float(geodesic_angle_np(self.mode()[None], G).min())

    def to_dict(self, top: int = 5, min_separation_deg: float = 20.0, probabilities: bool = False) -> dict:
        """A JSON-ready summary, as every engine's result has one: grid level and size, the mode
        ``R_cam_obj``, the ``top`` modes (rotation, probability mass within half the separation,
        rotation vector in radians), the rotation covariance about the mode (rad^2, camera
        frame) and, with ``probabilities``, the whole grid's probabilities (N floats)."""
        from scipy.spatial.transform import Rotation

        modes = [{"R_cam_obj": R.tolist(), "probability_mass": mass, "rotvec": Rotation.from_matrix(R).as_rotvec().tolist()}
                 for R, mass in self.top_modes(top, min_separation_deg)]
        out = {"level": int(self.level), "num_rotations": int(self.probs.size), "mode": self.mode().tolist(),
               "modes": modes, "min_separation_deg": float(min_separation_deg),
               "rotation_covariance": self.rotation_covariance().tolist()}
        if probabilities:
            out["probabilities"] = self.probs.tolist()
        return out

    def plot(self, path, gt_rotations=None, title: str = "", top: int = 2000):
        """Write the standard Mollweide-style plot (Implicit-PDF, Fig. 2) as a PNG.

        Each of the ``top`` most probable grid rotations is a dot at the direction of its
        rotated z axis (longitude/latitude), coloured by the in-plane angle about that axis,
        with area proportional to its probability; ground truths are drawn as open circles.
        """
        return plot_so3_distribution(self, path, gt_rotations=gt_rotations, title=title, top=top)


def _direction_and_tilt(R: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(longitude, latitude, in-plane angle) of rotations ``(K, 3, 3)`` in radians."""
    from posekit.geometry.so3_grid import rot_y, rot_z

    z = R[:, :, 2]
    lon = np.arctan2(z[:, 1], z[:, 0])
    lat = np.arcsin(np.clip(z[:, 2], -1.0, 1.0))
    base = rot_z(np.arctan2(z[:, 1], z[:, 0])) @ rot_y(np.arccos(np.clip(z[:, 2], -1, 1)))
    rel = np.swapaxes(base, -1, -2) @ R  # = Rz(gamma)
    tilt = np.mod(np.arctan2(rel[:, 1, 0], rel[:, 0, 0]), 2 * np.pi)
    return lon, lat, tilt


def plot_so3_distribution(dist: SO3GridDistribution, path, gt_rotations=None, title: str = "",
                          top: int = 2000, image: np.ndarray | None = None):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from posekit.io.atomic import atomic_path

    order = np.argsort(-dist.probs)[:top]
    lon, lat, tilt = _direction_and_tilt(np.asarray(dist.rotations[order]))
    p = dist.probs[order]
    fig = plt.figure(figsize=(9 if image is not None else 7, 3.8))
    if image is not None:
        axi = fig.add_axes([0.01, 0.1, 0.22, 0.8])
        axi.imshow(image)
        axi.axis("off")
        ax = fig.add_axes([0.26, 0.05, 0.62, 0.9], projection="mollweide")
    else:
        ax = fig.add_subplot(111, projection="mollweide")
    cmap = plt.get_cmap("hsv")
    ax.scatter(lon, lat, s=np.clip(4000.0 * p / p.max() * min(1.0, 50 * p.max()), 0.5, 400),
               c=cmap(tilt / (2 * np.pi)), alpha=0.8, linewidths=0)
    if gt_rotations is not None:
        G = _check_rotations(gt_rotations)
        G = G[:: max(1, len(G) // 200)]  # a thinned set keeps continuous symmetries readable
        glon, glat, gtilt = _direction_and_tilt(G)
        ax.scatter(glon, glat, s=120, facecolors="none", edgecolors=cmap(gtilt / (2 * np.pi)), linewidths=1.5)
    ax.grid(True, alpha=0.3)
    ax.set_xticklabels([])
    ax.set_title(title or "p(R | image): position = z axis, colour = in-plane angle", fontsize=9)
    path = str(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return path
