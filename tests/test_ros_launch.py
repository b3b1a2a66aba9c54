"""Launch files and parameter files: checked statically, then the same nodes started as
subprocesses from the same parameter files over the real middleware.

``ros2 launch`` is not installable here (launch/launch_ros are not on PyPI; the PyPI package
called ``launch`` is another project), so the Python launch files run with recording
stand-ins for the launch classes and the XML files are parsed: every executable must be a
posekit console script, every parameters file must load with only declared, valid
parameters, every remapping must name a real input of the node.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import signal
import subprocess
import sys
import time
import types
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from ros_nodes import NODES
from ros_nodes.parameters import COMMON_PARAMETERS, read_parameters_file, validate_parameters

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

REPO = Path(__file__).resolve().parents[1]
LAUNCH_DIR = REPO / "launch"
TOPIC_NAME = re.compile(r"^/?[A-Za-z_~{][A-Za-z0-9_/{}~]*$")


class _Recorded:
    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


def _python_launch_nodes(path: Path, monkeypatch) -> list[dict]:
    """Run generate_launch_description() with stand-ins; the Node actions it builds."""
    kinds = {}
    for name in ("LaunchDescription", "DeclareLaunchArgument", "LaunchConfiguration", "Node"):
        kinds[name] = type(name, (_Recorded,), {})
    modules = {"launch": types.ModuleType("launch"), "launch.actions": types.ModuleType("launch.actions"),
               "launch.substitutions": types.ModuleType("launch.substitutions"),
               "launch_ros": types.ModuleType("launch_ros"),
               "launch_ros.actions": types.ModuleType("launch_ros.actions")}
    modules["launch"].LaunchDescription = kinds["LaunchDescription"]
    modules["launch.actions"].DeclareLaunchArgument = kinds["DeclareLaunchArgument"]
    modules["launch.substitutions"].LaunchConfiguration = kinds["LaunchConfiguration"]
    modules["launch_ros.actions"].Node = kinds["Node"]
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    spec = importlib.util.spec_from_file_location(path.stem.replace(".", "_"), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    actions = description.args[0]
    defaults = {a.args[0] if a.args else a.kwargs["name"]: a.kwargs["default_value"]
                for a in actions if isinstance(a, kinds["DeclareLaunchArgument"])}

    def resolve(value):
        if isinstance(value, kinds["LaunchConfiguration"]):
            return defaults[value.args[0]]
        return value

    nodes = []
    for action in actions:
        if isinstance(action, kinds["Node"]):
            kw = action.kwargs
            nodes.append({
                "executable": kw["executable"], "name": kw["name"],
                "params": [Path(resolve(p)) for p in kw.get("parameters", [])],
                "remaps": [(src, resolve(dst)) for src, dst in kw.get("remappings", [])],
            })
    return nodes


def _xml_launch_nodes(path: Path) -> list[dict]:
    root = ET.parse(path).getroot()
    assert root.tag == "launch"
    args = {a.get("name"): a.get("default") for a in root.iter("arg")}

    def resolve(text: str) -> str:
        text = text.replace("$(dirname)", str(path.parent))
        return re.sub(r"\$\(var (\w+)\)", lambda mt: resolve(args[mt.group(1)]), text)

    nodes = []
    for node in root.iter("node"):
        nodes.append({
            "executable": node.get("exec"), "name": node.get("name"),
            "params": [Path(resolve(p.get("from"))).resolve() for p in node.iter("param")],
            "remaps": [(r.get("from"), resolve(r.get("to"))) for r in node.iter("remap")],
        })
    return nodes


LAUNCH_FILES = sorted(LAUNCH_DIR.glob("*.launch.py")) + sorted(LAUNCH_DIR.glob("*.launch.xml"))


def test_every_node_has_launch_files_in_both_formats():
    names = {p.name for p in LAUNCH_FILES}
    for node in NODES:
        stem = node.removesuffix("_node")
        assert {f"{stem}.launch.py", f"{stem}.launch.xml"} <= names, node
    assert {"pipeline.launch.py", "pipeline.launch.xml"} <= names


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_is_consistent(path, monkeypatch):
    nodes = _python_launch_nodes(path, monkeypatch) if path.suffix == ".py" else _xml_launch_nodes(path)
    assert nodes, f"{path.name} launches no node"
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    for node in nodes:
        info = NODES[node["name"]]
        assert node["executable"] == info["executable"]
        # The console script exists and points at the node's main().
        assert scripts.get(node["executable"]) == f"{info['module']}:main", (
            f"pyproject.toml [project.scripts] needs {node['executable']} = \"{info['module']}:main\"")
        processing = importlib.import_module(info["processing"])
        # Every parameters file loads and holds only declared, valid parameters.
        assert node["params"], f"{node['name']} in {path.name} has no parameters file"
        for params_file in node["params"]:
            assert params_file.resolve() == (REPO / info["config"]).resolve()
            values = read_parameters_file(params_file, node["name"])
            params = validate_parameters((*COMMON_PARAMETERS, *processing.PARAMETERS), values)
            processing.check_settings(params)
            assert set(values) == set(params), "the shipped parameters file lists every parameter"
        # Remappings rename real inputs of the node to valid topic names.
        for src, dst in node["remaps"]:
            assert src in processing.INPUT_TOPICS, f"{path.name}: {src} is not an input of {node['name']}"
            assert TOPIC_NAME.match(dst), f"{path.name}: {dst!r} is not a valid topic name"
        assert {s for s, _ in node["remaps"]} == set(processing.INPUT_TOPICS)


def test_python_and_xml_launch_files_agree(monkeypatch):
    for py in LAUNCH_DIR.glob("*.launch.py"):
        xml = py.with_name(py.name.replace(".launch.py", ".launch.xml"))
        a = {n["name"]: n for n in _python_launch_nodes(py, monkeypatch)}
        b = {n["name"]: n for n in _xml_launch_nodes(xml)}
        assert a.keys() == b.keys()
        for name in a:
            assert a[name]["executable"] == b[name]["executable"]
            assert [p.resolve() for p in a[name]["params"]] == b[name]["params"]
            assert sorted(a[name]["remaps"]) == sorted(b[name]["remaps"])


# ---------------------------------------------------------------------------------------------
# Subprocess smoke test: the node started as on a robot, from the shipped parameters file.

rclpy = pytest.importorskip("rclpy")
vision_msgs = pytest.importorskip("vision_msgs.msg", reason="run ros_nodes/interfaces/build.py")


def _weights_override(node: str, tmp_path) -> list[str]:
    """Extra --params-file arguments giving the node untrained weights when none are shipped
    yet (the smoke test checks that the node comes up and answers, not its accuracy)."""
    import dataclasses

    import torch

    from posekit import pretrained
    from posekit.io.weights import save_weights

    shipped = {"object_pose_node": ("registration", "registration-procedural"),
               "body_node": ("body", "body-default"), "view_pose_node": ("view", "view-symsol")}
    engine, name = shipped[node]
    if name in pretrained.available(engine):
        return []
    torch.manual_seed(0)
    if node == "object_pose_node":
        from posekit.registration.denoiser import DenoiserConfig, RegistrationDenoiser

        state, config = RegistrationDenoiser(DenoiserConfig()).state_dict(), {"network": DenoiserConfig().to_dict()}
    elif node == "body_node":
        from posekit.body.network import BodyNet, BodyNetConfig

        state, config = BodyNet(BodyNetConfig()).state_dict(), {"network": dataclasses.asdict(BodyNetConfig())}
    else:
        pytest.skip(f"no shipped {name} weights, and building the view network takes ~25 s here")
    weights = save_weights(state, tmp_path / "untrained.pt", {"engine": engine, "config": config})
    override = tmp_path / "override.yaml"
    override.write_text(f"{node}:\n  ros__parameters:\n    weights: {weights}\n")
    return ["--params-file", str(override)]


def _start(args: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", *args], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _smoke_input(node: str, factory):
    """(input topic, message type, message, answer topic, answer type) for each node."""
    from geometry_msgs.msg import PoseArray, PoseWithCovarianceStamped
    from sensor_msgs.msg import Image, PointCloud2

    from posekit.geometry.rigid_np import make_pose, rotation_about_axis
    from ros_nodes import messages as m
    from ros_nodes.object_processing import load_mesh

    header = m.make_header(factory, 42_000_000_007, "smoke_camera")
    if node == "object_pose_node":
        T = make_pose(rotation_about_axis((0, 1, 0), 0.4), (0.05, -0.02, 0.8))
        points = load_mesh("procedural:7", 1.0).sample_points(800, seed=0) @ T[:3, :3].T + T[:3, 3]
        return ("/points", PointCloud2, m.pointcloud2_message(factory, header, points),
                "/detections", vision_msgs.Detection3DArray)
    if node == "body_node":
        from posekit.body.clouds import make_body_batch
        from posekit.body.model import load_body_model

        batch = make_body_batch(load_body_model(None), np.random.default_rng(0), 1, n_points=3000,
                                translation=0.0)
        points = batch.points[0].numpy() + np.array([0.0, 0.0, 2.5], np.float32)
        return "/points", PointCloud2, m.pointcloud2_message(factory, header, points), "/joints", PoseArray
    image = (np.random.default_rng(0).random((96, 96, 3)) * 255).astype(np.uint8)
    return ("/image", Image, m.image_message(factory, header, image, "rgb8"), "/orientation",
            PoseWithCovarianceStamped)


@pytest.mark.slow
@pytest.mark.parametrize("node_name", list(NODES))
def test_node_subprocess_from_params_file_answers_and_exits_cleanly(node_name, tmp_path):
    from ros_nodes.messages import MessageFactory
    from ros_nodes.node_base import reliability_qos
    from ros_nodes.testing import RosGraph

    info = NODES[node_name]
    override = _weights_override(node_name, tmp_path)
    in_topic, in_type, msg, out_topic, out_type = _smoke_input(node_name, MessageFactory.rclpy())
    with RosGraph() as graph:
        proc = _start([info["module"], "--ros-args", "--params-file", str(REPO / info["config"]),
                       *override], graph.env())
        try:
            probe = graph.node("smoke_probe")
            answers = []
            probe.create_subscription(out_type, out_topic, answers.append, 10)
            pub = probe.create_publisher(in_type, in_topic, reliability_qos("reliable", 5))
            up = graph.wait_for(lambda: pub.get_subscription_count() > 0
                                and probe.count_publishers(out_topic) > 0, 90.0)
            if not up:
                proc.send_signal(signal.SIGINT)
                pytest.fail("node did not come up:\n" + proc.communicate(timeout=20)[0])
            deadline = time.monotonic() + 60.0
            while not answers and time.monotonic() < deadline:
                pub.publish(msg)  # repeated until answered: the first may race discovery
                graph.wait_for(lambda: answers, 3.0)
            if not answers:
                proc.send_signal(signal.SIGINT)
                pytest.fail("no answer came back; node output:\n" + proc.communicate(timeout=20)[0])
            assert answers[0].header.frame_id == "smoke_camera"
            assert (answers[0].header.stamp.sec, answers[0].header.stamp.nanosec) == (42, 7)
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                out, _ = proc.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, _ = proc.communicate()
        assert proc.returncode == 0, out


@pytest.mark.parametrize("extra, message", [
    ("    depth_min: 2.0\n    depth_max: 1.0\n", "depth_min (2.0) must be below depth_max (1.0)"),
    ("    num_hypotheses: 500\n", "num_hypotheses out of range"),
])
def test_node_subprocess_with_invalid_parameters_exits_with_a_clear_error(tmp_path, extra, message):
    bad = tmp_path / "bad.yaml"
    bad.write_text("object_pose_node:\n  ros__parameters:\n" + extra)
    env = dict(__import__("os").environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    proc = _start(["ros_nodes.object_pose_node", "--ros-args", "--params-file",
                   str(REPO / NODES["object_pose_node"]["config"]), "--params-file", str(bad)], env)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1, out
    assert message in out and "Traceback" not in out, out
