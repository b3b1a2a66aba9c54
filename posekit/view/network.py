"""Induced-representation network for SO(3) distributions from one image (Howell et al., NeurIPS 2023)
and the Image2Sphere-style baseline head (Klee et al., ICLR 2023) on the same encoder.

Pipeline (shapes for batch B): image (B, 3, S, S) -> SO(2)-steerable escnn encoder ->
feature map (B, C, s, s) -> head -> S2 signal coefficients ``v_l (B, C2, 2l+1)`` for l <= L ->
S2 convolution -> SO(3) coefficients ``(B, C3, 2l+1, 2l+1)`` -> pointwise ReLU on a HEALPix grid
-> SO(3) convolution -> one SO(3) signal -> logits on a HEALPix grid.

Heads: ``induced``: an ``R2Conv`` from the encoder fields to restricted irreps
``Res^{SO(3)}_{SO(2)} D^l`` with a kernel covering the whole feature map (the induction layer);
``i2s``: a 1x1 conv to invariant features, orthographically projected onto the camera-facing
hemisphere and integrated against spherical harmonics (I2S, Sec. 3.2).

Equivariance: the image is flipped upside down before the encoder so that escnn's positive
rotations (counter-clockwise for y-up grids) are the camera's ``Rz(+t)`` (x right turns into y
down). Rotating the image by a quarter turn (``np.rot90(img, -1)`` is ``Rz(+pi/2)``) then maps
``v_l -> D^l(Rz) v_l`` exactly, and the grid logits are permuted by the left action of ``Rz`` on
the grid (see :func:`posekit.geometry.so3_grid.quarter_turn_permutation`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn as tnn

from posekit.errors import BadInputError
from posekit.geometry.so3_grid import so3_healpix_grid
from posekit.view.so3_fourier import (
    grid_function_values,
    grid_wigner,
    s2_coeff_size,
    so3_quadrature_matrix,
    spherical_harmonics,
)


@dataclass
class ViewNetConfig:
    """Network sizes (the ``model:`` section of configs/view.yaml)."""

    head: str = "induced"  # induced | i2s
    image_size: int = 64  # input images are resized to this (px, square)
    encoder_channels: list = field(default_factory=lambda: [8, 16, 16])  # per stage; each halves
    encoder_max_frequency: int = 2  # SO(2) frequencies of the encoder fields
    encoder_kernel: int = 5
    fourier_samples: int = 8  # SO(2) samples of the Fourier ELU (a multiple of 4 keeps 90-deg exact)
    lmax: int = 6  # band limit L
    s2_channels: int = 16
    so3_channels: int = 8
    nonlinearity_grid_level: int = 1  # HEALPix level of the pointwise ReLU grid
    train_grid_level: int = 2  # logits / cross-entropy grid (4608 rotations)
    num_objects: int = 0  # > 0: object-conditioned (one-hot input planes + per-object S2 filters)

    def feature_size(self) -> int:
        return self.image_size // 2 ** len(self.encoder_channels)


def _escnn():
    from escnn import group, gspaces, nn

    return group, gspaces, nn


class SteerableEncoder(tnn.Module):
    """SO(2)-steerable CNN (escnn): per stage a 'same' R2Conv, a Fourier ELU over SO(2) sampled
    at ``fourier_samples`` angles, and 2x2 average pooling (exact for quarter turns on even sizes)."""

    def __init__(self, cfg: ViewNetConfig):
        super().__init__()
        _, gspaces, enn = _escnn()
        self.gspace = gspaces.rot2dOnR2(-1, maximum_frequency=max(2 * cfg.lmax, 2 * cfg.encoder_max_frequency))
        so2 = self.gspace.fibergroup
        # RGB plus one constant one-hot plane per object (invariant fields: equivariance is kept)
        self.in_type = enn.FieldType(self.gspace, [self.gspace.trivial_repr] * (3 + cfg.num_objects))
        layers = []
        current = self.in_type
        pad = cfg.encoder_kernel // 2
        for ch in cfg.encoder_channels:
            act = enn.FourierPointwise(self.gspace, ch, so2.bl_irreps(cfg.encoder_max_frequency),
                                       function="p_elu", type="regular", N=cfg.fourier_samples)
            layers += [enn.R2Conv(current, act.in_type, cfg.encoder_kernel, padding=pad), act,
                       enn.PointwiseAvgPool2D(act.out_type, 2, 2)]
            current = act.out_type
        self.body = enn.SequentialModule(*layers)
        self.out_type = current

    def forward(self, x: torch.Tensor):
        _, _, enn = _escnn()
        return self.body(enn.GeometricTensor(x, self.in_type))

    def forward_objects(self, rgb: torch.Tensor, obj_index: torch.Tensor):
        """Evaluation-mode shortcut of ``forward(cat(rgb, one-hot planes))``: the first convolution
        is linear, so the constant one-hot planes add a fixed map per object (bias included; zero
        padding makes it vary near the border), cached until escnn rebuilds the filter (``eval()``
        after ``train()``). The same sums in another order: equal within float rounding."""
        _, _, enn = _escnn()
        modules = list(self.body._modules.values())
        conv = modules[0]
        W = conv.filter
        key = (id(W), 0 if W.is_inference() else W._version, tuple(rgb.shape[-2:]), rgb.device, rgb.dtype)
        if getattr(self, "_object_maps_key", None) != key:
            n = W.shape[1] - 3
            planes = torch.ones(n, 1, *rgb.shape[-2:], device=rgb.device, dtype=rgb.dtype)
            per_object = W[:, 3:].transpose(0, 1).unsqueeze(2)  # (n, C, 1, k, k): object j's filter slice
            maps = torch.stack([torch.nn.functional.conv2d(planes[j:j + 1], per_object[j], padding=conv.padding)[0]
                                for j in range(n)])
            if conv.expanded_bias is not None:
                maps = maps + conv.expanded_bias.view(1, -1, 1, 1)
            self._object_maps, self._object_maps_key = maps, key
        y = torch.nn.functional.conv2d(rgb, W[:, :3], padding=conv.padding) + self._object_maps[obj_index]
        x = enn.GeometricTensor(y, conv.out_type)
        for m in modules[1:]:
            x = m(x)
        return x


class InducedHead(tnn.Module):
    """Induction layer: R2Conv to ``s2_channels`` copies of ``sum_l Res D^l`` with a kernel as
    large as the feature map (output 1x1): SO(3) Fourier coefficients that commute with in-plane rotation."""

    def __init__(self, in_type, cfg: ViewNetConfig):
        super().__init__()
        group, _, enn = _escnn()
        so3 = group.so3_group(cfg.lmax)
        reps = [so3.irrep(l).restrict((False, -1)) for l in range(cfg.lmax + 1)]
        self.out_type = enn.FieldType(in_type.gspace, reps * cfg.s2_channels)
        self.conv = enn.R2Conv(in_type, self.out_type, cfg.feature_size(), padding=0)
        self.cfg = cfg

    def forward(self, feats) -> list[torch.Tensor]:
        x = feats.tensor
        if tuple(x.shape[-2:]) == (self.cfg.feature_size(),) * 2:
            # the kernel covers the whole map (1x1 output): one matrix product, the same sum as the
            # convolution; torch's CPU conv2d takes 5-6x the CPU time for this shape (docs/models.md)
            W, b = (self.conv.filter, self.conv.expanded_bias) if not self.conv.training else self.conv.expand_parameters()
            y = x.flatten(1) @ W.flatten(1).T
            y = y if b is None else y + b
        else:
            y = self.conv(feats).tensor.flatten(1)  # (B, C2 * (L+1)^2), fields in channel order
        y = y.view(y.shape[0], self.cfg.s2_channels, s2_coeff_size(self.cfg.lmax))
        return _split_degrees(y, self.cfg.lmax)


class I2SHead(tnn.Module):
    """I2S-style head: 1x1 conv to invariant features, orthographic projection of the feature
    map onto the hemisphere facing the camera, spherical-harmonic transform."""

    def __init__(self, in_type, cfg: ViewNetConfig):
        super().__init__()
        _, _, enn = _escnn()
        out_type = enn.FieldType(in_type.gspace, [in_type.gspace.trivial_repr] * cfg.s2_channels)
        self.conv = enn.R2Conv(in_type, out_type, 1)
        s = cfg.feature_size()
        rows, cols = np.mgrid[0:s, 0:s].astype(np.float64)
        c = (s - 1) / 2.0
        # the encoder sees the image flipped upside down: feature row r is camera row s-1-r
        x = (cols - c) / (0.55 * s * 2 ** 0.5)
        y = (c - rows) / (0.55 * s * 2 ** 0.5)
        z = -np.sqrt(np.clip(1 - x * x - y * y, 0, 1))  # the hemisphere facing the camera
        pts = np.stack([x, y, z], -1).reshape(-1, 3)
        pts /= np.linalg.norm(pts, axis=1, keepdims=True)
        Y = spherical_harmonics(pts, cfg.lmax).float() / (s * s)
        self.register_buffer("harmonics", Y, persistent=False)  # (s*s, (L+1)^2)
        self.cfg = cfg

    def forward(self, feats) -> list[torch.Tensor]:
        f = self.conv(feats).tensor.flatten(2)  # (B, C2, s*s)
        return _split_degrees(f @ self.harmonics, self.cfg.lmax)


def _split_degrees(y: torch.Tensor, lmax: int) -> list[torch.Tensor]:
    """Split ``(B, C, (L+1)^2)`` into degrees, each normalised by its RMS norm over channels
    (an invariant scalar, so the normalisation commutes with ``D^l``)."""
    parts = torch.split(y, [2 * l + 1 for l in range(lmax + 1)], dim=-1)
    return [p / torch.sqrt(p.pow(2).sum(-1).mean(-1, keepdim=True).unsqueeze(-1) + 1e-6) for p in parts]


class SO3Head(tnn.Module):
    """S2 conv -> bias -> grid ReLU -> SO(3) conv to one channel; coefficients per degree.

    S2 conv (I2S eq. 4): ``F_l[o] = sum_c v_l[c] psi_l[c, o]^T`` (outer product, (2l+1)x(2l+1));
    SO(3) conv: ``G_l = sum_o F_l[o] phi_l[o]``. Both commute with ``F_l -> D^l(g) F_l``.
    An object-conditioned network (``num_objects > 0``) has one set of S2 filters ``psi`` per object.
    """

    def __init__(self, cfg: ViewNetConfig):
        super().__init__()
        L, c2, c3 = cfg.lmax, cfg.s2_channels, cfg.so3_channels
        self.cfg = cfg
        lead = (cfg.num_objects,) if cfg.num_objects > 0 else ()
        self.psi = tnn.ParameterList([tnn.Parameter(torch.randn(*lead, c2, c3, 2 * l + 1) / np.sqrt(c2))
                                      for l in range(L + 1)])
        self.phi = tnn.ParameterList([tnn.Parameter(0.1 * torch.randn(c3, 2 * l + 1, 2 * l + 1) / np.sqrt(c3 * (2 * l + 1)))
                                      for l in range(L + 1)])
        self.bias = tnn.Parameter(torch.zeros(c3))
        grid = so3_healpix_grid(cfg.nonlinearity_grid_level)
        self.register_buffer("D_nl", grid_wigner(cfg.nonlinearity_grid_level, L).clone(), persistent=False)  # (N, K)
        self.register_buffer("Q_nl", so3_quadrature_matrix(grid, L).float(), persistent=False)  # (K, N)

    def forward(self, v: list[torch.Tensor], obj_index: torch.Tensor | None = None) -> torch.Tensor:
        """``v_l (B, C2, 2l+1)`` -> flattened SO(3) coefficients ``(B, sum (2l+1)^2)``;
        ``obj_index (B,)`` int64 picks the per-object filters of an object-conditioned head."""
        if self.cfg.num_objects > 0:
            F = [torch.einsum("bcm,bcon->bomn", v[l], self.psi[l][obj_index]) for l in range(len(v))]
        else:
            F = [torch.einsum("bcm,con->bomn", v[l], self.psi[l]) for l in range(len(v))]
        F[0] = F[0] + self.bias.view(1, -1, 1, 1)
        flat = torch.cat([f.flatten(2) for f in F], dim=-1)  # (B, C3, K)
        on_grid = torch.relu(flat @ self.D_nl.T)  # (B, C3, N)
        flat = on_grid @ self.Q_nl.T  # (B, C3, K)
        out, start = [], 0
        for l in range(len(v)):
            n = (2 * l + 1) ** 2
            Fl = flat[..., start:start + n].unflatten(-1, (2 * l + 1, 2 * l + 1))
            out.append(torch.einsum("bomk,okn->bmn", Fl, self.phi[l]).flatten(1))
            start += n
        return torch.cat(out, dim=-1)


class ViewNet(tnn.Module):
    """Image -> SO(3) Fourier coefficients -> logits on a HEALPix grid (see module docstring)."""

    def __init__(self, cfg: ViewNetConfig):
        super().__init__()
        if cfg.head not in ("induced", "i2s"):
            raise BadInputError(f"model.head must be 'induced' or 'i2s', got {cfg.head!r}")
        if cfg.image_size % 2 ** len(cfg.encoder_channels) or cfg.feature_size() < 1:
            raise BadInputError(f"model.image_size ({cfg.image_size}) must be a positive multiple of "
                                f"2**len(encoder_channels) = {2 ** len(cfg.encoder_channels)}")
        self.cfg = cfg
        self.encoder = SteerableEncoder(cfg)
        self.head = InducedHead(self.encoder.out_type, cfg) if cfg.head == "induced" else I2SHead(self.encoder.out_type, cfg)
        self.so3 = SO3Head(cfg)
        self.register_buffer("D_train", grid_wigner(cfg.train_grid_level, cfg.lmax).clone(), persistent=False)

    def coefficients(self, images: torch.Tensor, obj_index: torch.Tensor | None = None) -> torch.Tensor:
        """``images (B, 3, S, S)`` float in [0, 1] (camera orientation: row 0 at the top)
        -> SO(3) coefficients ``(B, sum (2l+1)^2)`` of the log-density (up to a constant).
        An object-conditioned network needs ``obj_index (B,)`` int64 in ``0 .. num_objects - 1``."""
        x = torch.flip(images, dims=[-2]) - 0.5
        n = self.cfg.num_objects
        if n > 0:
            if obj_index is None:
                raise BadInputError("this view network is object-conditioned: pass obj_index")
            obj_index = torch.as_tensor(obj_index, device=x.device).long().view(-1)
            if obj_index.numel() and (int(obj_index.min()) < 0 or int(obj_index.max()) >= n):
                raise BadInputError(f"obj_index must be in 0..{n - 1} (the network's object indices), "
                                    f"got {obj_index.tolist()[:8]}")
            if not self.encoder.training and not torch.is_grad_enabled():
                return self.so3(self.head(self.encoder.forward_objects(x, obj_index)), obj_index)
            onehot = torch.nn.functional.one_hot(obj_index, n).to(x.dtype)
            x = torch.cat([x, onehot[:, :, None, None].expand(-1, -1, *x.shape[-2:])], dim=1)
        return self.so3(self.head(self.encoder(x)), obj_index if n > 0 else None)

    def forward(self, images: torch.Tensor, level: int | None = None,
                obj_index: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(B, 72 * 8**level)`` on the HEALPix grid (default: the training level)."""
        coeffs = self.coefficients(images, obj_index)
        return self.logits_from_coefficients(coeffs, level)

    def logits_from_coefficients(self, coeffs: torch.Tensor, level: int | None = None) -> torch.Tensor:
        """Grid values ``(B, 72 * 8**level)`` of SO(3) coefficients ``(B, sum (2l+1)^2)``."""
        if level is None or level == self.cfg.train_grid_level:
            return coeffs @ self.D_train.T
        return grid_function_values(coeffs, level, self.cfg.lmax)
