"""Complementary matching methods for labelling. Each returns pixel correspondences for a frame pair.

Methods that fail differently make the fused labels denser and more reliable (GIM's multi-method idea):
the registry's learned matcher and RootSIFT mutual-NN on SIFT keypoints, AKAZE (nonlinear scale space,
binary descriptors) and ORB+BEBLID (FAST corners, learned binary descriptor) from OpenCV contrib.
"""
from __future__ import annotations

from typing import Any, Callable

import cv2
import numpy as np

from ..errors import InputError
from ..matchers import get_matcher
from ..matchers.registry import REGISTRY, list_matchers


def _binary_mutual_ratio(d0: np.ndarray, d1: np.ndarray, ratio: float = 0.85) -> np.ndarray:
    if d0 is None or d1 is None or len(d0) < 2 or len(d1) < 2:
        return np.zeros((0, 2), int)
    bf = cv2.BFMatcher(cv2.NORM_HAMMING)
    knn = bf.knnMatch(d0, d1, k=2)
    back = {m.queryIdx: m.trainIdx for m in bf.match(d1, d0)}
    out = [(m.queryIdx, m.trainIdx) for m, n in (p for p in knn if len(p) == 2)
           if m.distance < ratio * n.distance and back.get(m.trainIdx) == m.queryIdx]
    return np.array(out, int).reshape(-1, 2)


class OpenCVBinaryMethod:
    """Detector + binary descriptor + Hamming mutual NN with ratio test."""

    def __init__(self, name: str, create: Callable[[], tuple[Any, Any]], max_side: int = 1024):
        self.name, self.feature_key, self.max_side = name, name, max_side
        self.detector, self.descriptor = create()

    def extract(self, image: np.ndarray) -> dict[str, np.ndarray]:
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
        s = min(1.0, self.max_side / max(grey.shape))
        small = cv2.resize(grey, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) if s < 1 else grey
        kps = self.detector.detect(small, None)
        kps, desc = self.descriptor.compute(small, kps)
        pts = np.array([k.pt for k in kps], np.float32).reshape(-1, 2)
        return {"keypoints": (pts + 0.5) / s - 0.5, "descriptors": desc}

    def match(self, f0: dict, f1: dict) -> tuple[np.ndarray, np.ndarray]:
        m = _binary_mutual_ratio(f0["descriptors"], f1["descriptors"])
        return f0["keypoints"][m[:, 0]], f1["keypoints"][m[:, 1]]


class RegistryMethod:
    """Any sparse matcher of the registry (learned or classical)."""

    def __init__(self, name: str, max_keypoints: int, device: str):
        self.name = name
        self.matcher = get_matcher(name, {"features": {"max_keypoints": max_keypoints, "resize_max": 1024}}, device)
        self.feature_key = self.matcher.feature_key

    def extract(self, image: np.ndarray) -> dict[str, np.ndarray]:
        return self.matcher.extract(image)

    def match(self, f0: dict, f1: dict) -> tuple[np.ndarray, np.ndarray]:
        pm = self.matcher.pair_from_features(f0, f1)
        return pm.kpts0, pm.kpts1


def _akaze():
    a = cv2.xfeatures2d.AKAZE_create(threshold=0.0008)
    return a, a


def _orb_beblid():
    orb = cv2.ORB_create(nfeatures=3000, fastThreshold=10)
    return orb, cv2.xfeatures2d.BEBLID_create(0.75)


OPENCV_METHODS = {"akaze": _akaze, "orb-beblid": _orb_beblid}


def available_methods() -> list[str]:
    return [e.name for e in list_matchers() if e.available()] + list(OPENCV_METHODS)


def default_methods() -> list[str]:
    """The base learned model when it exists, RootSIFT mutual NN, and AKAZE."""
    list_matchers()
    learned = [n for n in ("sift-lightglue-base",) if n in REGISTRY and REGISTRY[n].available()]
    return learned + ["sift-nn", "akaze"]


def build_methods(names: list[str], max_keypoints: int = 2048, device: str = "auto") -> list:
    methods = []
    for name in names:
        if name in OPENCV_METHODS:
            methods.append(OpenCVBinaryMethod(name, OPENCV_METHODS[name]))
        else:
            list_matchers()
            if name not in REGISTRY:
                raise InputError(f"unknown labelling method '{name}'; available: {', '.join(available_methods())}")
            methods.append(RegistryMethod(name, max_keypoints, device))
    if not methods:
        raise InputError("no labelling method given")
    return methods
