"""An isolated ROS 2 graph in one process, for tests and benchmarks (no ``ros2 launch``).

:class:`RosGraph` reserves a free ROS domain id (``ros-domain-coordinator``), keeps discovery
on this host, creates its own rclpy ``Context`` and spins a ``SingleThreadedExecutor`` in a
background thread; nodes made in it talk over the real middleware (Fast DDS)::

    with RosGraph() as graph:
        node = graph.add(ObjectPoseNode(context=graph.context, parameter_overrides=[...]))
        probe = graph.node("probe")
        ...
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node


def isolate_discovery() -> None:
    """Keep DDS discovery on this host (set before the first rclpy.init of the process)."""
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")


class RosGraph:
    def __init__(self, domain_id: int | None = None) -> None:
        isolate_discovery()
        self._stack = contextlib.ExitStack()
        if domain_id is None:
            from domain_coordinator import domain_id as reserve_domain_id

            domain_id = self._stack.enter_context(reserve_domain_id())
        self.domain_id = int(domain_id)
        self.context = Context()
        rclpy.init(context=self.context, domain_id=self.domain_id)
        self.executor = SingleThreadedExecutor(context=self.context)
        self._nodes: list[Node] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, name="ros-graph-spin", daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while not self._stop.is_set() and self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:  # the context was shut down under us
                if self._stop.is_set() or not self.context.ok():
                    return
                raise

    def add(self, node: Node) -> Node:
        self._nodes.append(node)
        self.executor.add_node(node)
        return node

    def node(self, name: str, **kwargs: Any) -> Node:
        """A plain node in this graph (for test publishers and subscribers)."""
        return self.add(Node(name, context=self.context, **kwargs))

    def env(self) -> dict[str, str]:
        """Environment for a subprocess that should join this graph."""
        env = dict(os.environ)
        env["ROS_DOMAIN_ID"] = str(self.domain_id)
        env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
        return env

    @staticmethod
    def wait_for(predicate: Callable[[], Any], timeout: float, period: float = 0.02) -> Any:
        """Poll ``predicate`` until it is truthy (returned) or ``timeout`` seconds pass (None)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            value = predicate()
            if value:
                return value
            time.sleep(period)
        return None

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)
        for node in reversed(self._nodes):
            stop = getattr(node, "stop_worker", None)
            if stop is not None:
                stop()
            self.executor.remove_node(node)
            node.destroy_node()
        self.executor.shutdown()
        rclpy.try_shutdown(context=self.context)
        self._stack.close()

    def __enter__(self) -> RosGraph:  # noqa: PYI034
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
