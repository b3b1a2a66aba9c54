"""ROS 2 benchmark: publish-to-result latency of the posekit nodes over the real middleware.

Each node whose engine (and shipped weights) is installed runs in an isolated in-process ROS 2
graph (own domain id, Fast DDS, discovery on this host) with its SingleThreadedExecutor and
one inference worker. A probe publishes synthetic inputs at fixed rates and records, per input
stamp, when the result with that stamp comes back:

* ``object_node``: 640x480 depth (32FC1) + CameraInfo + mask of one procedural object
  (input_mode depth, segmentation mask) at several rates; and segmented PointCloud2 inputs of
  several sizes at 5 Hz (input_mode pointcloud).
* ``body_node``: a 5,000-point cloud of a posed procedural body at several rates.
* ``view_node``: rgb8 crops of the network's input size (64x64) at several rates.

Per node: ``latency_ms_p50`` / ``latency_ms_p95`` at the reference rate (5 Hz, the target
"p95 <= 250 ms at 5 Hz" on 2 CPU cores), ``max_rate_hz`` (the highest tested rate at which
at least 90 % of the inputs are answered and p95 stays within 1.5x of the slowest rate's:
higher rates drop stale frames instead of queueing them), ``dropped_fraction`` (inputs never
answered, at the highest tested rate). Every measurement is in ``settings["measurements"]``.

It lives with the nodes (``posekit`` imports nothing from ROS); ``posekit bench ros`` reaches
it through the CLI adapter (:mod:`posekit.cli.ros`), which imports it when the command runs.
"""

from __future__ import annotations

import os
import platform
import time
from typing import Any

import numpy as np

from posekit.errors import BadInputError, MissingFileError

REFERENCE_RATE_HZ = 5.0
NODES = ("object_node", "body_node", "view_node")


def _percentiles(latencies_ms: list[float]) -> tuple[float, float]:
    if not latencies_ms:
        return float("nan"), float("nan")
    a = np.asarray(latencies_ms)
    return float(np.percentile(a, 50)), float(np.percentile(a, 95))


def object_depth_scene(seed: int, width: int = 640, height: int = 480):
    """Depth (H, W) float32 m of one procedural object ~0.7 m in front of a wall at 1.2 m, its
    mask (H, W) bool, K (3, 3) and the object's T_cam_model."""
    from posekit.data.meshes import procedural_mesh
    from posekit.data.render import render_depth
    from posekit.data.scenes import default_intrinsics
    from posekit.geometry.rigid_np import make_pose, random_rotation_np

    rng = np.random.default_rng(seed)
    mesh, _ = procedural_mesh(7)
    K = default_intrinsics(width, height)
    T = make_pose(random_rotation_np(rng), (0.02, -0.01, 0.7))
    obj = render_depth(mesh, T, K, width, height)
    mask = obj > 0
    depth = np.where(mask, obj, 1.2).astype(np.float32)
    return depth, mask, K, T


class _LatencyProbe:
    """Publishes inputs at a fixed rate and matches results to inputs by header stamp."""

    def __init__(self, graph, node_name: str, result_type, result_topic: str) -> None:
        self.node = graph.node(f"{node_name}_bench_probe")
        self.sent: dict[int, float] = {}
        self.latencies: dict[int, float] = {}
        self.node.create_subscription(result_type, result_topic, self._on_result, 50)

    def _on_result(self, msg) -> None:
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        sent = self.sent.get(stamp)
        if sent is not None and stamp not in self.latencies:
            self.latencies[stamp] = (time.monotonic() - sent) * 1e3

    def warm_up(self, publish, frames: int = 2, timeout_s: float = 60.0) -> None:
        """Send a few frames one at a time and wait for each answer (first calls load lazily)."""
        for _ in range(frames):
            stamp = time.time_ns()
            self.sent = {stamp: time.monotonic()}
            self.latencies.clear()
            publish(stamp)
            end = time.monotonic() + timeout_s
            while stamp not in self.latencies and time.monotonic() < end:
                time.sleep(0.01)

    def run(self, publish, rate_hz: float, seconds: float, settle_s: float = 2.0) -> dict[str, float]:
        """``publish(stamp_ns)`` at ``rate_hz`` for ``seconds``; then wait ``settle_s`` for results."""
        self.sent.clear()
        self.latencies.clear()
        period = 1.0 / rate_hz
        n = max(2, round(seconds * rate_hz))
        start = time.monotonic()
        base = time.time_ns()
        for i in range(n):
            target = start + i * period
            delay = target - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            stamp = base + i * 1_000_000
            self.sent[stamp] = time.monotonic()
            publish(stamp)
        end = time.monotonic() + settle_s
        while len(self.latencies) < n and time.monotonic() < end:
            time.sleep(0.02)
        lat = [self.latencies[s] for s in self.sent if s in self.latencies]
        p50, p95 = _percentiles(lat)
        return {"rate_hz": rate_hz, "sent": n, "answered": len(lat),
                "dropped_fraction": 1.0 - len(lat) / n, "latency_ms_p50": p50, "latency_ms_p95": p95,
                "output_rate_hz": len(lat) / (n * period)}


def _summary(sweep: list[dict[str, float]]) -> dict[str, float]:
    """The four numbers of a node from its rate sweep (see the module docstring)."""
    by_rate = sorted(sweep, key=lambda r: r["rate_hz"])
    ref = min(by_rate, key=lambda r: abs(r["rate_hz"] - REFERENCE_RATE_HZ))
    slow_p95 = by_rate[0]["latency_ms_p95"]
    sustained = [r["rate_hz"] for r in by_rate
                 if r["answered"] >= 0.9 * r["sent"] and r["latency_ms_p95"] <= 1.5 * slow_p95 + 5.0]
    return {
        "latency_ms_p50": round(ref["latency_ms_p50"], 1),
        "latency_ms_p95": round(ref["latency_ms_p95"], 1),
        "max_rate_hz": max(sustained) if sustained else 0.0,
        "dropped_fraction": round(by_rate[-1]["dropped_fraction"], 3),
    }


def bench_object_node(graph, rates, cloud_sizes, seconds, seed, estimator=None,
                      inputs=("depth", "pointcloud")) -> list[dict[str, Any]]:
    """Rate sweep with 640x480 depth + mask, then clouds of each size at 5 Hz."""
    from rclpy.parameter import Parameter
    from vision_msgs.msg import Detection3DArray

    from ros_nodes.object_pose_node import ObjectPoseNode

    rows = []
    for mode in inputs:
        params = [Parameter("model_files", value=["procedural:7"]), Parameter("model_ids", value=[1]),
                  Parameter("input_mode", value=mode), Parameter("publish_markers", value=False),
                  Parameter("segmentation", value="mask" if mode == "depth" else "none")]
        node = graph.add(ObjectPoseNode(estimator=estimator, context=graph.context,
                                        node_name=f"object_pose_node_{mode}", parameter_overrides=params))
        probe = _LatencyProbe(graph, f"object_{mode}", Detection3DArray, "detections")
        if mode == "depth":
            rows += _object_depth_sweep(graph, probe, rates, seconds, seed)
        else:
            rows += _object_cloud_sweep(graph, probe, cloud_sizes, seconds, seed)
        graph.executor.remove_node(node)
        node.stop_worker()
        node.destroy_node()
    return rows


def _object_depth_sweep(graph, probe, rates, seconds, seed) -> list[dict[str, Any]]:
    from sensor_msgs.msg import CameraInfo, Image

    from ros_nodes import messages as m
    from ros_nodes.node_base import reliability_qos

    factory = m.MessageFactory.rclpy()
    depth, mask, K, _ = object_depth_scene(seed)
    mask_u8 = (mask * 255).astype(np.uint8)
    qos = reliability_qos("reliable", 2)
    pub_depth = probe.node.create_publisher(Image, "depth", qos)
    pub_mask = probe.node.create_publisher(Image, "mask", qos)
    pub_info = probe.node.create_publisher(CameraInfo, "camera_info", 10)
    pubs = (pub_depth, pub_mask, pub_info)
    graph.wait_for(lambda: all(p.get_subscription_count() for p in pubs), 10.0)
    time.sleep(0.3)

    def publish(stamp):
        header = m.make_header(factory, stamp, "bench_camera")
        pub_info.publish(m.camera_info_message(factory, header, K, depth.shape[1], depth.shape[0]))
        pub_depth.publish(m.image_message(factory, header, depth, "32FC1"))
        pub_mask.publish(m.image_message(factory, header, mask_u8, "mono8"))

    probe.warm_up(publish)
    return [{"node": "object_node", "input": "depth 640x480 + mask", **probe.run(publish, rate, seconds)}
            for rate in rates]


def _object_cloud_sweep(graph, probe, cloud_sizes, seconds, seed) -> list[dict[str, Any]]:
    from sensor_msgs.msg import PointCloud2, PointField

    from posekit.io.pointcloud2 import array_to_pointcloud2
    from ros_nodes import messages as m
    from ros_nodes.node_base import reliability_qos
    from ros_nodes.object_processing import load_mesh

    factory = m.MessageFactory.rclpy()
    pub = probe.node.create_publisher(PointCloud2, "points", reliability_qos("reliable", 2))
    graph.wait_for(pub.get_subscription_count, 10.0)
    time.sleep(0.3)
    surface = load_mesh("procedural:7", 1.0)
    rows = []
    for size in cloud_sizes:
        points = (surface.sample_points(int(size), seed=seed) + np.array([0.0, 0.0, 0.7])).astype(np.float32)
        cloud = array_to_pointcloud2(points, msg_factory=PointCloud2, field_factory=PointField,
                                     header=m.make_header(factory, 0, "bench_camera"))

        def publish(stamp, cloud=cloud):
            cloud.header = m.make_header(factory, stamp, "bench_camera")
            pub.publish(cloud)

        probe.warm_up(publish)
        rows.append({"node": "object_node", "input": f"PointCloud2 {size} points",
                     **probe.run(publish, REFERENCE_RATE_HZ, seconds)})
    return rows


def bench_view_node(graph, rates, seconds, seed, estimator=None) -> list[dict[str, Any]]:
    from geometry_msgs.msg import PoseWithCovarianceStamped
    from sensor_msgs.msg import Image

    from ros_nodes import messages as m
    from ros_nodes.node_base import reliability_qos
    from ros_nodes.view_pose_node import ViewPoseNode

    factory = m.MessageFactory.rclpy()
    node = graph.add(ViewPoseNode(estimator=estimator, context=graph.context))
    probe = _LatencyProbe(graph, "view", PoseWithCovarianceStamped, "orientation")
    pub = probe.node.create_publisher(Image, "image", reliability_qos("reliable", 2))
    graph.wait_for(pub.get_subscription_count, 10.0)
    time.sleep(0.3)
    size = int(getattr(node.pipeline.estimator, "image_size", 64))  # the network's input size
    image = (np.random.default_rng(seed).random((size, size, 3)) * 255).astype(np.uint8)
    rows = []

    def publish(stamp):
        pub.publish(m.image_message(factory, m.make_header(factory, stamp, "crop"), image, "rgb8"))

    probe.warm_up(publish)
    for rate in rates:
        rows.append({"node": "view_node", "input": f"rgb8 {size}x{size}", **probe.run(publish, rate, seconds)})
    graph.executor.remove_node(node)
    node.stop_worker()
    node.destroy_node()
    return rows


def bench_body_node(graph, rates, seconds, seed, fitter=None) -> list[dict[str, Any]]:
    """Rate sweep with a 5,000-point cloud of a posed procedural body 2.5 m away."""
    from geometry_msgs.msg import PoseArray
    from sensor_msgs.msg import PointCloud2

    from posekit.body.clouds import make_body_batch
    from ros_nodes import messages as m
    from ros_nodes.body_node import BodyNode
    from ros_nodes.node_base import reliability_qos

    factory = m.MessageFactory.rclpy()
    node = graph.add(BodyNode(fitter=fitter, context=graph.context))
    body = node.pipeline.fitter.body
    batch = make_body_batch(body, np.random.default_rng(seed), 1, n_points=5000, translation=0.0)
    cloud = (batch.points[0].cpu().numpy() + np.array([0.0, 0.0, 2.5])).astype(np.float32)
    probe = _LatencyProbe(graph, "body", PoseArray, "joints")
    pub = probe.node.create_publisher(PointCloud2, "points", reliability_qos("reliable", 2))
    graph.wait_for(pub.get_subscription_count, 10.0)
    time.sleep(0.3)
    template = m.pointcloud2_message(factory, m.make_header(factory, 0, "bench_lidar"), cloud)

    def publish(stamp):
        template.header = m.make_header(factory, stamp, "bench_lidar")
        pub.publish(template)

    probe.warm_up(publish)
    rows = [{"node": "body_node", "input": "PointCloud2 5000 points", **probe.run(publish, rate, seconds)}
            for rate in rates]
    graph.executor.remove_node(node)
    node.stop_worker()
    node.destroy_node()
    return rows


def available_nodes() -> dict[str, str]:
    """{node: reason} for the nodes that cannot be benchmarked here (engine or weights missing)."""
    import importlib.util

    from posekit import pretrained

    missing = {}
    if "registration-procedural" not in pretrained.available("registration"):
        missing["object_node"] = "no shipped registration-procedural weights"
    if "view-symsol" not in pretrained.available("view"):
        missing["view_node"] = "no shipped view-symsol weights"
    if importlib.util.find_spec("ros_nodes.body_node") is None:
        missing["body_node"] = "no body node in this build"
    elif "body-default" not in pretrained.available("body"):
        missing["body_node"] = "no shipped body-default weights"
    return missing


def run_ros_benchmark(quick: bool = False, seconds: float | None = None, nodes=None, seed: int = 0,
                      estimators: dict[str, Any] | None = None,
                      object_inputs=("depth", "pointcloud")) -> dict[str, Any]:
    """Run the benchmark; returns ``{"benchmark": "ros", "settings": ..., "methods": ...}``.

    ``estimators`` ({"object_node": obj, ...}) replaces the shipped engines (tests);
    ``object_inputs`` picks the object node's input modes.
    """
    try:
        import rclpy  # noqa: F401
    except ImportError as err:
        raise MissingFileError("posekit bench ros needs the ROS 2 wheels: pip install -e '.[ros]'") from err
    from ros_nodes.testing import RosGraph

    estimators = estimators or {}
    seconds = float(seconds if seconds is not None else (3.0 if quick else 8.0))
    if seconds <= 0:
        raise BadInputError(f"seconds per rate must be positive, got {seconds}")
    rates = [2.0, 5.0] if quick else [2.0, 5.0, 10.0, 20.0]
    cloud_sizes = [5_000] if quick else [2_000, 20_000, 100_000]
    skipped = {k: v for k, v in available_nodes().items() if k not in estimators}
    wanted = [n for n in (nodes or NODES) if n not in skipped]
    measurements: list[dict[str, Any]] = []
    methods: dict[str, dict[str, float]] = {}
    with RosGraph() as graph:
        if "object_node" in wanted:
            rows = bench_object_node(graph, rates, cloud_sizes, seconds, seed,
                                     estimators.get("object_node"), object_inputs)
            measurements += rows
            sweep = [r for r in rows if not r["input"].startswith("PointCloud2")] or rows
            methods["object_node"] = _summary(sweep)
        if "body_node" in wanted:
            rows = bench_body_node(graph, rates, seconds, seed, estimators.get("body_node"))
            measurements += rows
            methods["body_node"] = _summary(rows)
        if "view_node" in wanted:
            rows = bench_view_node(graph, rates, seconds, seed, estimators.get("view_node"))
            measurements += rows
            methods["view_node"] = _summary(rows)
    for row in measurements:
        for k in ("latency_ms_p50", "latency_ms_p95", "output_rate_hz", "dropped_fraction"):
            row[k] = round(float(row[k]), 3)
    return {
        "benchmark": "ros",
        "settings": {
            "quick": quick, "seconds_per_rate": seconds, "rates_hz": rates,
            "reference_rate_hz": REFERENCE_RATE_HZ, "cloud_sizes": cloud_sizes,
            "depth_image": "640x480 32FC1 + mono8 mask", "middleware": "rmw_fastrtps_cpp, in-process",
            "input_qos": "reliable, depth 2", "cpu_count": os.cpu_count(),
            "machine": platform.platform(), "seed": seed, "skipped": skipped,
            "measurements": measurements,
        },
        "methods": methods,
    }


def format_table(result: dict[str, Any]) -> str:
    header = (f"{'node':<12} {'input':<26} {'rate Hz':>7} {'sent':>5} {'answered':>8} "
              f"{'p50 ms':>8} {'p95 ms':>8} {'dropped':>8}")
    lines = [header]
    for r in result["settings"]["measurements"]:
        lines.append(f"{r['node']:<12} {r['input']:<26} {r['rate_hz']:>7.1f} {r['sent']:>5d} "
                     f"{r['answered']:>8d} {r['latency_ms_p50']:>8.1f} {r['latency_ms_p95']:>8.1f} "
                     f"{r['dropped_fraction']:>8.2f}")
    lines.append("")
    lines.append(f"{'node':<12} {'p50 ms':>8} {'p95 ms':>8} {'max rate Hz':>12} {'dropped':>8}  "
                 f"(at {REFERENCE_RATE_HZ:g} Hz; dropped at the highest rate)")
    for name, s in result["methods"].items():
        lines.append(f"{name:<12} {s['latency_ms_p50']:>8.1f} {s['latency_ms_p95']:>8.1f} "
                     f"{s['max_rate_hz']:>12.1f} {s['dropped_fraction']:>8.2f}")
    for name, why in result["settings"]["skipped"].items():
        lines.append(f"{name:<12} skipped: {why}")
    return "\n".join(lines)
