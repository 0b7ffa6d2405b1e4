"""Trainable matcher networks, by name.

A model registered here is what a training preset names (`model: {name: ..., conf: {...}}`). The trainer only
uses this interface:

    model = build_model(name, conf)          # an nn.Module with .conf (dict) and .input_kind ("sparse", ...)
    out = model(batch)                       # training forward (no pruning), batch from the data pipeline
    loss, metrics = model.loss(batch, out)   # scalar loss + dict of floats (logged)
    pred = model.predict(batch)              # inference: matches0 (B, M) int64 (-1 = none), scores0 (B, M)

So a dense / detector-free architecture plugs in by registering a module with the same four methods and an
`input_kind` that selects the matching data pipeline.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch.nn as nn

from ..errors import InputError
from ..utils.checkpoint import read_torch_file

MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str) -> Callable[[type], type]:
    def deco(cls):
        MODELS[name] = cls
        cls.model_name = name
        return cls

    return deco


def model_class(name: str) -> Callable[..., nn.Module]:
    from . import lightglue, patch_descriptor  # noqa: F401  (registers)

    if name not in MODELS:
        raise InputError(f"unknown model '{name}'; available: {', '.join(sorted(MODELS))}")
    return MODELS[name]


def build_model(name: str, conf: dict[str, Any] | None = None) -> nn.Module:
    return model_class(name)(conf or {})


def read_exported(path: str | Path, what: str = "gimsfm weights file") -> dict[str, Any]:
    """An exported gimsfm weights file ({model_name, conf, state_dict, info}), read safely (no code runs);
    InputError (one line) for a missing, truncated, corrupt or foreign file."""
    obj = read_torch_file(path, what)
    if not isinstance(obj, dict) or not {"model_name", "conf", "state_dict"} <= set(obj):
        found = ", ".join(sorted(map(str, obj))[:5]) if isinstance(obj, dict) else type(obj).__name__
        raise InputError(f"not a {what} (expected model_name, conf, state_dict; found "
                         f"{found or 'nothing'}): {path}")
    return obj


def load_exported(path: str | Path, device: str = "cpu", what: str = "gimsfm weights file",
                  expect: str | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """An exported weights file as (model in eval mode on `device`, training info). A file whose tensors do not
    fit the architecture it names is an InputError naming the missing/unexpected/mis-shaped keys; `expect`: the
    model the caller needs (another model's file is an InputError)."""
    obj = read_exported(path, what)
    if expect is not None and obj["model_name"] != expect:
        raise InputError(f"{what} holds a '{obj['model_name']}' model, not a '{expect}' model: {path}")
    model = build_model(obj["model_name"], obj["conf"])
    sd = {k: v.float() if v.is_floating_point() else v for k, v in obj["state_dict"].items()}
    load_checked(model, sd, f"{what} {path}")
    model.eval()
    return model.to(device), obj.get("info", {})


def load_checked(model: nn.Module, state_dict: dict[str, Any], what: str) -> None:
    """`model.load_state_dict(strict=True)`, its failures as one InputError line with counts and a few names."""
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    shapes = [f"{k} {tuple(state_dict[k].shape)} instead of {tuple(own[k].shape)}" for k in own
              if k in state_dict and hasattr(state_dict[k], "shape") and state_dict[k].shape != own[k].shape]
    problems = []
    if missing:
        problems.append(f"{len(missing)} keys missing ({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected ({', '.join(unexpected[:3])}"
                        f"{', ...' if len(unexpected) > 3 else ''})")
    if shapes:
        problems.append(f"{len(shapes)} of the wrong shape ({'; '.join(shapes[:2])})")
    if problems:
        raise InputError(f"{what} does not fit its model: {', '.join(problems)}")
    model.load_state_dict(state_dict, strict=True)
