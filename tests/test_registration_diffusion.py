"""SE(3) diffusion: schedule, forward marginals, posterior coefficients, sampler, denoiser invariance, loss."""

import math

import numpy as np
import pytest
import torch

from posekit.geometry.se3 import se3_inverse, se3_log, transform_points
from posekit.geometry.so3 import geodesic_distance, random_rotation
from posekit.registration.denoiser import DenoiserConfig, RegistrationDenoiser, log_sinkhorn
from posekit.registration.diffusion import DiffusionSchedule, q_sample, sample
from posekit.registration.train import symmetric_l1


def random_transform(n, generator, trans=0.5, dtype=torch.float64):
    R = random_rotation(n, generator=generator, dtype=dtype)
    t = trans * torch.randn(n, 3, generator=generator, dtype=dtype)
    T = torch.eye(4, dtype=dtype).repeat(n, 1, 1)
    T[:, :3, :3], T[:, :3, 3] = R, t
    return T


def test_cosine_schedule_ends_at_clean_data_and_identity():
    sch = DiffusionSchedule(200)
    abar = sch.abar()
    assert abar[0] == 1.0 and abar[-1] == 0.0
    assert torch.all(abar[1:] <= abar[:-1])  # monotone
    assert 0.4 < float(abar[100]) < 0.6  # cosine: about half way at half time


@pytest.mark.parametrize("t", [1, 2, 50, 199, 200])
def test_posterior_mean_is_consistent_with_the_noise_free_forward_path(t):
    # With log H_t = sqrt(abar_t) log H_0, the posterior mean must be sqrt(abar_{t-1}) log H_0.
    sch = DiffusionSchedule(200)
    g0, g1, std = sch.posterior_coefficients(t)
    abar = sch.abar()
    assert g0 + g1 * math.sqrt(abar[t]) == pytest.approx(math.sqrt(abar[t - 1]), abs=1e-9)
    assert std >= 0
    if t == 1:
        assert (g0, g1) == pytest.approx((1.0, 0.0))


def test_forward_process_interpolates_on_the_geodesic_without_noise():
    g = torch.Generator().manual_seed(0)
    H0 = random_transform(64, g)
    abar = torch.rand(64, generator=g, dtype=torch.float64)
    H_t = q_sample(H0, abar, DiffusionSchedule(), noise=False)
    torch.testing.assert_close(se3_log(H_t), abar.sqrt()[:, None] * se3_log(H0), atol=1e-9, rtol=1e-7)
    torch.testing.assert_close(q_sample(H0, torch.zeros(64, dtype=torch.float64), DiffusionSchedule(), noise=False),
                               torch.eye(4, dtype=torch.float64).expand(64, 4, 4), atol=1e-12, rtol=0)


def test_forward_process_with_an_anchor_end_point():
    g = torch.Generator().manual_seed(6)
    H0, H_T = random_transform(16, g), random_transform(16, g)
    sch = DiffusionSchedule()
    end = q_sample(H0, torch.zeros(16, dtype=torch.float64), sch, noise=False, H_T=H_T)
    start = q_sample(H0, torch.ones(16, dtype=torch.float64), sch, noise=False, H_T=H_T)
    torch.testing.assert_close(end, H_T, atol=1e-9, rtol=0)
    torch.testing.assert_close(start, H0, atol=1e-9, rtol=0)
    # Half way in log space relative to the anchor.
    mid = q_sample(H0, torch.full((16,), 0.25, dtype=torch.float64), sch, noise=False, H_T=H_T)
    torch.testing.assert_close(se3_log(mid @ se3_inverse(H_T)), 0.5 * se3_log(H0 @ se3_inverse(H_T)),
                               atol=1e-9, rtol=1e-7)


def test_anchor_sets_cover_so3():
    from posekit.registration.diffusion import anchor_rotations

    g = torch.Generator().manual_seed(7)
    R = random_rotation(2000, generator=g, dtype=torch.float64)
    for n, max_deg in ((12, 90), (24, 63), (60, 45)):
        A = anchor_rotations(n, dtype=torch.float64)
        assert A.shape == (n, 3, 3)
        nearest = geodesic_distance(R[:, None], A[None]).min(1).values
        assert math.degrees(float(nearest.max())) < max_deg


def test_forward_process_noise_has_the_stated_marginal():
    sch = DiffusionSchedule(200, sigma_r=0.05, sigma_t=0.03)
    g = torch.Generator().manual_seed(1)
    n = 20000
    H0 = random_transform(1, g).expand(n, 4, 4)
    abar_t = torch.full((n,), 0.36, dtype=torch.float64)
    H_t = q_sample(H0, abar_t, sch, generator=g)
    mean_path = q_sample(H0, abar_t, sch, noise=False)
    xi = se3_log(H_t @ se3_inverse(mean_path))  # the left-multiplied Gaussian on se(3)
    expected = math.sqrt(1 - 0.36) * torch.tensor([0.05] * 3 + [0.03] * 3, dtype=torch.float64)
    torch.testing.assert_close(xi.std(0), expected, rtol=0.03, atol=0)
    assert xi.mean(0).abs().max() < 4 * expected.max() / math.sqrt(n)


def test_sampler_with_an_oracle_denoiser_recovers_the_transform():
    g = torch.Generator().manual_seed(2)
    H_true = random_transform(8, g, dtype=torch.float32)

    def oracle(H, s):
        return H_true @ se3_inverse(H)

    starts = random_transform(8, g, dtype=torch.float32)
    for noise_scale, H_init in ((0.0, None), (1.0, None), (1.0, starts)):
        H, traj = sample(oracle, 8, DiffusionSchedule(5), generator=g, noise_scale=noise_scale,
                         return_trajectory=True, H_init=H_init)
        torch.testing.assert_close(H, H_true, atol=1e-4, rtol=0)
        assert len(traj) == 6
        torch.testing.assert_close(traj[0], torch.eye(4).expand(8, 4, 4) if H_init is None else starts)


def test_sinkhorn_rows_sum_to_at_most_one_and_slack_takes_outliers():
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 6, 7, generator=g) * 3
    logits[:, 0] = -50.0  # row 0 matches nothing: it goes to the slack
    P = log_sinkhorn(logits, torch.zeros(2), iters=20)
    assert torch.all(P.sum(2) <= 1 + 1e-5) and torch.all(P.sum(1) <= 1 + 1e-5)
    assert float(P[:, 0].sum()) < 1e-6
    assert float(P[:, 1:].sum(2).min()) > 0.3


def cloud_with_normals(n, generator):
    # Points on an ellipsoid, outward normals: a closed surface with varied curvature.
    d = torch.nn.functional.normalize(torch.randn(n, 3, generator=generator), dim=-1)
    axes = torch.tensor([1.0, 0.6, 0.4])
    p = d * axes
    nrm = torch.nn.functional.normalize(p / axes**2, dim=-1)
    return p, nrm


def test_denoiser_features_are_invariant_and_its_answer_equivariant():
    torch.manual_seed(0)
    net = RegistrationDenoiser(DenoiserConfig(match_observed=128, match_model=256)).eval()
    g = torch.Generator().manual_seed(4)
    obs, obs_n = cloud_with_normals(256, g)
    model, model_n = cloud_with_normals(512, g)
    G = random_transform(1, g, trans=0.3, dtype=torch.float32)[0]
    obs_g = transform_points(G, obs)
    obs_gn = obs_n @ G[:3, :3].T
    with torch.no_grad():
        f, fm = net(obs[None], obs_n[None], model[None], model_n[None])
        f_g, _ = net(obs_g[None], obs_gn[None], model[None], model_n[None])
        torch.testing.assert_close(f_g, f, atol=2e-4, rtol=0)
        H = random_transform(1, g, trans=0.1, dtype=torch.float32)
        s = torch.tensor([0.7])
        dH = net.match(obs[None], f, model[None], fm, H, s)
        # The same physical state seen from the moved cloud is H G^-1: the answer moves with it.
        dH_g = net.match(obs_g[None], f_g, model[None], fm, H @ se3_inverse(G), s)
    torch.testing.assert_close(dH_g @ H @ se3_inverse(G), dH @ H @ se3_inverse(G), atol=1e-3, rtol=0)
    torch.testing.assert_close(dH_g, dH, atol=1e-3, rtol=0)


def test_match_step_is_soft_assignment_then_weighted_kabsch():
    """One matching iteration, written out from its definition (softmax over model points and a
    slack entry of -alpha |f_i - g_j|^2 - beta |x_i - y_j|^2, targets the weighted mean, Kabsch
    weighted by the matched mass) must equal what the denoiser's expanded form computes."""
    from posekit.geometry.alignment import weighted_kabsch
    from posekit.geometry.neighbours import squared_distances

    torch.manual_seed(1)
    net = RegistrationDenoiser(DenoiserConfig(match_observed=64, match_model=96)).eval()
    g = torch.Generator().manual_seed(6)
    obs, obs_n = cloud_with_normals(64, g)
    model, model_n = cloud_with_normals(96, g)
    H = random_transform(3, g, trans=0.1, dtype=torch.float32)
    s = torch.full((3,), 0.6)
    with torch.no_grad():
        f, fm = net(obs[None], obs_n[None], model[None], model_n[None])
        dH = net.match(obs.expand(3, -1, -1), f.expand(3, -1, -1), model.expand(3, -1, -1), fm.expand(3, -1, -1),
                       H, s, iters=1)
        alpha, beta, slack = net.annealing(s)
        moved = transform_points(H, obs.expand(3, -1, -1))
        logits = (-alpha.view(-1, 1, 1) * net.feature_distances(f, fm)
                  - beta.view(-1, 1, 1) * squared_distances(moved, model.expand(3, -1, -1)))
        full = torch.cat([logits, slack.view(3, 1, 1).expand(3, 64, 1)], dim=2)
        P = torch.softmax(full, dim=2)[..., :96]
        mass = P.sum(2)
        target = (P @ model) / mass.clamp_min(1e-6).unsqueeze(-1)
        expected = weighted_kabsch(moved, target, mass + 1e-6)
    torch.testing.assert_close(dH, expected, atol=2e-4, rtol=0)


def test_symmetric_l1_takes_the_best_symmetry():
    g = torch.Generator().manual_seed(5)
    obs = torch.randn(1, 50, 3, generator=g)
    H0 = random_transform(1, g, dtype=torch.float32)
    flip = torch.diag(torch.tensor([-1.0, -1.0, 1.0, 1.0]))  # 180 deg about z
    syms = torch.stack([torch.eye(4), flip])[None]
    pred = transform_points(flip @ H0, obs)
    assert float(symmetric_l1(pred, obs, H0, syms)) < 1e-5
    assert float(symmetric_l1(pred, obs, H0, syms[:, :1])) > 0.5  # without the symmetry it is wrong


def test_training_loss_decreases_on_a_fixed_batch():
    from posekit.registration.train import RegistrationTrainConfig, collate, compute_loss
    from posekit.registration.training_data import ViewDataConfig, ViewSampler

    torch.manual_seed(0)
    sampler = ViewSampler(ViewDataConfig(n_meshes=2, n_observed=128, n_model=256, crop=96, distance=(0.5, 0.7),
                                         occluder_prob=0.0, background_prob=0.0))
    batch = collate(sampler.batch(np.random.default_rng(0), 4), "cpu")
    cfg = RegistrationTrainConfig()
    net = RegistrationDenoiser(DenoiserConfig(match_observed=128, match_model=256))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    sch = cfg.diffusion.schedule()
    losses = []
    corr = []
    for step in range(25):
        loss, metrics = compute_loss(net, batch, step, sch, generator=torch.Generator().manual_seed(step % 5))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        corr.append(metrics["loss_corr"])
    assert np.mean(losses[-5:]) < 0.95 * np.mean(losses[:5])
    assert np.mean(corr[-5:]) < 0.98 * np.mean(corr[:5])  # the features start to learn which points correspond


def test_each_reverse_step_is_the_closed_form_posterior_mean():
    """Every step of the sampler (noise off) must be exp(g0 log(H0_hat H_T^-1) + g1 log(H_t H_T^-1)) H_T
    (paper Eq. 10-11), computed here independently with matrix exp/log; a sampler that returned
    the denoiser's guess at once, or skipped steps, fails."""
    from scipy.linalg import expm, logm

    g = torch.Generator().manual_seed(5)
    H_T = random_transform(3, g, trans=0.3)
    guesses = [random_transform(3, g, trans=0.3) for _ in range(4)]  # a deliberately inconsistent denoiser
    calls = []

    def denoiser(H, s):
        calls.append(H.clone())
        return guesses[len(calls) - 1] @ se3_inverse(H)  # predicts H0_hat = guesses[step]

    schedule = DiffusionSchedule(4)
    _, traj = sample(denoiser, 3, schedule, dtype=torch.float64, noise_scale=0.0, H_init=H_T,
                     return_trajectory=True)
    assert len(calls) == 4
    for step, t in enumerate(range(4, 0, -1)):
        H_t, H_next = traj[step].numpy(), traj[step + 1].numpy()
        H0_hat = guesses[step].numpy()
        for b in range(3):
            if t == 1:
                expected = H0_hat[b]  # the last step returns the denoised state
            else:
                g0, g1, _ = schedule.posterior_coefficients(t)
                HT_inv = np.linalg.inv(H_T[b].numpy())
                twist = g0 * logm(H0_hat[b] @ HT_inv) + g1 * logm(H_t[b] @ HT_inv)
                expected = expm(np.real(twist)) @ H_T[b].numpy()
            np.testing.assert_allclose(H_next[b], expected, atol=1e-6)
    # and the posterior really mixes: an intermediate state is neither the start nor the guess
    assert not np.allclose(traj[1].numpy(), guesses[0].numpy(), atol=1e-3)
    assert not np.allclose(traj[1].numpy(), H_T.numpy(), atol=1e-3)


def test_pruned_chains_continue_exactly_as_without_pruning():
    """Early exit: after the pruned step only the chosen chains are denoised, and each of them ends
    where it would have ended without pruning (noise off)."""
    g = torch.Generator().manual_seed(8)
    H_T = random_transform(5, g, trans=0.3)
    target = random_transform(1, g, trans=0.2)[0]
    sizes = []

    def denoiser(H, s):  # pulls every chain towards one pose, chain by chain different distances
        sizes.append(len(H))
        return target @ se3_inverse(H) if len(sizes) % 2 else se3_inverse(H) @ H  # alternately: guess, stay

    schedule = DiffusionSchedule(4)
    full = sample(denoiser, 5, schedule, dtype=torch.float64, noise_scale=0.0, H_init=H_T)
    seen = []

    def prune(step, H0_hat):
        seen.append((step, len(H0_hat)))
        return torch.tensor([3, 1]) if step == 2 else None

    sizes.clear()
    pruned = sample(denoiser, 5, schedule, dtype=torch.float64, noise_scale=0.0, H_init=H_T, prune=prune)
    assert seen == [(1, 5), (2, 5), (3, 2)]  # asked after every step but the last
    assert sizes == [5, 5, 2, 2]  # chains 0, 2 and 4 stopped after step 2
    torch.testing.assert_close(pruned, full[[3, 1]])


def test_features_of_the_first_points_only_equal_the_full_computation():
    net = RegistrationDenoiser(DenoiserConfig()).eval()
    g = torch.Generator().manual_seed(9)
    pts, nrm = cloud_with_normals(300, g)
    with torch.no_grad():
        full = net.features(pts[None], nrm[None])
        for q in (1, 50, 77, 300, 1000):
            part = net.features(pts[None], nrm[None], n_queries=q)
            assert part.shape == (1, min(q, 300), full.shape[-1])
            torch.testing.assert_close(part, full[:, : min(q, 300)], atol=1e-5, rtol=0)


def test_chains_started_late_in_the_schedule():
    """``start_step``: the reverse process begins at that step, so the denoiser is called that
    many times; the first update leans further towards the denoiser's guess than a start at the
    last step does (less noise left to explain), the chains still end on the answer, and steps
    outside the schedule are refused."""
    from posekit.errors import BadInputError

    g = torch.Generator().manual_seed(4)
    H_true = random_transform(6, g, dtype=torch.float64)
    starts = random_transform(6, g, dtype=torch.float64)
    calls = []

    def oracle(H, s):
        calls.append(float(s[0]))
        return H_true @ se3_inverse(H)

    schedule = DiffusionSchedule(5)
    left = {}
    for start_step in (5, 2):
        calls.clear()
        H, traj = sample(oracle, 6, schedule, dtype=torch.float64, noise_scale=0.0, H_init=starts,
                         return_trajectory=True, start_step=start_step)
        assert len(calls) == start_step and len(traj) == start_step + 1
        torch.testing.assert_close(H, H_true, atol=1e-6, rtol=0)
        left[start_step] = se3_log(H_true @ se3_inverse(traj[1])).norm(dim=-1)  # still to go after step 1
    assert (left[2] < left[5]).all()
    for bad in (0, 6):
        with pytest.raises(BadInputError, match="start_step"):
            sample(oracle, 6, schedule, H_init=starts, start_step=bad)
