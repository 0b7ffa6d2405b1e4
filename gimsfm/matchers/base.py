"""The matcher interface every pipeline and benchmark uses.

A *sparse* matcher extracts features per image (`extract`) and matches two feature sets (`match`);
pipelines cache the features in hloc's features.h5 and the matches in matches.h5. `match_images` is the
generic two-view entry point and works for every matcher, sparse or dense.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np


@dataclass
class PairMatches:
    """Correspondences between two images, in original pixel coordinates (OpenCV centres)."""

    kpts0: np.ndarray  # (M, 2) float
    kpts1: np.ndarray  # (M, 2) float
    scores: np.ndarray  # (M,) float, higher is more confident

    def __len__(self) -> int:
        return len(self.kpts0)


class Matcher:
    """Base class. Subclasses set `default_conf`, implement `extract` and `match` (sparse)."""

    name: ClassVar[str] = ""
    sparse: ClassVar[bool] = True
    default_conf: ClassVar[dict[str, Any]] = {}

    def __init__(self, conf: dict[str, Any] | None = None, device: str = "auto"):
        self.conf = {**self.default_conf, **(conf or {})}
        self.device = device

    # Features of one image: dict with at least keypoints (N, 2), descriptors (N, D), scores (N,),
    # image_size (2,) = (W, H). Arrays are numpy.
    def extract(self, image: np.ndarray) -> dict[str, np.ndarray]:
        raise NotImplementedError

    @property
    def feature_key(self) -> str:
        """Identifies the features: matchers with equal keys can share one features.h5."""
        raise NotImplementedError

    def match(self, feats0: dict[str, np.ndarray], feats1: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Returns (matches0, scores0): for each keypoint of image 0 the index in image 1 or -1, and a score."""
        raise NotImplementedError

    def match_images(self, image0: np.ndarray, image1: np.ndarray) -> PairMatches:
        f0, f1 = self.extract(image0), self.extract(image1)
        return self.pair_from_features(f0, f1)

    def pair_from_features(self, f0: dict[str, np.ndarray], f1: dict[str, np.ndarray]) -> PairMatches:
        m0, s0 = self.match(f0, f1)
        valid = m0 > -1
        return PairMatches(f0["keypoints"][valid], f1["keypoints"][m0[valid]], s0[valid])


def matches0_from_pairs(matches: np.ndarray, scores: np.ndarray, n0: int) -> tuple[np.ndarray, np.ndarray]:
    """(M, 2) index pairs -> hloc's matches0 (n0,) int32 with -1 for unmatched, and scores0 (n0,)."""
    m0 = np.full(n0, -1, np.int32)
    s0 = np.zeros(n0, np.float32)
    if len(matches):
        m0[matches[:, 0]] = matches[:, 1]
        s0[matches[:, 0]] = scores
    return m0, s0


class SiftMatcher(Matcher):
    """A sparse matcher on the shared SIFT extractor (conf["features"] overrides its settings)."""

    def __init__(self, conf: dict[str, Any] | None = None, device: str = "auto"):
        from ..features.sift import SiftExtractor

        super().__init__(conf, device)
        self.extractor = SiftExtractor(self.conf.get("features", {}))

    @property
    def feature_key(self) -> str:
        return self.extractor.key

    def extract(self, image: np.ndarray) -> dict[str, np.ndarray]:
        return self.extractor(image)
