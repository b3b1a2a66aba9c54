"""One home for the object engine's settings: the API, the CLI and the ROS node run what the
model card measured (the weights' ``inference`` config) unless told otherwise."""

from __future__ import annotations

import argparse

import pytest

from posekit.registration.estimator import InferenceConfig, ObjectPoseEstimator


def _settings(est: ObjectPoseEstimator) -> dict:
    return {"chains": est.num_hypotheses, "steps": None if est.schedule is None else est.schedule.steps,
            "icp": est.refine_icp, "coarse": est.coarse_rotations, "icp_candidates": est.icp_candidates,
            "match_iters": est.match_iters, "flips": est.inference.flip_candidates}


@pytest.fixture(scope="module")
def api():
    return ObjectPoseEstimator.from_pretrained("registration-procedural")


def test_api_uses_the_weights_inference_settings(api):
    inference = InferenceConfig(**api.config.get("inference", {}))
    assert api.num_hypotheses == inference.anchors
    assert api.schedule.steps == inference.sample_steps
    assert api.refine_icp == inference.refine_icp


def test_cli_default_is_the_api_default(api):
    from posekit.cli.registration import estimator_from_args, register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["register", "--model", "m.ply", "--observed", "o.ply"])
    assert _settings(estimator_from_args(args)) == _settings(api)
    args = parser.parse_args(["register", "--model", "m.ply", "--observed", "o.ply", "--hypotheses", "6", "--no-icp"])
    cli = estimator_from_args(args)
    assert (cli.num_hypotheses, cli.refine_icp) == (6, False)


def test_ros_node_default_is_the_api_default(api):
    pytest.importorskip("rclpy")
    from ros_nodes import object_processing as op
    from ros_nodes.parameters import COMMON_PARAMETERS, read_parameters_file, validate_parameters

    specs = (*COMMON_PARAMETERS, *op.PARAMETERS)
    pipeline = op.ObjectPosePipeline(validate_parameters(specs, {}))
    assert _settings(pipeline.estimator) == _settings(api)
    # the shipped YAML of the node says the same
    from pathlib import Path

    yaml_params = read_parameters_file(Path(__file__).parents[1] / "configs/ros/object_pose_node.yaml",
                                       "object_pose_node")
    pipeline = op.ObjectPosePipeline(validate_parameters(specs, yaml_params))
    assert _settings(pipeline.estimator) == _settings(api)


def test_result_says_where_the_time_went(api):
    from posekit.data.meshes import procedural_mesh

    mesh, _ = procedural_mesh(5)
    pts = mesh.sample_points(800, seed=1)
    pts = pts[pts[:, 2] < 0] + [0.0, 0.0, 0.7]  # one side, in front of the camera
    result = api.estimate(api.prepare_model(mesh), pts)
    assert result.success
    assert set(result.stage_ms) == {"inputs", "coarse_search", "chains", "scoring", "refinement"}
    assert all(v >= 0 for v in result.stage_ms.values())
    assert sum(result.stage_ms.values()) <= result.time_ms + 1.0
