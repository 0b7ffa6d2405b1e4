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

from typing import Any, Callable

import torch.nn as nn

from ..errors import InputError

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
