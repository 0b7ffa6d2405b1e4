"""YAML presets: one reader, so every command reports a bad preset the same way."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Callable

import yaml

from ..errors import InputError

# The named presets: in a checkout a link to the repo's pipelines/, in a wheel (the Docker image) package data.
PRESETS_DIR = Path(__file__).resolve().parents[1] / "presets"


def read_yaml_mapping(path: Path) -> dict[str, Any]:
    """The mapping in a YAML file; InputError if missing, invalid or not a mapping (empty file -> {})."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"preset not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise InputError(f"preset {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise InputError(f"preset {path} must be a mapping")
    return data


def deep_merge(base: dict[str, Any], over: dict[str, Any] | None) -> dict[str, Any]:
    """`base` with `over` merged in, recursively for nested mappings (a copy; neither input changes)."""
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def read_yaml_extends(path: Path, per_level: Callable[[dict[str, Any], Path], dict[str, Any]] | None = None,
                      _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The mapping in a YAML preset with `extends: OTHER.yaml` (relative to it) resolved: a variant of a
    preset states only what it changes. `per_level(merged, path)`, if given, runs on each file's result
    (its parents merged in), e.g. to apply keys that edit what the parents defined."""
    path = Path(path).resolve()
    if path in _seen:
        raise InputError(f"preset {path}: circular extends")
    raw = read_yaml_mapping(path)
    parent = raw.pop("extends", None)
    if parent:
        raw = deep_merge(read_yaml_extends(path.parent / parent, per_level, (*_seen, path)), raw)
    return per_level(raw, path) if per_level else raw
