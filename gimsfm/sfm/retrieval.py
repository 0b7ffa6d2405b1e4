"""Weight-free global image descriptors: VLAD over the local descriptors already in features.h5.

The vocabulary is learned (k-means) on the image set itself, so nothing needs downloading; it is saved
beside the descriptors so that queries (localization) are described in the same space.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from ..utils.progress import tqdm

from ..errors import InputError
from ..utils.h5io import open_h5, read_features


def build_vocabulary(features_path: Path, names: list[str], num_words: int = 64, max_desc: int = 100_000,
                     seed: int = 0) -> np.ndarray:
    """k-means centroids (num_words, D) over a random sample of the set's local descriptors."""
    rng = np.random.default_rng(seed)
    per_image = max(1, max_desc // max(1, len(names)))
    sample = []
    for name in names:
        d = read_features(features_path, name)["descriptors"]
        if len(d) > per_image:
            d = d[rng.choice(len(d), per_image, replace=False)]
        sample.append(d)
    data = np.concatenate(sample).astype(np.float32) if sample else np.zeros((0, 1), np.float32)
    if len(data) < num_words:
        raise InputError(f"too few local descriptors ({len(data)}) to build a retrieval vocabulary")
    cv2.setRNGSeed(seed)
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 25, 1e-4)
    _, _, centers = cv2.kmeans(data, num_words, None, criteria, 2, cv2.KMEANS_PP_CENTERS)
    return centers.astype(np.float32)


def vlad(desc: np.ndarray, vocab: np.ndarray) -> np.ndarray:
    """VLAD with intra-normalisation and signed square root (Arandjelovic & Zisserman 2013), unit L2."""
    k, dim = vocab.shape
    out = np.zeros((k, dim), np.float32)
    if len(desc):
        dist = (desc**2).sum(1, keepdims=True) - 2 * desc @ vocab.T + (vocab**2).sum(1)[None]
        assign = dist.argmin(1)
        np.add.at(out, assign, desc - vocab[assign])
    out = np.sign(out) * np.sqrt(np.abs(out))
    out /= np.linalg.norm(out, axis=1, keepdims=True) + 1e-12
    out = out.ravel()
    return out / (np.linalg.norm(out) + 1e-12)


def extract_global(features_path: Path, names: list[str], global_path: Path,
                   vocab: np.ndarray | None = None, num_words: int = 64) -> Path:
    """Write hloc-style global descriptors (`<name>/global_descriptor`) and the vocabulary to global.h5."""
    global_path = Path(global_path)
    if vocab is None:
        if global_path.exists():
            with open_h5(global_path) as f:
                vocab = f["__vocabulary__"][()] if "__vocabulary__" in f else None
        if vocab is None:
            vocab = build_vocabulary(features_path, names, num_words)
    with open_h5(global_path, "a") as f:
        if "__vocabulary__" not in f:
            f.create_dataset("__vocabulary__", data=vocab)
        for name in tqdm(names, desc="global descriptors", unit="img", disable=len(names) < 50):
            if name in f and "global_descriptor" in f[name]:
                continue
            d = read_features(features_path, name)["descriptors"]
            f.create_group(name).create_dataset("global_descriptor", data=vlad(d, vocab))
    return global_path


def load_global(global_path: Path, names: list[str]) -> np.ndarray:
    with open_h5(global_path) as f:
        return np.stack([f[n]["global_descriptor"][()] for n in names])


def load_vocabulary(global_path: Path) -> np.ndarray:
    with open_h5(global_path) as f:
        if "__vocabulary__" not in f:
            raise InputError(f"{global_path} has no retrieval vocabulary")
        return f["__vocabulary__"][()]


def top_k(query: np.ndarray, db: np.ndarray, k: int, exclude_self: bool = False) -> np.ndarray:
    """Indices (Q, k) of the most similar db descriptors (cosine), best first."""
    sim = query @ db.T
    if exclude_self:
        np.fill_diagonal(sim, -np.inf)
    k = min(k, db.shape[0] - int(exclude_self))
    return np.argsort(-sim, axis=1, kind="stable")[:, :k]


