"""Helpers shared by the body engine's tests."""

import torch


def turned_body(body, batch, i, R_body):
    """The true body of sample i of ``batch`` turned by ``R_body`` (3x3, body frame) about its
    pelvis: (local rotations, translation), as :func:`posekit.body.optimization.set_root` gives."""
    from posekit.body.optimization import set_root

    L = batch.pose[i:i + 1].clone()
    R = (L[0, 0] @ torch.as_tensor(R_body, dtype=torch.float32) @ L[0, 0].T)[None]
    pelvis = batch.joints[i, 0]
    return set_root(body, L, batch.betas[i:i + 1], batch.transl[i:i + 1], R, pelvis - R[0] @ pelvis)
