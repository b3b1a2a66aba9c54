"""IGSO(3): the isotropic Gaussian on SO(3) (heat kernel), its density and sampling.

Definition (Nikolayev & Savyolova 1997; Leach et al., ICLR 2022, eq. 3): for scale
``sigma`` (radians) the density with respect to the normalised Haar measure depends only on
the rotation angle ``w`` in [0, pi]:

    f(w; sigma) = sum_{l>=0} (2l + 1) exp(-l (l + 1) sigma^2 / 2) sin((l + 1/2) w) / sin(w / 2)

so that for small ``sigma`` the rotation vector is close to ``N(0, sigma^2 I3)`` (Brownian
motion on SO(3) run for time sigma^2). The angle has density
``p(w) = f(w) (1 - cos w) / pi`` on [0, pi]; the axis is uniform on the sphere.
Samples are ``exp(w * axis) @ R_mean`` (left-multiplied, as elsewhere in posekit).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from posekit.geometry.so3 import so3_exp, so3_log
from posekit.validation import check_positive

# Below this scale the series needs thousands of terms; the Gaussian limit (relative error of
# order sigma^2, below 1e-4 here) replaces it.
_SMALL_SIGMA = 0.01


def _series_terms(sigma: float) -> int:
    return int(min(4000, max(40, math.ceil(8.0 / max(sigma, 1e-4)))))


def igso3_density(omega_angle: torch.Tensor, sigma: float) -> torch.Tensor:
    """Density ``f(w; sigma)`` w.r.t. the normalised Haar measure, for angles ``(...)`` in [0, pi]."""
    w = omega_angle.to(torch.float64).clamp(1e-6, math.pi)
    if sigma < _SMALL_SIGMA:
        # Gaussian limit: the rotation vector is N(0, sigma^2 I3), so the density in the angle is
        # chi(3) and f = p(w) * pi / (1 - cos w).
        p = math.sqrt(2 / math.pi) * w**2 / sigma**3 * torch.exp(-(w**2) / (2 * sigma**2))
        f = p * math.pi / (1 - torch.cos(w))
    else:
        L = _series_terms(sigma)
        ell = torch.arange(L, dtype=torch.float64, device=w.device)
        coef = (2 * ell + 1) * torch.exp(-ell * (ell + 1) * sigma**2 / 2)
        f = (coef * torch.sin((ell + 0.5) * w.unsqueeze(-1))).sum(-1) / torch.sin(w / 2)
    return f.to(omega_angle.dtype if omega_angle.is_floating_point() else torch.float64)


def igso3_angle_density(omega_angle: torch.Tensor, sigma: float) -> torch.Tensor:
    """Density of the rotation angle alone on [0, pi]: ``f(w) (1 - cos w) / pi``."""
    w = omega_angle.to(torch.float64)
    return igso3_density(w, sigma).to(torch.float64) * (1 - torch.cos(w)) / math.pi


def igso3_log_density(R: torch.Tensor, sigma: float, R_mean: torch.Tensor | None = None) -> torch.Tensor:
    """Log density (Haar-normalised) of rotations ``R (...x3x3)`` under IGSO(3)(R_mean, sigma)."""
    D = R if R_mean is None else R @ R_mean.transpose(-1, -2)
    angle = so3_log(D).norm(dim=-1)
    return torch.log(igso3_density(angle, sigma).clamp_min(1e-300)).to(R.dtype)


def _angle_cdf_table(sigma: float, n: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    w = torch.linspace(0, math.pi, n, dtype=torch.float64)
    p = igso3_angle_density(w, sigma).clamp_min(0).numpy()
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (p[1:] + p[:-1]) * np.diff(w.numpy()))])
    return w.numpy(), cdf / cdf[-1]


def igso3_sample(
    sigma: float,
    size: tuple[int, ...] = (),
    R_mean: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """Draw rotations ``(*size x3x3)`` from IGSO(3) centred on ``R_mean`` (identity if None).

    Angles by inverse-CDF on a tabulated marginal, axes uniform on the sphere.
    """
    check_positive(sigma, "IGSO(3) sigma")  # BadInputError (a ValueError) for <= 0, NaN, inf
    u = torch.rand(*size, generator=generator, dtype=torch.float64)
    axis = torch.randn(*size, 3, generator=generator, dtype=torch.float64)
    axis = axis / axis.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    if sigma < _SMALL_SIGMA:
        # chi(3) angle, truncated at pi (never reached at this scale)
        g = torch.randn(*size, 3, generator=generator, dtype=torch.float64)
        angle = (sigma * g.norm(dim=-1)).clamp(max=math.pi)
    else:
        grid, cdf = _angle_cdf_table(sigma)
        angle = torch.from_numpy(np.interp(u.numpy(), cdf, grid))
    R = so3_exp((axis * angle.unsqueeze(-1)).to(dtype)).to(device)
    if R_mean is not None:
        R = R @ R_mean.to(dtype=dtype, device=device)
    return R
