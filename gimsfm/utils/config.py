"""YAML presets: one reader, so every command reports a bad preset the same way."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ..errors import InputError


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
