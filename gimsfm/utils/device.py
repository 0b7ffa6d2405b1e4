"""`--device auto|cpu|cuda` for every torch component, and the torchrun environment for DDP training."""
from __future__ import annotations

import os

import torch

from ..errors import InputError


def resolve_device(device: str | None) -> torch.device:
    """auto = the GPU when there is one, else the CPU; cuda:N is accepted."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("--device cuda requested but no CUDA device is available")
    if device != "cpu" and not device.startswith("cuda"):
        raise InputError(f"unknown device '{device}' (expected auto, cpu or cuda)")
    return torch.device(device)


def torchrun_world() -> tuple[int, int, int]:
    """(rank, local_rank, world_size) from the variables torchrun sets; (0, 0, 1) otherwise."""
    env = os.environ
    return int(env.get("RANK", 0)), int(env.get("LOCAL_RANK", 0)), int(env.get("WORLD_SIZE", 1))
