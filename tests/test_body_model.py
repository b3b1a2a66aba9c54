"""SMPL-format body model: LBS/FK against hand computation, gradients, files, procedural body, poses, clouds."""

import itertools
import pickle
import sys
import types

import numpy as np
import pytest
import torch

from posekit.body.model import BodyModel, load_body_model, read_body_arrays, save_body_arrays
from posekit.body.skeleton import JOINT_NAMES, N_PARTS, PARENTS
from posekit.errors import CorruptFileError, MissingFileError, UnsafeFileError
from posekit.geometry.rigid_np import rotation_about_axis


@pytest.fixture(scope="module")
def body():
    return load_body_model()


def test_default_model_is_smpl_format(body):
    assert len(JOINT_NAMES) == 24 and PARENTS[20] == 18
    assert 2000 <= body.n_vertices <= 10000
    assert body.shapedirs.shape == (body.n_vertices, 3, 10)
    np.testing.assert_allclose(body.weights.sum(1).numpy(), 1.0, atol=1e-5)
    assert set(np.unique(body.vertex_parts())) == set(range(N_PARTS))


def test_zero_pose_and_betas_return_the_template(body, device):
    body = body.to(device)
    out = body(torch.zeros(2, 24, 3, device=device), torch.zeros(2, 10, device=device))
    torch.testing.assert_close(out.vertices, body.v_template.expand(2, -1, -1), atol=1e-6, rtol=0)
    torch.testing.assert_close(out.joints[0], body.J_regressor @ body.v_template, atol=1e-6, rtol=0)
    body.cpu()


def test_joint_transforms_match_a_hand_computed_chain(body):
    rng = np.random.default_rng(3)
    rotvec = rng.normal(0, 0.5, size=(24, 3))
    betas = rng.normal(size=10)
    out = body(torch.tensor(rotvec[None], dtype=torch.float32), torch.tensor(betas[None], dtype=torch.float32),
               torch.tensor([[0.1, -0.2, 0.3]]))
    J = (body.J_regressor.double() @ (body.v_template.double() + body.shapedirs.double() @ torch.tensor(betas))).numpy()
    R = [rotation_about_axis(v, np.linalg.norm(v)) for v in rotvec]
    chain = [JOINT_NAMES.index(n) for n in ("pelvis", "spine1", "spine2", "spine3", "left_collar",
                                            "left_shoulder", "left_elbow", "left_wrist")]
    G_R, G_t = R[0], J[0]
    for parent, k in itertools.pairwise(chain):
        G_t = G_t + G_R @ (J[k] - J[parent])
        G_R = G_R @ R[k]
    wrist = chain[-1]
    np.testing.assert_allclose(out.joints[0, wrist].numpy(), G_t + [0.1, -0.2, 0.3], atol=1e-5)
    np.testing.assert_allclose(out.global_rotations[0, wrist].numpy(), G_R, atol=1e-5)


def test_root_rotation_moves_the_body_rigidly(body):
    R = rotation_about_axis([0.3, 1.0, -0.2], 1.1)
    pose = torch.zeros(1, 24, 3)
    pose[0, 0] = torch.tensor(np.array([0.3, 1.0, -0.2]) / np.linalg.norm([0.3, 1.0, -0.2]) * 1.1)
    out = body(pose)
    rest = body.v_template.numpy()
    pelvis = (body.J_regressor @ body.v_template)[0].numpy()
    np.testing.assert_allclose(out.vertices[0].numpy(), (rest - pelvis) @ R.T + pelvis, atol=1e-5)


def test_gradients_flow_to_pose_shape_and_translation(body):
    pose = torch.zeros(1, 24, 3).normal_(0, 0.2).requires_grad_(True)
    betas = torch.zeros(1, 10, requires_grad=True)
    transl = torch.zeros(1, 3, requires_grad=True)
    out = body(pose, betas, transl)
    (out.vertices[..., 1].pow(2).mean() + out.joints.pow(2).mean()).backward()
    for g in (pose.grad, betas.grad, transl.grad):
        assert torch.isfinite(g).all() and g.abs().sum() > 0
    assert pose.grad[0, 18].abs().sum() > 0  # the elbow moves forearm vertices


def test_file_round_trip(body, tmp_path):
    path = save_body_arrays(body._arrays, tmp_path / "copy.npz")
    again = BodyModel.from_file(path)
    for key in ("v_template", "shapedirs", "J_regressor", "weights"):
        torch.testing.assert_close(getattr(again, key), getattr(body, key))
    pose = torch.zeros(1, 24, 3).normal_(0, 0.3)
    torch.testing.assert_close(again(pose).vertices, body(pose).vertices)


def _smpl_like_pickle(body, path):
    """A .pkl like the original SMPL files: shapedirs as a chumpy object (chumpy itself not needed)."""
    chumpy = types.ModuleType("chumpy")
    ch = types.ModuleType("chumpy.ch")

    class Ch:
        def __reduce__(self):
            return (Ch, (), {"x": self.x})

    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    ch.Ch = Ch
    sys.modules["chumpy"], sys.modules["chumpy.ch"] = chumpy, ch
    try:
        arrays = {k: np.asarray(v) for k, v in body._arrays.items() if k != "parents"}
        shapedirs = Ch()
        shapedirs.x = arrays["shapedirs"]
        arrays["shapedirs"] = shapedirs
        from posekit.body.skeleton import kintree_table

        arrays["kintree_table"] = kintree_table()
        with open(path, "wb") as fh:
            pickle.dump(arrays, fh, protocol=2)
    finally:
        del sys.modules["chumpy"], sys.modules["chumpy.ch"]


def test_pickle_refused_without_opt_in_and_read_without_chumpy(body, tmp_path):
    path = tmp_path / "model.pkl"
    _smpl_like_pickle(body, path)
    with pytest.raises(UnsafeFileError, match="allow_pickle"):
        load_body_model(path)
    loaded = load_body_model(path, allow_pickle=True)
    torch.testing.assert_close(loaded.shapedirs, body.shapedirs)


def test_missing_keys_and_wrong_shapes_are_clear_errors(body, tmp_path):
    arrays = {k: np.asarray(v) for k, v in body._arrays.items() if k != "parents"}
    np.savez(tmp_path / "no_weights.npz", **{k: v for k, v in arrays.items() if k != "weights"})
    with pytest.raises(CorruptFileError, match="missing key.*weights"):
        load_body_model(tmp_path / "no_weights.npz")
    from posekit.body.skeleton import kintree_table

    bad = dict(arrays, kintree_table=kintree_table(), J_regressor=arrays["J_regressor"][:, :-1])
    np.savez(tmp_path / "bad_shape.npz", **bad)
    with pytest.raises(CorruptFileError, match="J_regressor.*shape"):
        load_body_model(tmp_path / "bad_shape.npz")
    with pytest.raises(MissingFileError):
        read_body_arrays(tmp_path / "absent.npz")


def test_procedural_generator_makes_a_closed_rigged_body():
    from posekit.body.procedural import make_body_arrays
    from posekit.body.skeleton import REST_JOINTS

    a = make_body_arrays(voxel=0.03)
    f = a["f"]
    edges = np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    assert (counts == 2).all()  # closed, every edge shared by two triangles
    tri = a["v_template"][f].astype(np.float64)
    volume = np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6
    assert 0.04 < volume < 0.1  # m^3: an adult of 40-100 kg, faces outward
    np.testing.assert_allclose(a["J_regressor"] @ a["v_template"], REST_JOINTS, atol=1e-4)
    height = a["v_template"][:, 1].max() - a["v_template"][:, 1].min()
    taller = a["v_template"] + 2 * a["shapedirs"][:, :, 0]
    assert 1.6 < height < 1.9 and np.ptp(taller[:, 1]) > height + 0.1


def test_pose_sampler_common_and_unseen():
    from posekit.body.poses import euler_to_matrix, joint_limits, sample_poses

    rng = np.random.default_rng(0)
    common, unseen = sample_poses(rng, 64, "common"), sample_poses(rng, 64, "unseen")
    assert common.shape == unseen.shape == (64, 24, 3)
    assert np.abs(common[:, [10, 11, 22, 23]]).max() == 0  # hands and feet stay at rest
    angle_c, angle_u = np.linalg.norm(common, axis=-1), np.linalg.norm(unseen, axis=-1)
    assert angle_u.max(axis=1).mean() > angle_c.max(axis=1).mean() + 0.4
    knee = [JOINT_NAMES.index("left_knee"), JOINT_NAMES.index("right_knee")]
    assert angle_c[:, knee].max() < np.radians(101) < angle_u[:, knee].max()
    lo, hi = joint_limits("full")
    assert (lo <= hi).all() and np.allclose(euler_to_matrix(np.zeros(3)), np.eye(3))


def test_full_and_partial_clouds_lie_on_the_posed_surface(body):
    from posekit.body.clouds import make_body_batch

    b = make_body_batch(body, np.random.default_rng(1), 2, 512, "unseen", partial_fraction=0.0, noise=0.0)
    d = torch.cdist(b.points, b.vertices).amin(-1)
    assert d.max() < 0.03 and b.labels.max() < N_PARTS
    p = make_body_batch(body, np.random.default_rng(1), 2, 512, "unseen", partial_fraction=1.0, noise=0.0)
    assert torch.cdist(p.points, p.vertices).amin(-1).max() < 0.03
    # A single view sees one side: its points cover fewer vertices than a full cloud's.
    near_full = (torch.cdist(b.vertices[:1], b.points[:1]).amin(-1) < 0.05).float().mean()
    near_partial = (torch.cdist(p.vertices[:1], p.points[:1]).amin(-1) < 0.05).float().mean()
    assert near_partial < 0.8 * near_full
