"""`sift-lightglue-base`: our LightGlue (trained by gimsfm.train) on the shared RootSIFT features.

Inference runs kornia's LightGlue forward under torch.inference_mode, by default with adaptive depth (early
stopping by the confidence heads) and adaptive width (point pruning) off, which measured more accurate.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import InputError
from ..utils.device import resolve_device
from .base import SiftMatcher
from .registry import register

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
BASE_WEIGHTS = WEIGHTS_DIR / "sift_lightglue_base.pt"
GIM_WEIGHTS = WEIGHTS_DIR / "sift_lightglue_gim.pt"


def features_to_batch(f0: dict[str, np.ndarray], f1: dict[str, np.ndarray], device: torch.device) -> dict:
    batch = {}
    for side, f in (("0", f0), ("1", f1)):
        batch[f"keypoints{side}"] = torch.as_tensor(f["keypoints"], dtype=torch.float32, device=device)[None]
        batch[f"scales{side}"] = torch.as_tensor(f["scales"], dtype=torch.float32, device=device)[None]
        batch[f"oris{side}"] = torch.as_tensor(f["oris"], dtype=torch.float32, device=device)[None]
        batch[f"descriptors{side}"] = torch.as_tensor(f["descriptors"], dtype=torch.float32, device=device)[None]
        batch[f"image_size{side}"] = torch.as_tensor(np.asarray(f["image_size"]), dtype=torch.float32,
                                                     device=device)[None]
    return batch


class SiftLightGlue(SiftMatcher):
    """RootSIFT keypoints (scale + orientation) matched by a LightGlue trained with gimsfm."""

    default_conf: dict[str, Any] = {
        "weights": str(BASE_WEIGHTS),
        # overrides of SiftExtractor.default_conf. 1024 keypoints: the regime it was trained/validated in (512-1024)
        # and about 4x faster than 2048 (attention is quadratic); pass {"max_keypoints": 2048} for sift-nn's count.
        "features": {"max_keypoints": 1024},
        # Adaptive depth (early stopping) and width (point pruning) off: every layer runs on every point. On
        # indoor_tune (100 pairs, 1024 kp) this was +3.3 (base) / +3.8 (gim) AUC@5 for ~30 % more time; our
        # confidence heads stop too early. Fast mode: NAME@depth_confidence=0.95,width_confidence=0.99.
        "depth_confidence": -1,
        "width_confidence": -1,
        "filter_threshold": None,  # None: the value trained/exported with the model
    }

    def __init__(self, conf: dict[str, Any] | None = None, device: str = "auto"):
        super().__init__(conf, device)
        from ..models import load_exported

        path = Path(self.conf["weights"])
        if not path.is_file():
            raise InputError(f"weights not found: {path}")
        # The weights' content is part of the configuration: benchmark caches (keyed by the conf hash) never
        # serve matches of an earlier export of the same file.
        self.conf["weights_sha1"] = hashlib.sha1(path.read_bytes()).hexdigest()[:12]
        self.torch_device = resolve_device(device)
        self.model, self.info = load_exported(path, str(self.torch_device), expect="lightglue")
        self.model.set_inference(self.conf["depth_confidence"], self.conf["width_confidence"],
                                 self.conf["filter_threshold"])

    @torch.inference_mode()
    def match(self, feats0, feats1):
        n0, n1 = len(feats0["keypoints"]), len(feats1["keypoints"])
        m0 = np.full(n0, -1, np.int32)
        s0 = np.zeros(n0, np.float32)
        if n0 < 2 or n1 < 2:
            return m0, s0
        pred = self.model.predict(features_to_batch(feats0, feats1, self.torch_device), prune=True)
        m = pred["matches0"][0].cpu().numpy()
        s = pred["scores0"][0].float().cpu().numpy()
        valid = m > -1
        m0[valid] = m[valid]
        s0[valid] = s[valid]
        return m0, s0


@register("sift-lightglue-base",
          "RootSIFT + LightGlue (5 layers, dim 128) trained by gimsfm on homographies/synthetic indoor pairs",
          available=lambda: BASE_WEIGHTS.is_file(), sfm_keypoints=2048)
class SiftLightGlueBase(SiftLightGlue):
    pass


@register("sift-lightglue-gim",
          "sift-lightglue-base after GIM self-training on labelled videos (gimsfm label + train)",
          available=lambda: GIM_WEIGHTS.is_file(), sfm_keypoints=2048)
class SiftLightGlueGim(SiftLightGlue):
    default_conf: dict[str, Any] = {**SiftLightGlue.default_conf, "weights": str(GIM_WEIGHTS)}
