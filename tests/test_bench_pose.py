"""Benchmark harness: ZEB protocol on shared pose sets, homography bench, suites, in-domain loaders, the gate."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import yaml

from gimsfm.errors import InputError


# ---------------------------------------------------------------- suites and loaders (no data needed)
def test_unknown_suite_and_synth_without_module(monkeypatch):
    from gimsfm.bench import suites

    with pytest.raises(InputError, match="unknown pose suite"):
        suites.pose_suite("zeb-heavy")
    monkeypatch.setitem(sys.modules, "gimsfm.synth.suites", None)  # makes the import fail
    with pytest.raises(InputError, match="zeb-lite-synth needs gimsfm.synth"):
        suites.pose_suite("zeb-lite-synth")
    with pytest.raises(InputError, match="give --data"):
        suites.resolve_data(None, None, "pose", default_suite=None)


def test_data_root_env(monkeypatch, tmp_path):
    from gimsfm.bench.suites import data_root, pose_suite

    monkeypatch.setenv("GIMSFM_DATA", str(tmp_path))
    assert data_root() == tmp_path
    with pytest.raises(InputError, match="pose data not found"):
        pose_suite("zeb-lite-real")


def test_pairs_file_validation(tmp_path):
    from gimsfm.bench.datasets import load_pose_dataset

    (tmp_path / "pairs.txt").write_text("a.png b.png -1 -1 1 0 0\n")
    with pytest.raises(InputError, match="38 columns"):
        load_pose_dataset(tmp_path)
    with pytest.raises(InputError, match="pose data not found"):
        load_pose_dataset(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no pairs.txt"):
        load_pose_dataset(tmp_path / "empty")
    K = "500 0 320 0 500 240 0 0 1"
    (tmp_path / "pairs.txt").write_text(f"a.png b.png -1 -1 {K} {K} " + " ".join(["2"] * 16) + "\n")
    with pytest.raises(InputError, match="rigid"):
        load_pose_dataset(tmp_path)


def test_scannet_intrinsics_rescaled_to_stored_images(tmp_path):
    import cv2

    from gimsfm.bench.datasets import parse_pose_pairs, scale_intrinsics_to_images

    for n in ("a.jpg", "b.jpg"):
        cv2.imwrite(str(tmp_path / n), np.zeros((480, 640, 3), np.uint8))
    K = "1165.7 0 647.5 0 1165.7 483.5 0 0 1"  # K of the 1296x968 originals
    T = " ".join(map(str, np.eye(4).ravel()))
    (tmp_path / "pairs.txt").write_text(f"a.jpg b.jpg 0 0 {K} {K} {T}\n")
    ds = scale_intrinsics_to_images(parse_pose_pairs(tmp_path / "pairs.txt", tmp_path))
    K0 = ds.pairs[0].K0
    assert K0[0, 2] == pytest.approx(640 / 1296 * 648 - 0.5)
    assert K0[1, 2] == pytest.approx(480 / 968 * 484 - 0.5)
    assert K0[0, 0] == pytest.approx(1165.7 * 640 / 1296)


# ---------------------------------------------------------------- ZEB on shared data
def _cfg(**kw):
    from gimsfm.bench.zeb import PoseEvalConfig

    return PoseEvalConfig(max_pairs=3, **kw)


def test_zeb_protocol_on_shared_pairs_and_cache(shared_data, tmp_path):
    from gimsfm.bench.zeb import run_zeb

    data = [shared_data / "pose" / "kitti00"]
    out = tmp_path / "zeb"
    res = run_zeb(data, ["sift-nn"], out, _cfg())
    for f in ("results.json", "results.md", "pose_curves.png", "per_pair.json"):
        assert (out / f).is_file(), f
    saved = json.loads((out / "results.json").read_text())
    entry = saved["matchers"]["sift-nn"]
    ds = entry["datasets"]["kitti00"]
    assert set(ds) >= {"auc@5", "auc@10", "auc@20", "pairs", "sec_per_pair"}
    assert ds["pairs"] == 3 and 0 <= ds["auc@5"] <= ds["auc@10"] <= ds["auc@20"] <= 100
    # KITTI consecutive frames are easy for SIFT: the metric must see that (a sign/convention bug would not).
    assert ds["auc@20"] > 50
    assert set(entry["mean"]) == {"auc@5", "auc@10", "auc@20"} and entry["mean_rank"] == 1.0
    assert "| sift-nn | kitti00 |" in (out / "results.md").read_text()

    # Another threshold/estimator reuses the cached features and matches (files untouched).
    cache_files = sorted((out / "cache").rglob("*.h5"))
    mtimes = [p.stat().st_mtime_ns for p in cache_files]
    res2 = run_zeb(data, ["sift-nn"], out, _cfg(thresh_px=1.0, estimator="opencv-magsac"))
    assert [p.stat().st_mtime_ns for p in cache_files] == mtimes
    assert res2["config"]["thresh_px"] == 1.0 and res2["config"]["estimator"] == "opencv-magsac"
    assert res["matchers"]["sift-nn"]["datasets"]["kitti00"]["pairs"] == 3
    # --overwrite recomputes everything and reproduces the first run exactly.
    res3 = run_zeb(data, ["sift-nn"], out, _cfg(), overwrite=True)
    assert [p.stat().st_mtime_ns for p in cache_files] != mtimes
    first, again = res["matchers"]["sift-nn"]["datasets"]["kitti00"], res3["matchers"]["sift-nn"]["datasets"]["kitti00"]
    assert all(first[k] == again[k] for k in ("auc@5", "auc@10", "auc@20"))


def test_zeb_ransac_runs(shared_data, tmp_path):
    """--ransac-runs K: run 0 is the protocol's estimate (the same score as without), K per pair are stored and
    their mean AUC reported; the runs really differ on a hard set."""
    from gimsfm.bench.zeb import run_zeb

    data = [shared_data / "pose" / "middlebury_temple"]
    one = run_zeb(data, ["sift-nn"], tmp_path / "one", _cfg())
    res = run_zeb(data, ["sift-nn"], tmp_path / "k", _cfg(ransac_runs=4), cache=tmp_path / "one" / "cache")
    e1, ek = one["matchers"]["sift-nn"], res["matchers"]["sift-nn"]
    assert ek["mean"] == e1["mean"]
    assert set(ek["mean_runs"]) == {"auc@5", "auc@10", "auc@20"}
    rows = json.loads((tmp_path / "k" / "per_pair.json").read_text())["sift-nn"]["middlebury_temple"]
    assert all(len(r["err_runs"]) == 4 and r["err_runs"][0] == r["err"] for r in rows)
    assert any(len({round(e, 6) for e in r["err_runs"]}) > 1 for r in rows)
    assert "mean of 4 RANSAC runs" in (tmp_path / "k" / "results.md").read_text()


def test_zeb_deterministic_across_runs(shared_data, tmp_path):
    """Two independent runs (no shared cache) give identical AUCs."""
    from gimsfm.bench.zeb import run_zeb

    data = [shared_data / "pose" / "middlebury_temple"]
    a = run_zeb(data, ["sift-nn"], tmp_path / "a", _cfg())
    b = run_zeb(data, ["sift-nn"], tmp_path / "b", _cfg())
    da, db = a["matchers"]["sift-nn"]["datasets"], b["matchers"]["sift-nn"]["datasets"]
    for k in ("auc@5", "auc@10", "auc@20"):
        assert da["middlebury_temple"][k] == db["middlebury_temple"][k]


def test_indomain_val_split_and_megadepth_scene_info_agree(shared_data, tmp_path):
    """The same pairs through a val/ split and through a LoFTR scene-info npz give the same scores."""
    from gimsfm.bench.datasets import load_pose_dataset, select_evenly
    from gimsfm.bench.indomain import run_indomain

    src = load_pose_dataset(shared_data / "pose" / "kitti00")
    pairs = select_evenly(src.pairs, 2)
    # A val/ split: pairs.txt + links to the images.
    val = tmp_path / "domain" / "val"
    (val / "images").mkdir(parents=True)
    lines = []
    for p in pairs:
        for n in (p.name0, p.name1):
            if not (val / n).exists():
                (val / n).symlink_to(src.root / n)
        vals = np.r_[p.K0.ravel(), p.K1.ravel(), p.T_0to1.ravel()]
        lines.append(f"{p.name0} {p.name1} -1 -1 " + " ".join(repr(float(v)) for v in vals))
    (val / "pairs.txt").write_text("\n".join(lines) + "\n")
    # A LoFTR scene-info npz over the same pairs: w2c poses I and T_0to1 give back T_0to1.
    names = sorted({n for p in pairs for n in (p.name0, p.name1)})
    idx = {n: i for i, n in enumerate(names)}
    poses = [np.eye(4) for _ in names]
    Ks = [None] * len(names)
    infos = []
    for p in pairs:
        i, j = idx[p.name0], idx[p.name1]
        poses[i], poses[j] = np.eye(4), p.T_0to1  # each image used once in these 2 pairs
        Ks[i], Ks[j] = p.K0, p.K1
        infos.append(((i, j), 0.5, np.zeros(0)))
    assert len(names) == 2 * len(pairs)
    md = tmp_path / "md"
    (md / "scene_info").mkdir(parents=True)
    pair_infos = np.empty(len(infos), dtype=object)
    for k, v in enumerate(infos):
        pair_infos[k] = v
    np.savez(md / "scene_info" / "0000.npz", image_paths=np.array(names, dtype=object),
             depth_paths=np.array(names, dtype=object), intrinsics=np.stack(Ks), poses=np.stack(poses),
             pair_infos=pair_infos)
    for n in names:
        (md / n).parent.mkdir(parents=True, exist_ok=True)
        (md / n).symlink_to(src.root / n)
    res = run_indomain([tmp_path / "domain"], md, [], None, None, ["sift-nn"], tmp_path / "out", _cfg())
    ds = res["matchers"]["sift-nn"]["datasets"]
    assert set(ds) == {"domain-val", "megadepth1500"}
    for k in ("auc@5", "auc@10", "auc@20"):
        assert ds["domain-val"][k] == pytest.approx(ds["megadepth1500"][k])
    with pytest.raises(InputError, match="nothing to evaluate"):
        run_indomain([], None, [], None, None, ["sift-nn"], tmp_path / "out2", _cfg())


# ---------------------------------------------------------------- homography benchmark
def test_homography_bench_on_shared_sequence(shared_data, tmp_path):
    from gimsfm.bench.homography import HomographyEvalConfig, run_homography

    out = tmp_path / "h"
    res = run_homography([shared_data / "homography" / "homogr_boat"], ["sift-nn"], out, HomographyEvalConfig())
    s = res["matchers"]["sift-nn"]["datasets"]["homogr_boat"]
    assert s["pairs"] == 1 and s["failures"] == 0
    assert s["mean_error"] < 5 and s["auc@10"] > 50
    assert set(res["matchers"]["sift-nn"]["mean"]) == {"auc@3", "auc@5", "auc@10", "mean_error"}
    for f in ("results.json", "results.md", "homography_curves.png"):
        assert (out / f).is_file()


# ---------------------------------------------------------------- the gate
def test_gate_compare_logic():
    from gimsfm.bench.gate import compare

    base = {"matchers": {"sift-nn": {"pose": {"mean": {"auc@5": 50.0}, "kitti00": {"auc@5": 60.0}},
                                     "homography": {"mean": {"auc@3": 30.0}}},
                         "gone": {"pose": {}, "homography": {}}}}
    now = {"sift-nn": {"pose": {"mean": {"auc@5": 49.5}, "kitti00": {"auc@5": 56.0}},
                       "homography": {"mean": {"auc@3": 28.0}}},
           "newcomer": {"pose": {"mean": {"auc@5": 1.0}}, "homography": {}}}
    passed, drops, notes = compare(base, now, tolerance=1.0, dataset_tolerance=5.0)
    assert not passed
    assert [d[:4] for d in drops] == [["sift-nn", "homography", "mean", "auc@3"]]
    assert any("newcomer" in n for n in notes) and any("gone" in n for n in notes)
    assert compare(base, now, tolerance=3.0, dataset_tolerance=5.0)[0]


@pytest.mark.slow
def test_gate_against_stored_baseline(shared_data, tmp_path):
    """This is the CI gate: every registered, available matcher that has an entry in
    gimsfm/bench/baselines/gate.json (matchers without one are reported and skipped)."""
    from gimsfm.bench.gate import DEFAULT_BASELINE, run_gate

    assert DEFAULT_BASELINE.is_file(), "stored gate baseline missing: run `gimsfm bench gate --update`"
    passed = run_gate(DEFAULT_BASELINE, out=tmp_path, baselined_only=True)
    assert passed, f"gate failed: see the table above and {tmp_path / 'gate.md'}:\n{(tmp_path / 'gate.md').read_text()}"


# ---------------------------------------------------------------- CLI errors are one line
@pytest.mark.parametrize("args, message", [
    (["bench", "zeb", "--suite", "nope", "--out", "X"], "unknown pose suite"),
    (["bench", "zeb", "--data", "/nonexistent/zeb", "--out", "X"], "data not found"),
    (["bench", "homography", "--data", "/nonexistent", "--out", "X"], "data not found"),
    (["bench", "zeb", "--data", "T", "--matcher", "nope", "--out", "X"], "unknown matcher"),
    (["bench", "zeb", "--data", "T", "--estimator", "nope", "--out", "X"], "unknown estimator"),
    (["bench", "indomain", "--out", "X"], "nothing to evaluate"),
    (["bench", "zeb", "--data", "T", "--matcher", "sift-lightglue-gim:/nonexistent.pt", "--out", "X"],
     "weights file not found"),
    (["bench", "compare", "T", "--a", "sift-nn"], "no per_pair.json"),
    (["bench", "table", "/nonexistent/table.yaml"], "table spec not found"),
])
def test_bench_cli_bad_input_one_line(args, message, tmp_path):
    args = [{"X": str(tmp_path / "out"), "T": str(tmp_path)}.get(a, a) for a in args]
    r = subprocess.run([sys.executable, "-m", "gimsfm", *args], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    assert message in r.stderr
    assert len([ln for ln in r.stderr.splitlines() if ln.startswith("error")]) == 1


def test_dense_matcher_path_equals_sparse(shared_data, tmp_path):
    """A dense matcher (match_images only) goes through the generic path, with images capped and keypoints
    mapped back: wrapping sift-nn as 'dense' must reproduce the sparse scores exactly."""
    from gimsfm.bench.zeb import run_zeb
    from gimsfm.matchers import get_matcher
    from gimsfm.matchers.base import Matcher
    from gimsfm.matchers.registry import REGISTRY, register

    class DenseSift(Matcher):
        sparse = False

        def __init__(self, conf=None, device="auto"):
            super().__init__(conf, device)
            self.inner = get_matcher("sift-nn")

        def match_images(self, image0, image1):
            return self.inner.match_images(image0, image1)

    register("test-dense-sift", "test only")(DenseSift)
    try:
        data = [shared_data / "pose" / "kitti00"]  # 1241 px wide: capped to 800 below
        res = run_zeb(data, ["test-dense-sift"], tmp_path / "z", _cfg(max_side=800))
    finally:
        REGISTRY.pop("test-dense-sift", None)
    d = res["matchers"]
    assert list(d) == ["sift-nn", "test-dense-sift"]
    for k in ("auc@5", "auc@10", "auc@20"):
        assert d["sift-nn"]["datasets"]["kitti00"][k] == d["test-dense-sift"]["datasets"]["kitti00"][k]
    # Keypoints are stored in original pixels even though the matcher saw an 800 px image.
    from gimsfm.utils.h5io import read_features

    feats_file = next((tmp_path / "z" / "cache").rglob("features-*.h5"))
    name = json.loads((tmp_path / "z" / "per_pair.json").read_text())["sift-nn"]["kitti00"][0]["name0"]
    kp = read_features(feats_file, name)["keypoints"]
    assert kp[:, 0].max() > 900 and list(read_features(feats_file, name)["image_size"]) == [1241, 376]


def test_bench_cli_end_to_end(shared_data, tmp_path):
    """The CLI wires every option through: estimator, threshold, pair cap, suite-free --data."""
    out = tmp_path / "z"
    r = subprocess.run([sys.executable, "-m", "gimsfm", "bench", "zeb", "--data", str(shared_data / "pose" / "kitti00"),
                        "--max-pairs", "2", "--estimator", "poselib", "--threshold", "1.0", "--max-keypoints", "512",
                        "--out", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads((out / "results.json").read_text())
    assert res["config"]["estimator"] == "poselib" and res["config"]["thresh_px"] == 1.0
    assert res["config"]["max_keypoints"] == 512 and list((out / "cache").rglob("features-*-n512-*.h5"))
    assert res["matchers"]["sift-nn"]["datasets"]["kitti00"]["pairs"] == 2
    out = tmp_path / "h"
    r = subprocess.run([sys.executable, "-m", "gimsfm", "bench", "homography", "--data",
                        str(shared_data / "homography" / "homogr_adam"), "--out", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads((out / "results.json").read_text())
    assert res["matchers"]["sift-nn"]["datasets"]["homogr_adam"]["pairs"] == 1
    assert (out / "homography_curves.png").is_file()


def test_paired_auc_difference_known_answers():
    from gimsfm.bench.metrics import paired_auc_difference

    rng = np.random.default_rng(0)
    base = {f"d{i}": rng.uniform(0, 30, 40) for i in range(3)}
    same = paired_auc_difference(base, base, n_boot=200)
    assert all(v == (0.0, 0.0, 0.0) for v in same.values())
    # Every pair's error halved: better at every threshold, and the interval says so.
    better = paired_auc_difference({d: e / 2 for d, e in base.items()}, base, n_boot=200)
    for d, lo, hi in better.values():
        assert 0 < lo <= d <= hi
    # One pair of 40 a little better is not distinguishable from luck.
    one = {d: e.copy() for d, e in base.items()}
    one["d0"][0] *= 0.9
    d, lo, hi = paired_auc_difference(one, base, n_boot=200)["auc@20"]
    assert lo <= 0 <= hi
    with pytest.raises(ValueError):
        paired_auc_difference({"d0": [1.0, 2.0]}, {"d0": [1.0]})


def test_bench_compare_reads_per_pair_results(tmp_path, capsys):
    from gimsfm.bench.compare import compare_results

    rng = np.random.default_rng(1)
    per_pair = {}
    for m, scale in (("sift-nn", 1.0), ("good", 0.4)):
        per_pair[m] = {d: [{"err": float(e) * scale, "success": True} for e in rng.uniform(0, 25, 30)]
                       for d in ("a", "b")}
        rng = np.random.default_rng(1)  # the same pairs for both matchers
    per_pair["good"]["a"][0]["err"] = float("nan")  # a failure counts as an infinite error
    (tmp_path / "per_pair.json").write_text(json.dumps(per_pair))
    res = compare_results([tmp_path], "good", "sift-nn", n_boot=200)
    assert res["datasets"] == ["a", "b"]
    d, lo, hi = res["difference"]["auc@10"]
    assert lo > 0 and lo <= d <= hi
    assert "minus sift-nn" in capsys.readouterr().out
    with pytest.raises(InputError, match="not in these results"):
        compare_results([tmp_path], "other", "sift-nn")
    from gimsfm.bench.compare import compare_many

    rows = compare_many([tmp_path], ["good", "sift-nn"], "sift-nn", n_boot=200)
    assert [r["a"] for r in rows] == ["good", "sift-nn"] and rows[0]["pairs"] == 60
    assert rows[0]["difference"]["auc@10"] == res["difference"]["auc@10"]
    assert rows[1]["difference"]["auc@5"] == (0.0, 0.0, 0.0)
    assert rows[0]["mean"]["auc@10"] > rows[1]["mean"]["auc@10"]


def test_repeated_ransac_runs_in_differences_and_compare(tmp_path, capsys):
    """(runs, pairs) errors: the AUC is the mean over runs, the bootstrap resamples pairs (shared by all runs),
    so averaging out the estimator's luck narrows the interval; `compare --runs` reads bench zeb's err_runs."""
    from gimsfm.bench.compare import compare_results
    from gimsfm.bench.metrics import auc_percent, paired_auc_difference, runs_auc

    rng = np.random.default_rng(4)
    truth = {d: rng.uniform(0, 25, 40) for d in ("a", "b")}
    # Each run adds estimator noise to every pair's error; B's pairs are 1 degree worse on average.
    runs_a = {d: np.abs(t[None] + rng.normal(0, 6, (8, 40))) for d, t in truth.items()}
    runs_b = {d: np.abs(t[None] + 1.0 + rng.normal(0, 6, (8, 40))) for d, t in truth.items()}
    assert runs_auc(runs_a["a"])["auc@10"] == pytest.approx(
        np.mean([auc_percent(r, [10])["auc@10"] for r in runs_a["a"]]))
    one = paired_auc_difference({d: r[0] for d, r in runs_a.items()}, {d: r[0] for d, r in runs_b.items()},
                                n_boot=300)
    many = paired_auc_difference(runs_a, runs_b, n_boot=300)
    width = lambda x: x["auc@10"][2] - x["auc@10"][1]  # noqa: E731
    assert width(many) < 0.75 * width(one)
    per_pair = {m: {d: [{"err": float(r[0, i]), "err_runs": r[:, i].tolist()} for i in range(40)]
                    for d, r in runs.items()} for m, runs in (("new", runs_a), ("sift-nn", runs_b))}
    (tmp_path / "per_pair.json").write_text(json.dumps(per_pair))
    res = compare_results([tmp_path], "new", "sift-nn", n_boot=300, runs=True)
    assert res["difference"]["auc@10"] == many["auc@10"]
    assert compare_results([tmp_path], "new", "sift-nn", n_boot=300)["difference"]["auc@10"] == one["auc@10"]
    for rows in per_pair["new"].values():
        for r in rows:
            del r["err_runs"]
    (tmp_path / "per_pair.json").write_text(json.dumps(per_pair))
    with pytest.raises(InputError, match="--ransac-runs"):
        compare_results([tmp_path], "new", "sift-nn", runs=True)


def test_table_specs_in_pipelines_load():
    from pathlib import Path

    from gimsfm.bench.table import load_table_spec

    specs = sorted((Path(__file__).resolve().parents[1] / "pipelines" / "tables").glob("*.yaml"))
    assert specs
    for spec in specs:
        assert load_table_spec(spec)["rows"]


def test_bench_table_rebuilds_a_table_from_results(tmp_path, capsys):
    """`bench table`: rows x columns from per-pair results pooled over folders; a baseline that two runs both
    hold counts once; difference columns equal `bench compare`; bad specs are one-line InputErrors."""
    from gimsfm.bench.compare import compare_results
    from gimsfm.bench.table import build_table

    rng = np.random.default_rng(3)
    errs = {d: rng.uniform(0, 25, 30) for d in ("a", "b")}
    for run, matchers in (("run1", {"sift-nn": 1.0, "good": 0.4}), ("run2", {"sift-nn": 1.0, "bad": 2.0})):
        per_pair = {m: {d: [{"err": float(e) * k} for e in errs[d]] for d in errs} for m, k in matchers.items()}
        (tmp_path / run).mkdir()
        (tmp_path / run / "per_pair.json").write_text(json.dumps(per_pair))
    spec = tmp_path / "table.yaml"
    spec.write_text(yaml.safe_dump({
        "title": "toy", "notes": "read me",
        "rows": [{"label": "good one", "matcher": "good"}, {"label": "bad one", "matcher": "bad"},
                 {"matcher": "sift-nn"}, {"label": "not run yet", "matcher": "later"}],
        "columns": [{"name": "AUC@5/10/20", "results": ["run*"], "thresholds": [5, 10, 20]},
                    {"name": "Δ vs sift-nn", "results": ["run*"], "minus": "sift-nn", "threshold": 10},
                    {"name": "run1 only", "results": ["run1"], "thresholds": [10]}]}))
    out = tmp_path / "table.md"
    res = build_table(spec, out, base=tmp_path, n_boot=200)
    rows = {r[0]: r[1:] for r in res["rows"]}
    assert res["header"] == ["variant", "AUC@5/10/20", "Δ vs sift-nn", "run1 only"]
    good, bad, nn = (list(map(float, rows[k][0].split(" / "))) for k in ("good one", "bad one", "sift-nn"))
    assert good[1] > nn[1] > bad[1]
    d, lo, hi = compare_results([tmp_path / "run1"], "good", "sift-nn", n_boot=200)["difference"]["auc@10"]
    assert rows["good one"][1] == f"{d:+.2f} [{lo:+.2f}, {hi:+.2f}]"  # sift-nn of run2 did not double-count
    assert rows["bad one"][1].startswith("-") and rows["sift-nn"][1] == ""
    assert rows["bad one"][2] == "-" and float(rows["good one"][2]) == pytest.approx(good[1], abs=0.051)
    assert rows["not run yet"] == ["-", "-", "-"]
    md = out.read_text()
    assert md.startswith("# toy") and "| good one |" in md and md.rstrip().endswith("read me")
    for bad_spec, message in (({"rows": [], "columns": []}, "non-empty"),
                              ({"rows": [{"label": "x"}], "columns": [{"name": "c", "results": ["run1"]}]}, "row 1"),
                              ({"rows": [{"matcher": "good"}], "columns": [{"name": "c", "result": ["run1"]}]},
                               "column 1"),
                              ({"rows": [{"matcher": "good"}], "columns": [{"name": "c", "results": ["nope*"]}]},
                               "no bench results"),
                              ({"rows": [{"matcher": "good"}],
                                "columns": [{"name": "c", "results": "run1", "thresholds": ["five"]}]},
                               "positive numbers"),
                              ({"rows": [{"matcher": "nope"}], "columns": [{"name": "c", "results": ["run1"]}]},
                               "none of the matchers")):
        spec.write_text(yaml.safe_dump(bad_spec))
        with pytest.raises(InputError, match=message):
            build_table(spec, base=tmp_path)
