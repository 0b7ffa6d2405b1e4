"""Loading the project's own exported weights (`gimsfm train --export`): one function that names what is wrong
with a bad file, so every matcher answers a missing, truncated, corrupt or foreign file with one line (exit 2)."""
from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..errors import InputError


def read_exported(path: Path | bytes, label: str = "weights") -> dict[str, Any]:
    """The dict stored in an exported weights file, checked for the keys an export has. `label` starts every
    error message (name the file there when passing bytes)."""
    if isinstance(path, bytes) and not path:
        raise InputError(f"{label}: weights file is empty")
    if not isinstance(path, bytes):
        p = Path(path)
        if not p.is_file():
            raise InputError(f"{label}: weights file not found: {p}")
        if p.stat().st_size == 0:
            raise InputError(f"{label}: weights file is empty: {p}")
    try:
        obj = torch.load(io.BytesIO(path) if isinstance(path, bytes) else Path(path), map_location="cpu",
                         weights_only=False)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError, OSError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{label}: not a readable torch weights file (truncated or corrupt?): {msg[:160]}") from None
    if not isinstance(obj, dict) or not {"model_name", "conf", "state_dict"} <= set(obj):
        keys = ", ".join(list(obj)[:5]) if isinstance(obj, dict) else type(obj).__name__
        hint = " (a training checkpoint: export it with `gimsfm train --preset P --export FILE`)" \
            if isinstance(obj, dict) and "optimizer" in obj else ""
        raise InputError(f"{label}: not a gimsfm weights export (holds: {keys}){hint}")
    return obj


def load_exported(path: Path | bytes, device: str = "cpu", expect: str | None = None,
                  label: str = "weights") -> tuple[nn.Module, dict[str, Any]]:
    """An exported weights file (its path, or its bytes when the caller already read them) as (model, info).
    `expect`: the model name the caller needs (e.g. 'patch_descriptor'); another model's file is an InputError."""
    from . import build_model

    obj = read_exported(path, label)
    if expect is not None and obj["model_name"] != expect:
        raise InputError(f"{label}: the file holds a '{obj['model_name']}' model, not a '{expect}' model")
    model = build_model(obj["model_name"], obj["conf"])
    sd = {k: v.float() if v.is_floating_point() else v for k, v in obj["state_dict"].items()}
    try:
        model.load_state_dict(sd)
    except RuntimeError as exc:
        first = str(exc).splitlines()[1].strip() if len(str(exc).splitlines()) > 1 else str(exc)
        raise InputError(f"{label}: the weights do not fit the '{obj['model_name']}' model: {first[:160]}") from None
    model.eval()
    return model.to(device), obj.get("info", {})
