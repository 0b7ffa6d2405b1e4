"""Detector-free ("dense") matchers: a network that maps an image pair straight to correspondences.

Interface for subclasses (kept small on purpose; `gim-loftr` and `gim-dkm` implement it):

- `match_pair(image0, image1) -> PairMatches` (abstract): images are uint8 RGB (H, W, 3) arrays (a grayscale
  (H, W) array is accepted and repeated to 3 channels by `to_tensor`); returns every correspondence the
  model proposes, in **original** pixel coordinates of the inputs (OpenCV centres: pixel (0, 0) covers
  [-0.5, 0.5)), `scores` = the model's certainty/confidence in [0, 1]. It may already apply `num_samples`
  (DKM samples that many) and `certainty_threshold` (LoFTR's coarse threshold); `match_images` re-applies
  both, so a subclass need not.
- `match_images(image0, image1)`: `match_pair`, then keeps matches with score >= `certainty_threshold` and at
  most `num_samples` of them (highest scores first, ties by index: deterministic).
- Common options (`default_conf`, each settable as `--matcher NAME@num_samples=2000,resize=640`):
  `num_samples` (max matches per pair; 0 = all), `resize` (long side in pixels the network sees; 0 = native
  size; smaller = less memory and time), `certainty_threshold` (min score), `weights` (checkpoint path; given
  as `NAME:PATH` on the command line). Subclasses extend `default_conf` with their own keys.
- Helpers for subclasses: `model_size(h, w, multiple)` (the size the network runs at), `to_tensor(image, size)`
  (float [0, 1] 1x3xHxW on the matcher's device, bilinearly resized), `to_original(kpts, scale)` (network
  pixels -> original pixels).

Dense matchers have no per-image features: `extract` / `match` raise. Pipelines that need keypoints per image
(reconstruct, localize) quantise and merge the correspondences (gimsfm.sfm.dense).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..utils.device import resolve_device
from .base import Matcher, PairMatches


class DenseMatcher(Matcher):
    """Base class of detector-free matchers; subclasses implement `match_pair` (see the module docstring)."""

    sparse = False
    default_conf: dict[str, Any] = {
        "weights": "",  # checkpoint file; "" = found by name in the weights folder
        "resize": 0,  # long side the network sees, in pixels (0: native)
        "num_samples": 0,  # max matches per pair (0: all)
        "certainty_threshold": 0.0,  # min score of a returned match
    }

    def __init__(self, conf: dict[str, Any] | None = None, device: str = "auto"):
        super().__init__(conf, device)
        self.torch_device = resolve_device(device)

    def match_pair(self, image0: np.ndarray, image1: np.ndarray) -> PairMatches:
        raise NotImplementedError

    def match_images(self, image0: np.ndarray, image1: np.ndarray) -> PairMatches:
        return self.select(self.match_pair(image0, image1))

    def select(self, pm: PairMatches) -> PairMatches:
        """Applies `certainty_threshold` and `num_samples` (top scores, stable order)."""
        keep = np.flatnonzero(np.asarray(pm.scores) >= float(self.conf.get("certainty_threshold") or 0.0))
        n = int(self.conf.get("num_samples") or 0)
        if n and len(keep) > n:
            order = np.argsort(-np.asarray(pm.scores)[keep], kind="stable")[:n]
            keep = np.sort(keep[order])
        return PairMatches(np.asarray(pm.kpts0, np.float32)[keep], np.asarray(pm.kpts1, np.float32)[keep],
                           np.asarray(pm.scores, np.float32)[keep])

    # Dense matchers have no per-image features.
    def extract(self, image: np.ndarray) -> dict[str, np.ndarray]:
        raise TypeError(f"{type(self).__name__} is a dense matcher: use match_images, not extract")

    def match(self, feats0, feats1):
        raise TypeError(f"{type(self).__name__} is a dense matcher: use match_images, not match")

    # --- helpers for subclasses
    def model_size(self, h: int, w: int, multiple: int = 1) -> tuple[int, int]:
        """(H, W) the network runs at: long side capped at `resize` (aspect kept), then rounded down to a
        multiple of `multiple` (at least one multiple)."""
        side = int(self.conf.get("resize") or 0)
        s = side / max(h, w) if side and max(h, w) > side else 1.0
        nh, nw = max(multiple, int(round(h * s)) // multiple * multiple), \
            max(multiple, int(round(w * s)) // multiple * multiple)
        return nh, nw

    def to_tensor(self, image: np.ndarray, size: tuple[int, int] | None = None
                  ) -> tuple[torch.Tensor, np.ndarray]:
        """uint8 image -> (float [0, 1] 1x3xHxW on the device, scale (sx, sy) = original / network size).
        Resizing is bilinear without antialiasing (torch `interpolate`, align_corners=False)."""
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        h, w = image.shape[:2]
        x = torch.from_numpy(np.array(image, np.uint8)).to(self.torch_device)  # a copy: inputs may be read-only
        x = x.permute(2, 0, 1)[None].float() / 255.0
        if size is not None and tuple(size) != (h, w):
            x = F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)
        nh, nw = x.shape[-2:]
        return x, np.array([w / nw, h / nh], np.float64)

    @staticmethod
    def to_original(kpts: np.ndarray | torch.Tensor, scale: np.ndarray) -> np.ndarray:
        """Network pixel coordinates -> original pixel coordinates (exact for the resize's pixel grid)."""
        k = kpts.detach().cpu().numpy() if isinstance(kpts, torch.Tensor) else np.asarray(kpts)
        k = k.astype(np.float64).reshape(-1, 2)
        if np.all(scale == 1.0):
            return k.astype(np.float32)
        return ((k + 0.5) * scale[None] - 0.5).astype(np.float32)
