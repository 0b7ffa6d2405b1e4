"""Stage 2: which image pairs to match (exhaustive, sequential with loop closure, retrieval)."""
from __future__ import annotations

from pathlib import Path

from .. import logger
from ..errors import InputError
from ..utils.h5io import write_pairs
from .retrieval import extract_global, load_global, top_k

# Above this many images exhaustive matching is too slow on a CPU and `auto` switches to retrieval.
EXHAUSTIVE_MAX_IMAGES = 40


def pairs_exhaustive(names: list[str]) -> list[tuple[str, str]]:
    return [(names[i], names[j]) for i in range(len(names)) for j in range(i + 1, len(names))]


def pairs_sequential(names: list[str], window: int = 8, quadratic: bool = True) -> list[tuple[str, str]]:
    """Each frame with its `window` successors, plus (quadratic) frames 2^k further for wider baselines."""
    pairs = set()
    n = len(names)
    for i in range(n):
        for d in range(1, window + 1):
            if i + d < n:
                pairs.add((i, i + d))
        if quadratic:
            d = window * 2
            while i + d < n:
                pairs.add((i, i + d))
                d *= 2
    return [(names[i], names[j]) for i, j in sorted(pairs)]


def pairs_retrieval(names: list[str], features_path: Path, global_path: Path, num_matched: int = 20,
                    exclude: set[tuple[str, str]] | None = None) -> list[tuple[str, str]]:
    """Top-k most similar images per image by VLAD, symmetric pairs de-duplicated."""
    extract_global(features_path, names, global_path)
    desc = load_global(global_path, names)
    idx = top_k(desc, desc, num_matched, exclude_self=True)
    pairs = set()
    for i, row in enumerate(idx):
        for j in row:
            a, b = sorted((int(i), int(j)))
            pairs.add((a, b))
    out = [(names[a], names[b]) for a, b in sorted(pairs)]
    if exclude:
        out = [p for p in out if p not in exclude and p[::-1] not in exclude]
    return out


def make_pairs(names: list[str], method: str, pairs_path: Path, features_path: Path | None = None,
               global_path: Path | None = None, window: int = 8, loop_closure: bool = False,
               num_matched: int = 20) -> Path:
    """Write the pair list for `method` in {auto, exhaustive, sequential, retrieval}; returns its path."""
    if len(names) < 2:
        raise InputError(f"need at least 2 readable images, got {len(names)}")
    if method == "auto":
        method = "exhaustive" if len(names) <= EXHAUSTIVE_MAX_IMAGES else "retrieval"
    if method == "exhaustive":
        pairs = pairs_exhaustive(names)
    elif method == "sequential":
        pairs = pairs_sequential(names, window)
        if loop_closure:
            seen = set(pairs)
            extra = pairs_retrieval(names, features_path, global_path, num_matched, exclude=seen)
            pairs = sorted(seen | set(extra))
    elif method == "retrieval":
        if features_path is None or global_path is None:
            raise ValueError("retrieval pairs need features_path and global_path")
        pairs = pairs_retrieval(names, features_path, global_path, num_matched)
    else:
        raise InputError(f"unknown pairs method '{method}' (auto, exhaustive, sequential, retrieval)")
    logger.info("pairs: %s, %d pairs for %d images", method, len(pairs), len(names))
    return write_pairs(pairs_path, pairs)
