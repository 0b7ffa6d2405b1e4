"""Match the image pairs of a benchmark data set with any registered matcher, with an on-disk cache.

Sparse matchers: features in an hloc features.h5 (shared by every matcher with the same `feature_key`) and
matches in an hloc matches.h5, so re-running with another estimator or threshold costs no matching. Dense
matchers (`sparse = False`): `match_images` per pair, correspondences cached per pair. Images whose long side
exceeds `max_side` are downscaled before the matcher sees them and keypoints are mapped back to the original
pixel grid, so every pose / homography estimate is computed at native resolution.
"""
from __future__ import annotations

import hashlib
import json
import re
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .. import logger
from ..matchers.base import Matcher, PairMatches
from ..utils import h5io
from ..utils.io import read_image, resize_max

DEFAULT_MAX_SIDE = 1600


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", text)


def conf_hash(matcher: Matcher) -> str:
    """Short stable hash of a matcher's configuration (part of cache names)."""
    blob = json.dumps(matcher.conf, sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:8]


def matcher_label(matcher: Matcher) -> str:
    return getattr(matcher, "registry_name", None) or matcher.name or type(matcher).__name__


def load_capped(path: Path, max_side: int | None) -> tuple[np.ndarray, float, tuple[int, int]]:
    """RGB image downscaled to `max_side` (INTER_AREA); returns (image, scale original/new, original (W, H))."""
    image = read_image(path)
    h, w = image.shape[:2]
    small, scale = resize_max(image, max_side)
    return small, scale, (w, h)


def to_original(kpts: np.ndarray, scale: float) -> np.ndarray:
    """Exact map from resized to original OpenCV pixel centres (inverse of cv2.resize's grid)."""
    if scale == 1.0:
        return np.asarray(kpts, np.float32)
    return ((np.asarray(kpts, np.float64) + 0.5) * scale - 0.5).astype(np.float32)


def _in_original(feats: dict[str, np.ndarray], scale: float, size: tuple[int, int]) -> dict[str, np.ndarray]:
    """Features of a capped image -> original pixels (keypoints, scales) and the original size."""
    feats = dict(feats)
    feats["keypoints"] = to_original(feats["keypoints"], scale)
    if "scales" in feats:
        feats["scales"] = np.asarray(feats["scales"], np.float32) * scale
    feats["image_size"] = np.array(size, np.int32)
    return feats


@dataclass
class MatchTimings:
    extract: dict[str, float]  # seconds per image
    match: dict[str, float]  # seconds per pair (pair key)
    level: dict[str, int] = field(default_factory=dict)  # view-synthesis level reached per pair (views=...)

    def seconds(self, pairs: list[tuple[str, str]]) -> tuple[float, float]:
        """(extraction seconds of the images these pairs use, matching seconds of these pairs)."""
        names = {n for p in pairs for n in p}
        ext = sum(self.extract.get(n, 0.0) for n in names)
        mat = sum(self.match.get(h5io.names_to_pair(*p), 0.0) for p in pairs)
        return ext, mat

    def pair_cost(self, name0: str, name1: str) -> dict[str, float | int | None]:
        """Seconds of one pair (both extractions + matching) and the view-synthesis level it reached."""
        key = h5io.names_to_pair(name0, name1)
        sec = self.extract.get(name0, 0.0) + self.extract.get(name1, 0.0) + self.match.get(key, 0.0)
        return {"seconds": round(sec, 4), "level": self.level.get(key)}


class CachedPairMatcher:
    """Matches pairs of images under `root` with `matcher`, caching everything under `cache_dir`."""

    def __init__(self, matcher: Matcher, root: Path, cache_dir: Path, max_side: int | None = DEFAULT_MAX_SIDE,
                 overwrite: bool = False, lru_size: int = 64, cleared: set[Path] | None = None):
        self.matcher, self.root, self.max_side = matcher, Path(root), max_side
        self.cache_dir = Path(cache_dir)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        label, cap = _safe(matcher_label(matcher)), f"max{max_side or 0}"
        if matcher.sparse:
            try:
                fkey = _safe(matcher.feature_key)
            except NotImplementedError:  # features private to this matcher and configuration
                fkey = f"{label}-{conf_hash(matcher)}"
            self.features_path = self.cache_dir / f"features-{fkey}-{cap}.h5"
            self.matches_path = self.cache_dir / f"matches-{label}-{conf_hash(matcher)}-{fkey}-{cap}.h5"
        else:
            self.features_path = None
            self.matches_path = self.cache_dir / f"dense-{label}-{conf_hash(matcher)}-{cap}.h5"
        self.timings_path = self.matches_path.with_suffix(".timings.json")
        if overwrite:
            # `cleared` holds what this run already recomputed: features shared by several matchers (one
            # feature_key) are dropped once, not once per matcher.
            cleared = set() if cleared is None else cleared
            feats_times = self.features_path.with_suffix(".timings.json") if self.features_path else None
            for p in (self.features_path, feats_times, self.matches_path, self.timings_path):
                if p is not None and p not in cleared:
                    cleared.add(p)
                    p.unlink(missing_ok=True)
        self.timings = self._load_timings()
        self._lru: OrderedDict[str, dict[str, np.ndarray]] = OrderedDict()
        self._lru_size = lru_size

    # --- timings sidecar (so seconds per pair stay meaningful when results come from the cache)
    def _load_timings(self) -> MatchTimings:
        t = {"extract": {}, "match": {}, "level": {}}
        if self.timings_path.exists():
            try:
                t.update(json.loads(self.timings_path.read_text()))
            except json.JSONDecodeError:
                logger.warning("ignoring unreadable %s", self.timings_path)
        ftimes = self.features_path.with_suffix(".timings.json") if self.features_path else None
        if ftimes is not None and ftimes.exists():
            try:
                t["extract"].update(json.loads(ftimes.read_text()))
            except json.JSONDecodeError:
                pass
        return MatchTimings(t["extract"], t["match"], t["level"])

    def _save_timings(self) -> None:
        self.timings_path.write_text(json.dumps({"match": self.timings.match, "level": self.timings.level}))
        if self.features_path is not None:
            # Features are shared between matchers with one feature_key: so are their extraction times.
            self.features_path.with_suffix(".timings.json").write_text(json.dumps(self.timings.extract))

    # --- sparse path
    def features(self, name: str) -> dict[str, np.ndarray]:
        """Cached features of one image (sparse matchers), through a small LRU."""
        if name in self._lru:
            self._lru.move_to_end(name)
            return self._lru[name]
        feats = h5io.read_features(self.features_path, name)
        self._lru[name] = feats
        if len(self._lru) > self._lru_size:
            self._lru.popitem(last=False)
        return feats

    def _extract_missing(self, names: list[str], desc: str) -> None:
        done = h5io.list_h5_names(self.features_path)
        todo = [n for n in names if n not in done]
        for name in tqdm(todo, desc=f"{desc}: extract", leave=False, disable=None if todo else True):
            image, scale, size = load_capped(self.root / name, self.max_side)
            t0 = time.perf_counter()
            feats = self.matcher.extract(image)
            self.timings.extract[name] = time.perf_counter() - t0
            h5io.write_features(self.features_path, name, _in_original(feats, scale, size))
        if todo:
            self._save_timings()

    def _extract_level(self, name: str, level: int) -> dict[str, np.ndarray] | None:
        """views=auto: the features of one more view level of image `name`, in original pixels."""
        image, scale, size = load_capped(self.root / name, self.max_side)
        block = self.matcher.extract_level(image, level)
        return None if block is None else _in_original(block, scale, size)

    def _save_features(self, name: str, feats: dict[str, np.ndarray]) -> None:
        h5io.write_features(self.features_path, name, feats)
        self._lru[name] = feats

    def _match_missing_sparse(self, pairs: list[tuple[str, str]], desc: str) -> None:
        done = h5io.list_h5_names(self.matches_path)
        todo = [p for p in pairs if h5io.names_to_pair(*p) not in done and h5io.names_to_pair(*p[::-1]) not in done]
        for n0, n1 in tqdm(todo, desc=f"{desc}: match", leave=False, disable=None if todo else True):
            t0 = time.perf_counter()
            if getattr(self.matcher, "escalates", False):
                from ..matchers.views import match_cached

                m0, s0, self.timings.level[h5io.names_to_pair(n0, n1)] = match_cached(
                    self.matcher, n0, n1, self.features, self._extract_level, self._save_features)
            else:
                m0, s0 = self.matcher.match(self.features(n0), self.features(n1))
                if hasattr(self.matcher, "last_level"):
                    self.timings.level[h5io.names_to_pair(n0, n1)] = self.matcher.last_level
            self.timings.match[h5io.names_to_pair(n0, n1)] = time.perf_counter() - t0
            h5io.write_matches(self.matches_path, n0, n1, np.asarray(m0), np.asarray(s0))
        if todo:
            self._save_timings()

    # --- dense path
    def _match_missing_dense(self, pairs: list[tuple[str, str]], desc: str) -> None:
        done = h5io.list_h5_names(self.matches_path)
        todo = [p for p in pairs if h5io.names_to_pair(*p) not in done]
        for n0, n1 in tqdm(todo, desc=f"{desc}: match", leave=False, disable=None if todo else True):
            im0, s0, _ = load_capped(self.root / n0, self.max_side)
            im1, s1, _ = load_capped(self.root / n1, self.max_side)
            t0 = time.perf_counter()
            pm = self.matcher.match_images(im0, im1)
            self.timings.match[h5io.names_to_pair(n0, n1)] = time.perf_counter() - t0
            h5io.write_dense_matches(self.matches_path, n0, n1, to_original(pm.kpts0, s0),
                                     to_original(pm.kpts1, s1), pm.scores)
        if todo:
            self._save_timings()

    def prepare(self, pairs: list[tuple[str, str]], desc: str = "") -> None:
        """Compute whatever the cache lacks for these pairs."""
        if self.matcher.sparse:
            self._extract_missing(sorted({n for p in pairs for n in p}), desc)
            self._match_missing_sparse(pairs, desc)
        else:
            self._match_missing_dense(pairs, desc)

    def get(self, name0: str, name1: str) -> PairMatches:
        """Correspondences of one prepared pair, in original pixel coordinates."""
        if self.matcher.sparse:
            matches, scores = h5io.read_matches(self.matches_path, name0, name1)
            k0 = self.features(name0)["keypoints"]
            k1 = self.features(name1)["keypoints"]
            return PairMatches(k0[matches[:, 0]], k1[matches[:, 1]], scores)
        return PairMatches(*h5io.read_dense_matches(self.matches_path, name0, name1))


__all__ = ["CachedPairMatcher", "DEFAULT_MAX_SIDE", "MatchTimings", "conf_hash", "load_capped", "matcher_label",
           "to_original"]
