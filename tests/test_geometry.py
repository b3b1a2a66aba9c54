import math

import numpy as np
import pytest
import torch
from scipy import stats

from posekit import geometry as G

_trapezoid = getattr(np, "trapezoid", None) or np.trapz  # numpy 2 renamed it


def _rng(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_so3_exp_log_round_trip_including_near_pi(dtype):
    g = _rng(1)
    axis = torch.randn(200, 3, generator=g, dtype=dtype)
    axis = axis / axis.norm(dim=-1, keepdim=True)
    angles = torch.cat([
        torch.rand(100, generator=g, dtype=dtype) * math.pi,
        math.pi - torch.logspace(-6, -1, 50, dtype=dtype),
        torch.logspace(-8, -2, 50, dtype=dtype),
    ])
    omega = axis * angles[:, None]
    R = G.so3_exp(omega)
    assert G.is_rotation(R, atol=1e-5).all()
    R2 = G.so3_exp(G.so3_log(R))
    tol = 1e-5 if dtype == torch.float32 else 1e-10
    assert (R2 - R).abs().max() < tol
    # the log itself recovers the vector (up to the sign ambiguity exactly at pi)
    back = G.so3_log(R)
    ok = (back - omega).norm(dim=-1) < 1e-3
    flipped = (back + omega).norm(dim=-1) < 1e-3
    assert (ok | (flipped & (angles > math.pi - 1e-3))).all()


def test_hat_vee_and_cross_product():
    a, b = torch.randn(2, 10, 3, dtype=torch.float64, generator=_rng(2))
    assert torch.allclose(G.hat(a) @ b.unsqueeze(-1), torch.cross(a, b, dim=-1).unsqueeze(-1))
    assert torch.allclose(G.vee(G.hat(a)), a)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_se3_exp_log_round_trip(dtype):
    g = _rng(3)
    omega = torch.randn(300, 3, generator=g, dtype=dtype)
    omega = omega / omega.norm(dim=-1, keepdim=True)
    angles = torch.cat([torch.rand(200, generator=g, dtype=dtype) * (math.pi - 1e-3),
                        math.pi - torch.logspace(-5, -2, 50, dtype=dtype),
                        torch.logspace(-9, -3, 50, dtype=dtype)])
    v = torch.randn(300, 3, generator=g, dtype=dtype)
    xi = torch.cat([omega * angles[:, None], v], dim=-1)
    T = G.se3_exp(xi)
    T2 = G.se3_exp(G.se3_log(T))
    tol = 2e-4 if dtype == torch.float32 else 1e-9
    assert (T2 - T).abs().max() < tol
    away = angles < math.pi - 1e-2
    assert (G.se3_log(T)[away] - xi[away]).abs().max() < tol * 10


def test_se3_exp_matches_matrix_exponential():
    xi = torch.randn(20, 6, dtype=torch.float64, generator=_rng(4))
    A = torch.zeros(20, 4, 4, dtype=torch.float64)
    A[:, :3, :3] = G.hat(xi[:, :3])
    A[:, :3, 3] = xi[:, 3:]
    assert torch.allclose(G.se3_exp(xi), torch.linalg.matrix_exp(A), atol=1e-10)


def test_compose_inverse_apply():
    g = _rng(5)
    T1 = G.se3_exp(torch.randn(7, 6, dtype=torch.float64, generator=g))
    T2 = G.se3_exp(torch.randn(7, 6, dtype=torch.float64, generator=g))
    p = torch.randn(7, 30, 3, dtype=torch.float64, generator=g)
    assert torch.allclose(G.se3_compose(T1, G.se3_inverse(T1)), torch.eye(4, dtype=torch.float64).expand(7, 4, 4), atol=1e-12)
    lhs = G.transform_points(G.se3_compose(T1, T2), p)
    rhs = G.transform_points(T1, G.transform_points(T2, p))
    assert torch.allclose(lhs, rhs, atol=1e-12)
    # batch dims broadcast: one transform applied to a batch of clouds
    one = G.transform_points(T1[0], p)
    assert one.shape == p.shape


def test_distances():
    R = G.random_rotation(50, generator=_rng(6), dtype=torch.float64)
    angle = torch.rand(50, dtype=torch.float64, generator=_rng(7)) * math.pi
    axis = torch.nn.functional.normalize(torch.randn(50, 3, dtype=torch.float64, generator=_rng(8)), dim=-1)
    R2 = R @ G.so3_exp(axis * angle[:, None])
    assert torch.allclose(G.geodesic_distance(R, R2), angle, atol=1e-6)
    assert torch.allclose(G.chordal_distance(R, R2), 2 * math.sqrt(2) * torch.sin(angle / 2), atol=1e-10)


def test_gradcheck_se3_exp_log_and_distance():
    xi = (torch.randn(4, 6, dtype=torch.float64, generator=_rng(9)) * 0.7).requires_grad_()
    assert torch.autograd.gradcheck(G.se3_exp, (xi,))
    T = G.se3_exp(xi.detach())
    # gradients of log w.r.t. the translation entries and through compose
    t = T[:, :3, 3].clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda tt: G.se3_log(G.make_transform(T[:, :3, :3], tt)), (t,))
    w = (torch.randn(5, 3, dtype=torch.float64, generator=_rng(10)) * 0.8).requires_grad_()
    R0 = G.random_rotation(5, generator=_rng(11), dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: G.geodesic_distance(R0, G.so3_exp(x) @ R0 @ G.so3_exp(x)), (w,))


def test_random_rotation_is_uniform():
    R = G.random_rotation(20000, generator=_rng(12), dtype=torch.float64)
    assert G.is_rotation(R).all()
    # Haar: the angle has density (1 - cos w) / pi on [0, pi]
    w = G.rotation_angle(R).numpy()
    cdf = lambda x: (x - np.sin(x)) / math.pi
    assert stats.kstest(w, cdf).pvalue > 1e-3
    # and E[R] = 0
    assert R.mean(0).abs().max() < 0.03


@pytest.mark.parametrize("sigma", [0.005, 0.2, 0.8, 2.0])
def test_igso3_density_normalised(sigma):
    w = torch.linspace(0, math.pi, 20001, dtype=torch.float64)
    p = G.igso3_angle_density(w, sigma).numpy()
    assert abs(_trapezoid(p, w.numpy()) - 1) < 2e-3


@pytest.mark.parametrize("sigma", [0.005, 0.15, 0.6, 1.5])
def test_igso3_samples_match_density(sigma):
    R = G.igso3_sample(sigma, (6000,), generator=_rng(13), dtype=torch.float64)
    w = G.rotation_angle(R).numpy()
    grid = torch.linspace(0, math.pi, 8001, dtype=torch.float64)
    p = G.igso3_angle_density(grid, sigma).numpy()
    cdf_tab = np.concatenate([[0], np.cumsum(0.5 * (p[1:] + p[:-1]) * np.diff(grid.numpy()))])
    cdf_tab /= cdf_tab[-1]
    assert stats.kstest(w, lambda x: np.interp(x, grid.numpy(), cdf_tab)).pvalue > 1e-3
    # axes are isotropic: the mean of the rotation vector is ~0
    omega = G.so3_log(R)
    assert omega.mean(0).abs().max() < 0.1 * max(sigma, 0.05) + 0.02


def test_igso3_small_sigma_is_gaussian_rotvec():
    sigma = 0.05
    R = G.igso3_sample(sigma, (20000,), generator=_rng(14), dtype=torch.float64)
    omega = G.so3_log(R).numpy()
    assert np.allclose(omega.std(0), sigma, rtol=0.05)


def test_igso3_log_density_peaks_at_mean():
    Rm = G.random_rotation(generator=_rng(15), dtype=torch.float64)
    near = G.igso3_sample(0.1, (50,), R_mean=Rm, generator=_rng(16), dtype=torch.float64)
    far = G.random_rotation(50, generator=_rng(17), dtype=torch.float64)
    assert G.igso3_log_density(near, 0.1, Rm).mean() > G.igso3_log_density(far, 0.1, Rm).mean() + 3


def test_se3_perturb_scales():
    T = G.se3_exp(torch.randn(6, dtype=torch.float64, generator=_rng(18))).expand(5000, 4, 4)
    Tp = G.se3_perturb(T, 0.05, 0.01, generator=_rng(19))
    xi = G.se3_log(Tp @ G.se3_inverse(T))
    assert np.allclose(xi[:, :3].std(0).numpy(), 0.05, rtol=0.07)
    # translation part of the left perturbation: v ~ N(0, 0.01^2) to first order
    assert np.allclose(xi[:, 3:].std(0).numpy(), 0.01, rtol=0.07)


def test_chordal_mean_weighted_and_det_fix():
    g = _rng(20)
    Rc = G.random_rotation(generator=g, dtype=torch.float64)
    noisy = G.igso3_sample(0.1, (400,), R_mean=Rc, generator=g, dtype=torch.float64)
    mean = G.chordal_mean(noisy)
    assert G.geodesic_distance(mean, Rc) < 0.02
    assert torch.linalg.det(mean) > 0.999
    # weights: all weight on one rotation returns it
    w = torch.zeros(400, dtype=torch.float64)
    w[7] = 1
    assert torch.allclose(G.chordal_mean(noisy, w), noisy[7], atol=1e-9)


def test_weighted_kabsch_recovers_transform_under_noise():
    g = _rng(21)
    T = G.se3_exp(torch.randn(6, dtype=torch.float64, generator=g))
    src = torch.randn(500, 3, dtype=torch.float64, generator=g) * 0.1
    dst = G.transform_points(T, src) + 0.001 * torch.randn(500, 3, dtype=torch.float64, generator=g)
    est = G.weighted_kabsch(src, dst)
    assert G.geodesic_distance(est[:3, :3], T[:3, :3]) < math.radians(0.5)
    assert G.translation_distance(est, T) < 1e-3
    # outliers with zero weight are ignored exactly
    dst_out = dst.clone()
    dst_out[:100] += 5.0
    w = torch.ones(500, dtype=torch.float64)
    w[:100] = 0
    est_w = G.weighted_kabsch(src, dst_out, w)
    assert G.geodesic_distance(est_w[:3, :3], T[:3, :3]) < math.radians(0.5)
    assert G.geodesic_distance(G.weighted_kabsch(src, dst_out)[:3, :3], T[:3, :3]) > math.radians(2)


def test_float32_and_device_param():
    R = G.random_rotation(3, dtype=torch.float32, device="cpu")
    assert R.dtype == torch.float32 and R.device.type == "cpu"
    T = G.se3_exp(torch.zeros(2, 6))
    assert torch.equal(T, torch.eye(4).expand(2, 4, 4))


def test_maps_on_device_match_cpu(device):
    """Every map runs on the device under test (POSEKIT_TEST_DEVICE) and agrees with the CPU."""
    g = _rng(22)
    xi = torch.randn(64, 6, dtype=torch.float64, generator=g)
    pts = torch.randn(64, 100, 3, dtype=torch.float64, generator=g)
    cpu = {
        "exp": G.se3_exp(xi), "log": G.se3_log(G.se3_exp(xi)),
        "apply": G.transform_points(G.se3_exp(xi), pts),
        "kabsch": G.weighted_kabsch(pts, G.transform_points(G.se3_exp(xi), pts)),
    }
    xd, pd = xi.to(device), pts.to(device)
    dev = {
        "exp": G.se3_exp(xd), "log": G.se3_log(G.se3_exp(xd)),
        "apply": G.transform_points(G.se3_exp(xd), pd),
        "kabsch": G.weighted_kabsch(pd, G.transform_points(G.se3_exp(xd), pd)),
    }
    for k, on_cpu in cpu.items():
        assert dev[k].device.type == torch.device(device).type
        assert torch.allclose(dev[k].cpu(), on_cpu, atol=1e-8), k
    R = G.igso3_sample(0.3, (1000,), device=device)
    assert R.device.type == torch.device(device).type and G.is_rotation(R.cpu()).all()
    Rm = G.random_rotation(100, device=device)
    assert Rm.device.type == torch.device(device).type
    assert G.chordal_mean(Rm).device.type == torch.device(device).type


def test_weighted_kabsch_closed_form_equals_the_differentiable_route():
    """Inference takes a 3x3 SVD, training roma's differentiable route: the same optimum,
    reflections excluded, batched, with and without weights."""
    g = torch.Generator().manual_seed(11)
    src = torch.randn(5, 40, 3, generator=g, dtype=torch.float64)
    T = G.se3_exp(torch.randn(5, 6, generator=g, dtype=torch.float64))
    dst = G.transform_points(T, src) + 0.05 * torch.randn(5, 40, 3, generator=g, dtype=torch.float64)
    dst[0] = dst[0] * torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64)  # a mirror image: still a rotation
    w = torch.rand(5, 40, generator=g, dtype=torch.float64)
    for weights in (None, w):
        with torch.no_grad():
            fast = G.weighted_kabsch(src, dst, weights)
        slow = G.weighted_kabsch(src.clone().requires_grad_(True), dst, weights).detach()
        torch.testing.assert_close(fast, slow, atol=1e-9, rtol=0)
        assert torch.allclose(torch.linalg.det(fast[:, :3, :3]), torch.ones(5, dtype=torch.float64))


@pytest.mark.parametrize("size", [[64], "64", float("nan"), float("inf"), True, 7, 2.5])
def test_crop_camera_refuses_sizes_that_are_not_whole_numbers(size):
    """A fuzz finding: a list as the crop size reached int() and raised a TypeError."""
    from posekit.errors import BadInputError
    from posekit.geometry.crop import crop_camera

    K = np.array([[500.0, 0, 32], [0, 500.0, 24], [0, 0, 1]])
    with pytest.raises(BadInputError, match="crop size"):
        crop_camera([10, 8, 20, 16], K, size)
    assert crop_camera([10, 8, 20, 16], K, 64.0).size == 64
