"""Dense (detector-free) matchers in the keypoint-based pipelines: per-image keypoints from correspondences.

A dense matcher gives each pair its own correspondences, at positions that differ from pair to pair, while
COLMAP needs one keypoint list per image whose indices the matches of every pair refer to. As hloc does for
LoFTR-like matchers, the matched points of every image are quantised: the image is cut into square cells of
`cell` pixels, all matched points of all pairs that fall into one cell become one keypoint at their
score-weighted mean (so a raw point moves by at most the cell diagonal, `cell * sqrt(2)`), and each pair's
matches are re-expressed between these keypoints, one-to-one (the highest score wins a keypoint claimed twice).

Files: raw correspondences per pair in `dense_matches.h5` (h5io.write_dense_matches; resumable per pair),
then hloc's features.h5 (`keypoints`, `scores`, `image_size`; no descriptors) and matches.h5 (`matches0`,
`matching_scores0`), which the database/mapping stages read as for any sparse matcher.
"""
from __future__ import annotations

from collections import OrderedDict, defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from .. import logger
from ..errors import InputError
from ..matchers.dense import DenseMatcher
from ..utils.h5io import (list_h5_names, names_to_pair, read_dense_matches, read_pairs, write_dense_matches,
                          write_features, write_matches)
from ..utils.io import read_image
from ..utils.progress import tqdm

DEFAULT_CELL = 2.0  # pixels of the original image


def cell_ids(points: np.ndarray, cell: float) -> np.ndarray:
    """(N,) int64 id of the `cell`-pixel grid cell holding each (x, y) (pixel centres at integers)."""
    c = np.floor((np.asarray(points, np.float64).reshape(-1, 2) + 0.5) / cell).astype(np.int64)
    return c[:, 1] * (1 << 31) + c[:, 0]


def quantise_points(points: np.ndarray, scores: np.ndarray, cell: float
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge points that share a grid cell: (keypoints (K, 2) at the score-weighted mean of their cell,
    keypoint scores (K,) = best score of the cell, index (N,) of each point's keypoint). Keypoints are ordered
    by cell (row-major), so the result does not depend on the order of the points."""
    points = np.asarray(points, np.float64).reshape(-1, 2)
    scores = np.asarray(scores, np.float64).reshape(-1)
    if not len(points):
        return np.zeros((0, 2), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64)
    _, index = np.unique(cell_ids(points, cell), return_inverse=True)
    k = int(index.max()) + 1
    w = np.maximum(scores, 1e-6)  # every point counts, confident ones more
    wsum = np.bincount(index, w, k)
    kpts = np.stack([np.bincount(index, w * points[:, i], k) / wsum for i in (0, 1)], 1)
    best = np.full(k, -np.inf)
    np.maximum.at(best, index, scores)
    return kpts.astype(np.float32), best.astype(np.float32), index


def one_to_one(i0: np.ndarray, i1: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Indices of matches (i0[m], i1[m]) kept so that no keypoint is used twice, best scores first."""
    order = np.argsort(-np.asarray(scores), kind="stable")
    _, first0 = np.unique(i0[order], return_index=True)  # best match of every keypoint of image 0
    keep = order[np.sort(first0)]
    order = keep[np.argsort(-scores[keep], kind="stable")]
    _, first1 = np.unique(i1[order], return_index=True)
    return np.sort(order[first1])


class ImageCache:
    """Decoded images of the last few names (pairs lists revisit the same images)."""

    def __init__(self, image_dir: Path, size: int = 8):
        self.dir, self.size, self.items = Path(image_dir), size, OrderedDict()

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self.items:
            self.items[name] = read_image(self.dir / name)
            if len(self.items) > self.size:
                self.items.popitem(last=False)
        self.items.move_to_end(name)
        return self.items[name]


def match_dense_pairs(image_dir: Path, pairs: list[tuple[str, str]], raw_path: Path, matcher: DenseMatcher,
                      desc: str = "matching") -> Path:
    """Run `matcher.match_images` on every pair not yet in `raw_path` (resumable per pair)."""
    raw_path = Path(raw_path)
    done = list_h5_names(raw_path)
    todo = [(a, b) for a, b in pairs if names_to_pair(a, b) not in done and names_to_pair(b, a) not in done]
    if not todo:
        logger.info("%s: all %d pairs already matched", desc, len(pairs))
        return raw_path
    images = ImageCache(image_dir)
    for a, b in tqdm(todo, desc=desc, unit="pair"):
        pm = matcher.match_images(images[a], images[b])
        write_dense_matches(raw_path, a, b, pm.kpts0, pm.kpts1, pm.scores)
    logger.info("%s: %d pairs matched", desc, len(todo))
    return raw_path


def merge_dense_matches(raw_path: Path, pairs: list[tuple[str, str]], sizes: dict[str, tuple[int, int]],
                        features_path: Path, matches_path: Path, cell: float = DEFAULT_CELL,
                        feature_key: str = "dense") -> dict[str, Any]:
    """Quantise the raw correspondences of `pairs` into per-image keypoints and hloc matches; rewrites
    `features_path` and `matches_path` (derived files) and returns statistics for the run's summary."""
    if cell <= 0:
        raise InputError(f"the quantisation cell must be positive, got {cell}")
    pts: dict[str, list[np.ndarray]] = defaultdict(list)
    sc: dict[str, list[np.ndarray]] = defaultdict(list)
    owner: dict[str, list[tuple[int, int]]] = defaultdict(list)  # (pair number, side) of each point block
    scores = []
    for p, (a, b) in enumerate(pairs):
        k0, k1, s = read_dense_matches(raw_path, a, b)
        scores.append(s)
        for side, (name, k) in enumerate(((a, k0), (b, k1))):
            pts[name].append(k)
            sc[name].append(s)
            owner[name].append((p, side))
    features_path, matches_path = Path(features_path), Path(matches_path)
    for path in (features_path, matches_path):
        path.unlink(missing_ok=True)
    pair_index = [[None, None] for _ in pairs]  # keypoint index of every raw match, per side
    counts: dict[str, int] = {}
    max_shift = 0.0
    for name, (w, h) in sizes.items():
        p = np.concatenate(pts[name]) if pts[name] else np.zeros((0, 2), np.float32)
        kpts, kscores, idx = quantise_points(p, np.concatenate(sc[name]) if sc[name] else np.zeros(0), cell)
        if len(p):
            max_shift = max(max_shift, float(np.linalg.norm(kpts[idx] - p, axis=1).max()))
        counts[name] = len(kpts)
        bounds = np.cumsum([0] + [len(x) for x in pts[name]])
        for i, (pnum, side) in enumerate(owner[name]):
            pair_index[pnum][side] = idx[bounds[i]:bounds[i + 1]]
        write_features(features_path, name, {"keypoints": kpts, "scores": kscores,
                                             "image_size": np.array([w, h], np.int32)},
                       attrs={"feature_key": feature_key, "cell": cell})
    n_matches = 0
    for (a, b), (i0, i1), s in zip(pairs, pair_index, scores):
        keep = one_to_one(i0, i1, s)
        m0 = np.full(counts[a], -1, np.int32)
        s0 = np.zeros(counts[a], np.float32)
        m0[i0[keep]], s0[i0[keep]] = i1[keep], s[keep]
        write_matches(matches_path, a, b, m0, s0)
        n_matches += len(keep)
    n_raw = int(sum(len(s) for s in scores))
    n_points, n_kpts = 2 * n_raw, sum(counts.values())
    stats = {"cell_px": cell, "raw_matches": n_raw, "matches_after_merge": n_matches,
             "matched_points": n_points, "keypoints": n_kpts, "keypoints_merged": n_points - n_kpts,
             "max_shift_px": round(max_shift, 3)}
    logger.info("dense keypoints: %d matched points -> %d keypoints (%d merged, cell %.3g px, max shift %.2f px); "
                "%d of %d matches kept one-to-one", n_points, n_kpts, n_points - n_kpts, cell, max_shift,
                n_matches, n_raw)
    return stats


def keypoints_in_cells(keypoints: np.ndarray, points: np.ndarray, cell: float) -> np.ndarray:
    """For each point, the index of the keypoint quantised into the same cell, or -1 (localisation against a
    map made by merge_dense_matches: a map keypoint lies in the cell of the points it merged)."""
    lookup = {int(c): i for i, c in enumerate(cell_ids(keypoints, cell))}
    return np.array([lookup.get(int(c), -1) for c in cell_ids(points, cell)], np.int64)


def read_sizes(image_dir: Path, names: list[str]) -> tuple[dict[str, tuple[int, int]], list[str]]:
    """(name -> (W, H) of the readable images, unreadable names): what feature extraction gives sparse
    matchers (the image is decoded, so a broken file is found before matching)."""
    sizes, failed = {}, []
    for name in names:
        try:
            h, w = read_image(Path(image_dir) / name).shape[:2]
        except InputError as exc:
            logger.warning("skipping unreadable image: %s", exc)
            failed.append(name)
            continue
        sizes[name] = (w, h)
    return sizes, failed


def dense_pairs(pairs_path: Path) -> list[tuple[str, str]]:
    """The pair list with each unordered pair once."""
    seen, out = set(), []
    for a, b in read_pairs(pairs_path):
        if a != b and (a, b) not in seen and (b, a) not in seen:
            seen.add((a, b))
            out.append((a, b))
    return out
