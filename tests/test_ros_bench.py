"""``posekit bench ros`` machinery on the real middleware, with quick stand-in engines.

The shipped engines are measured by ``posekit bench ros`` itself; here the nodes get fast
estimators (from the node tests) so the latency bookkeeping, the JSON shape and the summary
rules are checked in a few seconds: fast engines at 2 and 5 Hz must answer every input, with
positive latencies well under a second.
"""

from __future__ import annotations

import argparse
import json
import math

import pytest

pytest.importorskip("rclpy")
pytest.importorskip("vision_msgs.msg", reason="run ros_nodes/interfaces/build.py")

from test_ros_replay import KabschEstimator
from test_ros_view_node import ConcentratedViewEstimator

from ros_nodes.benchmark import _summary, format_table, run_ros_benchmark


def test_bench_ros_quick_shape_and_numbers(tmp_path):
    result = run_ros_benchmark(
        quick=True, seconds=1.5, nodes=["object_node", "view_node"],
        estimators={"object_node": KabschEstimator(), "view_node": ConcentratedViewEstimator()},
        object_inputs=("pointcloud",))
    assert set(result) == {"benchmark", "settings", "methods"} and result["benchmark"] == "ros"
    assert set(result["methods"]) == {"object_node", "view_node"}
    for name, numbers in result["methods"].items():
        assert set(numbers) == {"latency_ms_p50", "latency_ms_p95", "max_rate_hz", "dropped_fraction"}
        assert 0 < numbers["latency_ms_p50"] <= numbers["latency_ms_p95"] < 1000, (name, numbers)
        assert numbers["dropped_fraction"] == 0.0
    assert result["methods"]["view_node"]["max_rate_hz"] == 5.0
    rows = result["settings"]["measurements"]
    assert {r["input"] for r in rows} == {"PointCloud2 5000 points", "rgb8 64x64"}
    assert all(r["answered"] == r["sent"] for r in rows)
    json.dumps(result)  # JSON-clean
    table = format_table(result)
    assert "object_node" in table and "view_node" in table


def test_summary_rules():
    def row(rate, sent, answered, p95):
        return {"rate_hz": rate, "sent": sent, "answered": answered, "latency_ms_p50": p95 / 2,
                "latency_ms_p95": p95, "dropped_fraction": 1 - answered / sent}

    # 10 Hz drops frames (stale ones), 20 Hz lets latency grow: 5 Hz is the highest sustained.
    s = _summary([row(2, 10, 10, 100), row(5, 25, 25, 120), row(10, 50, 30, 130), row(20, 100, 90, 400)])
    assert s == {"latency_ms_p50": 60.0, "latency_ms_p95": 120.0, "max_rate_hz": 5, "dropped_fraction": 0.1}
    assert _summary([row(2, 10, 0, math.nan)])["max_rate_hz"] == 0.0


def test_bench_ros_cli_arguments():
    from posekit.cli.ros import register_bench_ros

    parser = argparse.ArgumentParser()
    register_bench_ros(parser.add_subparsers())
    args = parser.parse_args(["ros", "--quick", "--json", "out.json", "--nodes", "object_node"])
    assert args.quick and args.nodes == ["object_node"] and args.func.__name__ == "run_bench_ros"
