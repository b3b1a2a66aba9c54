"""The library is free of its adapters: nothing in posekit/ imports ROS or ros_nodes.

shared/STYLE.md: "posekit/ holds all logic and imports nothing from ROS". The scan reads
every source file with ast (module-level and function-local imports alike). The one place
that may name ros_nodes is the CLI adapter posekit/cli/ros.py, which loads the replay and
the node benchmark by name when those commands run.
"""

from __future__ import annotations

import ast
from pathlib import Path

import posekit

ROOT = Path(posekit.__file__).parent
ROS_ADAPTER = ROOT / "cli" / "ros.py"


def _is_ros_module(name: str) -> bool:
    top = name.split(".")[0]
    return top in ("rclpy", "ros_nodes", "rosidl_runtime_py", "launch", "launch_ros") or top.endswith("_msgs")


def _label(path: Path) -> str:
    return str(path.relative_to(ROOT.parent)) if path.is_relative_to(ROOT.parent) else path.name


def ros_imports(path: Path) -> list[str]:
    """'file:line module' for each import of a ROS module in ``path``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        found += [f"{_label(path)}:{node.lineno} {n}" for n in names if _is_ros_module(n)]
    return found


def ros_nodes_mentions(path: Path) -> list[str]:
    """Code (string constants, e.g. for importlib) that names the ros_nodes package."""
    tree = ast.parse(path.read_text(), filename=str(path))
    return [f"{_label(path)}:{node.lineno}" for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and node.value.startswith("ros_nodes")]


def test_the_scan_finds_ros_imports(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("import os\ndef f():\n    import rclpy\n    from vision_msgs.msg import D\n"
                     "    from ros_nodes.replay import replay_bag\n    from . import x\n"
                     "    importlib.import_module('ros_nodes.benchmark')\n")
    found = ros_imports(probe)
    assert ros_nodes_mentions(probe) == ["probe.py:7"]
    assert [f.split()[-1] for f in found] == ["rclpy", "vision_msgs.msg", "ros_nodes.replay"]


def test_posekit_imports_nothing_from_ros():
    files = sorted(ROOT.rglob("*.py"))
    assert len(files) > 50  # the whole package is scanned
    offenders = [hit for f in files for hit in ros_imports(f)]
    assert offenders == [], "posekit/ must not import ROS or ros_nodes:\n" + "\n".join(offenders)


def test_only_the_cli_adapter_names_ros_nodes():
    mentions = [m for f in sorted(ROOT.rglob("*.py")) if f != ROS_ADAPTER for m in ros_nodes_mentions(f)]
    assert mentions == []
    assert ros_nodes_mentions(ROS_ADAPTER)  # the adapter reaches replay and the benchmark by name


def test_bench_ros_is_reachable_from_the_cli():
    from posekit.cli import build_parser

    args = build_parser().parse_args(["bench", "ros", "--quick", "--nodes", "view_node"])
    assert args.func.__module__ == "posekit.cli.ros"
    import ros_nodes.benchmark as bench

    assert callable(bench.run_ros_benchmark) and callable(bench.format_table)


# Packages being rewritten by their owners (issue 14); their raises are reported, not checked here
# (the view engine is checked: issue 14, item 7).
OWNED_ELSEWHERE = ("registration", "body")
BUILTIN_ERRORS = {"ValueError", "RuntimeError", "TypeError", "KeyError", "IndexError", "OSError",
                  "Exception", "AssertionError", "FileNotFoundError", "IOError"}


def builtin_raises(path: Path) -> list[str]:
    """'file:line Name' for each ``raise Name(...)`` of a builtin error class in ``path``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and node.exc is not None:
            exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(exc, ast.Name) and exc.id in BUILTIN_ERRORS:
                found.append(f"{_label(path)}:{node.lineno} {exc.id}")
    return found


def test_errors_raised_on_purpose_are_posekit_errors():
    files = [f for f in sorted(ROOT.rglob("*.py"))
             if f.relative_to(ROOT).parts[0] not in OWNED_ELSEWHERE]
    offenders = [hit for f in files for hit in builtin_raises(f)]
    assert offenders == [], "raise a posekit.errors class (it may also subclass ValueError):\n" + "\n".join(offenders)


def test_builtin_raise_scan_finds_them(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("def f(x):\n    if x:\n        raise ValueError('x')\n    raise RuntimeError\n"
                     "def g():\n    raise NotImplementedError\n")
    assert sorted(builtin_raises(probe)) == ["probe.py:3 ValueError", "probe.py:4 RuntimeError"]


def test_bench_ros_without_ros_is_a_clear_error(monkeypatch, capsys):
    import importlib.util

    from posekit.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "rclpy" else real(name, *a))
    assert main(["bench", "ros", "--quick"]) == 1
    err = capsys.readouterr().err
    assert "needs rclpy" in err and "pip install -e '.[ros]'" in err


def test_replay_without_ros_nodes_is_a_clear_error(monkeypatch, capsys, tmp_path):
    import importlib

    from posekit.cli import main

    real = importlib.import_module

    def no_ros_nodes(name, *args):
        if name.startswith("ros_nodes"):
            raise ImportError(f"No module named {name!r}")
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", no_ros_nodes)
    assert main(["replay", "--bag", str(tmp_path), "--engine", "object", "--out", str(tmp_path / "o")]) == 1
    assert "ros_nodes" in capsys.readouterr().err
