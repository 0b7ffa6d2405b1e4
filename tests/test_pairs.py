"""Pair selection: exhaustive, sequential, and VLAD retrieval on real features."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from gimsfm.errors import InputError
from gimsfm.matchers import get_matcher
from gimsfm.sfm.extract import extract_features
from gimsfm.sfm.pairs import make_pairs, pairs_exhaustive, pairs_sequential
from gimsfm.sfm.retrieval import vlad
from gimsfm.utils.h5io import read_pairs

DEMO = Path(__file__).resolve().parents[1] / "scenes" / "sacre_coeur" / "images"


def test_exhaustive_and_sequential():
    names = [f"{i:03d}.jpg" for i in range(20)]
    assert len(pairs_exhaustive(names)) == 190
    seq = pairs_sequential(names, window=3, quadratic=False)
    assert len(seq) == 3 * 20 - 6 and ("000.jpg", "003.jpg") in seq and ("000.jpg", "004.jpg") not in seq
    quad = pairs_sequential(names, window=3, quadratic=True)
    assert ("000.jpg", "006.jpg") in quad and ("000.jpg", "012.jpg") in quad and len(set(quad)) == len(quad)
    with pytest.raises(InputError):
        make_pairs(names[:1], "exhaustive", Path("/tmp/unused.txt"))


def test_vlad_is_unit_and_discriminative():
    rng = np.random.default_rng(0)
    vocab = rng.normal(size=(8, 16)).astype(np.float32)
    a = rng.normal(size=(200, 16)).astype(np.float32)
    b = rng.normal(size=(200, 16)).astype(np.float32)
    va, va2, vb = vlad(a, vocab), vlad(a[:150], vocab), vlad(b, vocab)
    assert np.linalg.norm(va) == pytest.approx(1.0, abs=1e-5)
    assert va @ va2 > va @ vb


def test_retrieval_finds_duplicates(tmp_path):
    """Each demo photo plus a half-size copy: the top retrieval neighbour of a copy is its original."""
    import cv2

    images = tmp_path / "images"
    images.mkdir()
    names = sorted(p.name for p in DEMO.iterdir())[:6]
    for n in names:
        shutil.copy(DEMO / n, images / n)
        img = cv2.imread(str(DEMO / n))
        cv2.imwrite(str(images / f"copy_{n}"), cv2.resize(img, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA))
    all_names = sorted(p.name for p in images.iterdir())
    matcher = get_matcher("sift-nn", {"features": {"max_keypoints": 1024}})
    feats, failed = extract_features(images, all_names, tmp_path / "features.h5", matcher)
    assert not failed
    pairs = read_pairs(make_pairs(all_names, "retrieval", tmp_path / "pairs.txt", feats, tmp_path / "global.h5",
                                  num_matched=1))
    for n in names:
        assert tuple(sorted((n, f"copy_{n}"))) in {tuple(sorted(p)) for p in pairs}
