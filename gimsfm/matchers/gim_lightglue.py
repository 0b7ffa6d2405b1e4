"""`gim-lightglue`: the GIM authors' released SuperPoint + LightGlue (`gim_lightglue_100h.ckpt`, brought by the
user), as a sparse matcher: SuperPoint features are cached in features.h5 like SIFT's, LightGlue matches pairs.

Settings follow the release's inference code: grey image in [0, 1] resized to multiples of 8, NMS radius 3,
detection threshold 0, 4-pixel border, the 2048 best keypoints, legacy descriptor sampling, 9 LightGlue layers
without early stopping or pruning, match threshold 0.1. Two differences, both for images the reference was not
run on: images are first downscaled to `resize_max` (1600 px) on the long side, which bounds memory on large
photos (`@features.resize_max=null` for the reference's full resolution), and an image with fewer than 2048
candidates keeps fewer keypoints (the reference pads with random points).
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from ..models.gim_lightglue import GimLightGlueNet
from ..models.superpoint import SuperPoint
from ..utils.device import resolve_device
from .base import Matcher
from .registry import register
from .release import load_release_state_dict, registration, resolve_release_weights, strip_prefix

NAME = "gim-lightglue"


def network_size(width: int, height: int, resize_max: int | None) -> tuple[int, int]:
    """(W, H) SuperPoint sees: downscaled to resize_max on the long side, then down to multiples of 8."""
    s = min(1.0, resize_max / max(width, height)) if resize_max else 1.0
    return int(round(width * s)) // 8 * 8, int(round(height * s)) // 8 * 8


def file_sha1(path: Path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()[:12]


@register(NAME, "GIM's released SuperPoint + LightGlue (gim_lightglue_100h.ckpt, trained on 100 h of internet "
          "video; weights brought by the user)", sfm_keypoints=2048, **registration(NAME))
class GimLightGlue(Matcher):
    default_conf: dict[str, Any] = {
        "weights": None,  # the release file; None: found by name in the weights folder
        "features": dict(SuperPoint.default_conf, resize_max=1600),
        "filter_threshold": 0.1,
    }
    feature_defaults: dict[str, Any] = default_conf["features"]  # what `@features.KEY=...` may set

    def __init__(self, conf: dict[str, Any] | None = None, device: str = "auto"):
        super().__init__(conf, device)
        self.conf["features"] = {**self.default_conf["features"], **(self.conf.get("features") or {})}
        path = resolve_release_weights(NAME, self.conf["weights"])
        sd = load_release_state_dict(path, NAME)
        # The weights' content is part of the configuration: caches never mix two checkpoints' outputs.
        self.conf["weights"], self.conf["weights_sha1"] = str(path), file_sha1(path)
        self.torch_device = resolve_device(device)
        f = self.conf["features"]
        self.superpoint = SuperPoint({k: f[k] for k in SuperPoint.default_conf})
        self.superpoint.load_state_dict(strip_prefix(sd, "superpoint."), strict=True)
        self.superpoint.eval().to(self.torch_device)
        self.lightglue = GimLightGlueNet({"filter_threshold": self.conf["filter_threshold"]})
        self.lightglue.load_release(strip_prefix(sd, "model."))
        self.lightglue.to(self.torch_device)

    @property
    def feature_key(self) -> str:
        f = self.conf["features"]
        return (f"gim-superpoint-{self.conf['weights_sha1']}-n{f['max_keypoints']}-r{f['resize_max']}"
                f"-t{f['detection_threshold']}-nms{f['nms_radius']}-b{f['remove_borders']}")

    @torch.inference_mode()
    def extract(self, image: np.ndarray) -> dict[str, np.ndarray]:
        """Keypoints in original pixels (OpenCV centres), scores, descriptors (N, 256), image_size (W, H)."""
        grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        h, w = grey.shape[:2]
        wn, hn = network_size(w, h, self.conf["features"]["resize_max"])
        out = {"keypoints": np.zeros((0, 2), np.float32), "scores": np.zeros(0, np.float32),
               "descriptors": np.zeros((0, self.superpoint.conf["descriptor_dim"]), np.float32),
               "image_size": np.array([w, h], np.int64)}
        if min(wn, hn) < 2 * self.superpoint.conf["remove_borders"] + 8:
            return out  # too small for one cell inside the border
        if (wn, hn) != (w, h):
            grey = cv2.resize(grey, (wn, hn), interpolation=cv2.INTER_AREA if wn < w else cv2.INTER_LINEAR)
        x = torch.from_numpy(np.ascontiguousarray(grey)).to(self.torch_device, torch.float32)[None, None] / 255
        pred = self.superpoint(x)
        scale = np.array([w / wn, h / hn], np.float32)
        # SuperPoint's integer pixel (x, y) has its centre at +0.5; OpenCV puts pixel centres at integers.
        out["keypoints"] = ((pred["keypoints"].cpu().numpy() + 0.5) * scale - 0.5).astype(np.float32)
        out["scores"] = pred["scores"].float().cpu().numpy()
        out["descriptors"] = pred["descriptors"].float().cpu().numpy()
        return out

    def _network_inputs(self, f: dict[str, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        w, h = (int(v) for v in np.asarray(f["image_size"]).ravel()[:2])
        wn, hn = network_size(w, h, self.conf["features"]["resize_max"])
        kp = (np.asarray(f["keypoints"], np.float32) + 0.5) * np.array([wn / w, hn / h], np.float32)
        dev = self.torch_device
        return (torch.from_numpy(kp).to(dev)[None],
                torch.as_tensor(np.asarray(f["descriptors"]), dtype=torch.float32, device=dev)[None],
                torch.tensor([wn, hn], dtype=torch.float32, device=dev))

    @torch.inference_mode()
    def match(self, feats0: dict[str, np.ndarray], feats1: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        n0, n1 = len(feats0["keypoints"]), len(feats1["keypoints"])
        m0 = np.full(n0, -1, np.int32)
        s0 = np.zeros(n0, np.float32)
        if n0 == 0 or n1 == 0:
            return m0, s0
        k0, d0, size0 = self._network_inputs(feats0)
        k1, d1, size1 = self._network_inputs(feats1)
        pred = self.lightglue(k0, d0, size0, k1, d1, size1)
        m = pred["matches0"][0].cpu().numpy()
        s = pred["matching_scores0"][0].float().cpu().numpy()
        valid = m > -1
        m0[valid] = m[valid]
        s0[valid] = s[valid]
        return m0, s0
