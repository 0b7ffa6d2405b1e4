"""GT labeller, loss, trainer checkpoint/resume and the `gimsfm train` CLI."""
from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from gimsfm.train import labels as L
from gimsfm.train.datasets import collate, make_homography_pair, make_sample, read_zeb_pairs, DepthPoseSource

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "data" / "train_tiny.yaml"


# ---------------------------------------------------------------------------------------------- labeller
def test_identity_labels():
    rng = np.random.default_rng(0)
    k = rng.uniform(0, 99, (50, 2)).astype(np.float32)
    p01, v01, p10, v10 = L.project_homography(k, k, np.eye(3), (100, 100), (100, 100))
    gt0, gt1 = L.label_matches(k, k, p01, v01, p10, v10)
    assert (gt0 == np.arange(50)).all() and (gt1 == np.arange(50)).all()


def test_homography_labels_known_answer():
    rng = np.random.default_rng(1)
    H = np.array([[0.9, 0.1, 20.0], [-0.05, 1.1, 5.0], [1e-4, 2e-4, 1.0]])
    k0 = rng.uniform(0, 200, (40, 2))
    k1_true, _ = L.warp_points_homography(k0, H)
    perm = rng.permutation(40)
    k1 = k1_true[perm] + rng.normal(0, 0.5, (40, 2))  # within 3 px
    # Extra points: far ones (unmatched) and one at 4 px from a projection (ignored).
    far = np.array([[1000.0, 1000.0], [-500, 40]])
    near = k1_true[:1] + np.array([[4.0, 0.0]])
    k1 = np.concatenate([k1, far, near]).astype(np.float32)
    size1 = (2000, 2000)
    p01, v01, p10, v10 = L.project_homography(k0.astype(np.float32), k1, H, (2000, 2000), size1)
    gt0, gt1 = L.label_matches(k0, k1, p01, v01, p10, v10, 3.0, 5.0)
    inv = np.argsort(perm)
    assert (gt0 == inv).all()
    assert gt1[40] == L.UNMATCHED  # far from every projection (or outside image 0)
    assert gt1[41] == L.UNMATCHED  # outside image 1
    assert gt1[42] == L.IGNORE  # 4 px from a projection: between the thresholds


def test_points_leaving_the_image_are_unmatched():
    H = np.array([[1.0, 0, 300.0], [0, 1.0, 0], [0, 0, 1]])  # shift right by 300 px
    k0 = np.array([[10.0, 10.0], [250.0, 50.0]], np.float32)  # second lands at x=550 > 400: outside
    k1 = np.array([[310.0, 10.0]], np.float32)
    p01, v01, p10, v10 = L.project_homography(k0, k1, H, (400, 300), (400, 300))
    gt0, gt1 = L.label_matches(k0, k1, p01, v01, p10, v10)
    assert gt0.tolist() == [0, L.UNMATCHED] and gt1.tolist() == [0]


def _plane_scene(w=160, h=120, f=100.0, z=4.0, tx=0.5):
    """Fronto-parallel plane at depth z seen by two cameras translated by tx along x."""
    K = np.array([[f, 0, (w - 1) / 2], [0, f, (h - 1) / 2], [0, 0, 1]])
    T = np.eye(4)
    T[0, 3] = -tx  # X_cam1 = X_cam0 - tx
    d0 = np.full((h, w), z, np.float32)
    d1 = np.full((h, w), z, np.float32)
    return K, T, d0, d1


def test_depth_pose_labels_known_answer():
    K, T, d0, d1 = _plane_scene()
    shift = 100.0 * 0.5 / 4.0  # f * tx / z = 12.5 px to the left in image 1
    k0 = np.array([[50.0, 60.0], [80.5, 30.25], [5.0, 5.0]], np.float32)  # third leaves image 1 (x < 0)
    k1 = np.array([[50.0 - shift, 60.0], [80.5 - shift, 30.25], [150.0, 100.0]], np.float32)
    p01, v01, p10, v10 = L.project_depth(k0, k1, d0, d1, K, K, T)
    np.testing.assert_allclose(p01[:2], k1[:2], atol=1e-3)
    gt0, gt1 = L.label_matches(k0, k1, p01, v01, p10, v10)
    assert gt0.tolist() == [0, 1, L.UNMATCHED]
    # (150, 100) in image 1 comes from x = 162.5 in image 0: outside -> unmatched
    assert gt1.tolist() == [0, 1, L.UNMATCHED]


def test_depth_occlusion_and_unknown_depth():
    K, T, d0, d1 = _plane_scene()
    shift = 12.5
    k0 = np.array([[50.0, 60.0], [100.0, 60.0]], np.float32)
    k1 = np.array([[50.0 - shift, 60.0], [100.0 - shift, 60.0]], np.float32)
    # An occluder in front of the plane in image 1 around the first point's projection.
    d1[55:66, 30:45] = 1.0
    # No depth at the second keypoint in image 0.
    d0[58:63, 98:103] = 0.0
    p01, v01, p10, v10 = L.project_depth(k0, k1, d0, d1, K, K, T)
    assert v01.tolist() == [L.HIDDEN, L.UNKNOWN]
    gt0, gt1 = L.label_matches(k0, k1, p01, v01, p10, v10)
    assert gt0[0] == L.UNMATCHED  # occluded
    assert gt0[1] == L.IGNORE  # unknown depth: never a negative


def test_depth_source_reads_zeb_layout(tmp_path):
    import cv2

    K, T, d0, d1 = _plane_scene(w=320, h=240, f=200.0)
    rng = np.random.default_rng(0)
    tex = cv2.GaussianBlur(rng.integers(0, 255, (240, 400)).astype(np.uint8), (0, 0), 1.5)
    shift = int(200 * 0.5 / 4.0)  # 25 px
    img0, img1 = tex[:, :320], tex[:, shift:shift + 320]
    (tmp_path / "images").mkdir()
    (tmp_path / "depth").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "a.png"), img0)
    cv2.imwrite(str(tmp_path / "images" / "b.png"), img1)
    np.save(tmp_path / "depth" / "a.npy", d0)
    np.save(tmp_path / "depth" / "b.npy", d1)
    vals = " ".join(f"{v:.8g}" for v in np.r_[K.ravel(), K.ravel(), T.ravel()])
    (tmp_path / "pairs.txt").write_text(f"images/a.png images/b.png -1 -1 {vals}\n")
    assert len(read_zeb_pairs(tmp_path / "pairs.txt")) == 1
    # camera 1 moved +0.5 along x: image content shifts LEFT by 25 px: img1[x] = img0[x + 25] -> consistent
    src = DepthPoseSource("t", tmp_path / "cache", 0, 0, {"max_keypoints": 300}, tmp_path)
    rec = src.get(0)
    s = make_sample(rec, 300, None)
    pos = s["gt0"] >= 0
    assert pos.sum() > 50
    err = np.linalg.norm(s["kpts0"][pos] - np.array([shift, 0]) - s["kpts1"][s["gt0"][pos]], axis=1)
    assert np.median(err) < 1.0


def test_homography_pair_generator_is_reproducible():
    rng_img = np.random.default_rng(0).integers(0, 255, (300, 400)).astype(np.uint8)
    a = make_homography_pair(rng_img, np.random.default_rng(5), {"canvas": (160, 120)})
    b = make_homography_pair(rng_img, np.random.default_rng(5), {"canvas": (160, 120)})
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert a[0].shape == (120, 160)


# ---------------------------------------------------------------------------------------------- training
def _tiny_preset(tmp_path: Path, **over) -> dict:
    from gimsfm.train.trainer import load_preset

    p = load_preset(TINY)
    p["out_dir"] = str(tmp_path / "run")
    p["data"]["cache_dir"] = str(tmp_path / "cache")
    for k, v in over.items():
        p[k].update(v)
    return p


def test_loss_decreases_on_a_tiny_set(tmp_path):
    from gimsfm.train.trainer import Trainer

    torch.set_num_threads(1)
    p = _tiny_preset(tmp_path, optim={"lr": 3e-3, "warmup": 1})
    tr = Trainer(p)
    tr.build()
    # overfit one batch, on whatever device `auto` picked (the GPU where there is one)
    batch = {k: v.to(tr.device) for k, v in tr.train_data.batch(0, 2).items()}
    losses = []
    for _ in range(25):
        out = tr.model(batch)
        loss, _ = tr.model.loss(batch, out)
        tr.opt.zero_grad()
        loss.backward()
        tr.opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.8 * losses[0], losses


def test_padding_masks_do_not_change_the_result(tmp_path):
    from gimsfm.models import build_model

    torch.manual_seed(0)
    m = build_model("lightglue", {"n_layers": 2, "descriptor_dim": 64, "num_heads": 2}).eval()
    rng = np.random.default_rng(0)

    def sample(n0, n1):
        d = {}
        for side, n in (("0", n0), ("1", n1)):
            desc = rng.random((n, 128)).astype(np.float32)
            d.update({f"kpts{side}": rng.uniform(0, 100, (n, 2)).astype(np.float32),
                      f"scales{side}": rng.uniform(2, 10, n).astype(np.float32),
                      f"oris{side}": rng.uniform(-3, 3, n).astype(np.float32),
                      f"desc{side}": desc / np.linalg.norm(desc, axis=1, keepdims=True),
                      f"size{side}": np.array([100.0, 100.0], np.float32),
                      f"gt{side}": np.full(n, -1)})
        return d

    a, b = sample(30, 40), sample(50, 20)
    with torch.no_grad():
        la_alone = m(collate([a]))["log_assignment"][-1]
        la_batch = m(collate([a, b]))["log_assignment"][-1]
    torch.testing.assert_close(la_batch[0, :30, :40], la_alone[0, :30, :40], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(la_batch[0, :30, -1], la_alone[0, :30, -1], atol=1e-4, rtol=1e-4)


def test_checkpoint_resume_is_exact(tmp_path):
    from gimsfm.train.trainer import Trainer

    torch.set_num_threads(1)
    p = _tiny_preset(tmp_path, train={"max_iters": 4, "val_every": 1000})
    full = Trainer(p)
    full.run(progress=False)
    sd_full = torch.load(full.ckpt_path, weights_only=False)["model"]

    p2 = _tiny_preset(tmp_path, train={"max_iters": 4, "val_every": 1000})
    p2["out_dir"] = str(tmp_path / "run2")
    part = Trainer(p2)
    part.run(progress=False, max_iters=2)
    assert torch.load(part.ckpt_path, weights_only=False)["iteration"] == 2
    Trainer(p2).run(progress=False, resume=True)
    ck = torch.load(part.ckpt_path, weights_only=False)
    assert ck["iteration"] == 4
    for k, v in sd_full.items():
        assert torch.equal(v, ck["model"][k]), k


def test_loader_workers_give_the_same_batches_and_weights(tmp_path):
    """DataLoader workers (GPU runs) build exactly the batches the main process would, in order."""
    from gimsfm.train.trainer import Trainer, batch_iterator

    torch.set_num_threads(1)
    p = _tiny_preset(tmp_path)
    tr = Trainer(p)
    tr.build()
    inline = list(batch_iterator(tr.train_data, 3, 6, 1, 0, 2, workers=0))
    pooled = list(batch_iterator(tr.train_data, 3, 6, 1, 0, 2, workers=2))
    assert len(inline) == len(pooled) == 3
    for a, b in zip(inline, pooled):
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), k

    runs = []
    for name, workers in (("w0", 0), ("w2", 2)):
        q = _tiny_preset(tmp_path, train={"max_iters": 3, "val_every": 1000, "loader_workers": workers})
        q["out_dir"] = str(tmp_path / name)
        t = Trainer(q)
        t.run(progress=False)
        runs.append(torch.load(t.ckpt_path, weights_only=False)["model"])
    for k, v in runs[0].items():
        assert torch.equal(v, runs[1][k]), k


def _cli(*args, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "gimsfm", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120)


def test_train_cli_smoke(tmp_path):
    p = yaml.safe_load(TINY.read_text())
    p["out_dir"] = str(tmp_path / "run")
    p["data"]["cache_dir"] = str(tmp_path / "cache")
    preset = tmp_path / "tiny.yaml"
    preset.write_text(yaml.safe_dump(p))
    r = _cli("train", "--preset", str(preset), "--no-progress")
    assert r.returncode == 0, r.stderr
    run = tmp_path / "run"
    for f in ("checkpoint.pt", "train_log.csv", "val_log.csv", "curves.png", "preset.yaml"):
        assert (run / f).is_file(), f
    # Second start without --resume refuses; --resume continues; export writes loadable weights.
    r = _cli("train", "--preset", str(preset))
    assert r.returncode != 0 and "--resume" in r.stderr
    r = _cli("train", "--preset", str(preset), "--resume", "--max-iters", "4", "--no-progress")
    assert r.returncode == 0, r.stderr
    r = _cli("train", "--preset", str(preset), "--export", str(tmp_path / "w.pt"))
    assert r.returncode == 0, r.stderr
    from gimsfm.train.trainer import load_exported

    model, info = load_exported(tmp_path / "w.pt")
    assert info["iteration"] == 4


def test_train_cli_bad_preset(tmp_path):
    r = _cli("train", "--preset", str(tmp_path / "missing.yaml"))
    assert r.returncode != 0
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "preset not found" in lines[0]
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nbogus_key: 1\n")
    r = _cli("train", "--preset", str(bad))
    assert r.returncode != 0 and "bogus_key" in r.stderr


def test_compact_checkpoint_roundtrip():
    """The committed checkpoint keeps fp32 weights and bf16 Adam moments, and expands back for resuming."""
    from gimsfm.train.trainer import compact_state, expand_state

    model = torch.nn.Linear(8, 4)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(3, 8)).sum().backward()
    opt.step()
    state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "iteration": 1}
    slim = compact_state(state)
    assert slim["optimizer"]["state"][0]["exp_avg"].dtype == torch.bfloat16
    assert slim["model"]["weight"].dtype == torch.float32
    full = expand_state(slim)
    opt2 = torch.optim.AdamW(model.parameters(), lr=1e-3)
    opt2.load_state_dict(full["optimizer"])
    a, b = opt.state_dict()["state"][0]["exp_avg"], opt2.state_dict()["state"][0]["exp_avg"]
    assert torch.allclose(a, b, rtol=1e-2, atol=1e-6)


def test_torchrun_ddp_two_processes_resume_a_one_process_run(tmp_path):
    """torchrun with 2 CPU processes (gloo): rank 0 alone writes the usual checkpoint/logs; a DDP run resumes a
    one-process checkpoint and the result exports like any other."""
    p = yaml.safe_load(TINY.read_text())
    p["out_dir"] = str(tmp_path / "run")
    p["data"]["cache_dir"] = str(tmp_path / "cache")
    preset = tmp_path / "tiny.yaml"
    preset.write_text(yaml.safe_dump(p))
    r = _cli("train", "--preset", str(preset), "--no-progress", "--max-iters", "2", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "gimsfm",
           "train", "--preset", str(preset), "--resume", "--max-iters", "5", "--no-progress", "--device", "cpu"]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "rank 1 of 2" in r.stderr
    ck = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    assert ck["iteration"] == 5 and ck["hardware"]["world_size"] == 2
    assert ck["history"]["segments"] == [[0, 2], [2, 4]]  # 2 one-process iterations, then 2 processes x 2
    rows = (tmp_path / "run" / "train_log.csv").read_text().strip().splitlines()
    assert [int(float(x.split(",")[0])) for x in rows[1:]] == [1, 2, 3, 4, 5]  # one writer, no duplicates
    assert all(torch.isfinite(v).all() for v in ck["model"].values() if v.is_floating_point())
    # validation is shared by both ranks (each every 2nd pair): the logged numbers equal one process's
    from gimsfm.train.trainer import Trainer, evaluate, load_preset

    with open(tmp_path / "run" / "val_log.csv") as f:
        logged = {int(float(r["iteration"])): r for r in csv.DictReader(f)}[5]
    tr = Trainer(load_preset(preset), device="cpu")
    tr.build()
    tr.model.load_state_dict(ck["model"])
    single = evaluate(tr.model, tr.val_sources, tr.p["val"], tr.p["data"])
    assert single["textures/pairs"] == 2
    for k in ("textures/precision", "textures/recall", "textures/matches", "textures/auc@5"):
        assert float(logged[k]) == pytest.approx(single[k], abs=1e-6), k


def test_samples_seen_over_process_count_changes():
    from gimsfm.train.trainer import samples_seen

    assert samples_seen(10, [], 2) == 20
    assert samples_seen(10, [[0, 2], [4, 4]], 2) == 4 * 2 + 6 * 4
    assert samples_seen(3, [[0, 2], [4, 4]], 2) == 6  # a later segment not reached yet


def test_prepare_cache_fills_every_record_once(tmp_path):
    """`gimsfm train --prepare`: two processes split the records; a later run finds them all cached."""
    from gimsfm.train.trainer import Trainer, prepare_cache

    p = _tiny_preset(tmp_path)
    assert prepare_cache(p, workers=2) == 4 + 2
    files = sorted((tmp_path / "cache").rglob("*.npz"))
    assert len(files) == 6
    mtimes = [f.stat().st_mtime_ns for f in files]
    tr = Trainer(p)
    tr.build()
    tr.train_data.batch(0, 2)
    assert [f.stat().st_mtime_ns for f in sorted((tmp_path / "cache").rglob("*.npz"))] == mtimes


def test_preset_extends_and_source_overrides(tmp_path):
    """Ablation presets state only their change; every committed ablation loads and differs as named."""
    from gimsfm.errors import InputError
    from gimsfm.train.trainer import load_preset

    main = load_preset(REPO / "pipelines" / "train_sift_lightglue_gim.yaml")
    abl = load_preset(REPO / "pipelines" / "ablations" / "gim_no_propagation.yaml")
    videos = [s for s in abl["data"]["sources"] if s["type"] == "video_labels"]
    assert {s["variant"] for s in videos} == {"direct"} and len(videos) == 2
    assert abl["out_dir"] == "runs/train/gim_no_propagation" and abl["train"]["compact_checkpoint"] is None
    assert abl["optim"] == main["optim"] and abl["train"]["init_from"] == main["train"]["init_from"]
    assert [s for s in abl["data"]["sources"] if s["type"] != "video_labels"] == \
        [s for s in main["data"]["sources"] if s["type"] != "video_labels"]
    for f in (REPO / "pipelines" / "ablations").glob("*.yaml"):
        assert load_preset(f)["name"] == f.stem
    for f in (REPO / "pipelines").glob("train_*.yaml"):  # every training preset loads and samples something
        assert sum(s["weight"] for s in load_preset(f)["data"]["sources"]) > 0
    mix = load_preset(REPO / "pipelines" / "train_sift_lightglue_gim_mix80.yaml")
    video = sum(s["weight"] for s in mix["data"]["sources"] if s["type"] == "video_labels")
    assert abs(video / sum(s["weight"] for s in mix["data"]["sources"]) - 0.8) < 1e-6
    assert mix["train"]["compact_checkpoint"] != main["train"]["compact_checkpoint"]
    # the data-amount runs: only the synthetic label store changes (and the full-budget run's own checkpoint)
    for name, store in (("train_sift_lightglue_gim_x4.yaml", "video_synth_medium"),
                        ("ablations/gim_video_synth_x4.yaml", "video_synth_medium"),
                        ("ablations/gim_video_synth_x8.yaml", "video_synth_x8"),
                        ("train_sift_lightglue_gim_x8.yaml", "video_synth_x8"),
                        ("ablations/gim_video_synth_x12.yaml", "video_synth_large")):
        q = load_preset(REPO / "pipelines" / name)
        roots = {s["name"]: s["root"] for s in q["data"]["sources"] if s["type"] == "video_labels"}
        assert roots == {"video_real": "runs/labels/video_real", "video_synth": f"runs/labels/{store}"}, name
    x4 = load_preset(REPO / "pipelines" / "train_sift_lightglue_gim_x4.yaml")
    others = (main["train"]["compact_checkpoint"], mix["train"]["compact_checkpoint"])
    x8 = load_preset(REPO / "pipelines" / "train_sift_lightglue_gim_x8.yaml")
    assert len({x4["train"]["compact_checkpoint"], x8["train"]["compact_checkpoint"], *others}) == 4
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"extends: {REPO / 'pipelines' / 'train_sift_lightglue_gim.yaml'}\nname: x\n"
                   "source_overrides: {nothing_*: {weight: 0}}\n")
    with pytest.raises(InputError, match="matches no source"):
        load_preset(bad)


def test_preset_set_overrides():
    """--set KEY.PATH=VALUE changes existing settings (YAML values, {name} in out_dir follows) and rejects typos."""
    from gimsfm.errors import InputError
    from gimsfm.train.trainer import load_preset

    path = REPO / "pipelines" / "ablations" / "gim_no_propagation.yaml"
    p = load_preset(path, ["name=abl_short", "out_dir=runs/ablations/{name}", "optim.decay_start=300",
                           "train.compact_checkpoint=null", "optim.lr=5.0e-5"])
    assert p["out_dir"] == "runs/ablations/abl_short" and p["optim"]["decay_start"] == 300
    assert p["train"]["compact_checkpoint"] is None and p["optim"]["lr"] == 5e-5
    assert p["_overrides"][0] == "name=abl_short"
    assert load_preset(path)["optim"]["decay_start"] != 300  # the file is unchanged
    for bad, msg in (["optim.decay_strt=3"], "no setting"), (["optim"], "KEY.PATH=VALUE"), \
            (["optim.lr=[1"], "not valid YAML"):
        with pytest.raises(InputError, match=msg):
            load_preset(path, bad)


def test_sample_seed_changes_the_draws_not_the_sources(tmp_path):
    """data.sample_seed repeats a run on other samples of the same sources (and caches)."""
    from gimsfm.train.trainer import Trainer

    torch.set_num_threads(1)
    trainers = {}
    for name, seed in (("default", None), ("same", 0), ("other", 1)):
        p = _tiny_preset(tmp_path)
        p["data"]["sample_seed"] = seed
        trainers[name] = t = Trainer(p)
        t.build()
    b = {k: t.train_data.batch(0, 2) for k, t in trainers.items()}
    assert all(torch.equal(b["default"][k], b["same"][k]) for k in b["default"])
    same_shape = [k for k in b["default"] if b["other"][k].shape == b["default"][k].shape]
    assert not same_shape or not all(torch.equal(b["default"][k], b["other"][k]) for k in same_shape)
    assert {len(t.train_data.sources) for t in trainers.values()} == {1}
    assert trainers["default"].train_data.sources[0].seed == trainers["other"].train_data.sources[0].seed == 0
