"""`dog-desc-base` / `dog-desc-gim`: DoG keypoints (OpenCV SIFT's detector: position, scale, orientation) described
by a small CNN on 32x32 patches (gimsfm.models.patch_descriptor, trained by gimsfm.train), matched by mutual
nearest neighbour + Lowe's ratio test (the ratio is stored with the weights, tuned on dev data).

Features are per image, so the pipelines cache them in hloc's features.h5 like SIFT's.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..features.patches import extract_patches
from ..features.sift import SiftExtractor
from ..models import load_exported
from ..utils.device import resolve_device
from .base import Matcher
from .registry import register
from .sift_nn import mutual_nn_ratio

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
BASE_WEIGHTS = WEIGHTS_DIR / "dog_desc_base.pt"
GIM_WEIGHTS = WEIGHTS_DIR / "dog_desc_gim.pt"


class DogDescMatcher(Matcher):
    default_conf: dict[str, Any] = {
        "weights": str(BASE_WEIGHTS),
        "features": {},  # overrides of SiftExtractor.default_conf (the detector): max_keypoints, resize_max, ...
        "ratio": None,  # None: the ratio stored with the weights
        "mutual": True,
        "batch": 1024,  # patches per forward pass (bounds memory)
    }

    def __init__(self, conf: dict[str, Any] | None = None, device: str = "auto"):
        super().__init__(conf, device)
        self.detector = SiftExtractor(self.conf.get("features", {}))
        path = Path(self.conf["weights"])
        self.torch_device = resolve_device(device)
        self.model, self.info = load_exported(path, str(self.torch_device), expect="patch_descriptor")
        # The weights' content is part of the configuration (benchmark caches are keyed by it).
        self.conf["weights_sha1"] = hashlib.sha1(path.read_bytes()).hexdigest()[:12]
        if self.conf["ratio"] is None:
            self.conf["ratio"] = float(self.model.conf["ratio"])
        if self.torch_device.type == "cpu":
            self.model.optimize_for_cpu()

    @property
    def feature_key(self) -> str:
        return f"dogdesc-{self.conf['weights_sha1']}-{self.detector.key}"

    @torch.inference_mode()
    def describe(self, grey: np.ndarray, f: dict[str, np.ndarray]) -> np.ndarray:
        c = self.model.conf
        p = extract_patches(grey, f["keypoints"], f["scales"], f["oris"], c["patch_size"], c["mr_size"])
        out = [self.model.describe(p[i:i + self.conf["batch"]].to(self.torch_device)).float().cpu()
               for i in range(0, len(p), self.conf["batch"])]
        return torch.cat(out).numpy() if out else np.zeros((0, int(c["dim"])), np.float32)

    def extract(self, image: np.ndarray) -> dict[str, np.ndarray]:
        import cv2

        grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        f = self.detector.detect(grey)
        f["descriptors"] = self.describe(grey, f)
        return f

    def match(self, feats0, feats1):
        return mutual_nn_ratio(feats0["descriptors"], feats1["descriptors"], self.conf["ratio"], self.conf["mutual"])


@register("dog-desc-base", "DoG keypoints + a small CNN patch descriptor trained by gimsfm on homographies of real "
          "photos and synthetic 3D worlds; mutual NN + ratio", available=lambda: BASE_WEIGHTS.is_file(),
          sfm_keypoints=8192)
class DogDescBase(DogDescMatcher):
    pass


@register("dog-desc-gim", "dog-desc-base after GIM self-training on labelled videos (gimsfm label + train)",
          available=lambda: GIM_WEIGHTS.is_file(), sfm_keypoints=8192)
class DogDescGim(DogDescMatcher):
    default_conf: dict[str, Any] = {**DogDescMatcher.default_conf, "weights": str(GIM_WEIGHTS)}
