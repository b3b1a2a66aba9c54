"""What every posekit node shares: parameters, lifecycle, one inference worker, diagnostics.

Threading: the node's callbacks run in a ``SingleThreadedExecutor`` and only decode messages;
inference runs in one worker thread fed by a one-slot buffer (:class:`LatestSlot`). A frame
that arrives while the worker is busy replaces the waiting one, which is counted as dropped:
stale frames are dropped, never queued, so latency stays flat when input outpaces inference.
(``MultiThreadedExecutor`` in the rclpy of the ROS 2 wheels is slow and can stall.)

Lifecycle: configure loads the model (may take seconds) and creates publishers and
subscriptions; activate starts processing; deactivate pauses; cleanup releases the model.
With ``autostart`` (default) the node configures and activates itself on start.

Bad messages never stop a node: each kind of problem is logged once (then only counted in
/diagnostics) and the message is skipped.
"""

from __future__ import annotations

import re
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    SetParametersResult,
)
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from posekit.errors import PosekitError
from ros_nodes.messages import MessageFactory
from ros_nodes.parameters import COMMON_PARAMETERS, ParameterSpec

_PARAMETER_TYPES = {
    bool: Parameter.Type.BOOL, int: Parameter.Type.INTEGER, float: Parameter.Type.DOUBLE,
    str: Parameter.Type.STRING,
}
_ARRAY_TYPES = {
    bool: Parameter.Type.BOOL_ARRAY, int: Parameter.Type.INTEGER_ARRAY,
    float: Parameter.Type.DOUBLE_ARRAY, str: Parameter.Type.STRING_ARRAY,
}


class LatestSlot:
    """A one-item buffer: ``put`` replaces what is waiting; ``take`` waits for an item."""

    def __init__(self) -> None:
        self._item: Any = None
        self._has_item = False
        self._closed = False
        self._cond = threading.Condition()

    def put(self, item: Any) -> bool:
        """Store ``item``; True when it replaced an item nobody took (a dropped frame)."""
        with self._cond:
            replaced = self._has_item
            self._item, self._has_item = item, True
            self._cond.notify()
            return replaced

    def take(self, timeout: float | None = None) -> Any:
        """The waiting item, or None after ``timeout`` seconds or once closed."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._has_item or self._closed, timeout):
                return None
            if not self._has_item:
                return None
            item, self._item, self._has_item = self._item, None, False
            return item

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._item, self._has_item = None, False
            self._cond.notify_all()


class BadMessageLog:
    """Counts problems by kind and logs the first of each kind only.

    A kind is (source, error class, message with its numbers blanked), so "image data has
    100 bytes" and "image data has 200 bytes" are one kind.
    """

    def __init__(self, log: Callable[[str], None]) -> None:
        self._log = log
        self.counts: dict[str, int] = {}
        self._lock = threading.Lock()

    @staticmethod
    def kind_of(source: str, err: BaseException) -> str:
        template = re.sub(r"(?<![\w.'])-?\d+(\.\d+)?(e-?\d+)?(?![\w'])", "#", str(err))[:120]
        return f"{source}: {type(err).__name__}: {template}"

    def report(self, source: str, err: BaseException) -> None:
        kind = self.kind_of(source, err)
        with self._lock:
            first = kind not in self.counts
            self.counts[kind] = self.counts.get(kind, 0) + 1
        if first:
            self._log(f"skipping a message from {source}: {err} (further ones of this kind are only counted in /diagnostics)")

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.counts.values())


class RateMeter:
    """Event rate over a sliding window of the last ``window_s`` seconds."""

    def __init__(self, window_s: float = 5.0) -> None:
        self.window_s = window_s
        self._times: deque[float] = deque()
        self.count = 0
        self._lock = threading.Lock()

    def tick(self, now: float | None = None) -> None:
        with self._lock:
            self._times.append(time.monotonic() if now is None else now)
            self.count += 1

    def rate_hz(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        with self._lock:
            while self._times and now - self._times[0] > self.window_s:
                self._times.popleft()
            if len(self._times) < 2:
                return 0.0
            span = max(now - self._times[0], 1e-6)
            return (len(self._times) - 1) / span if span > 0 else 0.0


def reliability_qos(reliability: str, depth: int) -> QoSProfile:
    """Sensor input QoS: RELIABLE (default; large clouds survive Fast DDS) or BEST_EFFORT."""
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=depth,
        reliability=(ReliabilityPolicy.RELIABLE if reliability == "reliable"
                     else ReliabilityPolicy.BEST_EFFORT),
        durability=DurabilityPolicy.VOLATILE,
    )


# /tf as tf2_ros publishes it.
TF_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100,
                    reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)


class PosekitNode(LifecycleNode):
    """Base of the posekit nodes: subclasses define PARAMETERS, ``build_pipeline`` (load the
    model from the validated parameters), ``create_interfaces`` (publishers/subscriptions)
    and ``process`` (one frame -> messages to publish), and call :meth:`submit` from their
    subscription callbacks."""

    PARAMETERS: tuple[ParameterSpec, ...] = ()
    ENGINE = "posekit"

    def __init__(self, node_name: str, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self.factory = MessageFactory.rclpy()
        self.specs = {s.name: s for s in (*COMMON_PARAMETERS, *self.PARAMETERS)}
        for spec in self.specs.values():
            self._declare(spec)
        self.bad_messages = BadMessageLog(self.get_logger().warning)
        self._slot = LatestSlot()
        self._worker: threading.Thread | None = None
        self._active = threading.Event()
        self.pipeline: Any = None
        self.params: dict[str, Any] = {}
        self.received = RateMeter()
        self.processed = RateMeter()
        self.dropped = 0
        self.failures = 0
        self._latencies_ms: deque[float] = deque(maxlen=200)
        self._inference_ms: deque[float] = deque(maxlen=200)
        self.last_error = ""
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diag_timer = None
        self._output_pubs: dict[str, Any] = {}
        self._input_subs: list[Any] = []
        self.add_on_set_parameters_callback(self._on_set_parameters)
        if self.get_parameter("autostart").value:
            self.autostart()

    # -- parameters ------------------------------------------------------------------------

    def _declare(self, spec: ParameterSpec) -> None:
        descriptor = ParameterDescriptor(
            name=spec.name, description=spec.description, read_only=spec.read_only,
        )
        if spec.choices:
            descriptor.additional_constraints = "one of: " + ", ".join(spec.choices)
        numeric = spec.kind if spec.kind is not list else spec.element_type
        if spec.value_range is not None and numeric is float:
            descriptor.floating_point_range = [FloatingPointRange(
                from_value=float(spec.value_range[0]), to_value=float(spec.value_range[1]))]
        elif spec.value_range is not None and numeric is int:
            descriptor.integer_range = [IntegerRange(
                from_value=int(spec.value_range[0]), to_value=int(spec.value_range[1]))]
        if spec.kind is list:
            descriptor.type = _ARRAY_TYPES[spec.element_type].value
            default = list(spec.default)
            if not default:
                self.declare_parameter(spec.name, _ARRAY_TYPES[spec.element_type], descriptor)
                return
        else:
            descriptor.type = _PARAMETER_TYPES[spec.kind].value
            default = spec.default
        self.declare_parameter(spec.name, default, descriptor)

    def read_parameters(self) -> dict[str, Any]:
        """Current values, validated (BadInputError names the parameter and what is allowed)."""
        values = {}
        for name, spec in self.specs.items():
            param = self.get_parameter(name)
            value = param.value
            if param.type_ == Parameter.Type.NOT_SET:
                value = []
            elif spec.kind is list:
                value = list(value)
            values[name] = spec.validate(value)
        return values

    def _on_set_parameters(self, params: Sequence[Parameter]) -> SetParametersResult:
        try:
            updates = {}
            for p in params:
                if p.name not in self.specs:
                    continue
                value = list(p.value) if self.specs[p.name].kind is list else p.value
                updates[p.name] = self.specs[p.name].validate(value)
            if self.params:
                self.check_parameters({**self.params, **updates})
        except PosekitError as err:
            return SetParametersResult(successful=False, reason=str(err))
        if self.params:
            self.params.update(updates)
            if self.pipeline is not None:
                self.pipeline.update_settings(updates)
        return SetParametersResult(successful=True)

    # -- lifecycle -------------------------------------------------------------------------

    def autostart(self) -> None:
        if self.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            raise SystemExit(f"{self.get_name()}: configure failed: {self.last_error}")
        self.trigger_activate()

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.params = self.read_parameters()
            self.check_parameters(self.params)
            start = time.perf_counter()
            self.pipeline = self.build_pipeline(self.params)
            self.get_logger().info(
                f"configured {self.ENGINE} in {time.perf_counter() - start:.1f} s"
            )
            self.create_interfaces(self.params)
        except Exception as err:  # noqa: BLE001 (rclpy would swallow it: report it here)
            self.last_error = str(err) if isinstance(err, (PosekitError, OSError)) else (
                f"{type(err).__name__}: {err}\n{traceback.format_exc()}")
            self.get_logger().error(f"configure failed: {self.last_error}")
            self._destroy_interfaces()
            self.pipeline = None
            return TransitionCallbackReturn.FAILURE
        period = self.params["diagnostics_period_s"]
        self._diag_timer = self.create_timer(period, self.publish_diagnostics)
        self._slot = LatestSlot()
        self._worker = threading.Thread(target=self._work, name=f"{self.get_name()}-inference",
                                        daemon=True)
        self._worker.start()
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active.set()
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active.clear()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.stop_worker()
        self._destroy_interfaces()
        self.pipeline = None
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active.clear()
        self.stop_worker()
        return TransitionCallbackReturn.SUCCESS

    def stop_worker(self) -> None:
        self._slot.close()
        if self._worker is not None and self._worker is not threading.current_thread():
            self._worker.join(timeout=10.0)
        self._worker = None
        if self._diag_timer is not None:
            self.destroy_timer(self._diag_timer)
            self._diag_timer = None

    def _destroy_interfaces(self) -> None:
        for sub in self._input_subs:
            self.destroy_subscription(sub)
        for pub in self._output_pubs.values():
            self.destroy_publisher(pub)
        self._input_subs, self._output_pubs = [], {}

    # -- to be defined by each node ----------------------------------------------------------

    def check_parameters(self, params: dict[str, Any]) -> None:
        """Checks across parameters (BadInputError); each alone is checked by its spec."""

    def build_pipeline(self, params: dict[str, Any]) -> Any:
        raise NotImplementedError

    def create_interfaces(self, params: dict[str, Any]) -> None:
        raise NotImplementedError

    def process(self, frame: Any) -> dict[str, Any]:
        """Run the engine on one frame; returns {publisher key: message or list of messages}."""
        raise NotImplementedError

    # -- helpers for subclasses ------------------------------------------------------------

    def add_publisher(self, key: str, msg_type: type, topic: str, qos: QoSProfile | int = 10):
        self._output_pubs[key] = self.create_publisher(msg_type, topic, qos)
        return self._output_pubs[key]

    def add_subscription(self, msg_type: type, topic: str, callback: Callable, qos) -> None:
        self._input_subs.append(self.create_subscription(msg_type, topic, callback, qos))

    def guarded(self, source: str, callback: Callable[[Any], None]) -> Callable[[Any], None]:
        """Wrap a subscription callback: bad messages are reported and skipped, never raised."""

        def wrapped(msg: Any) -> None:
            if not self._active.is_set():
                return
            try:
                callback(msg)
            except PosekitError as err:
                self.bad_messages.report(source, err)
            except Exception as err:  # noqa: BLE001 (a message that breaks decoding must not stop the node)
                self.bad_messages.report(source, err)

        return wrapped

    def assembled(self, name: str):
        """A subscription callback for input ``name``: the node's frame assembler (shared with
        replay) decodes the message, and a complete frame goes to the worker."""
        decode = getattr(self.assembler, f"on_{name}")

        def callback(msg: Any) -> None:
            frame = decode(msg)
            if frame is not None:
                self.submit(frame)

        return callback

    def submit(self, frame: Any) -> None:
        """Hand a decoded frame to the worker (replacing a waiting one, which is dropped)."""
        self.received.tick()
        frame.received_monotonic = time.monotonic()
        if self._slot.put(frame):
            self.dropped += 1

    def _work(self) -> None:
        while True:
            frame = self._slot.take()
            if frame is None:
                return
            if not self._active.is_set():
                continue
            start = time.perf_counter()
            try:
                outputs = self.process(frame)
            except PosekitError as err:
                self.bad_messages.report("input", err)
                continue
            except Exception as err:  # noqa: BLE001 (keep serving: report it, skip the frame)
                self.last_error = f"{type(err).__name__}: {err}"
                self.bad_messages.report("engine", err)
                continue
            self._inference_ms.append((time.perf_counter() - start) * 1e3)
            for key, msgs in outputs.items():
                publisher = self._output_pubs.get(key)
                if publisher is None:
                    continue
                for msg in msgs if isinstance(msgs, list) else [msgs]:
                    publisher.publish(msg)
            self._latencies_ms.append((time.monotonic() - frame.received_monotonic) * 1e3)
            self.processed.tick()

    # -- diagnostics -------------------------------------------------------------------------

    def diagnostics_values(self) -> dict[str, str]:
        lat = np.asarray(self._latencies_ms, dtype=np.float64)
        inf = np.asarray(self._inference_ms, dtype=np.float64)
        received = self.received.count
        values = {
            "input_rate_hz": f"{self.received.rate_hz():.2f}",
            "output_rate_hz": f"{self.processed.rate_hz():.2f}",
            "latency_ms_p50": f"{np.percentile(lat, 50):.1f}" if len(lat) else "nan",
            "latency_ms_p95": f"{np.percentile(lat, 95):.1f}" if len(lat) else "nan",
            "inference_ms_mean": f"{inf.mean():.1f}" if len(inf) else "nan",
            "frames_received": str(received),
            "frames_processed": str(self.processed.count),
            "frames_dropped": str(self.dropped),
            "dropped_fraction": f"{self.dropped / received:.3f}" if received else "0.000",
            "estimation_failures": str(self.failures),
            "bad_messages": str(self.bad_messages.total),
            "active": str(self._active.is_set()).lower(),
        }
        for kind, count in sorted(self.bad_messages.counts.items()):
            values[f"bad: {kind}"] = str(count)
        if self.last_error:
            values["last_error"] = self.last_error
        return values

    def publish_diagnostics(self) -> None:
        values = self.diagnostics_values()
        if not self._active.is_set():
            level, message = DiagnosticStatus.WARN, "inactive"
        elif self.bad_messages.total and self.processed.count == 0:
            level, message = DiagnosticStatus.WARN, "only bad input so far"
        else:
            level, message = DiagnosticStatus.OK, "running"
        status = DiagnosticStatus(
            level=level, name=f"{self.get_name()}: {self.ENGINE}", message=message,
            hardware_id=self.get_fully_qualified_name(),
            values=[KeyValue(key=k, value=v) for k, v in values.items()],
        )
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(array)


def run_node(node_class: type, args: list[str] | None = None) -> int:
    """Entry point: rclpy init, the node on a SingleThreadedExecutor, clean exit on SIGINT."""
    rclpy.init(args=args if args is not None else sys.argv)
    node = None
    try:
        node = node_class()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except ParameterException as err:  # a declared parameter's value out of range, wrong type
        print(f"{node_class.__name__}: invalid parameter: {err}", file=sys.stderr)
        return 1
    except SystemExit as err:
        if node is None:
            print(err, file=sys.stderr)
            return 1
        raise
    finally:
        if node is not None:
            node.stop_worker()
            node.destroy_node()
        rclpy.try_shutdown()
    return 0
