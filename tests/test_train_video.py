"""Training on GIM video labels: sparse-label GT rule, strong augmentation, the video_labels source and a
`gimsfm train` smoke run that starts from init weights."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from gimsfm.errors import InputError
from gimsfm.train import labels as L
from gimsfm.train.datasets import make_sample
from gimsfm.train.video_labels import (
    AUGMENT_DEFAULTS,
    VideoLabelSource,
    project_labels,
    split_videos,
    strong_augment,
    warp_labels,
)

REPO = Path(__file__).resolve().parents[1]
TINY_VIDEO = REPO / "tests" / "data" / "train_tiny_video.yaml"


@pytest.fixture(scope="module")
def label_store(tmp_path_factory) -> Path:
    """A 2.4 s synthetic indoor walk labelled with sift-nn (about 10 s)."""
    from gimsfm.label.pipeline import LabelConfig, label_video
    from gimsfm.synth.video import generate_video

    root = tmp_path_factory.mktemp("video")
    vid = generate_video("indoor", seconds=2.4, fps=25, seed=3, out_dir=root / "vid", progress=False,
                         distortion=False, trajectory="walk")
    label_video(next(Path(vid).glob("*.mp4")), root / "labels", LabelConfig(methods=["sift-nn"], min_propagate=64))
    return root / "labels"


# ------------------------------------------------------------------------------------------- GT rule
def test_sparse_label_gt_known_answer():
    lab0 = np.array([[10, 10], [50, 50], [90, 20]], np.float32)
    lab1 = lab0 + np.array([5, 2], np.float32)  # the video moved everything by (5, 2)
    k0 = np.array([[11, 10],    # 1 px from label 0 -> projects to (16, 12)
                   [50, 51],    # label 1 -> (55, 53): no keypoint of image 1 within 5 px -> unmatched
                   [90, 20],    # label 2 -> (95, 22): nearest keypoint 4 px away -> ignored (in between)
                   [70, 70]],   # no label within 2.5 px: no evidence either way -> ignored
                  np.float32)
    k1 = np.array([[16, 12.5],  # label 0's partner, 0.5 px off -> match with k0[0]
                   [99, 22],    # 4 px from label 2's partner, no label of its own within 2.5 px -> ignored
                   [30, 80]],   # far from every label: ignored, NOT unmatched (labels are sparse)
                  np.float32)
    p01, v01, p10, v10 = project_labels(k0, k1, lab0, lab1, np.eye(3), (100, 100), (100, 100))
    np.testing.assert_allclose(p01[:3], [[16, 12], [55, 53], [95, 22]], atol=1e-5)
    assert v01.tolist() == [L.VISIBLE, L.VISIBLE, L.VISIBLE, L.UNKNOWN]
    assert v10.tolist() == [L.VISIBLE, L.UNKNOWN, L.UNKNOWN]
    gt0, gt1 = L.label_matches(k0, k1, p01, v01, p10, v10, 3.0, 5.0)
    assert gt0.tolist() == [0, L.UNMATCHED, L.IGNORE, L.IGNORE]
    assert gt1.tolist() == [0, L.IGNORE, L.IGNORE]

    # The same pair after augmenting image 1 by A (shift 60 px right, canvas 100 px): label 2's partner leaves
    # the image -> k0[2] is unmatched; k0[0] still matches its keypoint moved by A.
    A = np.array([[1, 0, 60.0], [0, 1, 0], [0, 0, 1]])
    k1a = k1 + np.array([60, 0], np.float32)
    p01, v01, p10, v10 = project_labels(k0, k1a, lab0, lab1, A, (100, 100), (100, 100))
    assert v01.tolist() == [L.VISIBLE, L.HIDDEN, L.HIDDEN, L.UNKNOWN]
    gt0, gt1 = L.label_matches(k0, k1a, p01, v01, p10, v10, 3.0, 5.0)
    assert gt0.tolist() == [0, L.UNMATCHED, L.UNMATCHED, L.IGNORE]
    assert gt1[0] == 0


# ------------------------------------------------------------------------------------------- augmentation
def _geometry_only(**over):
    return {**AUGMENT_DEFAULTS, "photometric": False, "p_blur": 0.0, "p_motion_blur": 0.0, "p_dark": 0.0, **over}


def test_augmentation_moves_content_with_the_labels():
    """A pixel-coordinate image (R = x, G = y): the augmented image at A(p) must show the content of p."""
    w, h = 200, 160
    xs, ys = np.meshgrid(np.arange(w), np.arange(h))
    img = np.stack([xs, ys, np.zeros_like(xs)], -1).astype(np.uint8)
    pts = np.random.default_rng(0).uniform(5, [w - 6, h - 6], (300, 2))
    n_kept = []
    for seed in range(6):
        aug, A = strong_augment(img, np.random.default_rng(seed), _geometry_only())
        q, keep = warp_labels(pts, A, (w, h))
        assert (q[keep] >= -0.5).all() and (q[keep, 0] <= w - 0.5).all() and (q[keep, 1] <= h - 0.5).all()
        inner = keep & (q[:, 0] > 2) & (q[:, 0] < w - 3) & (q[:, 1] > 2) & (q[:, 1] < h - 3)
        qi = np.round(q[inner]).astype(int)
        seen = aug[qi[:, 1], qi[:, 0], :2].astype(float)
        # rounding to the pixel grid moves up to 0.7 px in the augmented image, times the local zoom (< ~3)
        assert np.median(np.abs(seen - pts[inner]).max(1)) < 2.0, seed
        n_kept.append(keep.sum())
    # Without geometry change nothing leaves the image; with it, labels are dropped only when they leave.
    _, A = strong_augment(img, np.random.default_rng(0), _geometry_only(p_perspective=0.0, scale=[1.0, 1.0]))
    assert warp_labels(pts, A, (w, h))[1].all()
    assert min(n_kept) < len(pts)


def test_augmentation_is_deterministic_and_photometric_runs():
    img = np.random.default_rng(1).integers(0, 255, (120, 160, 3)).astype(np.uint8)
    a = strong_augment(img, np.random.default_rng(7), AUGMENT_DEFAULTS)
    b = strong_augment(img, np.random.default_rng(7), AUGMENT_DEFAULTS)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[0].shape == img.shape


def test_video_split_is_deterministic_and_nested():
    ids = [f"clip{i:02d}-abc" for i in range(20)]
    val = split_videos(ids, "val", 0.1)
    train = split_videos(ids, "train", 0.1)
    assert len(val) == 2 and not set(val) & set(train) and len(train) == 18
    assert split_videos(list(reversed(ids)), "val", 0.1) == val
    quarter, half = split_videos(ids, "train", 0.1, 0.25), split_videos(ids, "train", 0.1, 0.5)
    assert set(quarter) < set(half) and len(half) == 9
    assert split_videos(ids[:1], "val", 0.1) == []  # one video: all for training


# ------------------------------------------------------------------------------------------- the source
def test_video_label_source(label_store, tmp_path):
    src = VideoLabelSource("v-train", tmp_path / "cache", 2, 0, {"max_keypoints": 512}, label_store, n_aug=2)
    assert len(src) == 4 and len(src.videos) == 1
    rec = src.get(1)
    assert np.array_equal(src.build(1)["kpts1"], rec["kpts1"])  # same (pair, augmentation) -> same record
    assert not np.array_equal(rec["A"], src.get(0)["A"])  # the pool holds different augmentations
    # image 0's SIFT comes from the per-frame cache and equals a fresh extraction
    assert any(src.frame_cache.iterdir())
    d = src.load_pair(0)
    fresh0 = src.extractor(d["img0"])
    cached0 = src.frame_features(src.pairs[0][0], d["frame0"], d["img0"])
    assert all(np.array_equal(fresh0[k], cached0[k]) for k in fresh0)
    n_pos = 0
    for i in range(len(src)):  # some warps are harsh (rotation, zoom 0.6): count positives over the pool
        s = make_sample(src.get(i), 256, None)
        pos = s["gt0"] >= 0
        n_pos += pos.sum()
        assert (s["gt0"] == L.IGNORE).sum() > 0  # keypoints away from the sparse labels
        # Positives agree with the labels: kpts1 near A(partner of the nearest label).
        err = np.linalg.norm(s["p01"][pos] - s["kpts1"][s["gt0"][pos]], axis=1)
        assert (err < 3.0).all()
    assert n_pos >= 20
    plain = VideoLabelSource("v-train", tmp_path / "cache", 2, 0, {"max_keypoints": 512}, label_store,
                             augment=False, n_aug=8)
    assert len(plain) == 2 and np.array_equal(plain.get(0)["A"], np.eye(3))
    assert (make_sample(plain.get(0), 256, None)["gt0"] >= 0).sum() >= 20
    # cache: false computes each draw (nothing written), reproducibly
    fresh = VideoLabelSource("v-fresh", tmp_path / "cache2", 1, 0, {"max_keypoints": 512}, label_store,
                             n_aug=1000, cache=False)
    assert len(fresh) == 1000 and np.array_equal(fresh.get(5)["A"], fresh.get(5)["A"])
    assert not any(fresh.cache_dir.iterdir())
    # Ablation variant (labels without propagation) for training; validation keeps the full labels.
    direct = VideoLabelSource("v-direct", tmp_path / "cache3", 0, 0, {"max_keypoints": 512}, label_store,
                              augment=False, variant="direct")
    assert direct.group == "variants/direct/pairs" and 0 < len(direct.pairs) <= len(plain.pairs) + 10
    rec = direct.get(0)
    assert (make_sample(rec, 256, None)["gt0"] >= 0).sum() >= 20
    val = VideoLabelSource("v-val", tmp_path / "cache3", 0, 0, {"max_keypoints": 512}, label_store,
                           split="val", val_fraction=1.0, variant="direct")
    assert val.group == "pairs"
    with pytest.raises(InputError, match="no label variant 'akaze'"):
        VideoLabelSource("v-x", tmp_path / "cache3", 0, 0, {"max_keypoints": 512}, label_store, variant="akaze")
    # A video that yielded no labels has the variant groups but no pairs: it adds nothing, it is no error.
    import shutil

    import h5py

    store = tmp_path / "store"
    shutil.copytree(label_store, store)
    (store / "empty-video").mkdir()
    with h5py.File(store / "empty-video" / "labels.h5", "w") as f:
        f.require_group("variants/direct")
    again = VideoLabelSource("v-direct2", tmp_path / "cache4", 0, 0, {"max_keypoints": 512}, store,
                             augment=False, variant="direct", all_videos=True)
    assert sorted(again.pairs) == sorted(VideoLabelSource(
        "v-direct3", tmp_path / "cache4", 0, 0, {"max_keypoints": 512}, label_store, augment=False,
        variant="direct", all_videos=True).pairs)


def test_min_gap_trains_on_the_wider_pairs_only(label_store, tmp_path):
    import h5py

    conf = {"max_keypoints": 512}
    full = VideoLabelSource("g-all", tmp_path / "c", 0, 0, conf, label_store, augment=False)
    gaps = {}
    for v, k in full.pairs:
        with h5py.File(label_store / v / "labels.h5", "r") as f:
            gaps[(v, k)] = int(f["pairs"][k].attrs["frame1"]) - int(f["pairs"][k].attrs["frame0"])
    assert len(set(gaps.values())) >= 2  # direct +1/+2/+4 steps and propagated ones
    th = sorted(set(gaps.values()))[1]
    wide = VideoLabelSource("g-wide", tmp_path / "c", 0, 0, conf, label_store, augment=False, min_gap=th)
    assert set(wide.pairs) == {p for p, g in gaps.items() if g >= th}
    assert 0 < len(wide.pairs) < len(full.pairs)
    # Validation is never filtered: runs with and without min_gap are scored on the same pairs.
    val = VideoLabelSource("g-val", tmp_path / "c", 0, 0, conf, label_store, split="val", all_videos=True,
                           min_gap=th)
    assert sorted(val.pairs) == sorted(full.pairs)


# ------------------------------------------------------------------------------------------- training
def test_train_cli_video_smoke(label_store, tmp_path):
    from gimsfm.models import build_model
    from gimsfm.train.trainer import Trainer, load_preset

    p = yaml.safe_load(TINY_VIDEO.read_text())
    torch.manual_seed(123)
    init = build_model(p["model"]["name"], p["model"]["conf"])
    torch.save({"model_name": "lightglue", "conf": init.conf,
                "state_dict": {k: v.half() if v.is_floating_point() else v for k, v in init.state_dict().items()}},
               tmp_path / "init.pt")
    p["out_dir"] = str(tmp_path / "run")
    p["data"]["cache_dir"] = str(tmp_path / "cache")
    p["data"]["sources"][0].update(root=str(label_store), val_root=str(label_store))
    p["train"]["init_from"] = str(tmp_path / "init.pt")
    preset = tmp_path / "tiny_video.yaml"
    preset.write_text(yaml.safe_dump(p))

    # init_from loads the weights into a new run
    tr = Trainer(load_preset(preset))
    tr.build()
    tr.init_weights()
    for k, v in init.state_dict().items():
        if v.is_floating_point():
            torch.testing.assert_close(tr.model.state_dict()[k], v.half().float())

    r = subprocess.run([sys.executable, "-m", "gimsfm", "train", "--preset", str(preset), "--no-progress"],
                       check=False, capture_output=True, text=True, cwd=REPO, timeout=120)
    assert r.returncode == 0, r.stderr
    val = (tmp_path / "run" / "val_log.csv").read_text()
    assert "video/precision" in val and "video/auc" not in val
