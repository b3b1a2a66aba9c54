"""Configs: plain YAML files loaded into dataclasses with defaults; any key can be overridden.

A config class is an ordinary (possibly nested) dataclass. ``load_config(Cls, path,
overrides)`` reads the YAML (unknown keys are an error: a typo must not be silently ignored),
then applies ``"a.b=value"`` overrides (values parsed as YAML scalars), then type-checks.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from posekit.errors import BadInputError, CorruptFileError, MissingFileError
from posekit.validation import as_path

C = TypeVar("C")


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    if not isinstance(data, dict):
        raise BadInputError(f"config {where or 'root'}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(fields)
    if unknown:
        raise BadInputError(
            f"config {where or 'root'}: unknown key(s) {sorted(unknown)}; valid keys are {sorted(fields)}"
        )
    kwargs = {}
    for name, value in data.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint) and isinstance(value, dict):
            kwargs[name] = _build(hint, value, f"{where}.{name}" if where else name)
        else:
            kwargs[name] = _coerce(value, hint, f"{where}.{name}" if where else name)
    return cls(**kwargs)


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        raise BadInputError(f"config {where}: is a section of keys, got the value {value!r}")
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is int and isinstance(value, bool):
        raise BadInputError(f"config {where}: expected int, got {value!r}")
    if hint in (int, float, str, bool) and not isinstance(value, hint):
        raise BadInputError(f"config {where}: expected {hint.__name__}, got {value!r}")
    if hint is float and not math.isfinite(value):
        raise BadInputError(f"config {where}: expected a finite number, got {value!r}")
    if origin in (list, tuple) and not isinstance(value, (list, tuple)):
        raise BadInputError(f"config {where}: expected a list, got {value!r}")
    if origin is tuple and args and Ellipsis not in args:
        if len(value) != len(args):
            raise BadInputError(f"config {where}: expected {len(args)} values, got {value!r}")
        return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if origin in (list, tuple) and args:
        return origin(_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
    if origin is tuple:
        return tuple(value)
    return value


def _as_dict(obj: Any) -> dict[str, Any]:
    return dataclasses.asdict(obj)


def apply_overrides(data: dict[str, Any], overrides: list[str] | None) -> dict[str, Any]:
    """Apply ``"a.b=value"`` strings to a nested dict (values parsed as YAML), returning a copy."""
    out = yaml.safe_load(yaml.safe_dump(data))
    for item in overrides or []:
        if "=" not in item:
            raise BadInputError(f"override {item!r} must look like key.subkey=value")
        key, raw = item.split("=", 1)
        node = out
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise BadInputError(f"override {item!r}: {p!r} is not a section")
        node[parts[-1]] = yaml.safe_load(raw)
    return out


def load_config(cls: type[C], path: str | Path | None = None, overrides: list[str] | None = None) -> C:
    """Defaults of ``cls``, updated by the YAML file at ``path`` (if any), then by ``overrides``."""
    data: dict[str, Any] = _as_dict(cls())
    if path is not None:
        path = as_path(path, "config path")
        if not path.is_file():
            raise MissingFileError(f"config file not found: {path}")
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise CorruptFileError(f"{path}: not valid YAML ({exc})") from exc
        if not isinstance(loaded, dict):
            raise CorruptFileError(f"{path}: the top level must be a mapping of keys to values")
        data = _merge(data, loaded)
    data = apply_overrides(data, overrides)
    return _build(cls, data, "")


def _merge(base: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in new.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def save_config(cfg: Any, path: str | Path) -> Path:
    """Write a config dataclass as YAML (so a run records exactly what it used)."""
    from posekit.io.atomic import atomic_write_text

    return atomic_write_text(path, yaml.safe_dump(_as_dict(cfg), sort_keys=False))
