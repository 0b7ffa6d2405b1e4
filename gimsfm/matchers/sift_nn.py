"""The classical baseline: RootSIFT + mutual nearest neighbour + Lowe's ratio test."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .base import SiftMatcher
from .registry import register


def mutual_nn_ratio(desc0: np.ndarray, desc1: np.ndarray, ratio: float = 0.8,
                    mutual: bool = True, max_distance: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force L2 matching of unit descriptors; returns (matches0, scores0) in hloc's layout."""
    n0 = len(desc0)
    m0 = np.full(n0, -1, np.int32)
    s0 = np.zeros(n0, np.float32)
    if n0 == 0 or len(desc1) < 2:
        return m0, s0
    d0 = torch.from_numpy(np.ascontiguousarray(desc0, np.float32))
    d1 = torch.from_numpy(np.ascontiguousarray(desc1, np.float32))
    sim = d0 @ d1.T
    # For unit vectors: squared distance = 2 - 2 sim.
    top2 = sim.topk(2, dim=1)
    dist = torch.sqrt(torch.clamp(2 - 2 * top2.values, min=0))
    nn01 = top2.indices[:, 0]
    keep = dist[:, 0] <= ratio * dist[:, 1]
    if max_distance is not None:
        keep &= dist[:, 0] <= max_distance
    if mutual:
        nn10 = sim.argmax(dim=0)
        keep &= nn10[nn01] == torch.arange(n0)
    idx = torch.nonzero(keep).squeeze(1).numpy()
    m0[idx] = nn01.numpy()[idx]
    # Score in (0, 1]: 1 - ratio of distances, so ambiguous matches score low.
    s0[idx] = (1 - dist[:, 0] / dist[:, 1].clamp(min=1e-8)).numpy()[idx]
    return m0, s0


@register("sift-nn", "RootSIFT + mutual nearest neighbour + ratio test 0.8 (classical baseline)")
class SiftNN(SiftMatcher):
    default_conf: dict[str, Any] = {
        "features": {},  # overrides of SiftExtractor.default_conf
        "ratio": 0.8,
        "mutual": True,
    }

    def match(self, feats0, feats1):
        return mutual_nn_ratio(feats0["descriptors"], feats1["descriptors"], self.conf["ratio"], self.conf["mutual"])
