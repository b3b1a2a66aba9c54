"""Offline replay (`posekit replay`) on a bag written by the test: no ROS install needed.

The bag holds a segmented object cloud per frame (ground truth known) and one unusable
cloud; replay must run the node's per-frame code, write CSV/JSON with the right poses and
skip the bad frame, and with --out-bag add the node's output topics, readable by rosbags,
stamped with the input headers.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from types import SimpleNamespace

import numpy as np
import pytest

from posekit.errors import BadInputError
from posekit.geometry.rigid_np import make_pose, random_rotation_np
from posekit.io.rosbag import BagMessage, write_bag
from ros_nodes.messages import matrix_from_pose, rosbags_typestore
from ros_nodes.object_processing import load_mesh
from ros_nodes.replay import replay_bag

N_SAMPLES = 400


class KabschEstimator:
    """ObjectPoseEstimator's interface, for plumbing tests: the model is N_SAMPLES surface
    points; ``estimate`` aligns them to the received cloud point by point (Kabsch)."""

    def prepare_model(self, mesh, obj_id=1):
        return SimpleNamespace(points=mesh.sample_points(N_SAMPLES, seed=1), obj_id=obj_id)

    def estimate(self, model, observed=None, **kwargs):
        start = time.perf_counter()
        P, Q = model.points, np.asarray(observed, dtype=np.float64)
        if len(Q) != len(P):
            return SimpleNamespace(success=False, reason=f"expected {len(P)} points, got {len(Q)}",
                                   R=None, t=None, T_cam_model=None, score=0.0, time_ms=0.0)
        pc, qc = P.mean(0), Q.mean(0)
        U, _, Vt = np.linalg.svd((P - pc).T @ (Q - qc))
        D = np.diag([1.0, 1.0, np.sign(np.linalg.det(Vt.T @ U.T))])
        R = Vt.T @ D @ U.T
        t = qc - R @ pc
        residual = np.linalg.norm(P @ R.T + t - Q, axis=1).mean()
        return SimpleNamespace(success=True, reason="", R=R, t=t, T_cam_model=make_pose(R, t),
                               score=float(np.exp(-residual / 0.01)),
                               time_ms=(time.perf_counter() - start) * 1e3)


def _write_scene_bag(path, n_frames=4, seed=0):
    rng = np.random.default_rng(seed)
    model_points = load_mesh("procedural:3", 1.0).sample_points(N_SAMPLES, seed=1)
    truth, messages = {}, []
    for i in range(n_frames):
        t_ns = 1_000_000_000 + i * 100_000_000
        T = make_pose(random_rotation_np(rng), rng.uniform([-0.2, -0.2, 0.6], [0.2, 0.2, 1.2]))
        truth[t_ns] = T
        cloud = (model_points @ T[:3, :3].T + T[:3, 3]).astype(np.float32)
        messages.append(BagMessage("/camera/object_points", t_ns, cloud, frame_id="cam_optical"))
    # An unusable frame: every point beyond the depth range.
    messages.append(BagMessage("/camera/object_points", 2_000_000_000,
                               np.full((N_SAMPLES, 3), 9.0, np.float32), frame_id="cam_optical"))
    # A topic of another type that replay must leave alone (and copy to the output bag).
    messages.append(BagMessage("/camera/rgb", 1_000_000_000, np.zeros((4, 5, 3), np.uint8)))
    write_bag(path, messages)
    return truth


def test_replay_writes_results_and_a_bag_with_the_node_outputs(tmp_path):
    from rosbags.highlevel import AnyReader

    bag = tmp_path / "scene_bag"
    truth = _write_scene_bag(bag)
    config = tmp_path / "object.yaml"
    config.write_text("object_pose_node:\n  ros__parameters:\n    model_files: ['procedural:3']\n"
                      "    model_ids: [5]\n    depth_max: 2.0\n")
    summary = replay_bag(bag, "object", tmp_path / "out", config=config, out_bag=tmp_path / "out_bag",
                         estimator=KabschEstimator(), progress=False)
    assert summary.messages == 5 and summary.frames == 4 and summary.successes == 4
    assert sum(summary.skipped.values()) == 1 and "depth range" in next(iter(summary.skipped))

    with open(tmp_path / "out" / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["stamp_ns"]) for r in rows] == sorted(truth)
    for r in rows:
        T = truth[int(r["stamp_ns"])]
        assert r["obj_id"] == "5" and r["frame_id"] == "cam_optical" and r["success"] == "True"
        np.testing.assert_allclose([float(r["tx"]), float(r["ty"]), float(r["tz"])], T[:3, 3], atol=1e-5)
    report = json.loads((tmp_path / "out" / "results.json").read_text())
    assert report["inputs"] == {"points": "/camera/object_points"}
    assert len(report["frames"]) == 4
    np.testing.assert_allclose(report["frames"][0]["estimates"][0]["T_cam_model"], truth[min(truth)], atol=1e-5)

    store = rosbags_typestore()
    with AnyReader([tmp_path / "out_bag"], default_typestore=store) as reader:
        topics = {c.topic: c.msgtype for c in reader.connections}
        assert topics["/detections"] == "vision_msgs/msg/Detection3DArray"
        assert topics["/tf"] == "tf2_msgs/msg/TFMessage"
        assert topics["/pose/object_5"] == "geometry_msgs/msg/PoseStamped"
        assert "/camera/rgb" in topics and "/camera/object_points" in topics
        counts = {c.topic: c.msgcount for c in reader.connections}
        assert counts["/camera/object_points"] == 5 and counts["/detections"] == 4
        seen = 0
        for connection, timestamp, raw in reader.messages():
            if connection.topic != "/detections":
                continue
            msg = reader.deserialize(raw, connection.msgtype)
            stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
            assert stamp == timestamp and msg.header.frame_id == "cam_optical"
            hyp = msg.detections[0].results[0]
            assert hyp.hypothesis.class_id == "5"
            np.testing.assert_allclose(matrix_from_pose(hyp.pose.pose), truth[stamp], atol=1e-5)
            seen += 1
        assert seen == 4


def test_replay_cli_and_clear_errors(tmp_path, capsys):
    from posekit.cli.ros import register

    bag = tmp_path / "bag"
    _write_scene_bag(bag, n_frames=1)
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    # An unknown parameter in the config is an error that names the valid ones.
    bad_config = tmp_path / "bad.yaml"
    bad_config.write_text("object_pose_node:\n  ros__parameters:\n    num_hypothesis: 3\n")
    args = parser.parse_args(["replay", "--bag", str(bag), "--engine", "object", "--config",
                              str(bad_config), "--out", str(tmp_path / "o1"), "--no-progress"])
    with pytest.raises(BadInputError, match="num_hypothesis"):
        args.func(args)
    # A topic that is not in the bag.
    args = parser.parse_args(["replay", "--bag", str(bag), "--engine", "object", "--topic",
                              "points=/nope", "--out", str(tmp_path / "o2"), "--no-progress"])
    with pytest.raises(BadInputError, match="no topic /nope"):
        args.func(args)


def test_replay_view_engine_on_image_topic(tmp_path):
    from test_ros_view_node import R_TRUE, ConcentratedViewEstimator

    bag = tmp_path / "images"
    write_bag(bag, [BagMessage("/crop/image", 10 + i, np.full((24, 24, 3), 200, np.uint8), frame_id="crop")
                    for i in range(3)] + [BagMessage("/crop/depth", 11, np.ones((24, 24), np.float32))])
    summary = replay_bag(bag, "view", tmp_path / "out", topics={"image": "/crop/image"},
                         estimator=ConcentratedViewEstimator(), progress=False)
    assert summary.frames == 3 and summary.successes == 3
    frames = json.loads((tmp_path / "out" / "results.json").read_text())["frames"]
    R = np.asarray(frames[0]["R_mode"])
    angle = np.degrees(np.arccos(np.clip((np.trace(R_TRUE.T @ R) - 1) / 2, -1, 1)))
    assert angle < 15.0 and frames[0]["frame_id"] == "crop"


def test_replay_depth_camera_info_and_mask_are_paired_as_in_the_node(tmp_path):
    from test_ros_object_node import MaskCentroidEstimator

    h, w = 30, 40
    K = np.array([[50.0, 0, 19.5], [0, 50.0, 14.5], [0, 0, 1]])
    depth = np.zeros((h, w), np.float32)
    depth[5:15, 10:20] = 0.9
    mask = np.zeros((h, w), np.uint8)
    mask[5:15, 10:20] = 255
    messages = [BagMessage("/cam/depth/camera_info", 1, {"K": K, "width": w, "height": h}, "cam")]
    for i, t in enumerate((100, 200, 300)):
        messages.append(BagMessage("/cam/depth/image_rect_raw", t, depth * (1 + 0.1 * i), "cam", encoding="16UC1"))
        messages.append(BagMessage("/seg/mask", t + 1, mask, "cam"))
    write_bag(tmp_path / "bag", messages)
    config = tmp_path / "depth.yaml"
    config.write_text("object_pose_node:\n  ros__parameters:\n    input_mode: depth\n    segmentation: mask\n")
    summary = replay_bag(tmp_path / "bag", "object", tmp_path / "out", config=config,
                         topics={"depth": "/cam/depth/image_rect_raw"}, estimator=MaskCentroidEstimator(),
                         progress=False)
    assert summary.frames == 3 and summary.successes == 3
    report = json.loads((tmp_path / "out" / "results.json").read_text())
    assert report["inputs"] == {"camera_info": "/cam/depth/camera_info",
                                "depth": "/cam/depth/image_rect_raw", "mask": "/seg/mask"}
    z = [f["estimates"][0]["T_cam_model"][2][3] for f in report["frames"]]
    np.testing.assert_allclose(z, [0.9, 0.99, 1.08], atol=1e-3)  # 16UC1 keeps whole millimetres


def test_replay_rgbd_with_the_shipped_view_model(tmp_path):
    """Replay pairs depth, mask and a bgr8 colour image as the node does, and the pipeline
    loads the shipped view-lmo model from view_weights: the chains' seeds are its modes on
    the decoded RGB image."""
    from test_ros_object_node import ViewSeededEstimator

    from posekit.view.estimator import ViewPoseEstimator

    h, w = 120, 160
    K = np.array([[150.0, 0, 79.5], [0, 150.0, 59.5], [0, 0, 1]])
    depth = np.zeros((h, w), np.float32)
    depth[40:80, 60:110] = 0.8
    mask = np.zeros((h, w), np.uint8)
    mask[40:80, 60:110] = 255
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (h, w, 3), dtype=np.uint8) for _ in range(2)]
    messages = [BagMessage("/cam/depth/camera_info", 1, {"K": K, "width": w, "height": h}, "cam")]
    for i, t in enumerate((100, 200)):
        messages.append(BagMessage("/cam/depth/image_rect_raw", t, depth, "cam", encoding="16UC1"))
        messages.append(BagMessage("/seg/mask", t + 1, mask, "cam"))
        messages.append(BagMessage("/cam/color/image_raw", t + 2, images[i][..., ::-1].copy(), "cam", encoding="bgr8"))
    write_bag(tmp_path / "bag", messages)
    config = tmp_path / "rgbd.yaml"
    config.write_text("object_pose_node:\n  ros__parameters:\n    input_mode: depth\n    segmentation: mask\n"
                      "    model_ids: [5]\n    view_weights: view-lmo\n    view_starts: 2\n")
    estimator = ViewSeededEstimator()
    summary = replay_bag(tmp_path / "bag", "object", tmp_path / "out", config=config,
                         topics={"depth": "/cam/depth/image_rect_raw", "image": "/cam/color/image_raw"},
                         estimator=estimator, progress=False)
    assert summary.frames == 2 and summary.successes == 2
    report = json.loads((tmp_path / "out" / "results.json").read_text())
    assert report["inputs"]["image"] == "/cam/color/image_raw"
    view = ViewPoseEstimator.from_pretrained("view-lmo")
    for frame, image, call in zip(report["frames"], images, estimator.calls):
        np.testing.assert_array_equal(call["rgb"], image)
        assert call["view_starts"] == 2
        expected = view.predict(image, obj_id=5, mask=mask > 0, K=K).top_modes(1)[0][0]
        np.testing.assert_allclose(np.asarray(frame["estimates"][0]["T_cam_model"])[:3, :3], expected, atol=1e-6)
