"""The shared SIFT extractor (OpenCV) with RootSIFT descriptors, used by every SIFT-based matcher."""
from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from ..utils.io import resize_max


def rootsift(desc: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """RootSIFT (Arandjelovic & Zisserman 2012): L1-normalise, square-root; result is unit L2."""
    desc = desc.astype(np.float32)
    desc /= np.abs(desc).sum(axis=1, keepdims=True) + eps
    return np.sqrt(desc)


class SiftExtractor:
    """OpenCV SIFT on the (optionally downscaled) grey image.

    Output keypoints are in the ORIGINAL image's pixel coordinates, OpenCV convention (top-left pixel
    centre at (0, 0)), as in hloc's features.h5. Orientations are radians, scales are keypoint sizes in
    original pixels.
    """

    default_conf: dict[str, Any] = {
        "max_keypoints": 2048,
        "resize_max": 1600,
        "contrast_threshold": 0.02,
        "edge_threshold": 10,
        "n_octave_layers": 3,
        "root": True,
    }

    def __init__(self, conf: dict[str, Any] | None = None):
        self.conf = {**self.default_conf, **(conf or {})}
        # nfeatures=0: keep all, then cut by response ourselves (OpenCV's cut keeps duplicates).
        self.sift = cv2.SIFT_create(
            nfeatures=0,
            nOctaveLayers=self.conf["n_octave_layers"],
            contrastThreshold=self.conf["contrast_threshold"],
            edgeThreshold=self.conf["edge_threshold"],
        )

    @property
    def key(self) -> str:
        """Identifies the settings: matchers whose extractors share a key can share a features.h5."""
        c = self.conf
        return f"sift-root{int(c['root'])}-n{c['max_keypoints']}-r{c['resize_max']}-c{c['contrast_threshold']}"

    def __call__(self, image: np.ndarray) -> dict[str, np.ndarray]:
        return self._run(image, describe=True)

    def detect(self, image: np.ndarray) -> dict[str, np.ndarray]:
        """The same keypoints (DoG extrema with scale and orientation) without descriptors: the detector of
        learned patch descriptors (saves the RootSIFT computation, about half of SIFT's time)."""
        return self._run(image, describe=False)

    def _run(self, image: np.ndarray, describe: bool) -> dict[str, np.ndarray]:
        grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        h, w = grey.shape[:2]
        small, scale = resize_max(grey, self.conf["resize_max"])
        if describe:
            kps, desc = self.sift.detectAndCompute(small, None)
        else:
            kps, desc = self.sift.detect(small, None), None
        n = len(kps)
        if n == 0 or (describe and desc is None):
            out = {
                "keypoints": np.zeros((0, 2), np.float32),
                "scales": np.zeros((0,), np.float32),
                "oris": np.zeros((0,), np.float32),
                "scores": np.zeros((0,), np.float32),
                "image_size": np.array([w, h], np.int32),
            }
            if describe:
                out["descriptors"] = np.zeros((0, 128), np.float32)
            return out
        pts = np.array([k.pt for k in kps], np.float32)
        size = np.array([k.size for k in kps], np.float32)
        angle = np.array([k.angle for k in kps], np.float32)
        resp = np.array([k.response for k in kps], np.float32)
        # Same location at several orientations: keep them (as COLMAP does), but cut by response.
        order = np.argsort(-resp, kind="stable")[: self.conf["max_keypoints"]]
        pts, size, angle, resp = pts[order], size[order], angle[order], resp[order]
        # Exact map between resized and original OpenCV pixel centres.
        pts = (pts + 0.5) * scale - 0.5
        out = {
            "keypoints": pts.astype(np.float32),
            "scales": (size * scale).astype(np.float32),
            "oris": np.deg2rad(angle).astype(np.float32),
            "scores": resp.astype(np.float32),
            "image_size": np.array([w, h], np.int32),
        }
        if describe:
            desc = desc[order]
            if self.conf["root"]:
                desc = rootsift(desc)
            else:
                desc = desc / (np.linalg.norm(desc, axis=1, keepdims=True) + 1e-8)
            out["descriptors"] = desc.astype(np.float32)
        return out
