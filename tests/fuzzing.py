"""posekit's fuzzing helpers: file mutators, a probe that classifies outcomes, and counters.

A probe calls a public function on one hostile input. Its outcome is one of
- ``clean_error``: a posekit error (PosekitError), with a message;
- ``result``: a return value that passes the probe's sanity check (e.g. finite points);
- ``failure``: any other exception, or a result that fails the check (silently wrong);
- ``slow``: counted besides the above when a probe takes longer than ``SLOW_S``.
The counts per reader are kept in :data:`TOTALS` and printed at the end of the run
(tests/conftest.py), for the issue's closing note. A fuzz test asserts that its failures are 0.
"""

from __future__ import annotations

import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from posekit.errors import PosekitError

SLOW_S = 5.0
TOTALS: dict[str, Counter] = defaultdict(Counter)
FAILURES: dict[str, list[str]] = defaultdict(list)


def probe(kind: str, label: str, call: Callable[[], Any],
          check: Callable[[Any], str | None] | None = None) -> str:
    """Run ``call()``, classify and count its outcome under ``kind``; return the outcome."""
    start = time.monotonic()
    try:
        result = call()
    except PosekitError as err:
        outcome = "clean_error"
        if not str(err).strip():
            outcome = "failure"
            FAILURES[kind].append(f"{label}: {type(err).__name__} without a message")
    except Exception as err:  # noqa: BLE001 (the point: anything else is a finding)
        outcome = "failure"
        FAILURES[kind].append(f"{label}: {type(err).__module__}.{type(err).__name__}: {str(err)[:200]}")
    else:
        problem = check(result) if check is not None else None
        outcome = "result" if problem is None else "failure"
        if problem is not None:
            FAILURES[kind].append(f"{label}: silently wrong result: {problem}")
    TOTALS[kind]["probes"] += 1
    TOTALS[kind][outcome] += 1
    if time.monotonic() - start > SLOW_S:
        TOTALS[kind]["slow"] += 1
    return outcome


def failures(kind: str) -> list[str]:
    return list(FAILURES.get(kind, []))


def summary_lines() -> list[str]:
    lines = []
    total = Counter()
    for kind in sorted(TOTALS):
        c = TOTALS[kind]
        total.update(c)
        lines.append(f"{kind:<24} {c['probes']:>6} {c['clean_error']:>7} {c['result']:>7} "
                     f"{c['failure']:>8} {c['slow']:>5}")
    if lines:
        header = f"{'fuzz target':<24} {'probes':>6} {'errors':>7} {'results':>7} {'failures':>8} {'slow':>5}"
        last = (f"{'all':<24} {total['probes']:>6} {total['clean_error']:>7} "
                f"{total['result']:>7} {total['failure']:>8} {total['slow']:>5}")
        lines = [header, *lines, last]
    return lines


# ----------------------------------------------------------------------------- byte mutators

TRUNCATIONS = (0.0, 0.01, 0.1, 0.5, 0.9, 0.95, 0.99)


def truncations(data: bytes) -> Iterator[tuple[str, bytes]]:
    """``data`` cut at fixed fractions and one byte short."""
    for frac in TRUNCATIONS:
        yield f"truncate {frac:.0%}", data[: int(len(data) * frac)]
    yield "truncate -1 byte", data[:-1]


def byte_flips(data: bytes, rng: np.random.Generator, n_variants: int, start: int = 0,
               end: int | None = None) -> Iterator[tuple[str, bytes]]:
    """``data`` with 1 to 8 random bytes XOR-ed with a random non-zero value in [start, end)."""
    end = len(data) if end is None else end
    if end <= start:
        return
    for i in range(n_variants):
        out = bytearray(data)
        k = int(rng.integers(1, 9))
        for pos in rng.integers(start, end, size=k):
            out[pos] ^= int(rng.integers(1, 256))
        yield f"flip {k} bytes #{i}", bytes(out)


NUMBER_REPLACEMENTS = ("0", "-1", "1", "7", "4294967296", "99999999999999999999", "nan", "abc", "")


def header_number_edits(data: bytes, header_end: int, rng: np.random.Generator,
                        n_variants: int) -> Iterator[tuple[str, bytes]]:
    """The header (``data[:header_end]``) with one number replaced by an odd value."""
    header = data[:header_end]
    spans = [m.span() for m in re.finditer(rb"-?\d+(\.\d+)?", header)]
    if not spans:
        return
    for i in range(n_variants):
        a, b = spans[int(rng.integers(len(spans)))]
        new = NUMBER_REPLACEMENTS[int(rng.integers(len(NUMBER_REPLACEMENTS)))].encode()
        yield f"header number {header[a:b].decode(errors='replace')!r}->{new.decode()!r} #{i}", \
            header[:a] + new + header[b:] + data[header_end:]


def token_swaps(data: bytes, header_end: int, swaps: dict[bytes, tuple[bytes, ...]]) -> Iterator[tuple[str, bytes]]:
    """Every header token in ``swaps`` replaced by each of its alternatives (wrong types, kinds)."""
    header = data[:header_end]
    for token, alternatives in swaps.items():
        for m in re.finditer(re.escape(token), header):
            for alt in alternatives:
                yield f"header {token.decode()}->{alt.decode()}@{m.start()}", \
                    header[:m.start()] + alt + header[m.end():] + data[header_end:]
            break  # first occurrence is enough


def mutations(data: bytes, header_end: int, rng: np.random.Generator, n_flips: int, n_numbers: int,
              swaps: dict[bytes, tuple[bytes, ...]] | None = None) -> list[tuple[str, bytes]]:
    out = list(truncations(data))
    out += list(byte_flips(data, rng, n_flips))
    out += list(byte_flips(data, rng, max(1, n_flips // 2), 0, header_end))
    out += list(header_number_edits(data, header_end, rng, n_numbers))
    if swaps:
        out += list(token_swaps(data, header_end, swaps))
    return out


# ----------------------------------------------------------------------------- result checks


def check_cloud(cloud) -> str | None:
    pts = cloud.points
    if pts.ndim != 2 or pts.shape[1] != 3 or len(pts) == 0:
        return f"points of shape {pts.shape}"
    if pts.dtype != np.float32 or not np.isfinite(pts).all():
        return "points not finite float32"
    if np.abs(pts).max() > 1e6:
        return f"coordinate {np.abs(pts).max():g} beyond 1e6 m"
    if cloud.colors is not None and (not np.isfinite(cloud.colors).all() or cloud.colors.min() < 0
                                     or cloud.colors.max() > 1):
        return "colors outside [0, 1]"
    return None


def check_mesh(mesh) -> str | None:
    v, f = mesh.vertices, mesh.faces
    if len(v) == 0 or len(f) == 0 or not np.isfinite(v).all():
        return "empty or non-finite mesh"
    if f.min() < 0 or f.max() >= len(v):
        return "faces index missing vertices"
    return None


def check_depth(depth) -> str | None:
    if depth.ndim != 2 or depth.dtype != np.float32 or depth.size == 0:
        return f"depth of shape {depth.shape} dtype {depth.dtype}"
    if not np.isfinite(depth).all() or depth.min() < 0 or depth.max() > 100:
        return "depth not finite metres in [0, 100]"
    return None


def check_image(image) -> str | None:
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or image.size == 0:
        return f"image of shape {image.shape} dtype {image.dtype}"
    if image.ndim == 3 and image.shape[2] not in (3, 4):
        return f"image with {image.shape[2]} channels"
    return None


def tiny_view_estimator(prefix: str):
    """An untrained, tiny object view estimator for ids 3 and 7 (32 px crops, level-1 grid),
    saved to a temporary weights file and loaded as a user would."""
    import tempfile
    from dataclasses import asdict
    from pathlib import Path

    import torch

    from posekit.io.weights import save_weights
    from posekit.view.estimator import ViewPoseEstimator
    from posekit.view.network import ViewNetConfig
    from posekit.view.object_training import ObjectViewDataConfig, ObjectViewTrainConfig
    from posekit.view.training import build_model

    torch.manual_seed(0)
    cfg = ObjectViewTrainConfig(
        model=ViewNetConfig(image_size=32, encoder_channels=[4, 6], lmax=3, s2_channels=4, so3_channels=3,
                            nonlinearity_grid_level=1, train_grid_level=1, num_objects=2),
        data=ObjectViewDataConfig(models="procedural", obj_ids=[3, 7], eval_grid_level=1))
    cfg.data.crop.image_size = 32
    path = Path(tempfile.mkdtemp(prefix=prefix)) / "model.pt"
    save_weights(build_model(cfg.model).state_dict(), path, metadata={"engine": "view", "config": asdict(cfg)})
    return ViewPoseEstimator.from_pretrained(path)
