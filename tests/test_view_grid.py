"""View engine geometry: HEALPix SO(3) grids, nearest lookup, Wigner-D, the grid distribution."""

import numpy as np
import pytest

from posekit.geometry.rigid_np import random_rotation_np, rotation_about_axis
from posekit.geometry.so3_grid import (
    geodesic_angle_np,
    grid_size,
    nearest_index,
    quarter_turn_permutation,
    rot_z,
    so3_healpix_grid,
)
from posekit.view.distribution import SO3GridDistribution
from posekit.view.so3_fourier import (
    block_diag_wigner,
    so3_quadrature_matrix,
    spherical_harmonics,
    wigner_d,
    wigner_d_all,
)


@pytest.mark.parametrize("level", [0, 1, 2])
def test_grid_size_and_rotations(level):
    R = so3_healpix_grid(level)
    assert R.shape == (72 * 8 ** level, 3, 3) == (grid_size(level), 3, 3)
    np.testing.assert_allclose(R @ np.swapaxes(R, 1, 2), np.broadcast_to(np.eye(3), R.shape), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=1e-12)
    # distinct rotations, roughly uniform: nearest-neighbour spacing shrinks by ~2 per level
    q = nearest_index(level)
    assert (q.query(R) == np.arange(R.shape[0])).all()


def test_nearest_lookup_matches_brute_force():
    rng = np.random.default_rng(0)
    R = so3_healpix_grid(1)
    queries = np.stack([random_rotation_np(rng) for _ in range(40)])
    brute = geodesic_angle_np(queries[:, None], R[None]).argmin(axis=1)
    got = nearest_index(1).query(queries)
    d_got = geodesic_angle_np(queries, R[got])
    d_brute = geodesic_angle_np(queries, R[brute])
    np.testing.assert_allclose(d_got, d_brute, atol=1e-9)
    # a slightly perturbed grid point finds itself
    i = 123
    Rp = R[i] @ rotation_about_axis([0.3, -0.2, 0.9], np.deg2rad(2.0))
    assert nearest_index(1).query(Rp) == i


def test_grid_closed_under_quarter_turns_about_camera_axis():
    for level in (1, 2):
        perm = quarter_turn_permutation(level)
        assert sorted(perm.tolist()) == list(range(grid_size(level)))
        R = so3_healpix_grid(level)
        np.testing.assert_allclose(R[perm], rot_z(np.pi / 2) @ R, atol=1e-9)


def test_wigner_d_matches_escnn_and_is_a_representation():
    from escnn import group

    so3 = group.so3_group(4)
    rng = np.random.default_rng(1)
    A, B = random_rotation_np(rng), random_rotation_np(rng)
    for l in range(5):
        D = wigner_d(A, l).numpy()
        np.testing.assert_allclose(D, so3.irrep(l)(so3.element(A, "MAT")), atol=1e-10)
        np.testing.assert_allclose(wigner_d(A @ B, l).numpy(), D @ wigner_d(B, l).numpy(), atol=1e-10)
        r = so3.irrep(l).restrict((False, -1))
        np.testing.assert_allclose(wigner_d(rot_z(0.7), l).numpy(), r(r.group.element(0.7)), atol=1e-10)
    x = rng.normal(size=(6, 3))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    Y, Yg = spherical_harmonics(x, 3), spherical_harmonics(x @ A.T, 3)
    np.testing.assert_allclose(Yg.numpy(), Y.numpy() @ block_diag_wigner(A, 3).numpy().T, atol=1e-10)


def test_quadrature_recovers_low_degree_coefficients():
    rng = np.random.default_rng(2)
    R = so3_healpix_grid(2)
    coeff = rng.normal(size=(wigner_d_all(R[:1], 2).shape[-1],))
    values = wigner_d_all(R, 2).numpy() @ coeff
    back = so3_quadrature_matrix(R, 2).numpy() @ values
    np.testing.assert_allclose(back, coeff, atol=0.05 * np.abs(coeff).max())


def test_uniform_log_likelihood_is_minus_log_pi_squared():
    rng = np.random.default_rng(3)
    eq = np.stack([random_rotation_np(rng) for _ in range(7)])
    for level in (1, 2):
        ll = SO3GridDistribution.uniform(level).log_likelihood(eq)
        assert ll == pytest.approx(np.log(1 / np.pi ** 2), abs=1e-12)
        assert ll == pytest.approx(-2.2895, abs=1e-4)


def test_distribution_mode_top_modes_sampling_and_likelihood(tmp_path):
    R = so3_healpix_grid(1)
    probs = np.full(R.shape[0], 1e-6)
    a, b = 10, 400
    probs[a], probs[b] = 0.6, 0.3
    d = SO3GridDistribution(probs, 1)
    np.testing.assert_allclose(d.mode(), R[a])
    modes = d.top_modes(2)
    np.testing.assert_allclose(modes[0][0], R[a])
    np.testing.assert_allclose(modes[1][0], R[b])
    assert modes[0][1] > modes[1][1]
    s = d.sample(2000, np.random.default_rng(0))
    frac_a = np.mean(geodesic_angle_np(s, R[a]) < 1e-9)
    assert 0.55 < frac_a < 0.72
    # density at the peak: p * N / pi^2; averaged over two equivalent rotations
    ll = d.log_likelihood(np.stack([R[a], R[b]]))
    expected = 0.5 * (np.log(d.probs[a] * R.shape[0] / np.pi ** 2) + np.log(d.probs[b] * R.shape[0] / np.pi ** 2))
    assert ll == pytest.approx(expected)
    assert d.mode_error(R[a][None]) == pytest.approx(0.0, abs=1e-9)
    assert d.spread(np.stack([R[a], R[b]])) < np.deg2rad(5)
    out = d.plot(tmp_path / "dist.png", gt_rotations=R[a])
    assert (tmp_path / "dist.png").stat().st_size > 1000 and str(out).endswith("dist.png")


def test_factorised_grid_evaluation_matches_the_full_wigner_matrix():
    import torch

    from posekit.view.so3_fourier import grid_function_values

    rng = np.random.default_rng(4)
    lmax = 3
    coeffs = torch.from_numpy(rng.normal(size=(2, wigner_d_all(np.eye(3)[None], lmax).shape[-1])))
    full = coeffs @ wigner_d_all(so3_healpix_grid(2), lmax).T
    fast = grid_function_values(coeffs.float(), 2, lmax)
    np.testing.assert_allclose(fast.numpy(), full.numpy(), atol=1e-4 * float(full.abs().max()))


def test_rotation_covariance_is_a_statistic_of_the_distribution():
    from posekit.view.distribution import SO3GridDistribution

    uniform = SO3GridDistribution.uniform(2)
    cov = uniform.rotation_covariance(np.eye(3))
    # rotation vectors uniform over SO(3): E[|w|^2] = pi^2/3 + 2 (Haar), split evenly over 3 axes
    np.testing.assert_allclose(np.diag(cov), (np.pi ** 2 / 3 + 2) / 3, rtol=0.05)
    assert np.abs(cov - np.diag(np.diag(cov))).max() < 0.05
    sharp = SO3GridDistribution.from_logits(50.0 * np.einsum("ij,nij->n", np.eye(3), uniform.rotations), 2)
    assert np.trace(sharp.rotation_covariance()) < 0.05 * np.trace(cov)


def _two_peaks():
    R = so3_healpix_grid(1)
    probs = np.full(R.shape[0], 1e-6)
    probs[10], probs[400] = 0.6, 0.3
    return SO3GridDistribution(probs, 1), R


def test_distribution_to_dict_is_json_ready_and_matches_the_accessors():
    import json

    d, R = _two_peaks()
    doc = json.loads(json.dumps(d.to_dict(top=2)))
    assert doc["level"] == 1 and doc["num_rotations"] == R.shape[0] == 576
    np.testing.assert_allclose(doc["mode"], R[10])
    assert len(doc["modes"]) == 2
    for row, (Rm, mass) in zip(doc["modes"], d.top_modes(2)):
        np.testing.assert_allclose(row["R_cam_obj"], Rm)
        assert row["probability_mass"] == pytest.approx(mass)
        np.testing.assert_allclose(rotation_about_axis(np.array(row["rotvec"]) / np.linalg.norm(row["rotvec"]),
                                                       np.linalg.norm(row["rotvec"])), Rm, atol=1e-9)
    np.testing.assert_allclose(doc["rotation_covariance"], d.rotation_covariance())
    assert "probabilities" not in doc
    full = d.to_dict(top=1, probabilities=True)
    assert len(full["probabilities"]) == 576 and sum(full["probabilities"]) == pytest.approx(1.0)


@pytest.mark.parametrize("call", [
    lambda d: d.top_modes(0), lambda d: d.top_modes(-1), lambda d: d.top_modes("3"), lambda d: d.top_modes(2.5),
    lambda d: d.top_modes(True), lambda d: d.top_modes(3, float("nan")), lambda d: d.top_modes(3, -5.0),
    lambda d: d.sample(-1), lambda d: d.sample(2.5), lambda d: d.sample("3"), lambda d: d.sample(3, rng="x"),
    lambda d: d.log_likelihood("x"), lambda d: d.log_likelihood(None), lambda d: d.log_likelihood(np.eye(4)),
    lambda d: d.log_likelihood(np.zeros((0, 3, 3))), lambda d: d.log_likelihood(np.full((3, 3), np.nan)),
    lambda d: d.log_likelihood(np.zeros((3, 3))), lambda d: d.log_likelihood(-np.eye(3)),
    lambda d: d.spread("x"), lambda d: d.mode_error(np.ones((2, 3, 3))), lambda d: d.to_dict(top=0),
], ids=["top0", "top-1", "top'3'", "top2.5", "topTrue", "sep nan", "sep<0", "sample-1", "sample2.5", "sample'3'",
        "rng str", "ll str", "ll None", "ll 4x4", "ll empty", "ll nan", "ll zeros", "ll reflection", "spread str",
        "mode_error ones", "to_dict top0"])
def test_distribution_bad_arguments_raise_bad_input_errors(call):
    from posekit.errors import BadInputError

    d, _ = _two_peaks()
    with pytest.raises(BadInputError):
        call(d)


def test_distribution_counts_accept_numpy_integers_and_zero_samples():
    d, R = _two_peaks()
    assert len(d.top_modes(np.int64(2))) == 2
    assert d.sample(0).shape == (0, 3, 3)
    np.testing.assert_array_equal(d.sample(5, rng=3), d.sample(5, rng=np.random.default_rng(3)))
    assert d.log_likelihood(R[10].astype(np.float32)) > 0  # float32 rounding is still a rotation
