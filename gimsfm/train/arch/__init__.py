"""One adapter per trainable architecture: what the generic trainer (`gimsfm.train.trainer.Trainer`) asks of it.

The trainer owns everything shared (presets, optimizer, LR schedule, resume, DDP, checkpoints, CSV logs, curves,
export, model cards); an adapter owns what differs between architectures:

    arch.train_data(sources, weights, seed, preset)  -> object with .batch(it, batch_size) -> dict of tensors
    arch.evaluate(model, val_sources, preset, baseline=False, rank=0, world=1) -> dict of floats
        (model=None, baseline=True: the classical baseline (RootSIFT mutual NN) on the same validation pairs)

The model itself is a `gimsfm.models` module (forward / loss / predict / input_kind). The adapter is chosen by
the model's `input_kind`, so adding an architecture adds one model file and one adapter, and touches neither the
trainer nor the other adapters.
"""
from __future__ import annotations

from typing import Any, Protocol

import torch.nn as nn

from ...errors import InputError


class Trainable(Protocol):
    def train_data(self, sources: list, weights: list[float], seed: int, preset: dict[str, Any]) -> Any: ...

    def evaluate(self, model: nn.Module | None, val_sources: list, preset: dict[str, Any], baseline: bool = False,
                 rank: int = 0, world: int = 1) -> dict[str, float]: ...


def arch_for(model: nn.Module) -> Trainable:
    kind = getattr(model, "input_kind", "sparse")
    if kind == "sparse":
        from .lightglue import LightGlueArch

        return LightGlueArch()
    if kind == "patches":
        from .patch_descriptor import PatchDescriptorArch

        return PatchDescriptorArch()
    raise InputError(f"no training adapter for models of input kind {kind!r}")
