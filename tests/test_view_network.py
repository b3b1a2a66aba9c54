"""View network: exact equivariance to quarter turns of the image, for both heads."""

import numpy as np
import pytest
import torch

from posekit.data.symsol import render_symsol
from posekit.errors import BadInputError
from posekit.geometry.rigid_np import random_rotation_np
from posekit.geometry.so3_grid import quarter_turn_permutation, rot_z
from posekit.view.network import ViewNet, ViewNetConfig
from posekit.view.so3_fourier import block_diag_wigner

SMALL = {"image_size": 32, "encoder_channels": [4, 6], "encoder_max_frequency": 2, "lmax": 3, "s2_channels": 4,
             "so3_channels": 3, "nonlinearity_grid_level": 1, "train_grid_level": 1}


def _images(n=2, size=32, seed=0):
    rng = np.random.default_rng(seed)
    ims = np.stack([render_symsol(s, random_rotation_np(rng), size) for s in ("cube", "tetX")[:n]])
    noise = rng.integers(0, 40, size=ims.shape)  # break any symmetry of the renders
    return np.clip(ims.astype(int) + noise, 0, 255).astype(np.uint8)


def _tensor(ims):
    return torch.from_numpy(np.ascontiguousarray(ims)).permute(0, 3, 1, 2).float() / 255


@pytest.mark.parametrize("head", ["induced", "i2s"])
def test_quarter_turn_of_the_image_rotates_the_distribution(head, device):
    torch.manual_seed(0)
    net = ViewNet(ViewNetConfig(head=head, **SMALL)).to(device).eval()  # float32, as used
    ims = _images()
    turned = np.rot90(ims, -1, axes=(1, 2))  # clockwise on screen = Rz(+90 deg) in the camera frame
    with torch.no_grad():
        p = torch.softmax(net(_tensor(ims).to(device)), -1).cpu()
        p_turned = torch.softmax(net(_tensor(turned).to(device)), -1).cpu()
        c = net.coefficients(_tensor(ims).to(device)).cpu()
        c_turned = net.coefficients(_tensor(turned).to(device)).cpu()
    perm = quarter_turn_permutation(1)  # Rz(90) @ grid[i] == grid[perm[i]]
    assert p.max() > 1.05 * p.min()  # not uniform: the test can fail
    torch.testing.assert_close(p_turned[:, perm], p, atol=1e-4 * float(p.max()), rtol=0)
    assert float((p_turned[:, perm] - p).abs().max()) < 1e-6  # probabilities are ~1/576
    # Fourier side: F_l -> D^l(Rz) F_l (left translation)
    M = block_diag_wigner(rot_z(np.pi / 2), SMALL["lmax"], flatten_so3=True)
    torch.testing.assert_close(c_turned, c @ M.T.float(), atol=1e-4 * float(c.abs().max()), rtol=0)
    # a half turn and the inverse turn too
    for k in (2, 3):
        with torch.no_grad():
            pk = torch.softmax(net(_tensor(np.rot90(ims, -k, axes=(1, 2))).to(device)), -1).cpu()
        assert float((pk[:, quarter_turn_permutation(1, k)] - p).abs().max()) < 1e-6


def test_network_output_shapes_and_grid_levels():
    torch.manual_seed(0)
    net = ViewNet(ViewNetConfig(head="induced", **SMALL)).eval()
    x = _tensor(_images())
    with torch.no_grad():
        assert net(x).shape == (2, 576)
        assert net(x, level=2).shape == (2, 4608)
        # the finer grid interpolates the same band-limited function: coarse logits are a subset
        z1, z2 = net(x, level=1), net(x, level=0)
    assert z2.shape == (2, 72) and torch.isfinite(z1).all()
    with pytest.raises(BadInputError, match="head"):
        ViewNet(ViewNetConfig(head="resnet", **SMALL))
