"""Stage 3: match the listed pairs into an hloc-format matches.h5 (resumable per pair)."""
from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

from ..utils.progress import tqdm

from .. import logger
from ..errors import InputError
from ..matchers.base import Matcher
from ..matchers.views import match_cached
from ..utils.fault import point
from ..utils.h5io import (list_h5_names, names_to_pair, open_h5, read_features, read_pairs, write_features,
                          write_matches)
from ..utils.io import read_image


class FeatureCache:
    """Small LRU over features.h5 so each image is read once per neighbourhood of pairs."""

    def __init__(self, features_path: Path, size: int = 256):
        self.path, self.size, self.items = Path(features_path), size, OrderedDict()

    def __getitem__(self, name: str) -> dict:
        if name in self.items:
            self.items.move_to_end(name)
            return self.items[name]
        feats = read_features(self.path, name)
        self.put(name, feats)
        return feats

    def put(self, name: str, feats: dict) -> None:
        self.items[name] = feats
        self.items.move_to_end(name)
        if len(self.items) > self.size:
            self.items.popitem(last=False)


def match_pairs(pairs_path: Path, features_path: Path, matches_path: Path, matcher: Matcher,
                overwrite: bool = False, image_dir: Path | None = None) -> Path:
    """Match every pair of `pairs_path` not yet in `matches_path`; returns `matches_path`.

    A matcher with views=auto escalates a pair whose plain matches are weak: the view level it needs is
    extracted from the image in `image_dir` and appended to that image's features in `features_path`.
    """
    if not matcher.sparse:
        raise InputError(f"matcher '{getattr(matcher, 'registry_name', matcher.name)}' is detector-free: its "
                         "pairs are matched by sfm.dense.match_dense_pairs, not from features")
    matches_path = Path(matches_path)
    if overwrite and matches_path.exists():
        matches_path.unlink()
    pairs = read_pairs(pairs_path)
    done = list_h5_names(matches_path)
    todo = [(a, b) for a, b in pairs if names_to_pair(a, b) not in done and names_to_pair(b, a) not in done]
    if not todo:
        logger.info("matching: all %d pairs already matched", len(pairs))
        return matches_path
    cache = FeatureCache(features_path)
    with open_h5(matches_path, "a") as f:
        f.attrs["matcher"] = getattr(matcher, "registry_name", matcher.name)
    levels: dict[int, int] = {}

    def extract_level(name: str, level: int) -> dict | None:
        return matcher.extract_level(read_image(Path(image_dir) / name), level)

    def save(name: str, feats: dict) -> None:
        write_features(features_path, name, feats, attrs={"feature_key": matcher.feature_key})
        cache.put(name, feats)

    for a, b in tqdm(todo, desc="matching", unit="pair"):
        if getattr(matcher, "escalates", False) and image_dir is not None:
            m0, s0, level = match_cached(matcher, a, b, cache.__getitem__, extract_level, save)
            levels[level] = levels.get(level, 0) + 1
        else:
            m0, s0 = matcher.match(cache[a], cache[b])
        write_matches(matches_path, a, b, m0, s0)
        point("matches.pair")
    logger.info("matching: %d pairs matched%s", len(todo), "; pairs per view level: " + ", ".join(
        f"L{k} {v}" for k, v in sorted(levels.items())) if levels else "")
    return matches_path
