"""The fast prediction path matches the reference computations it replaced (within float tolerance):
the induction layer as one matrix product (escnn's R2Conv is the reference), per-degree coefficient
rotation (the block-diagonal Wigner matrix), top-mode masses from traces (geodesic angles), the mask box
(``np.nonzero``), and ``predict`` end to end against the reference chain built from those pieces."""

import numpy as np
import pytest
import torch

from posekit.data.view_crops import ViewCropConfig, load_view_objects, paste_view_render
from posekit.geometry.crop import bbox_from_mask
from posekit.geometry.rigid_np import random_rotation_np
from posekit.geometry.so3_grid import geodesic_angle_np, so3_healpix_grid
from posekit.view.distribution import SO3GridDistribution
from posekit.view.estimator import ViewPoseEstimator
from posekit.view.network import ViewNet, ViewNetConfig
from posekit.view.so3_fourier import (
    block_diag_wigner,
    grid_function_values,
    rotate_distribution_coefficients,
    so3_coeff_size,
)
from posekit.view.training import images_to_tensor

TINY = {"image_size": 32, "encoder_channels": [4, 6], "lmax": 3, "s2_channels": 4, "so3_channels": 3,
        "nonlinearity_grid_level": 1, "train_grid_level": 1}


def _net(num_objects=0, seed=0):
    torch.manual_seed(seed)
    return ViewNet(ViewNetConfig(num_objects=num_objects, **TINY))


def _reference_head(head, feats):
    """The induction layer as escnn computes it (the convolution the fast path replaces)."""
    from posekit.view.network import _split_degrees
    from posekit.view.so3_fourier import s2_coeff_size

    y = head.conv(feats).tensor.flatten(1)
    return _split_degrees(y.view(y.shape[0], head.cfg.s2_channels, s2_coeff_size(head.cfg.lmax)), head.cfg.lmax)


@pytest.mark.parametrize("training", [False, True])
def test_induction_layer_as_a_matrix_product_equals_the_convolution(training):
    net = _net().train(training)
    x = torch.rand(3, 3, 32, 32)
    feats = net.encoder(torch.flip(x, dims=[-2]) - 0.5)
    fast = net.head(feats)
    ref = _reference_head(net.head, feats)
    assert float(ref[1].detach().abs().max()) > 0.1  # not trivially zero: the test can fail
    for a, b in zip(fast, ref):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    if training:  # the same gradients reach the parameters
        grads = []
        for out in (fast, ref):
            net.zero_grad()
            sum((o * torch.linspace(-1, 1, o.numel()).view_as(o)).sum() for o in out).backward(retain_graph=True)
            grads.append(torch.cat([p.grad.flatten() for p in net.head.parameters()]))
        torch.testing.assert_close(grads[0], grads[1], atol=1e-5, rtol=1e-4)


def test_object_planes_folded_into_the_first_convolution_equal_the_concatenated_input():
    net = _net(num_objects=3, seed=1).eval()
    x = torch.rand(4, 3, 32, 32) - 0.5
    idx = torch.tensor([2, 0, 1, 2])
    full = torch.cat([x, torch.nn.functional.one_hot(idx, 3).float()[:, :, None, None].expand(-1, -1, 32, 32)], 1)
    with torch.inference_mode():
        ref = net.encoder(full).tensor
        fast = net.encoder.forward_objects(x, idx).tensor
        assert float(ref.abs().max()) > 0.1  # the test can fail
        torch.testing.assert_close(fast, ref, atol=1e-5, rtol=1e-5)
        other = net.encoder.forward_objects(x, torch.tensor([0, 1, 2, 0])).tensor
        assert float((other - ref).abs().max()) > 1e-3  # the object planes matter
    # new weights after train() -> eval(): the cached object maps are rebuilt, not reused
    net.train()
    with torch.no_grad():
        for p in net.encoder.parameters():
            p.add_(0.05)
    net.eval()
    with torch.inference_mode():
        torch.testing.assert_close(net.encoder.forward_objects(x, idx).tensor, net.encoder(full).tensor, atol=1e-5, rtol=1e-5)
    # with gradients enabled, coefficients() takes the concatenated path (training, input gradients)
    net.eval()
    with torch.no_grad():
        c_fast = net.coefficients(x + 0.5, idx)
    c_ref = net.coefficients(x + 0.5, idx)
    torch.testing.assert_close(c_fast, c_ref.detach(), atol=1e-5, rtol=1e-4)


def test_per_degree_rotation_equals_the_block_diagonal_wigner_matrix():
    rng = np.random.default_rng(3)
    L = 6
    C = torch.randn(2, so3_coeff_size(L), dtype=torch.float64)
    for _ in range(3):
        R = random_rotation_np(rng)
        ref = C @ block_diag_wigner(R, L, flatten_so3=True).T
        torch.testing.assert_close(rotate_distribution_coefficients(C, R, L), ref, atol=1e-12, rtol=0)
    # float32 coefficients stay float32
    assert rotate_distribution_coefficients(C.float(), R, L).dtype == torch.float32


def _reference_masses(dist, modes, sep_deg):
    R = dist.rotations
    # strictly inside: grid cells at exactly half the separation (ties, e.g. 22.5 deg on level 2) are outside
    return [float(dist.probs[geodesic_angle_np(Rm[None], R) < np.deg2rad(sep_deg) / 2 - 1e-7].sum()) for Rm, _ in modes]


@pytest.mark.parametrize("sep_deg", [0.0, 20.0, 45.0])
def test_top_mode_masses_equal_the_geodesic_angle_masses(sep_deg):
    rng = np.random.default_rng(0)
    R = so3_healpix_grid(2)
    centres = R[rng.choice(len(R), 4, replace=False)]
    logits = np.max([-geodesic_angle_np(c[None], R) ** 2 / 0.05 + rng.uniform(0, 2) for c in centres], axis=0)
    dist = SO3GridDistribution.from_logits(logits, 2)
    modes = dist.top_modes(5, sep_deg)
    ref = _reference_masses(dist, modes, sep_deg)
    np.testing.assert_allclose([m for _, m in modes], ref, atol=1e-12)
    if sep_deg >= 20:
        assert max(ref) > 0.05  # masses are real sums, not zeros: the test can fail
    else:
        assert max(ref) == 0.0  # an empty ball (angle < 0) has no mass


def test_mask_box_equals_the_nonzero_pixel_box():
    rng = np.random.default_rng(1)
    for _ in range(5):
        m = np.zeros((48, 64), bool)
        y0, x0 = rng.integers(0, 40), rng.integers(0, 50)
        m[y0:y0 + rng.integers(1, 8), x0:x0 + rng.integers(1, 14)] = True
        m[rng.integers(0, 48), rng.integers(0, 64)] = True  # a stray pixel stretches the box
        rows, cols = np.nonzero(m)
        ref = [cols.min(), rows.min(), cols.max() - cols.min() + 1, rows.max() - rows.min() + 1]
        np.testing.assert_array_equal(bbox_from_mask(m), ref)
        np.testing.assert_array_equal(bbox_from_mask(m.astype(np.uint8) * 255), ref)


def test_predict_matches_the_reference_chain():
    """predict(image, obj_id=, mask=, K=) vs crop -> escnn conv head -> block-diagonal rotation ->
    grid values -> softmax, and the start rotations and masses from it."""
    objects = load_view_objects("procedural", n_procedural=2, seed=1)
    crop = ViewCropConfig(image_size=32, supersample=1, camera_width=320, camera_height=240, focal=300.0)
    net = _net(num_objects=2, seed=4)
    with torch.no_grad():  # an untrained head is nearly uniform: sharpen it so that the comparison bites
        for phi in net.so3.phi:
            phi.mul_(40.0)
    est = ViewPoseEstimator(net, {"data": {"obj_ids": list(objects.ids), "eval_grid_level": 2}})
    K = np.array([[300.0, 0, 159.5], [0, 300.0, 119.5], [0, 0, 1]])
    rng = np.random.default_rng(2)
    frame = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
    for i in range(2):
        c = paste_view_render(objects, i, frame, K, rng, crop)
        dist = est.predict(c.image, obj_id=objects.ids[i], mask=c.mask, K=K)
        img, cam = est.crop(c.image, mask=c.mask, K=K)
        with torch.no_grad():
            x = torch.flip(images_to_tensor(img[None], "cpu"), dims=[-2]) - 0.5
            onehot = torch.nn.functional.one_hot(torch.tensor([i]), 2).float()
            x = torch.cat([x, onehot[:, :, None, None].expand(-1, -1, 32, 32)], dim=1)
            v = _reference_head(net.head, net.encoder(x))
            coeffs = net.so3(v, torch.tensor([i])).double()
            coeffs = coeffs @ block_diag_wigner(cam.R_cam_crop, 3, flatten_so3=True).T
            z = grid_function_values(coeffs.float(), 2, 3)[0].double().numpy()
        ref = SO3GridDistribution.from_logits(z, 2)
        assert ref.probs.max() > 2 * ref.probs.min()  # not uniform: the test can fail
        np.testing.assert_allclose(dist.probs, ref.probs, rtol=1e-4, atol=1e-5 * ref.probs.max())
        assert int(np.argmax(dist.probs)) == int(np.argmax(ref.probs))
        modes = dist.top_modes(8, 20.0)
        ref_modes = ref.top_modes(8, 20.0)
        np.testing.assert_array_equal(np.stack([m for m, _ in modes]), np.stack([m for m, _ in ref_modes]))
        np.testing.assert_allclose([m for _, m in modes], _reference_masses(ref, ref_modes, 20.0), rtol=1e-4)
