"""Diffusion on SE(3) for registration (Jiang et al., NeurIPS 2023, Sec. 3): schedule, noising, sampler.

The state ``H`` is the rigid transform that maps the *normalised* observed cloud (centred on
its mean, divided by the model radius) onto the normalised model (centred, same scale).
``H_0`` is the ground truth, ``H_T`` the identity. In the se(3) Lie algebra the forward
process is DDPM's: ``log H_t ~ sqrt(abar_t) log H_0 + sqrt(1 - abar_t) Sigma eps``, realised as

    H_t = exp(sqrt(1 - abar_t) * Sigma * eps) @ exp((1 - sqrt(abar_t)) * log(H_T @ H_0^-1)) @ H_0

with ``Sigma = diag(sigma_r I3, sigma_t I3)`` and ``eps ~ N(0, I6)`` (geodesic interpolation
from H_0 towards the identity, then a left-multiplied Gaussian on se(3); paper Eq. 6-8).

The reverse step (paper Eq. 10-11): a denoiser predicts ``dH`` aligning the current
observed cloud to the model, ``H0_hat = dH @ H_t``, and

    H_{t-1} = exp(sqrt(beta_tilde_t) Sigma eps) @ exp(gamma0 log H0_hat + gamma1 log H_t)

with DDPM's posterior-mean coefficients ``gamma0 = sqrt(abar_{t-1}) beta_t / (1 - abar_t)``,
``gamma1 = sqrt(alpha_t) (1 - abar_{t-1}) / (1 - abar_t)`` and
``beta_tilde_t = beta_t (1 - abar_{t-1}) / (1 - abar_t)``. Because the forward interpolation
stays on the one-parameter subgroup of log H_0, ``log H_t = sqrt(abar_t) log H_0`` exactly
(before noise), so the Euclidean DDPM posterior applies in the Lie algebra. The denoiser is conditioned on
``sqrt(abar_t)`` (a number in [0, 1]) rather than on the integer step, so one network serves
the long training schedule and the short test schedule.

The end point ``H_T`` need not be the identity (the paper's formula holds for any H_T).
Writing ``H_0 = D @ H_T``, the process is ``H_t = exp(sqrt(abar_t) log D) @ H_T``: the
identity-anchored process of D, carried by H_T. posekit uses this to start several reverse
chains from different anchor rotations (:func:`anchor_rotations`) so that one of them starts
within the denoiser's basin whatever the object's orientation; the chains are hypotheses,
scored afterwards by geometric fit.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from posekit.errors import BadInputError
from posekit.geometry.se3 import se3_exp, se3_inverse, se3_log


@dataclass(frozen=True)
class DiffusionSchedule:
    """A cosine noise schedule (Nichol & Dhariwal 2021) of ``steps`` steps; index 0 is clean data.

    ``abar[t]`` for t = 0..steps with abar[0] = 1 and abar[steps] ~ 0; ``alpha[t] =
    abar[t] / abar[t-1]``, ``beta = 1 - alpha``. ``sigma_r`` (rad) and ``sigma_t`` (model
    radii) scale the Gaussian part on se(3).
    """

    steps: int = 200
    sigma_r: float = 0.05
    sigma_t: float = 0.03
    offset: float = 0.008  # cosine schedule's s

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise BadInputError(f"a diffusion schedule needs at least 1 step, got {self.steps}")

    def abar(self, device=None, dtype=torch.float64) -> torch.Tensor:
        """(steps + 1,) cumulative products abar_0 = 1 ... abar_T = 0."""
        s = self.offset
        u = torch.arange(self.steps + 1, device=device, dtype=torch.float64) / self.steps
        f = torch.cos((u + s) / (1 + s) * math.pi / 2) ** 2
        abar = (f / f[0]).clamp(0.0, 1.0)
        abar[-1] = 0.0  # H_T is exactly the identity
        return abar.to(dtype)

    def sigma_vector(self, device=None, dtype=torch.float64) -> torch.Tensor:
        """(6,) the diagonal of Sigma: sigma_r for the rotation part, sigma_t for the translation."""
        return torch.tensor([self.sigma_r] * 3 + [self.sigma_t] * 3, device=device, dtype=dtype)

    def posterior_coefficients(self, t: int) -> tuple[float, float, float]:
        """(gamma0, gamma1, posterior std factor) of the step t -> t-1, for 1 <= t <= steps."""
        if not 1 <= t <= self.steps:
            raise BadInputError(f"step {t} outside 1..{self.steps}")
        abar = self.abar()
        a_t, a_prev = float(abar[t]), float(abar[t - 1])
        alpha_t = a_t / a_prev if a_prev > 0 else 0.0
        beta_t = 1.0 - alpha_t
        gamma0 = math.sqrt(a_prev) * beta_t / (1.0 - a_t)
        gamma1 = math.sqrt(alpha_t) * (1.0 - a_prev) / (1.0 - a_t)
        std = math.sqrt(max(beta_t * (1.0 - a_prev) / (1.0 - a_t), 0.0))
        return gamma0, gamma1, std


def anchor_rotations(n: int = 24, dtype=torch.float32, device="cpu") -> torch.Tensor:
    """(n, 3, 3) start rotations spread over SO(3): the rotation group of the tetrahedron (12),
    octahedron (24) or icosahedron (60); any other n gives n fixed pseudo-random rotations."""
    from scipy.spatial.transform import Rotation

    from posekit.geometry.rotation_groups import GROUP_ORDERS, rotation_group

    groups = {order: name for name, order in GROUP_ORDERS.items()}
    if n < 1:
        raise BadInputError(f"need at least one anchor rotation, got {n}")
    if n == 1:
        mats = Rotation.identity().as_matrix()[None]
    elif n in groups:
        mats = rotation_group(groups[n]).elements.copy()
    else:
        mats = Rotation.random(n, random_state=0).as_matrix()
    return torch.as_tensor(mats, dtype=dtype, device=device)


def q_sample(H0: torch.Tensor, abar_t: torch.Tensor, schedule: DiffusionSchedule,
             generator: torch.Generator | None = None, noise: bool = True,
             H_T: torch.Tensor | None = None) -> torch.Tensor:
    """Draw ``H_t (Bx4x4)`` from the forward process given ``H0 (Bx4x4)``, ``abar_t (B,)``
    and the end point ``H_T`` (default identity)."""
    if H0.shape[-2:] != (4, 4) or abar_t.shape != H0.shape[:-2]:
        raise BadInputError(f"H0 (Bx4x4) and abar_t (B,) expected, got {tuple(H0.shape)}, {tuple(abar_t.shape)}")
    if H_T is None:
        H_T = torch.eye(4, dtype=H0.dtype, device=H0.device).expand_as(H0)
    D = H0 @ se3_inverse(H_T)
    H = se3_exp(abar_t.sqrt().to(H0.dtype)[..., None] * se3_log(D)) @ H_T
    if noise:
        eps = torch.randn(*H0.shape[:-2], 6, generator=generator, dtype=H0.dtype, device=H0.device)
        scale = (1.0 - abar_t).clamp_min(0).sqrt().to(H0.dtype)[..., None] * schedule.sigma_vector(H0.device, H0.dtype)
        H = se3_exp(scale * eps) @ H
    return H


# A denoiser maps (H_t (Bx4x4), sqrt(abar_t) (B,)) to dH (Bx4x4) with dH @ H_t ~ H_0.
Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


# After a step, ``prune(step, H0_hat)`` may return the indices of the chains worth continuing.
Pruner = Callable[[int, torch.Tensor], "torch.Tensor | None"]


def sample(denoiser: Denoiser, n: int, schedule: DiffusionSchedule, dtype=torch.float32, device="cpu",
           generator: torch.Generator | None = None, noise_scale: float = 1.0,
           H_init: torch.Tensor | None = None, return_trajectory: bool = False, prune: Pruner | None = None,
           start_step: int | None = None):
    """Run the reverse process from the identity (or the end points ``H_init (nx4x4)``) for ``n``
    chains in parallel.

    Returns ``H_0 (n'x4x4)`` (and the list of states after every step with
    ``return_trajectory``). ``noise_scale`` multiplies the posterior noise (0: deterministic).
    The posterior update runs on ``K = H @ H_T^-1``, which starts at the identity.
    ``prune``: called after every step but the last with the step number (1 first) and the
    chains' current guesses ``H0_hat``; indices it returns select the chains that go on (the
    others stop there: early exit of chains in a wrong basin), None keeps all. ``n'`` is the
    number of chains left; the denoiser then gets that many states. ``start_step``: the chains
    start at this step of the schedule instead of its last one: fewer denoiser calls, and
    updates that lean more on the denoiser's guesses (for starts already near the answer).
    """
    abar = schedule.abar(device=device, dtype=dtype)
    H_T = (torch.eye(4, dtype=dtype, device=device).expand(n, 4, 4).clone() if H_init is None
           else H_init.to(device=device, dtype=dtype))
    H_T_inv = se3_inverse(H_T)
    H = H_T
    sig = schedule.sigma_vector(device, dtype)
    trajectory = [H]
    start = schedule.steps if start_step is None else int(start_step)
    if not 1 <= start <= schedule.steps:
        raise BadInputError(f"start_step {start_step} outside 1..{schedule.steps}")
    for t in range(start, 0, -1):
        dH = denoiser(H, abar[t].sqrt().expand(n))
        H0_hat = dH @ H
        if t == 1:
            H = H0_hat
        else:
            keep = prune(start - t + 1, H0_hat) if prune is not None else None
            if keep is not None:
                H, H0_hat, H_T, H_T_inv = H[keep], H0_hat[keep], H_T[keep], H_T_inv[keep]
                n = len(H)
            gamma0, gamma1, std = schedule.posterior_coefficients(t)
            K = se3_exp(gamma0 * se3_log(H0_hat @ H_T_inv) + gamma1 * se3_log(H @ H_T_inv))
            if noise_scale > 0 and std > 0:
                eps = torch.randn(n, 6, generator=generator, dtype=dtype, device=device)
                K = se3_exp(noise_scale * std * sig * eps) @ K
            H = K @ H_T
        trajectory.append(H)
    return (H, trajectory) if return_trajectory else H
