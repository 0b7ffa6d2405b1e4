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
from ..geometry.verification import verify_matches
from ..utils.h5io import (list_h5_names, names_to_pair, open_h5, read_features, read_matches, read_pairs,
                          write_features, write_matches)
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


# views=auto in SfM: a pair is escalated only if one of its images is weakly connected after plain matching
# (fewer than SFM_MIN_LINKS pairs with a verified model), and only that image's SFM_PAIRS_PER_IMAGE most promising
# pairs. The two-view rule (escalate every unconfident pair) would synthesise views for every non-overlapping pair
# of an exhaustive pair list, which is most of them.
SFM_MIN_LINKS = 2
SFM_PAIRS_PER_IMAGE = 4
ESCALATED_ATTR = "views_escalated_images"


def match_pairs(pairs_path: Path, features_path: Path, matches_path: Path, matcher: Matcher,
                overwrite: bool = False, image_dir: Path | None = None) -> Path:
    """Match every pair of `pairs_path` not yet in `matches_path`; returns `matches_path`.

    A matcher with views=auto (and `image_dir` given) first matches every pair plainly, then escalates the pairs
    of weakly connected images (see SFM_MIN_LINKS): the view levels they need are extracted from the images in
    `image_dir` and appended to those images' features in `features_path`.
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
    escalating = bool(getattr(matcher, "escalates", False)) and image_dir is not None
    if not todo and not escalating:
        logger.info("matching: all %d pairs already matched", len(pairs))
        return matches_path
    cache = FeatureCache(features_path)
    with open_h5(matches_path, "a") as f:
        f.attrs["matcher"] = getattr(matcher, "registry_name", matcher.name)

    def extract_level(name: str, level: int) -> dict | None:
        return matcher.extract_level(read_image(Path(image_dir) / name), level)

    def save(name: str, feats: dict) -> None:
        write_features(features_path, name, feats, attrs={"feature_key": matcher.feature_key})
        cache.put(name, feats)

    for a, b in tqdm(todo, desc="matching", unit="pair"):
        if escalating:  # the plain matches first (level 0 of the cached features)
            m0, s0, _ = match_cached(matcher, a, b, cache.__getitem__, extract_level, save, max_level=0)
        else:
            m0, s0 = matcher.match(cache[a], cache[b])
        write_matches(matches_path, a, b, m0, s0)
        point("matches.pair")
    if todo:
        logger.info("matching: %d pairs matched", len(todo))
    if escalating:
        _escalate_weak_images(pairs, matches_path, matcher, cache, extract_level, save)
    return matches_path


def _pair_links(pairs: list[tuple[str, str]], matches_path: Path, cache: FeatureCache,
                min_inliers: int) -> dict[tuple[str, str], int]:
    """Inliers of the verified model (0 if none is confident) of every pair's stored matches."""
    links = {}
    for a, b in pairs:
        m, _ = read_matches(matches_path, a, b)
        f0, f1 = cache[a], cache[b]
        ver = verify_matches(f0["keypoints"][m[:, 0]], f1["keypoints"][m[:, 1]], f0["image_size"],
                             f1["image_size"], min_inliers=min_inliers, min_spread=0.0)
        links[(a, b)] = ver.num_inliers if ver.confident else 0
    return links


def _escalate_weak_images(pairs: list[tuple[str, str]], matches_path: Path, matcher: Matcher, cache: FeatureCache,
                          extract_level, save) -> None:
    """views=auto for SfM: synthesise views for the most promising pairs of each weakly connected image."""
    with open_h5(matches_path) as f:
        finished = set(f.attrs.get(ESCALATED_ATTR, []))
    links = _pair_links(pairs, matches_path, cache, matcher.min_inliers)
    images = sorted({n for p in pairs for n in p})
    degree = {n: 0 for n in images}
    for (a, b), n_in in links.items():
        if n_in:
            degree[a] += 1
            degree[b] += 1
    weak = [n for n in images if degree[n] < SFM_MIN_LINKS and n not in finished]
    if not weak:
        logger.info("matching: views=auto: every image has %d+ verified pairs, no view synthesis needed",
                    SFM_MIN_LINKS)
        return
    levels: dict[int, int] = {}
    for name in tqdm(weak, desc="view synthesis", unit="image"):
        own = sorted((p for p in pairs if name in p), key=lambda p: (-links[p], p))[:SFM_PAIRS_PER_IMAGE]
        with open_h5(matches_path) as f:
            done = {p for p in own if any(k in f and "view_level" in f[k].attrs
                                          for k in (names_to_pair(*p), names_to_pair(*p[::-1])))}
        for a, b in own:
            if (a, b) in done:
                continue
            m0, s0, level = match_cached(matcher, a, b, cache.__getitem__, extract_level, save)
            write_matches(matches_path, a, b, m0, s0, attrs={"view_level": level})
            levels[level] = levels.get(level, 0) + 1
            point("matches.pair")
        with open_h5(matches_path, "a") as f:
            f.attrs[ESCALATED_ATTR] = sorted(set(f.attrs.get(ESCALATED_ATTR, [])) | {name})
    logger.info("matching: views=auto: %d weakly connected image(s) (< %d verified pairs), %d pair(s) escalated; "
                "pairs per view level: %s", len(weak), SFM_MIN_LINKS, sum(levels.values()),
                ", ".join(f"L{k} {v}" for k, v in sorted(levels.items())) or "-")
