"""The library is free of its adapters: nothing in posekit/ imports ROS or ros_nodes.

shared/STYLE.md: "posekit/ holds all logic and imports nothing from ROS". The scan reads
every source file with ast (module-level and function-local imports alike). The one place
that may name ros_nodes is the CLI adapter posekit/cli/ros.py, which loads the replay and
the node benchmark by name when those commands run.
"""

from __future__ import annotations

import ast
import importlib.util
import itertools
from pathlib import Path

import pytest

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


# Every package's raises are checked (issue 14, item 7).
OWNED_ELSEWHERE: tuple[str, ...] = ()
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


# ---------------------------------------------------------------------------------------------
# Package layers: the import graph between posekit's own packages is acyclic and goes downwards.
# A "unit" is a subpackage (posekit/geometry/...) or a top-level module (posekit/errors.py).
# Each unit may import only units of a strictly lower layer, with module-level and
# function-local imports alike (a lazy import hides a cycle from Python, not from this scan).
# README.md ("Package layers") documents the same order.
LAYERS = (
    ("errors",),
    ("validation", "device"),
    ("geometry",),                                     # SO(3)/SE(3), grids, groups, crops; no I/O
    ("io",),                                           # files, depth, BOP, weights
    ("config", "training", "workers", "pretrained", "viz"),
    ("data",),                                         # synthetic generators and renderers
    ("eval",),                                         # metrics only: no engine
    ("view", "body"),                                  # engines
    ("registration",),                                 # the object engine (the view engine is its RGB prior)
    ("bench",),                                        # benchmarks run engines against peers
    ("posekit",),                                      # the top-level API (engines loaded lazily)
    ("cli",),                                          # the command-line adapter
    ("__main__",),                                     # python -m posekit
)
LAYER_OF = {unit: i for i, layer in enumerate(LAYERS) for unit in layer}


def _unit_of_module(name: str, root: Path) -> str | None:
    """The unit (see LAYERS) of a dotted module name, None outside posekit."""
    parts = name.split(".")
    if parts[0] != root.name:
        return None
    if len(parts) == 1:
        return root.name
    return parts[1] if (root / parts[1]).is_dir() else parts[1].removesuffix(".py")


def _imported_modules(node: ast.AST, package: list[str], root: Path) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    if node.level:
        base = package[: len(package) - node.level + 1]
    else:
        base = []
    module = base + (node.module.split(".") if node.module else [])
    # ``from posekit import pretrained`` imports the submodule posekit.pretrained
    names = []
    for alias in node.names:
        sub = module + [alias.name]
        is_module = (root.parent.joinpath(*sub).is_dir() or root.parent.joinpath(*sub).with_suffix(".py").is_file())
        names.append(".".join(sub if is_module else module))
    return names


def package_imports(root: Path) -> dict[str, dict[str, list[str]]]:
    """``{unit: {imported unit: ['file:line module', ...]}}`` for the package at ``root``."""
    graph: dict[str, dict[str, list[str]]] = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        src = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        if rel.name == "__init__.py" and len(rel.parts) == 1:
            src = root.name
        module = [root.name, *rel.with_suffix("").parts]
        package = module[:-1]
        graph.setdefault(src, {})
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            for name in _imported_modules(node, package, root):
                dst = _unit_of_module(name, root)
                if dst is not None and dst != src:
                    graph[src].setdefault(dst, []).append(f"{rel}:{node.lineno} {name}")
    return graph


def find_cycle(graph: dict[str, dict[str, list[str]]]) -> list[str]:
    """One cycle ``[a, b, ..., a]`` of the graph, or ``[]`` (depth-first search)."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(u: str) -> list[str]:
        state[u] = 1
        stack.append(u)
        for v in sorted(graph.get(u, {})):
            if state.get(v) == 1:
                return stack[stack.index(v):] + [v]
            if v not in state and (cycle := visit(v)):
                return cycle
        stack.pop()
        state[u] = 2
        return []

    for u in sorted(graph):
        if u not in state and (cycle := visit(u)):
            return cycle
    return []


def _write_tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_the_import_graph_scan_sees_function_local_and_relative_imports(tmp_path):
    pkg = _write_tree(tmp_path / "pk", {
        "__init__.py": "",
        "errors.py": "",
        "eval/__init__.py": "from pk.eval.metrics import m\n",
        "eval/metrics.py": "from pk import errors\n",
        "eval/bench.py": "def run():\n    from ..engine import estimator\n",
        "engine/__init__.py": "",
        "engine/estimator.py": "import numpy\nfrom pk.eval.metrics import m\n",
    })
    graph = package_imports(pkg)
    assert sorted(graph["eval"]) == ["engine", "errors"]
    assert sorted(graph["engine"]) == ["eval"]
    assert find_cycle(graph) in (["engine", "eval", "engine"], ["eval", "engine", "eval"])
    (pkg / "eval" / "bench.py").unlink()
    assert find_cycle(package_imports(pkg)) == []


def test_posekit_packages_import_each_other_without_cycles():
    graph = package_imports(ROOT)
    cycle = find_cycle(graph)
    detail = [hit for a, b in itertools.pairwise(cycle) for hit in graph[a][b][:3]]
    assert cycle == [], "import cycle " + " -> ".join(cycle) + ":\n" + "\n".join(detail)


def test_posekit_packages_import_only_lower_layers():
    graph = package_imports(ROOT)
    unplaced = sorted(set(graph) - set(LAYER_OF))
    assert unplaced == [], f"give {unplaced} a layer in LAYERS and in README's package layers"
    upward = [f"{src} (layer {LAYER_OF[src]}) -> {dst} (layer {LAYER_OF[dst]}): {hits[0]}"
              for src, deps in sorted(graph.items()) for dst, hits in sorted(deps.items())
              if LAYER_OF[dst] >= LAYER_OF[src]]
    assert upward == [], "imports must go to a lower layer:\n" + "\n".join(upward)


def test_the_layers_are_documented_in_the_readme():
    readme = (ROOT.parent / "README.md").read_text()
    section = readme.split("### Package layers", 1)[1].split("\n## ", 1)[0]
    for layer in LAYERS:
        for unit in layer:
            if unit not in ("__main__", "posekit"):
                assert f"`{unit}`" in section, f"README's package layers do not name `{unit}`"


def test_benchmarks_are_their_own_top_package():
    import importlib.util

    from posekit.cli import build_parser

    assert importlib.util.find_spec("posekit.eval.benchmarks") is None
    for name in ("body", "registration", "sensor", "view"):
        assert importlib.util.find_spec(f"posekit.bench.{name}") is not None
    parser = build_parser()
    for argv in (["bench", "sensor", "--quick"], ["bench", "body", "--quick"],
                 ["bench", "view", "--quick"], ["bench", "registration", "--quick"]):
        assert callable(parser.parse_args(argv).func)


# ---------------------------------------------------------------------------------------------
# One home per concept.

# sha256 of the rounded elements, in the order the body engine's shipped weights were trained
# with (the network's group axis): the order must never change.
GROUP_ORDER_FINGERPRINTS = {"tetrahedral": "a12f967d49af20e8", "octahedral": "65fb664acdc2d44e",
                            "icosahedral": "1834de48587931f0"}


def _fingerprint(elements) -> str:
    import hashlib

    import numpy as np

    return hashlib.sha256((np.round(elements, 6) + 0.0).astype("<f8").tobytes()).hexdigest()[:16]


def test_finite_rotation_groups_keep_the_body_weights_element_order():
    from posekit.geometry.rotation_groups import rotation_group

    for name, fingerprint in GROUP_ORDER_FINGERPRINTS.items():
        assert _fingerprint(rotation_group(name).elements) == fingerprint, name


def test_finite_rotation_groups_have_one_home():
    import numpy as np
    import torch
    from scipy.spatial.transform import Rotation

    from posekit.body import network
    from posekit.data.symsol import symmetry_group
    from posekit.geometry.rotation_groups import GROUP_ORDERS, rotation_group
    from posekit.registration.diffusion import anchor_rotations

    assert importlib.util.find_spec("posekit.body.groups") is None
    assert network.rotation_group is rotation_group
    for name, scipy_name, shape in (("tetrahedral", "T", "tet"), ("octahedral", "O", "cube"),
                                    ("icosahedral", "I", "icosa")):
        E = rotation_group(name).elements
        assert len(E) == GROUP_ORDERS[name]
        np.testing.assert_array_equal(symmetry_group(shape), E)
        np.testing.assert_array_equal(anchor_rotations(len(E), dtype=torch.float64).numpy(), E)
        # the same set as scipy's (order aside): the standard orientation
        S = Rotation.create_group(scipy_name).as_matrix()
        d = np.abs(E[:, None] - S[None]).reshape(len(E), len(S), 9).max(-1)
        assert d.min(1).max() < 1e-9 and d.min(0).max() < 1e-9
    home = ROOT / "geometry" / "rotation_groups.py"
    closures = [f"{_label(f)}" for f in sorted(ROOT.rglob("*.py")) if f != home
                and ("create_group" in f.read_text() or "def _close_group" in f.read_text())]
    assert closures == []


def function_definitions(name: str) -> list[str]:
    """Files of posekit (relative to it) that define a module-level function ``name``."""
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        if any(isinstance(node, ast.FunctionDef) and node.name == name for node in tree.body):
            found.append(str(path.relative_to(ROOT)))
    return found


HOMES = {
    "rotation_group": "geometry/rotation_groups.py",
    "knn_indices": "geometry/neighbours.py",
    "squared_distances": "geometry/neighbours.py",
    "estimate_normals": "geometry/normals.py",
    "normals_from_depth": "io/depth.py",
    "normals_at_pixels": "io/depth.py",
    "rotation_about_axis": "geometry/rigid_np.py",
    "crop_camera": "geometry/crop.py",
    "so3_healpix_grid": "geometry/so3_grid.py",
    "points_diameter": "io/mesh.py",
}
# hand-written copies of what scipy's Rotation (or a home above) provides
REMOVED = ("_close_group", "_axis_angle", "_axis_rotation", "euler_zyz_to_matrix")


def test_each_concept_is_defined_once_in_its_home():
    misplaced = {name: function_definitions(name) for name, home in HOMES.items()
                 if function_definitions(name) != [home]}
    assert misplaced == {}, f"defined elsewhere or twice (expected {HOMES}): {misplaced}"
    leftovers = {name: function_definitions(name) for name in REMOVED if function_definitions(name)}
    assert leftovers == {}


def test_open3d_normal_estimation_is_called_only_from_its_home():
    home = ROOT / HOMES["estimate_normals"]
    calls = []
    for path in sorted(ROOT.rglob("*.py")):
        if path == home:
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("estimate_normals", "orient_normals_towards_camera_location")):
                calls.append(f"{_label(path)}:{node.lineno}")
    assert calls == []


def test_knn_has_one_home_and_matches_brute_force():
    import torch

    from posekit.body import network
    from posekit.geometry.neighbours import knn_indices
    from posekit.registration import denoiser

    assert network.knn_indices is knn_indices and denoiser.knn_indices is knn_indices
    g = torch.Generator().manual_seed(0)
    points, queries = torch.rand(2, 50, 3, generator=g), torch.rand(2, 7, 3, generator=g)
    idx = knn_indices(points, queries, 4)
    assert idx.shape == (2, 7, 4)
    expected = torch.cdist(queries.double(), points.double()).argsort(-1)[..., :4]
    assert torch.equal(idx, expected)
    assert knn_indices(points, queries, 99).shape == (2, 7, 50)  # k capped at N


def test_normals_have_one_home_and_keep_the_peers_open3d_recipe():
    import numpy as np
    import open3d as o3d

    from posekit.errors import BadInputError
    from posekit.geometry.normals import estimate_normals
    from posekit.registration import clouds

    assert clouds.estimate_normals is estimate_normals
    rng = np.random.default_rng(0)
    u, v = rng.uniform(-1, 1, (2, 400))
    pts = np.c_[u, v, 2.0 + 0.1 * u * u + 0.05 * v]  # a gently curved sheet 2 m in front of the camera
    # what registration/baselines.py did before it called the home: open3d's hybrid search, then
    # open3d's own orientation towards the camera
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pts))
    pcd.estimate_normals(o3d.geometry.KDTreeSearchParamHybrid(radius=0.3, max_nn=30))
    pcd.orient_normals_towards_camera_location(np.zeros(3))
    np.testing.assert_allclose(estimate_normals(pts, "camera", k=30, radius=0.3), np.asarray(pcd.normals), atol=1e-12)
    n = estimate_normals(pts)  # k nearest, towards the camera at the origin
    assert (n[:, 2] < 0).all() and np.allclose(np.linalg.norm(n, axis=1), 1)
    sphere = rng.normal(size=(300, 3))
    sphere /= np.linalg.norm(sphere, axis=1, keepdims=True)
    assert ((estimate_normals(sphere + 5.0, "outward") * sphere).sum(1) > 0.9).all()
    for bad in ({"towards": "up"}, {"k": 2}, {"radius": -1.0}):
        with pytest.raises(BadInputError):
            estimate_normals(pts, **bad)


def test_euler_and_axis_rotations_come_from_scipy_and_agree():
    import numpy as np

    from posekit.body.poses import euler_to_matrix
    from posekit.geometry.rigid_np import rotation_about_axis
    from posekit.geometry.so3_grid import rot_y, rot_z

    a, b, c = 0.3, -1.1, 2.4
    Rx, Ry, Rz = (rotation_about_axis(e, t) for e, t in zip(np.eye(3), (a, b, c), strict=True))
    np.testing.assert_allclose(euler_to_matrix(np.array([a, b, c])), Rz @ Ry @ Rx, atol=1e-12)
    np.testing.assert_allclose(rot_z(c), Rz, atol=1e-12)
    np.testing.assert_allclose(rot_y(b), Ry, atol=1e-12)
    np.testing.assert_allclose(rotation_about_axis([0, 0, 2.0], np.pi / 2), [[0, -1, 0], [1, 0, 0], [0, 0, 1]], atol=1e-12)
    angles = np.random.default_rng(0).uniform(-3, 3, (4, 5, 3))
    assert euler_to_matrix(angles).shape == (4, 5, 3, 3) and rot_z(angles[..., 0]).shape == (4, 5, 3, 3)



# ---------------------------------------------------------------------------------------------
# Shared helpers instead of local copies: weights that must fit, one device check, output folders.

def test_body_weights_that_do_not_fit_are_a_corrupt_file(tmp_path):
    from posekit import pretrained
    from posekit.body.fitter import BodyFitter
    from posekit.errors import CorruptFileError
    from posekit.io.weights import save_weights

    weights = pretrained.load("body-default", engine="body")
    state = dict(weights.state_dict)
    name = next(iter(state))
    state[name] = state[name].flatten()[:3].clone()
    path = save_weights(state, tmp_path / "body-misfit.pt", metadata=weights.metadata)
    with pytest.raises(CorruptFileError, match="wrong shape"):
        BodyFitter.from_pretrained(path)


@pytest.mark.parametrize("device", ["gpu", "cuda:99", 3])
def test_body_fitter_checks_its_device_like_the_other_engines(device):
    import torch

    from posekit.body.fitter import BodyFitter
    from posekit.errors import BadInputError

    if device == "cuda:99" and torch.cuda.device_count() >= 100:
        pytest.skip("this machine has 100 GPUs")
    with pytest.raises(BadInputError, match="device"):
        BodyFitter.from_pretrained("body-default", device=device)


def test_body_writers_report_unwritable_folders(tmp_path):
    from posekit.body.model import default_body_model_path, read_body_arrays, save_body_arrays
    from posekit.errors import OutputPathError

    arrays = read_body_arrays(default_body_model_path())
    assert save_body_arrays(arrays, tmp_path / "new" / "model.npz").is_file()
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(OutputPathError):
        save_body_arrays(arrays, blocker / "sub" / "model.npz")


# ---------------------------------------------------------------------------------------------
# One vocabulary across engines (README, "Python API").

def _view_distribution_class():
    from posekit.view.distribution import SO3GridDistribution

    return SO3GridDistribution


ENGINES = (  # (estimator module, class, main call, result module, result class)
    ("posekit.registration.estimator", "ObjectPoseEstimator", "estimate", "posekit.registration.estimator",
     "ObjectPoseResult"),
    ("posekit.body.fitter", "BodyFitter", "fit", "posekit.body.fitter", "BodyFit"),
    ("posekit.view.estimator", "ViewPoseEstimator", "predict", "posekit.view.distribution", "SO3GridDistribution"),
)


@pytest.mark.parametrize("engine", ENGINES, ids=[e[1] for e in ENGINES])
def test_every_engine_has_the_same_api_shape(engine):
    import dataclasses
    import importlib
    import inspect

    module, cls_name, verb, result_module, result_name = engine
    cls = getattr(importlib.import_module(module), cls_name)
    assert getattr(posekit, cls_name) is cls  # reachable from the top-level API
    params = inspect.signature(cls.from_pretrained).parameters
    assert "name_or_path" in params and params["device"].default == "cpu"
    returns = inspect.signature(getattr(cls, verb)).return_annotation
    assert returns == result_name or getattr(returns, "__name__", None) == result_name
    result = getattr(importlib.import_module(result_module), result_name)
    assert dataclasses.is_dataclass(result)


@pytest.mark.parametrize("result_name", ["ObjectPoseResult", "BodyFit", "SO3GridDistribution"])
def test_every_result_has_a_json_ready_to_dict(result_name):
    import json

    import numpy as np

    if result_name == "ObjectPoseResult":
        from posekit.registration.estimator import ObjectPoseResult

        T = np.eye(4)
        T[:3, 3] = [0.1, 0.0, 0.5]
        result = ObjectPoseResult(True, T, 0.8, n_observed=100, score_terms={"coverage": 0.9})
        expected = {"success": True, "t": [0.1, 0.0, 0.5], "score": 0.8}
    elif result_name == "BodyFit":
        from posekit.body.fitter import BodyFit

        z = np.zeros
        result = BodyFit(np.broadcast_to(np.eye(3), (24, 3, 3)), z((24, 3)), np.broadcast_to(np.eye(3), (24, 3, 3)),
                         z(10), z(3), z((24, 3)), z((5, 3)), z((2, 3), dtype=int), z(7, dtype=int), 0.9, 0.01)
        expected = {"confidence": 0.9, "low_confidence": False}
    else:
        cls = _view_distribution_class()
        if not hasattr(cls, "to_dict"):
            pytest.xfail("SO3GridDistribution.to_dict comes with the view engine's branch (issue 14)")
        result = cls.uniform(0)
        expected = {}
    d = json.loads(json.dumps(result.to_dict()))  # plain JSON types only
    assert {k: d[k] for k in expected} == expected
