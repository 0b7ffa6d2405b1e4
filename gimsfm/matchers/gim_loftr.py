"""`gim-loftr`: LoFTR with GIM's ResNet-50 FPN backbone, running the GIM authors' released checkpoint
(`gim_loftr_50h.ckpt`, brought by the user: `--matcher gim-loftr:PATH` or found in the weights folder).

The network (gimsfm.models.loftr) sees the RGB image in [0, 1] without normalisation, resized so its long side
is at most `resize` and both sides are multiples of 8 (LoFTR's coarse stride), as GIM's demo prepares it.
`certainty_threshold` is LoFTR's coarse confidence threshold (0.2 in GIM's configuration); matches come back
in original pixels with the coarse confidence as score.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import InputError
from ..models.loftr import GimLoFTR
from .base import PairMatches
from .dense import DenseMatcher
from .registry import register
from .release import load_release_state_dict, registration, resolve_release_weights, strip_prefix

NAME = "gim-loftr"


def file_sha1(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()[:12]


@register(NAME, "LoFTR (ResNet-50 FPN) with GIM's released weights gim_loftr_50h.ckpt (dense; user-supplied "
          "file)", **registration(NAME))
class GimLoFTRMatcher(DenseMatcher):
    default_conf: dict[str, Any] = {
        **DenseMatcher.default_conf,
        # Long side 640: ~1.1 GB peak RSS per process on CPU (README: measured cost). The coarse confidence
        # matrix grows with the 4th power of the side: resize=480 / 320 bound memory, 0 = native size (GIM's demo).
        "resize": 640,
        "certainty_threshold": 0.2,  # GIM's coarse threshold
        "num_samples": 0,  # all mutual-nearest coarse matches (typically a few thousand)
    }

    def __init__(self, conf: dict[str, Any] | None = None, device: str = "auto"):
        super().__init__(conf, device)
        path = resolve_release_weights(NAME, self.conf["weights"])
        state = strip_prefix(load_release_state_dict(path, NAME), "model.")
        # The checkpoint's content is part of the configuration (benchmark caches are keyed by it).
        self.conf["weights"], self.conf["weights_sha1"] = str(path), file_sha1(path)
        self.model = GimLoFTR()
        self.model.load_state_dict(state, strict=True)
        self.model.eval().to(self.torch_device)

    def match_pair(self, image0: np.ndarray, image1: np.ndarray) -> PairMatches:
        size0, size1 = self.model_size(*image0.shape[:2], 8), self.model_size(*image1.shape[:2], 8)
        self._check_memory(size0, size1)
        x0, s0 = self.to_tensor(image0, size0)
        x1, s1 = self.to_tensor(image1, size1)
        with torch.inference_mode():
            out = self.model(x0, x1, thr=float(self.conf["certainty_threshold"]))
        return PairMatches(self.to_original(out["mkpts0_f"], s0), self.to_original(out["mkpts1_f"], s1),
                           out["mconf"].float().cpu().numpy())

    def _check_memory(self, size0: tuple[int, int], size1: tuple[int, int]) -> None:
        """The coarse confidence matrix (1/8-resolution cells of one image x the other's; similarity and both
        softmaxes alive at once) is what grows with the 4th power of the side: refuse, in one line, a size
        that cannot fit instead of being killed by the OS."""
        import psutil

        cells = (size0[0] // 8) * (size0[1] // 8) * (size1[0] // 8) * (size1[1] // 8)
        need = 3 * 4 * cells
        if self.torch_device.type == "cuda":
            free = torch.cuda.mem_get_info(self.torch_device)[0]
        else:
            free = psutil.virtual_memory().available
        if need > 0.8 * free:
            raise InputError(f"{NAME}: images of {size0[1]}x{size0[0]} and {size1[1]}x{size1[0]} px need about "
                             f"{need / 2**30:.1f} GiB for LoFTR's coarse matrix ({free / 2**30:.1f} GiB free); "
                             f"use --matcher {NAME}@resize=640 or smaller")
