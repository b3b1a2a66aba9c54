"""Offline replay: recorded sensor topics through the node's own per-frame code, no ROS needed.

A bag's messages are decoded by rosbags into message objects with the same fields as rclpy's
and fed, in bag order, to the frame assembler and pipeline the node uses. Every frame is
processed (offline there is no reason to drop frames). Results go to ``results.csv`` and
``results.json`` in the output folder and, with ``out_bag``, into a copy of the bag with the
node's output topics added (same messages, stamped with the input frame's header; each
written at the bag time of the message that completed its frame).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from posekit.errors import BadInputError, CorruptFileError, UnsupportedFormatError
from posekit.io.atomic import atomic_write_text, output_directory
from posekit.io.rosbag import deserialize_message, open_bag, read_raw_messages
from ros_nodes import messages as m
from ros_nodes.parameters import COMMON_PARAMETERS, read_parameters_file, validate_parameters

ENGINES = ("object", "body", "view")


@dataclass
class ReplaySummary:
    """What a replay did: message and frame counts, skipped inputs by reason, output files."""

    engine: str
    messages: int = 0
    frames: int = 0
    estimates: int = 0
    successes: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    mean_time_ms: float = 0.0
    files: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class _EngineAdapter:
    """How replay drives one engine: its node name, parameters, inputs and result rows."""

    node_name: str
    parameters: tuple
    input_types: dict[str, str]
    make: Callable[[dict[str, Any], Any], tuple[Any, Any]]  # (params, estimator) -> (assembler, pipeline)
    inputs: Callable[[dict[str, Any]], list[str]]  # params -> the inputs the node subscribes to
    rows: Callable[[Any], list[dict[str, Any]]]  # result -> CSV rows
    result_dict: Callable[[Any], dict[str, Any]]


def _object_adapter() -> _EngineAdapter:
    from ros_nodes import object_processing as op

    def make(params, estimator):
        pipeline = op.ObjectPosePipeline(params, estimator=estimator)
        return op.ObjectFrameAssembler(pipeline.params), pipeline

    def rows(result):
        out = []
        for e in result.estimates:
            T = e.T_cam_model if e.T_cam_model is not None else np.full((4, 4), np.nan)
            q = m.quaternion_xyzw(T[:3, :3]) if e.T_cam_model is not None else np.full(4, np.nan)
            out.append({
                "stamp_ns": result.stamp_ns, "frame_id": result.frame_id, "obj_id": e.obj_id,
                "success": e.success, "score": round(e.score, 6), "time_ms": round(e.time_ms, 3),
                "tx": T[0, 3], "ty": T[1, 3], "tz": T[2, 3],
                "qx": q[0], "qy": q[1], "qz": q[2], "qw": q[3], "reason": e.reason,
            })
        return out

    def result_dict(result):
        return {"stamp_ns": result.stamp_ns, "frame_id": result.frame_id,
                "time_ms": result.time_ms, "estimates": [e.to_dict() for e in result.estimates]}

    return _EngineAdapter(op.NODE_NAME, op.PARAMETERS, op.INPUT_TOPICS, make, op.node_inputs,
                          rows, result_dict)


def _view_adapter() -> _EngineAdapter:
    from ros_nodes import view_processing as vp

    def make(params, estimator):
        pipeline = vp.ViewPosePipeline(params, estimator=estimator)
        return vp.ViewFrameAssembler(pipeline.params), pipeline

    def rows(result):
        q = m.quaternion_xyzw(result.R_mode)
        return [{
            "stamp_ns": result.stamp_ns, "frame_id": result.frame_id, "success": True,
            "qx": q[0], "qy": q[1], "qz": q[2], "qw": q[3],
            "rotation_std_deg": float(np.degrees(np.sqrt(np.trace(result.covariance) / 3))),
            "mode_masses": " ".join(f"{p:.4f}" for _, p in result.modes),
            "time_ms": round(result.time_ms, 3),
        }]

    return _EngineAdapter(vp.NODE_NAME, vp.PARAMETERS, vp.INPUT_TOPICS, make, vp.node_inputs,
                          rows, lambda result: result.to_dict())


def _body_adapter() -> _EngineAdapter:
    from ros_nodes import body_processing as bp

    def make(params, fitter):
        pipeline = bp.BodyPipeline(params, fitter=fitter)
        return bp.BodyFrameAssembler(pipeline.params), pipeline

    def rows(result):
        fit = result.fit
        return [{
            "stamp_ns": result.stamp_ns, "frame_id": result.frame_id, "success": True,
            "confidence": round(float(fit.confidence), 4), "residual_m": round(float(fit.residual_m), 5),
            "tx": fit.translation[0], "ty": fit.translation[1], "tz": fit.translation[2],
            "pelvis_x": fit.joints[0, 0], "pelvis_y": fit.joints[0, 1], "pelvis_z": fit.joints[0, 2],
            "betas": " ".join(f"{b:.4f}" for b in fit.betas), "time_ms": round(result.time_ms, 3),
        }]

    return _EngineAdapter(bp.NODE_NAME, bp.PARAMETERS, bp.INPUT_TOPICS, make, bp.node_inputs,
                          rows, lambda result: result.to_dict())


ADAPTERS: dict[str, Callable[[], _EngineAdapter]] = {"object": _object_adapter,
                                                      "body": _body_adapter,
                                                      "view": _view_adapter}


def register_adapter(engine: str, factory: Callable[[], _EngineAdapter]) -> None:
    ADAPTERS[engine] = factory


def load_node_parameters(adapter: _EngineAdapter, config: str | Path | None) -> dict[str, Any]:
    """The node's parameters: defaults, updated by its section of a ROS parameters file."""
    values = read_parameters_file(config, adapter.node_name) if config else {}
    return validate_parameters((*COMMON_PARAMETERS, *adapter.parameters), values)


def _pick_topics(connections, adapter: _EngineAdapter, wanted: list[str],
                 remaps: dict[str, str]) -> dict[str, str]:
    """{bag topic: node input} for the inputs the node subscribes to with these parameters."""
    by_type: dict[str, list[str]] = {}
    for c in connections:
        by_type.setdefault(m.normalized_msgtype(c.msgtype), []).append(c.topic)
    chosen = {}
    for name in wanted:
        if name in remaps:
            topic = remaps[name]
            if not any(c.topic == topic for c in connections):
                raise BadInputError(f"--topic {name}={topic}: the bag has no topic {topic}; "
                                    f"it has {sorted({c.topic for c in connections})}")
        else:
            candidates = sorted(set(by_type.get(adapter.input_types[name], [])))
            if len(candidates) > 1:
                # Prefer a topic named after the input (e.g. .../depth/image for depth).
                named = [t for t in candidates if name in t.split("/")[-2:] or t.endswith(name)]
                candidates = named if len(named) == 1 else candidates
            if len(candidates) != 1:
                raise BadInputError(
                    f"cannot tell which topic is the node input {name!r} "
                    f"({adapter.input_types[name]}): candidates {candidates or 'none'}; "
                    f"pass --topic {name}=TOPIC"
                )
            topic = candidates[0]
        chosen[topic] = name
    return chosen


def replay_bag(
    bag: str | Path,
    engine: str,
    out_dir: str | Path,
    config: str | Path | None = None,
    out_bag: str | Path | None = None,
    topics: dict[str, str] | None = None,
    estimator: Any = None,
    progress: bool = True,
) -> ReplaySummary:
    """Run ``engine``'s node code over a bag; write results.csv/.json (and ``out_bag``).

    ``topics`` maps node inputs to bag topics (e.g. {"points": "/camera/points"}); inputs not
    named are found by message type. ``config`` is the node's ROS parameters file.
    """
    if engine not in ADAPTERS:
        raise BadInputError(f"engine must be one of {sorted(ADAPTERS)}, got {engine!r}")
    adapter = ADAPTERS[engine]()
    params = load_node_parameters(adapter, config)
    out_dir = output_directory(out_dir, "replay output folder")
    store = m.rosbags_typestore()
    factory = m.MessageFactory.rosbags(store)
    summary = ReplaySummary(engine)
    rows: list[dict[str, Any]] = []
    frames_json: list[dict[str, Any]] = []
    outputs: list[tuple[int, str, Any]] = []  # (bag time, output key, message)
    times = []

    with open_bag(bag, typestore=store) as reader:
        inputs = _pick_topics(reader.connections, adapter, adapter.inputs(params), topics or {})
        # Load the engine only once the bag and the parameters are known to fit.
        assembler, pipeline = adapter.make(params, estimator)
        # The node's subscription callbacks call the same assembler methods.
        handlers = {name: getattr(assembler, f"on_{name}") for name in inputs.values()}
        connections = [c for c in reader.connections if c.topic in inputs]
        total = sum(c.msgcount for c in connections)
        bar = _progress(total, progress, f"replay {engine}")
        for connection, timestamp, raw in read_raw_messages(reader, connections):
            bar.update(1)
            summary.messages += 1
            name = inputs[connection.topic]
            try:
                msg = deserialize_message(reader, connection, timestamp, raw)
                frame = handlers[name](msg)
                if frame is None:
                    continue
                result = pipeline.estimate(frame)
            except (BadInputError, CorruptFileError, UnsupportedFormatError) as err:
                key = f"{name}: {type(err).__name__}: {err}"[:160]
                summary.skipped[key] = summary.skipped.get(key, 0) + 1
                continue
            summary.frames += 1
            times.append(result.time_ms)
            frame_rows = adapter.rows(result)
            rows.extend(frame_rows)
            summary.estimates += len(frame_rows)
            summary.successes += sum(bool(r.get("success")) for r in frame_rows)
            frames_json.append(adapter.result_dict(result))
            if out_bag is not None:
                for key, msg_out in pipeline.messages(factory, result).items():
                    outputs.append((int(timestamp), key, msg_out))
        bar.close()
        if out_bag is not None:
            _write_bag_with_outputs(reader, out_bag, store, outputs, pipeline.output_topics())
            summary.files.append(str(out_bag))
    summary.mean_time_ms = float(np.mean(times)) if times else 0.0

    csv_path, json_path = out_dir / "results.csv", out_dir / "results.json"
    atomic_write_text(csv_path, _csv_text(rows))
    atomic_write_text(json_path, json.dumps(
        {"engine": engine, "bag": str(bag), "config": str(config) if config else None,
         "inputs": {v: k for k, v in inputs.items()}, "summary": summary.to_dict(),
         "frames": frames_json}, indent=1, default=_json_default) + "\n")
    summary.files[:0] = [str(csv_path), str(json_path)]
    return summary


def output_topic(key: str) -> str:
    """Bag topic of a pipeline output key: what the node publishes at the root namespace."""
    return "/tf" if key == "tf" else "/" + key


def _write_bag_with_outputs(reader, out_bag, store, outputs, output_types) -> None:
    """A new bag: every message of the input bag, plus the outputs, in time order."""
    from rosbags.rosbag2 import Writer

    from posekit.io.atomic import atomic_directory

    out_bag = Path(out_bag)
    if out_bag.exists():
        raise BadInputError(f"{out_bag} exists already; bags are never overwritten, choose a new path")
    with atomic_directory(out_bag) as tmp, Writer(tmp, version=9) as writer:
        copied = {}
        for c in reader.connections:
            if c.topic in copied:
                continue
            msgdef = getattr(c.msgdef, "data", None) or None
            copied[c.topic] = writer.add_connection(
                c.topic, c.msgtype, msgdef=msgdef, rihs01=c.digest if msgdef else None,
                typestore=None if msgdef else store)
        added = {}
        for key in sorted({key for _, key, _ in outputs}):
            msgtype = output_types.get(key)
            if msgtype is None:
                raise BadInputError(f"no message type known for output {key!r}")
            added[key] = (writer.add_connection(output_topic(key), msgtype, typestore=store), msgtype)
        pending = sorted(outputs, key=lambda item: item[0])
        i = 0
        for connection, timestamp, raw in read_raw_messages(reader):
            while i < len(pending) and pending[i][0] <= timestamp:
                _, key, msg = pending[i]
                conn, msgtype = added[key]
                writer.write(conn, pending[i][0], store.serialize_cdr(msg, msgtype))
                i += 1
            writer.write(copied[connection.topic], timestamp, raw)
        for t, key, msg in pending[i:]:
            conn, msgtype = added[key]
            writer.write(conn, t, store.serialize_cdr(msg, msgtype))


def _csv_text(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return buf.getvalue()


def _json_default(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, enabled: bool, desc: str):
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="msg")


__all__ = ["ENGINES", "ReplaySummary", "load_node_parameters", "output_topic", "replay_bag"]
