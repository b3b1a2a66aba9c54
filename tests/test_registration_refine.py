"""Batched torch ICP (posekit.registration.refine): the on-device refinement of the object engine."""

import numpy as np
import torch

from posekit.data.meshes import procedural_mesh
from posekit.geometry.rigid_np import make_pose, rotation_about_axis
from posekit.registration.refine import TorchIcpSettings, refine_poses


def test_batched_icp_pulls_perturbed_poses_back_and_ignores_background(device):
    mesh, info = procedural_mesh(31_337, family="mug", diameter_range=(0.12, 0.14))
    pts, nrm = mesh.sample_points(4000, seed=0, return_normals=True)
    R = rotation_about_axis([0.2, 1.0, 0.3], 0.9)
    T = make_pose(R, [0.01, -0.02, 0.7])
    cam = pts @ R.T + T[:3, 3]
    seen = ((nrm @ R.T) * cam).sum(1) < 0  # the side a camera sees
    rng = np.random.default_rng(0)
    background = rng.uniform([-0.1, -0.1, 0.75], [0.1, 0.1, 0.8], size=(150, 3))  # a mask's stray points
    observed = np.concatenate([cam[seen] + rng.normal(0, 0.0008, size=(seen.sum(), 3)), background])
    starts = []
    for k, axis in enumerate(([1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0])):
        D = make_pose(rotation_about_axis(axis, np.radians(6)), 0.004 * np.array(axis, float))
        # about the object (model frame), or a pure shift in the camera frame
        starts.append(make_pose(np.eye(3), 0.006 * np.array(axis, float)) @ T if k % 2 else T @ D)
    far = make_pose(rotation_about_axis([1, 0, 0], np.pi), [0, 0, 3.0]) @ T  # nothing within reach
    starts.append(far)
    out = refine_poses(torch.as_tensor(np.stack(starts), device=device), torch.as_tensor(pts, dtype=torch.float32,
                       device=device), torch.as_tensor(nrm, dtype=torch.float32, device=device),
                       torch.as_tensor(observed, dtype=torch.float32, device=device), info.diameter,
                       TorchIcpSettings(), torch.Generator().manual_seed(0)).cpu().numpy()
    for Ti in out[:4]:
        angle = np.degrees(np.arccos(np.clip((np.trace(Ti[:3, :3].T @ R) - 1) / 2, -1, 1)))
        assert angle < 1.0 and np.linalg.norm(Ti[:3, 3] - T[:3, 3]) < 0.002, (angle, Ti[:3, 3] - T[:3, 3])
    np.testing.assert_allclose(out[4], far, atol=1e-9)  # out of reach: the start is kept
