"""Fuzz the rosbag2 readers (sqlite3 and mcap storage) with damaged bags: posekit errors only."""

from __future__ import annotations

import shutil

import fuzzing
import numpy as np
import pytest
from fuzzing import byte_flips, header_number_edits, probe, truncations

# Warnings are part of the outcome being probed (e.g. UnitsWarning for a cloud in mm).
pytestmark = pytest.mark.filterwarnings("ignore::posekit.errors.UnitsWarning", "ignore::UserWarning")


pytest.importorskip("rosbags")


@pytest.fixture(scope="module", params=["sqlite3", "mcap"])
def seed_bag(request, tmp_path_factory):
    from posekit.io.rosbag import BagMessage, write_bag

    rng = np.random.default_rng(1)
    root = tmp_path_factory.mktemp(f"bag_{request.param}") / "bag"
    K = {"K": np.array([[500.0, 0, 16], [0, 500, 12], [0, 0, 1]]), "width": 32, "height": 24}
    messages = []
    for i in range(3):
        t = 1_000_000_000 + i * 50_000_000
        messages += [BagMessage("/points", t, rng.random((50, 3)).astype(np.float32) + [0, 0, 1]),
                     BagMessage("/depth", t, rng.uniform(0.5, 2, (24, 32)).astype(np.float32)),
                     BagMessage("/info", t, K),
                     BagMessage("/rgb", t, rng.integers(0, 256, (24, 32, 3), dtype=np.uint8))]
    write_bag(root, messages, storage=request.param)
    return root


def _read_everything(bag):
    from posekit.io import rosbag

    topics = rosbag.list_topics(bag)
    n = sum(1 for _ in rosbag.iter_messages(bag))
    frames = rosbag.read_frames(bag, "/depth", "/info", rgb_topic="/rgb")
    return topics, n, frames


def _check(result) -> str | None:
    _, _, frames = result
    for frame in frames:
        problem = fuzzing.check_depth(frame.depth)
        if problem:
            return problem
        if not np.isfinite(frame.K).all() or frame.K[0, 0] <= 0:
            return f"camera matrix {frame.K.tolist()}"
    return None


def _bag_variants(seed_bag, rng, full):
    data_file = next(p for p in seed_bag.iterdir() if p.suffix in (".db3", ".mcap"))
    data = data_file.read_bytes()
    meta = (seed_bag / "metadata.yaml").read_bytes()
    n_flips = 16 if full else 3
    for label, content in [*truncations(data), *byte_flips(data, rng, n_flips),
                           *byte_flips(data, rng, n_flips, 0, min(len(data), 4096))]:
        yield f"data {label}", data_file.name, content
    for label, content in header_number_edits(meta, len(meta), rng, 12 if full else 2):
        yield f"metadata {label}", "metadata.yaml", content
    for label, content in truncations(meta):
        yield f"metadata {label}", "metadata.yaml", content


@pytest.mark.parametrize("full", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["fast", "full"])
@pytest.mark.timeout(300)
def test_fuzz_rosbag_readers(seed_bag, tmp_path, full):
    kind = "rosbag2"
    rng = np.random.default_rng(7)
    for i, (label, name, content) in enumerate(_bag_variants(seed_bag, rng, full)):
        if not full and label.startswith(("data truncate 1%", "data truncate 10%", "data truncate 90%")):
            continue
        bag = tmp_path / f"b{i}"
        shutil.copytree(seed_bag, bag)
        (bag / name).write_bytes(content)
        probe(kind, f"{seed_bag.parent.name} {label}", lambda b=bag: _read_everything(b), _check)
    found = fuzzing.failures(kind)
    assert found == [], "\n".join(found[:30])
