"""GIM labelling: filtering and propagation on known answers, the pipeline on a synthetic video vs its GT."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial import cKDTree

from gimsfm.label.filtering import dedup, drop_static, fuse, magsac_fundamental_inliers
from gimsfm.label.pipeline import LabelConfig, label_video, label_videos, video_id
from gimsfm.label.propagate import chain, final_filter, propagate
from gimsfm.label.quality import evaluate_labels, label_variants


def _scene_points(n=800, seed=0):
    rng = np.random.default_rng(seed)
    return np.c_[rng.uniform(-3, 3, n), rng.uniform(-2, 2, n), rng.uniform(6, 12, n)]


def _project(X, tx):
    K = np.array([[500, 0, 320], [0, 500, 240], [0, 0, 1.0]])
    Xc = X - [tx, 0, 0]
    p = Xc @ K.T
    return (p[:, :2] / p[:, 2:]).astype(np.float32)


def test_magsac_static_dedup():
    X = _scene_points()
    k0, k1 = _project(X, 0.0), _project(X, 0.3)
    rng = np.random.default_rng(1)
    k1_bad = k1.copy()
    k1_bad[:100] = rng.uniform(0, 640, (100, 2))
    mask = magsac_fundamental_inliers(k0, k1_bad, 0.5)
    assert mask[100:].mean() > 0.98 and mask[:100].mean() < 0.05
    assert not drop_static(k0[:3], k0[:3] + 0.5).any() and drop_static(k0[:3], k0[:3] + [2, 0]).all()
    dup0, dup1 = np.r_[k0[:5], k0[:5] + 0.1], np.r_[k1[:5], k1[:5]]
    assert len(dedup(dup0, dup1)) == 5
    a, b = fuse([(k0[:10], k1[:10]), (k0[5:20], k1[5:20])])
    assert len(a) == 20


def test_chain_and_propagation_known_answer():
    X = _scene_points()
    frames = [_project(X, 0.1 * i) for i in range(9)]  # a camera sliding right: exact tracks
    direct = {(i, i + 1): (frames[i], frames[i + 1]) for i in range(8)}
    a, c = chain(direct[(0, 1)], direct[(1, 2)])
    idx = cKDTree(frames[0]).query(a)[1]
    # Random points can fall within 1 px of each other in B; nearly all chains are still exact.
    err = np.linalg.norm(c - frames[2][idx], axis=1)
    assert len(a) >= 0.98 * len(X) and np.mean(err < 1e-3) > 0.99
    labels = propagate(direct, min_count=500)
    assert (0, 8) in labels and (0, 4) in labels and (4, 8) in labels
    a8, c8 = labels[(0, 8)]
    err8 = np.linalg.norm(c8 - frames[8][cKDTree(frames[0]).query(a8)[1]], axis=1)
    assert len(a8) >= 0.95 * len(X) and np.mean(err8 < 1e-3) > 0.97
    # Too few survivors stop propagation: nothing beyond the direct pairs.
    assert set(propagate(direct, min_count=len(X) + 1)) == set(direct)
    # B points that disagree by more than 1 px do not chain.
    shifted = (direct[(1, 2)][0] + 1.5, direct[(1, 2)][1])
    assert len(chain(direct[(0, 1)], shifted)[0]) < 0.05 * len(X)  # only accidental near neighbours
    final = final_filter({(0, 8): labels[(0, 8)]}, 1.0, 64)
    assert len(final[(0, 8)][0]) > 0.95 * len(X)


@pytest.fixture(scope="module")
def synth_video(tmp_path_factory) -> Path:
    from gimsfm.synth.video import generate_video

    out = tmp_path_factory.mktemp("video") / "indoor"
    generate_video("indoor", seconds=2.4, fps=25, seed=3, out_dir=out, progress=False, distortion=False,
                   trajectory="walk")
    return out


def test_label_synthetic_video_against_gt(synth_video, tmp_path):
    conf = LabelConfig(methods=["sift-nn", "akaze"], min_propagate=64)
    out = label_video(synth_video / "video.mp4", tmp_path, conf)
    assert out.name == video_id(synth_video / "video.mp4") and not list(tmp_path.glob("*.partial"))
    stats = json.loads((out / "stats.json").read_text())
    assert stats["sampled_frames"] == 6 and stats["direct_pairs"] == 5 + 4 + 2
    assert stats["final_pairs"] >= 8
    q = evaluate_labels(out / "labels.h5", synth_video / "gt.h5")
    assert q["evaluated_labels"] > 500
    assert q["precision@3px"] > 85.0 and q["median_error_px"] < 1.5
    assert len(list((out / "frames").glob("*.jpg"))) >= 5
    # Ablation variants from the same matches: no propagation, and each method alone.
    assert label_variants(out / "labels.h5") == ["akaze", "direct", "sift-nn"]
    qd = evaluate_labels(out / "labels.h5", synth_video / "gt.h5", variant="direct")
    qs = evaluate_labels(out / "labels.h5", synth_video / "gt.h5", variant="sift-nn")
    # 6 sampled frames: chains of +4 steps would reach past the clip, so both sets hold the direct pairs
    assert qd["max_reach_frames"] == 4 * stats["step"] and qd["pairs"] == q["pairs"]
    assert qd["precision@3px"] > 85.0 and qs["precision@3px"] > 85.0
    assert 0 < qs["labels_per_pair"] < q["labels_per_pair"]  # fusion adds the other method's labels
    # Re-running skips the finished video.
    mtime = (out / "labels.h5").stat().st_mtime
    label_video(synth_video / "video.mp4", tmp_path, conf)
    assert (out / "labels.h5").stat().st_mtime == mtime


def test_parallel_labelling_matches_serial(synth_video, tmp_path):
    """Two workers over two inputs (a video and a frame folder) give the same labels as one worker."""
    import av
    import cv2

    frames = tmp_path / "frames_input"
    frames.mkdir()
    with av.open(str(synth_video / "video.mp4")) as c:
        for i, fr in enumerate(c.decode(video=0)):
            cv2.imwrite(str(frames / f"{i:06d}.png"), fr.to_ndarray(format="bgr24"))
    conf = LabelConfig(methods=["sift-nn"], min_propagate=64, step=10)
    serial = label_videos([synth_video / "video.mp4", frames], tmp_path / "serial", conf, workers=1)
    para = label_videos([synth_video / "video.mp4", frames], tmp_path / "para", conf, workers=2)
    s, p = json.loads(serial.read_text()), json.loads(para.read_text())
    assert s["total"]["videos"] == 2 and s["total"] == p["total"]


def test_label_cli_bad_input(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    for bad in [tmp_path / "missing.mp4", tmp_path / "notes.txt"]:
        proc = subprocess.run([sys.executable, "-m", "gimsfm", "label", str(bad), "--out", str(tmp_path / "o")],
                              capture_output=True, text=True)
        assert proc.returncode != 0 and "Traceback" not in proc.stderr
        assert proc.stderr.strip().splitlines()[-1].startswith("error:")


def test_magsac_degenerate_input_has_no_model():
    pts = np.tile(np.array([[10.0, 20.0]], np.float32), (30, 1))  # all points identical
    assert not magsac_fundamental_inliers(pts, pts + 5, 0.5).any()
    line = np.c_[np.arange(30.0), np.arange(30.0)].astype(np.float32)  # collinear
    magsac_fundamental_inliers(line, line * 1.1, 0.5)  # must not raise


def test_bench_labels_cli(synth_video, tmp_path):
    """`gimsfm bench labels`: one labelling run, a row per variant, and a mean over videos."""
    r = subprocess.run([sys.executable, "-m", "gimsfm", "bench", "labels", str(synth_video), "--out",
                        str(tmp_path / "q"), "--methods", "sift-nn,akaze", "--min-propagate", "64"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads((tmp_path / "q" / "results.json").read_text())
    mean = res["mean"]
    assert set(mean) == {"all methods, propagated", "all methods, direct only", "sift-nn only, propagated",
                         "akaze only, propagated"}
    assert mean["all methods, propagated"]["precision@3px"] > 85.0
    assert mean["akaze only, propagated"]["pairs"] > 0 and mean["sift-nn only, propagated"]["labels_per_pair"] > 64
