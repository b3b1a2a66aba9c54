"""Node parameters, declared once as a table: names, defaults, ranges, choices, read-only.

The same table declares the ROS parameters (with descriptors, so ``ros2 param describe``
shows ranges and read-only flags), validates values set at run time, and reads a ROS
parameters YAML file for offline replay, with no ROS import here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from posekit.errors import BadInputError, CorruptFileError, MissingFileError


@dataclass(frozen=True)
class ParameterSpec:
    """One node parameter.

    ``default`` fixes the type: bool, int, float, str, or a list of one of str, int, float
    (an empty list needs ``list_of``). ``value_range`` (inclusive) bounds numbers and every
    element of numeric lists; ``choices`` lists the allowed strings. ``read_only`` parameters
    need a reload (reconfigure) to change: ROS refuses to set them at run time.
    """

    name: str
    default: Any
    description: str
    value_range: tuple[float, float] | None = None
    choices: tuple[str, ...] | None = None
    read_only: bool = False
    list_of: type | None = None

    @property
    def kind(self) -> type:
        """bool, int, float, str or list."""
        return list if isinstance(self.default, (list, tuple)) else type(self.default)

    @property
    def element_type(self) -> type | None:
        if self.kind is not list:
            return None
        if self.list_of is not None:
            return self.list_of
        if not self.default:
            raise TypeError(f"parameter {self.name}: an empty list default needs list_of")
        return type(self.default[0])

    def validate(self, value: Any) -> Any:
        """``value`` converted to this parameter's type; BadInputError saying what is allowed."""
        kind = self.kind
        if kind is list:
            if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
                raise BadInputError(f"parameter {self.name} must be a list, got {value!r}")
            element = self.element_type
            out = [self._scalar(v, element, f"{self.name}[{i}]") for i, v in enumerate(value)]
            return out
        return self._scalar(value, kind, self.name)

    def _scalar(self, value: Any, kind: type, where: str) -> Any:
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if kind is bool and not isinstance(value, bool):
            raise BadInputError(f"parameter {where} must be true or false, got {value!r}")
        if kind in (int, float) and (isinstance(value, bool) or not isinstance(value, kind)):
            raise BadInputError(f"parameter {where} must be a{'n int' if kind is int else ' float'}, got {value!r}")
        if kind is str and not isinstance(value, str):
            raise BadInputError(f"parameter {where} must be a string, got {value!r}")
        if self.value_range is not None and kind in (int, float):
            lo, hi = self.value_range
            if not (lo <= value <= hi):
                raise BadInputError(f"parameter {where} = {value} is outside [{lo}, {hi}]")
        if self.choices is not None and kind is str and value not in self.choices:
            raise BadInputError(f"parameter {where} = {value!r} must be one of {list(self.choices)}")
        return value


# Parameters every posekit node declares.
COMMON_PARAMETERS: tuple[ParameterSpec, ...] = (
    ParameterSpec("autostart", True, "configure and activate on start (false: wait for a "
                  "lifecycle manager)", read_only=True),
    ParameterSpec("input_reliability", "reliable", "QoS reliability of the sensor inputs; "
                  "reliable keeps large clouds intact with Fast DDS, best_effort matches "
                  "sensor-data publishers", choices=("reliable", "best_effort"), read_only=True),
    ParameterSpec("input_queue_depth", 2, "QoS history depth of the sensor inputs",
                  value_range=(1, 100), read_only=True),
    ParameterSpec("diagnostics_period_s", 1.0, "period of the /diagnostics status, seconds",
                  value_range=(0.05, 60.0), read_only=True),
)


def validate_parameters(specs: Sequence[ParameterSpec], values: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults updated by ``values``, each validated; unknown names are an error."""
    by_name = {s.name: s for s in specs}
    unknown = sorted(set(values) - set(by_name))
    if unknown:
        raise BadInputError(f"unknown parameter(s) {unknown}; this node declares {sorted(by_name)}")
    out = {s.name: s.validate(list(s.default) if s.kind is list else s.default) for s in specs}
    for name, value in values.items():
        out[name] = by_name[name].validate(value)
    return out


def read_parameters_file(path: str | Path, node_name: str) -> dict[str, Any]:
    """The ``ros__parameters`` of ``node_name`` in a ROS 2 parameters YAML file.

    Accepts the node's own section, a ``/**`` wildcard section (merged first), or a
    namespaced key ending in ``/node_name``.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"parameters file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise CorruptFileError(f"{path}: not valid YAML ({err})") from err
    if not isinstance(data, dict):
        raise CorruptFileError(f"{path}: a parameters file maps node names to ros__parameters")
    merged: dict[str, Any] = {}
    found = False
    for key in ("/**", *[k for k in data if k.lstrip("/").split("/")[-1] == node_name]):
        section = data.get(key)
        if section is None:
            continue
        if not isinstance(section, dict) or "ros__parameters" not in section:
            raise CorruptFileError(f"{path}: section {key!r} has no ros__parameters")
        merged.update(section["ros__parameters"] or {})
        found = found or key != "/**"
    if not found:
        raise BadInputError(f"{path} has no section for node {node_name!r}; it has {sorted(data)}")
    return merged
