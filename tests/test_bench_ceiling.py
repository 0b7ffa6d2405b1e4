"""`gimsfm bench ceiling`: match precision and pose ceilings from depth GT, on a rendered pose set."""
from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from gimsfm.bench.ceiling import gt_correspondences, load_depth_gt, match_correctness, run_ceiling
from gimsfm.bench.datasets import load_pose_dataset
from gimsfm.bench.zeb import PoseEvalConfig, run_pose_benchmark
from gimsfm.utils import h5io


@pytest.fixture(scope="module")
def pose_set(tmp_path_factory):
    from gimsfm.synth.pairs import generate_pairs

    root = tmp_path_factory.mktemp("ceiling") / "indoor"
    return generate_pairs(["indoor"], 6, 21, root, mode="train", views_per_world=12, pairs_per_world=6,
                          image_ext="jpg", progress=False)


def test_ceiling_agrees_with_zeb_and_bounds_the_matchers(pose_set, tmp_path):
    cfg = PoseEvalConfig(max_keypoints=512)
    cache = tmp_path / "cache"
    res = run_ceiling([pose_set], ["sift-lightglue-base"], tmp_path / "out", cfg, cache=cache)
    zeb = run_pose_benchmark([load_pose_dataset(pose_set)], ["sift-nn", "sift-lightglue-base"], tmp_path / "zeb",
                             cfg, cache=cache, write=False)
    assert set(res["matchers"]) == {"sift-nn", "sift-lightglue-base"}
    for name, entry in res["matchers"].items():
        s = entry["datasets"]["indoor"]
        # The same estimator on the same cached matches gives bench zeb's score.
        assert s["auc@5"] == pytest.approx(zeb["matchers"][name]["datasets"]["indoor"]["auc@5"], abs=0.01)
        # Mostly-overlapping synthetic indoor pairs: most matches land within 3 px of the GT projection.
        assert 0.6 < s["precision"] <= 1.0, (name, s)
    per_pair = json.loads((tmp_path / "out" / "per_pair.json").read_text())
    for name in res["matchers"]:
        recs = per_pair[name]["indoor"]
        assert len(recs) == 6 and sum(r["correct"] for r in recs) >= 100
        assert all(r["correct"] <= r["known"] <= r["matches"] for r in recs)
    # Both matchers run on the same 512 SIFT keypoints: one keypoint ceiling, shared.
    assert len(res["keypoints"]) == 1
    feats = res["matchers"]["sift-nn"]["features"]
    assert feats == res["matchers"]["sift-lightglue-base"]["features"] and feats in res["keypoints"]
    k = res["keypoints"][feats]["datasets"]["indoor"]
    # Pairs from 5 to 90 % overlap: the low-overlap ones share almost no keypoints, the others many. Every GT
    # correspondence gives a better pose AUC than either matcher or the nearest neighbours among them.
    assert 0 < k["pairs_lt8"] < 6 and k["gt"] >= 8
    assert k["auc5_all_gt"] >= k["auc5_nn_gt"]
    assert k["auc5_all_gt"] >= max(e["mean"]["auc@5"] for e in res["matchers"].values()) + 10.0
    md = (tmp_path / "out" / "results.md").read_text()
    assert "Keypoint ceilings" in md and "share of ceiling" in md


def test_gt_correspondences_are_correct_and_shifted_ones_are_not(pose_set, tmp_path):
    res_dir = tmp_path / "out"
    run_ceiling([pose_set], ["sift-nn"], res_dir, PoseEvalConfig(max_keypoints=512), add_baseline=False)
    fpath = next((res_dir / "cache").rglob("features-*.h5"))
    ds = load_pose_dataset(pose_set)
    recs = json.loads((res_dir / "per_pair.json").read_text())["sift-nn"]["indoor"]
    p = ds.pairs[int(np.argmax([r["correct"] for r in recs]))]  # the pair with the largest overlap
    f0, f1 = h5io.read_features(fpath, p.name0), h5io.read_features(fpath, p.name1)
    g0, g1 = load_depth_gt(pose_set, p.name0), load_depth_gt(pose_set, p.name1)
    i0, i1, nn = gt_correspondences(f0, f1, g0, g1, p, 3.0)
    assert len(i0) >= 20 and len(set(i1.tolist())) == len(i1)  # one-to-one
    assert 0 < nn.mean() <= 1
    k0, k1 = f0["keypoints"][i0], f1["keypoints"][i1]
    correct, known = match_correctness(k0, k1, g0, g1, p, 3.0)
    assert known.all() and correct.all()
    correct, known = match_correctness(k0, k1 + np.array([10.0, 0.0], np.float32), g0, g1, p, 3.0)
    assert not correct.any()


def test_ceiling_cli_needs_depth_one_line(tmp_path):
    bare = tmp_path / "bare"
    (bare / "images").mkdir(parents=True)
    for name in ("a", "b"):
        cv2.imwrite(str(bare / "images" / f"{name}.png"), np.full((48, 64, 3), 128, np.uint8))
    K = "500 0 320 0 500 240 0 0 1"
    T = " ".join(str(v) for v in np.eye(4).ravel())
    (bare / "pairs.txt").write_text(f"images/a.png images/b.png -1 -1 {K} {K} {T}\n")
    r = subprocess.run([sys.executable, "-m", "gimsfm", "bench", "ceiling", "--data", str(bare), "--out",
                        str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "no depth/ folder" in r.stderr
    assert len([ln for ln in r.stderr.splitlines() if ln.startswith("error")]) == 1
    assert not (tmp_path / "out").exists()
