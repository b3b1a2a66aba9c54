"""Classical registration peers and the ICP refinement (posekit.registration.baselines)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from posekit.data.meshes import procedural_mesh
from posekit.data.render import render_depth
from posekit.data.scenes import default_intrinsics, look_at_camera
from posekit.errors import BadInputError
from posekit.eval.pose_error import add
from posekit.geometry.rigid_np import make_pose, rotation_about_axis
from posekit.io.depth import depth_to_points
from posekit.registration import baselines


def _case(family: str, seed: int, T_cam_model: np.ndarray) -> dict:
    """A procedural mesh, its model cloud and a clean 160x120 depth view of it in T_cam_model."""
    mesh, info = procedural_mesh(seed, family=family)
    points, normals = baselines.sample_model_cloud(mesh, 2048, seed=0)
    K = default_intrinsics(160, 120)
    observed = depth_to_points(render_depth(mesh, T_cam_model, K, 160, 120), K)
    assert len(observed) > 300, "the view must show the object"
    return {"mesh": mesh, "diameter": info.diameter, "points": points, "normals": normals,
            "observed": observed, "T": T_cam_model, "eval": mesh.sample_points(500, seed=1)}


@pytest.fixture(scope="module")
def side_view():
    """An asymmetric extruded star polygon on a table, seen from 0.5 m, 35 deg above the table."""
    T_world_model = make_pose(rotation_about_axis((0, 0, 1), 0.7), (0.0, 0.0, 0.06))
    elev, azim = math.radians(35), 0.3
    eye = 0.5 * np.array([math.cos(elev) * math.cos(azim), math.cos(elev) * math.sin(azim), math.sin(elev)])
    return _case("extrusion", 7, look_at_camera(eye, T_world_model[:3, 3]) @ T_world_model)


@pytest.fixture(scope="module")
def near_identity():
    """An asymmetric composite object seen 12 deg away from its identity orientation."""
    return _case("composite", 3, make_pose(rotation_about_axis((1, 2, 0.5), math.radians(12)), (0.02, -0.01, 0.6)))


def _add_rel(T, case) -> float:
    T_gt = case["T"]
    return add(T[:3, :3], T[:3, 3], T_gt[:3, :3], T_gt[:3, 3], case["eval"]) / case["diameter"]


def test_fpfh_ransac_icp_recovers_known_pose(side_view):
    case = side_view
    T, info = baselines.register_open3d_fpfh_ransac_icp(case["points"], case["normals"], case["observed"],
                                                         case["diameter"], rng=0)
    assert T.shape == (4, 4) and np.allclose(T[3], (0, 0, 0, 1))
    assert _add_rel(T, case) < 0.1
    assert info["ransac_fitness"] > 0.5 and info["time_ms"] > 0
    # the same seed gives the same answer
    T2, _ = baselines.register_open3d_fpfh_ransac_icp(case["points"], case["normals"], case["observed"],
                                                      case["diameter"], rng=0)
    assert np.allclose(T, T2, atol=1e-9)


def test_icp_from_centroid_recovers_a_pose_near_identity(near_identity):
    """Local ICP converges when the model is seen close to its identity orientation..."""
    case = near_identity
    T, info = baselines.register_open3d_icp(case["points"], case["normals"], case["observed"], case["diameter"])
    assert _add_rel(T, case) < 0.1
    assert info["fitness"] > 0.5


def test_icp_from_centroid_is_local(side_view):
    """...and not for a view far from it: it is the naive peer."""
    case = side_view
    T, _ = baselines.register_open3d_icp(case["points"], case["normals"], case["observed"], case["diameter"])
    assert _add_rel(T, case) > 0.1


def test_refine_icp_improves_a_perturbed_pose(side_view):
    case, d = side_view, side_view["diameter"]
    T0 = case["T"].copy()
    T0[:3, :3] = rotation_about_axis((0.3, -1.0, 0.4), math.radians(8)) @ T0[:3, :3]
    T0[:3, 3] += np.array([0.04, -0.03, 0.02]) * d
    T = baselines.refine_icp(T0, case["points"], case["normals"], case["observed"], d)
    before, after = _add_rel(T0, case), _add_rel(T, case)
    assert before > 0.05
    assert after < 0.02 and after < before / 3
    # model normals may be omitted (estimated from the points)
    T_n = baselines.refine_icp(T0, case["points"], None, case["observed"], d)
    assert _add_rel(T_n, case) < 0.03


def test_refine_icp_keeps_pose_when_nothing_is_in_reach(side_view):
    case = side_view
    far = case["observed"] + np.array([0.0, 0.0, 5.0], dtype=np.float32)
    T = baselines.refine_icp(case["T"], case["points"], case["normals"], far, case["diameter"])
    assert np.allclose(T, case["T"])


def test_small_gicp_from_centroid_when_installed(near_identity):
    pytest.importorskip("small_gicp")
    case = near_identity
    T, _ = baselines.register_small_gicp(case["points"], case["normals"], case["observed"], case["diameter"])
    assert _add_rel(T, case) < 0.1


PEERS = [baselines.register_open3d_fpfh_ransac_icp, baselines.register_open3d_icp]


@pytest.mark.parametrize("register", PEERS + [lambda m, n, o, d, rng=None: baselines.refine_icp(np.eye(4), m, n, o, d)],
                         ids=["fpfh_ransac_icp", "icp", "refine_icp"])
@pytest.mark.parametrize("bad, match", [
    ("empty", "empty"), ("nan", "NaN"), ("tiny", "at least"), ("mm", "millimetres"),
    ("diameter", "diameter"), ("normals", "normals"), ("model", "model has"),
])
def test_bad_input_is_a_clear_error(side_view, register, bad, match):
    case = side_view
    model, normals, observed, d = case["points"], case["normals"], case["observed"].copy(), case["diameter"]
    if bad == "empty":
        observed = np.zeros((0, 3), np.float32)
    elif bad == "nan":
        observed[5] = np.nan
    elif bad == "tiny":
        observed = observed[:4]
    elif bad == "mm":
        observed = observed * 1000.0
    elif bad == "diameter":
        d = 0.0
    elif bad == "normals":
        normals = normals[:10]
    elif bad == "model":
        model, normals = model[:5], normals[:5]
    with pytest.raises(BadInputError, match=match):
        register(model, normals, observed, d)


def test_small_gicp_missing_is_reported(monkeypatch, side_view):
    import builtins

    real_import = builtins.__import__

    def no_small_gicp(name, *args, **kwargs):
        if name == "small_gicp":
            raise ImportError("No module named 'small_gicp'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_small_gicp)
    with pytest.raises(BadInputError, match="small-gicp"):
        baselines.register_small_gicp(side_view["points"], side_view["normals"], side_view["observed"],
                                      side_view["diameter"])
