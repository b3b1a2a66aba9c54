"""Kill-and-rerun of ``posekit synth bop --workers 2``: no orphaned worker, no accepted half dataset.

The parent is killed (SIGTERM, then SIGKILL) while its two workers render. Its workers must
be gone within seconds, the folder must be refused as incomplete by every reader
(BopDataset, so also ``posekit eval bop``), and a rerun must complete it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from posekit.cli import main
from posekit.errors import IncompleteDatasetError
from posekit.io import bop

REPO = Path(__file__).resolve().parents[1]


def _process_table() -> dict[int, tuple[int, str]]:
    """{pid: (ppid, state)} of every process (Linux /proc)."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        table[int(entry.name)] = (int(fields[1]), fields[0])
    return table


def _descendants(pid: int) -> set[int]:
    table = _process_table()
    found, frontier = set(), {pid}
    while frontier:
        children = {p for p, (ppid, _) in table.items() if ppid in frontier} - found
        found |= children
        frontier = children
    return found


def _alive(pids: set[int]) -> set[int]:
    table = _process_table()
    return {p for p in pids if p in table and table[p][1] not in ("Z", "X")}  # zombies are dead


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_killed_synth_leaves_no_workers_and_a_refused_dataset(tmp_path, sig):
    out = tmp_path / "ds"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", "posekit", "synth", "bop", "--models", "procedural", "--out", str(out),
           "--scenes", "2", "--images", "30", "--width", "160", "--height", "120", "--workers", "2",
           "--procedural-objects", "2", "--objects-per-scene", "1", "--quiet"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        workers: set[int] = set()
        while time.monotonic() < deadline and proc.poll() is None:
            workers = _descendants(proc.pid)
            if len(workers) >= 2 and any(out.glob("test/*/rgb/*.png")):
                break
            time.sleep(0.2)
        assert proc.poll() is None, "synth finished before it could be killed: " + proc.stdout.read().decode()
        assert len(workers) >= 2 and any(out.glob("test/*/rgb/*.png")), "workers never started"
        proc.send_signal(sig)
        proc.wait(timeout=30)
        end = time.monotonic() + 10
        while _alive(workers) and time.monotonic() < end:
            time.sleep(0.1)
        orphans = _alive(workers)
        for pid in orphans:  # clean up what the test itself started before failing
            os.kill(pid, signal.SIGKILL)
        assert orphans == set(), f"worker processes outlived their parent: {orphans}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert (out / bop.INCOMPLETE_MARKER).exists()
    with pytest.raises(IncompleteDatasetError):
        bop.BopDataset(out)
    assert main(["eval", "bop", "--dataset", str(out), "--results", str(tmp_path / "none.csv")]) == 1
    # A rerun completes the folder and readers accept it again.
    assert main(["synth", "bop", "--models", "procedural", "--out", str(out), "--scenes", "1",
                 "--images", "1", "--width", "32", "--height", "24", "--procedural-objects", "2",
                 "--objects-per-scene", "1", "--quiet"]) == 0
    assert not (out / bop.INCOMPLETE_MARKER).exists()
    assert bop.BopDataset(out).targets()
