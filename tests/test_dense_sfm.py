"""Dense matchers in the keypoint pipelines (gimsfm.sfm.dense): quantisation of matched points into per-image
keypoints, hloc files, and reconstruct + localize through the dense path on real photos.

The dense matcher here is real but cheap: sift-nn's correspondences served through the DenseMatcher interface,
with a deterministic per-pair jitter (sigma 0.3 px) so that, as with LoFTR or DKM, the same scene point lands
at slightly different positions in different pairs and must be merged. Runtime on 2 shared CPU cores: ~1 min.
"""
from __future__ import annotations

import json
import shutil
import zlib
from pathlib import Path

import numpy as np
import pytest

from gimsfm.matchers.base import PairMatches
from gimsfm.matchers.dense import DenseMatcher
from gimsfm.sfm import dense
from gimsfm.utils.h5io import list_h5_names, read_features, read_matches
from gimsfm.utils.io import read_image

DEMO = Path(__file__).resolve().parents[1] / "scenes" / "sacre_coeur" / "images"
NAME = "test-sift-as-dense"


class SiftAsDense(DenseMatcher):
    """sift-nn correspondences with per-pair sub-pixel jitter, as a detector-free matcher would give them."""

    def __init__(self, conf=None, device="auto"):
        super().__init__(conf, device)
        from gimsfm.matchers import get_matcher

        self.sift = get_matcher("sift-nn@features.max_keypoints=8192")
        self.cache: dict[int, dict] = {}  # features per image: each is extracted once

    def features(self, image: np.ndarray) -> tuple[int, dict]:
        key = zlib.crc32(np.ascontiguousarray(image[::7, ::7]).tobytes())
        if key not in self.cache:
            self.cache[key] = self.sift.extract(image)
        return key, self.cache[key]

    def match_pair(self, image0, image1):
        (k0, f0), (k1, f1) = self.features(image0), self.features(image1)
        pm = self.sift.pair_from_features(f0, f1)
        rng = np.random.default_rng([k0, k1])
        jitter = rng.normal(0, 0.3, (2, len(pm), 2)).astype(np.float32)
        return PairMatches(pm.kpts0 + jitter[0], pm.kpts1 + jitter[1], pm.scores)


def scene(tmp_path: Path, n_map: int) -> tuple[list[Path], Path, Path]:
    """(demo photos, folder linking the first n_map, folder linking the last one as the query)."""
    photos = sorted(DEMO.iterdir())
    images, queries = tmp_path / "images", tmp_path / "queries"
    images.mkdir()
    queries.mkdir()
    for p in photos[:n_map]:
        (images / p.name).symlink_to(p)
    (queries / photos[-1].name).symlink_to(photos[-1])
    return photos, images, queries


@pytest.fixture(scope="module")
def registered():
    from gimsfm.matchers.registry import REGISTRY, _load_builtin, register

    _load_builtin()
    register(NAME, "sift-nn served as a dense matcher (tests)")(SiftAsDense)
    yield NAME
    REGISTRY.pop(NAME, None)


def test_quantise_points_merges_within_a_cell_and_ignores_order():
    rng = np.random.default_rng(0)
    pts = rng.uniform(0, 50, (400, 2))
    scores = rng.uniform(0.1, 1, 400)
    k, ks, idx = dense.quantise_points(pts, scores, 2.0)
    assert len(k) < len(pts) and idx.max() == len(k) - 1
    assert np.linalg.norm(k[idx] - pts, axis=1).max() <= 2.0 * np.sqrt(2) + 1e-5
    # every keypoint stays in the cell of the points it merged, so later lookups find it
    np.testing.assert_array_equal(dense.cell_ids(k[idx], 2.0), dense.cell_ids(pts, 2.0))
    np.testing.assert_array_equal(dense.keypoints_in_cells(k, pts, 2.0), idx)
    perm = rng.permutation(len(pts))
    k2, ks2, idx2 = dense.quantise_points(pts[perm], scores[perm], 2.0)
    np.testing.assert_allclose(k2, k, atol=1e-4)
    np.testing.assert_array_equal(idx2, idx[perm])
    assert np.allclose(ks, [scores[idx == i].max() for i in range(len(k))])


def test_one_to_one_keeps_the_best_match_per_keypoint():
    i0 = np.array([0, 0, 1, 2, 3])
    i1 = np.array([5, 6, 6, 7, 7])
    s = np.array([0.9, 0.8, 0.95, 0.5, 0.6])
    keep = dense.one_to_one(i0, i1, s)
    assert keep.tolist() == [0, 2, 4]  # 0->5, 1->6 (beats 0->6), 3->7 (beats 2->7)


def test_merge_on_a_real_triplet(registered, tmp_path):
    """Three photos, three pairs: merged keypoints stay within the cell diagonal of every raw match, points seen
    in several pairs are merged, and the hloc files are valid (indices in range, one-to-one)."""
    from gimsfm.matchers import get_matcher

    names = sorted(p.name for p in DEMO.iterdir())[:3]
    pairs = [(names[0], names[1]), (names[0], names[2]), (names[1], names[2])]
    raw = dense.match_dense_pairs(DEMO, pairs, tmp_path / "dense_matches.h5", get_matcher(NAME))
    sizes, failed = dense.read_sizes(DEMO, names)
    assert not failed
    stats = dense.merge_dense_matches(raw, pairs, sizes, tmp_path / "features.h5", tmp_path / "matches.h5", 2.0)
    assert stats["keypoints_merged"] > 0  # the same SIFT point recurs across pairs, jittered
    assert stats["max_shift_px"] <= 2.0 * np.sqrt(2) + 1e-4
    assert stats["matches_after_merge"] > 0.8 * stats["raw_matches"]
    from gimsfm.utils.h5io import read_dense_matches

    for a, b in pairs:
        idx, scores = read_matches(tmp_path / "matches.h5", a, b)
        ka, kb = (read_features(tmp_path / "features.h5", n)["keypoints"] for n in (a, b))
        assert len(np.unique(idx[:, 0])) == len(idx) == len(np.unique(idx[:, 1]))
        k0, k1, s = read_dense_matches(raw, a, b)
        # each kept match is a raw match moved by at most the cell diagonal on both sides
        d0 = np.linalg.norm(ka[idx[:, 0]][:, None] - k0[None], axis=2)
        d1 = np.linalg.norm(kb[idx[:, 1]][:, None] - k1[None], axis=2)
        assert ((d0 <= 2.0 * np.sqrt(2) + 1e-4) & (d1 <= 2.0 * np.sqrt(2) + 1e-4)).any(1).all()
        assert (scores > 0).all()
    for n in names:
        f = read_features(tmp_path / "features.h5", n)
        w, h = f["image_size"]
        assert (w, h) == sizes[n] and f["keypoints"].shape == (len(f["scores"]), 2)
        assert (f["keypoints"] > -1).all() and (f["keypoints"][:, 0] < w).all() and (f["keypoints"][:, 1] < h).all()


@pytest.fixture(scope="module")
def dense_map(registered, tmp_path_factory) -> tuple[Path, dict, Path, list[Path]]:
    """A map of 6 demo photos built through the dense path (the 10th photo is the query)."""
    from gimsfm.sfm.reconstruct import ReconstructConfig, reconstruct

    root = tmp_path_factory.mktemp("densemap")
    photos, images, queries = scene(root, 6)
    summary = json.loads(reconstruct(images, root / "map", ReconstructConfig(matcher=NAME), device="cpu").read_text())
    return root / "map", summary, queries, photos


@pytest.mark.slow
def test_reconstruct_and_localize_through_the_dense_path(dense_map, tmp_path):
    """A model from the dense path, and a registered photo re-localised against it through the dense query path.

    Reference: sparse sift-nn (8192 keypoints) on the same 6 photos registers 2 images with 48 points, reprojection
    error 0.29 px (measured once, `gimsfm reconstruct --matcher sift-nn`); the subset is hard for plain SIFT."""
    import pycolmap

    from gimsfm.localization.localize import localize

    map_dir, summary, _, _ = dense_map
    d = summary["dense_keypoints"]
    print(json.dumps(d), summary["num_registered"], summary["num_points3D"])
    assert summary["status"] == "ok" and summary["num_registered"] >= 2 and summary["num_points3D"] >= 20
    assert d["keypoints"] + d["keypoints_merged"] == d["matched_points"] and d["keypoints_merged"] > 0
    assert summary["mean_reprojection_error"] < 2.0
    assert len(list_h5_names(map_dir / "matches.h5")) == 15
    rec = pycolmap.Reconstruction(str(map_dir / "sparse"))
    image = max((rec.image(i) for i in rec.reg_image_ids()), key=lambda im: im.num_points3D)
    queries = tmp_path / "queries"
    queries.mkdir()
    (queries / image.name).symlink_to(DEMO / image.name)
    _, results = localize(map_dir, queries, tmp_path / "poses.txt", num_db=3, device="cpu")
    print(results[0])
    assert [r.success for r in results] == [True], results[0].reason
    assert results[0].num_inliers >= 12
    # the map image's own pose is found again (scale: the distance between the registered cameras)
    centres = [rec.image(i).projection_center() for i in rec.reg_image_ids()]
    baseline = max(np.linalg.norm(a - b) for a in centres for b in centres)
    found = results[0].cam_from_world.inverse().translation
    assert np.linalg.norm(found - image.projection_center()) < 0.1 * baseline
    q = read_features(tmp_path / "poses_work" / "query_features.h5", image.name)
    assert len(q["keypoints"]) > 0 and tuple(q["image_size"]) == read_image(DEMO / image.name).shape[1::-1]


@pytest.mark.slow
@pytest.mark.parametrize("model,options", [
    ("gim_loftr", "resize=160,certainty_threshold=0"),
    ("gim_dkm", "resize=256,upsample=false,num_samples=400"),
])
def test_release_dense_matcher_localizes_on_a_dense_map(dense_map, tmp_path, model, options):
    """`gimsfm localize` with gim-loftr / gim-dkm on the fake checkpoint runs end to end and reports every query
    (a map cannot be built with fake weights, so the dense map of the SIFT-as-dense matcher stands in for one)."""
    from gimsfm.matchers.release import RELEASE_FILES
    from helpers import fake_release_checkpoint, gim_fixture, run_cli

    name = model.replace("_", "-")
    ckpt = fake_release_checkpoint(gim_fixture(model), model, tmp_path / RELEASE_FILES[name])
    map_dir = tmp_path / "map"
    shutil.copytree(dense_map[0], map_dir)
    queries, photos = dense_map[2], dense_map[3]
    run = json.loads((map_dir / "run.json").read_text())
    run["config"]["matcher"] = f"{name}:{ckpt}@{options}"
    (map_dir / "run.json").write_text(json.dumps(run))
    proc = run_cli("localize", "--map", map_dir, "--queries", queries, "--out", tmp_path / "poses.txt",
                   "--num-db", "2", "--device", "cpu", check=False)
    assert proc.returncode == 0, proc.stderr[-800:]
    log = json.loads((tmp_path / "poses_log.json").read_text())
    assert [e["name"] for e in log] == [photos[-1].name] and len(log[0]["retrieved"]) == 2
    assert log[0]["success"] or "inliers" in log[0]["reason"]
    q = read_features(tmp_path / "poses_work" / "query_features.h5", photos[-1].name)
    assert q["keypoints"].ndim == 2 and q["keypoints"].shape[1] == 2
