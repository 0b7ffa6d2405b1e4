"""SfM benchmark: metric on known answers, and the real benchmark on Strecha fountain (shared data)."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pycolmap
import pytest
from scipy.spatial.transform import Rotation

from gimsfm.bench.sfm import evaluate_model, robust_similarity


def _synthetic_gt(n: int = 8) -> pycolmap.Reconstruction:
    rec = pycolmap.Reconstruction()
    cam = pycolmap.Camera.create_from_model_name(1, "PINHOLE", 500.0, 640, 480)
    rec.add_camera_with_trivial_rig(cam)
    rng = np.random.default_rng(0)
    for i in range(n):
        R = Rotation.from_euler("xyz", rng.uniform(-20, 20, 3), degrees=True).as_matrix()
        t = rng.uniform(-1, 1, 3)
        im = pycolmap.Image(name=f"{i}.png", camera_id=1, image_id=i + 1)
        rec.add_image_with_trivial_frame(im, pycolmap.Rigid3d(pycolmap.Rotation3d(R), t))
    return rec


def _transformed(rec: pycolmap.Reconstruction, s: float, R: np.ndarray, t: np.ndarray) -> pycolmap.Reconstruction:
    out = pycolmap.Reconstruction(rec)
    out.transform(pycolmap.Sim3d(s, pycolmap.Rotation3d(R), t))
    return out


def test_similarity_alignment_recovers_exact_transform():
    rng = np.random.default_rng(1)
    src = rng.normal(size=(10, 3))
    R = Rotation.from_euler("xyz", [10, -30, 70], degrees=True).as_matrix()
    dst = 2.5 * src @ R.T + [1, 2, 3]
    dst[0] += 100  # one outlier camera
    s, R_est, t_est = robust_similarity(src, dst)
    assert s == pytest.approx(2.5, rel=1e-6) and np.allclose(R_est, R, atol=1e-6)


def test_evaluate_model_known_answers():
    gt = _synthetic_gt()
    R = Rotation.from_euler("xyz", [5, 40, -10], degrees=True).as_matrix()
    est = _transformed(gt, 3.0, R, np.array([0.5, -2.0, 1.0]))  # same cameras, another frame
    r = evaluate_model(est, gt)
    assert r["num_registered"] == 8 and r["registration_rate"] == 100.0
    assert r["median_rotation_error_deg"] < 1e-4 and r["median_position_error"] < 1e-6
    assert r["auc@5"] == pytest.approx(100.0, abs=1e-3)
    # Removing 2 of 8 images fails 13 of the 28 pairs: AUC can be at most 15/28.
    est2 = _transformed(gt, 1.0, np.eye(3), np.zeros(3))
    for image_id in (1, 2):
        est2.deregister_frame(est2.image(image_id).frame_id)
    r2 = evaluate_model(est2, gt)
    assert r2["num_registered"] == 6 and r2["auc@20"] == pytest.approx(100 * 15 / 28, abs=1e-3)
    assert evaluate_model(None, gt)["auc@20"] == 0.0


def test_bench_sfm_strecha(shared_data, tmp_path):
    scene = shared_data / "sfm" / "strecha_fountain"
    if not scene.is_dir():
        pytest.skip("strecha_fountain not in shared data")
    proc = subprocess.run([sys.executable, "-m", "gimsfm", "bench", "sfm", "--data", str(scene), "--out",
                           str(tmp_path), "--max-keypoints", "4096", "--matcher", "sift-nn"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    r = json.loads((tmp_path / "results.json").read_text())["matchers"]["sift-nn"]["scenes"]["strecha_fountain"]
    assert r["num_registered"] == 11
    assert r["median_rotation_error_deg"] < 1.0
    assert r["auc@10"] > 80
    assert (tmp_path / "results.md").exists()


def test_alignment_with_collinear_cameras():
    """A straight trajectory: centres alone cannot fix the rotation about the line; orientations can."""
    gt = _synthetic_gt(6)
    for i, image in enumerate(gt.images.values()):  # move all centres onto the x axis
        T = image.cam_from_world()
        R = T.rotation.matrix()
        c = np.array([float(i), 0.0, 0.0])
        image.frame.rig_from_world = pycolmap.Rigid3d(T.rotation, -R @ c)
    R = Rotation.from_euler("xyz", [30, -20, 60], degrees=True).as_matrix()
    est = _transformed(gt, 0.5, R, np.array([3.0, 1.0, -2.0]))
    r = evaluate_model(est, gt)
    assert r["median_rotation_error_deg"] < 1e-4 and r["median_position_error"] < 1e-6


def test_bench_sfm_known_intrinsics_keeps_the_gt_cameras(tmp_path):
    """--known-intrinsics: the reconstruction uses the GT camera unchanged (no self-calibration)."""
    from gimsfm.synth.scene import generate_scene

    # synth_sfm_lite's object scene (a world no training corpus uses)
    scene = generate_scene("object", tmp_path / "scenes" / "obj", seed=12000, n_images=20, n_queries=0)
    gt = pycolmap.Reconstruction(str(scene / "gt"))
    out = tmp_path / "bench"
    proc = subprocess.run([sys.executable, "-m", "gimsfm", "bench", "sfm", "--data", str(scene), "--out", str(out),
                           "--matcher", "sift-nn", "--no-baseline", "--known-intrinsics"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads((out / "results.json").read_text())
    assert res["known_intrinsics"] is True
    r = res["matchers"]["sift-nn"]["scenes"]["obj"]
    assert r["num_registered"] == 20 and r["median_rotation_error_deg"] < 0.5 and r["auc@5"] > 90
    rec = pycolmap.Reconstruction(str(out / "obj" / "sift-nn" / "sparse"))
    (cam,) = rec.cameras.values()
    np.testing.assert_allclose(cam.params, gt.cameras[1].params)  # fixed, not refined
    assert len((out / "obj" / "sift-nn.intrinsics.txt").read_text().splitlines()) == 20
    # --seeds 3 on the same output: matches are reused, mapping runs with 3 seeds, medians are reported.
    proc = subprocess.run([sys.executable, "-m", "gimsfm", "bench", "sfm", "--data", str(scene), "--out", str(out),
                           "--matcher", "sift-nn", "--no-baseline", "--known-intrinsics", "--seeds", "3"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads((out / "results.json").read_text())
    r3 = res["matchers"]["sift-nn"]["scenes"]["obj"]
    assert res["seeds"] == 3 and len(r3["seed_auc@5"]) == 3
    assert r3["seed_auc@5"][0] == pytest.approx(r["auc@5"])  # the first seed is the run above
    assert r3["auc@5"] == pytest.approx(float(np.median(r3["seed_auc@5"])))
    assert r3["num_registered"] == 20 and min(r3["seed_auc@5"]) > 90


def test_sfm_compare_pools_scenes_and_takes_the_median(tmp_path):
    """`bench sfm-compare` pools scenes over output folders; the median ignores one bent scene."""
    from gimsfm.errors import InputError

    def write(folder, matchers, ki=False):
        folder.mkdir()
        res = {"matchers": {m: {"scenes": {s: {"auc@5": v} for s, v in sc.items()}} for m, sc in matchers.items()},
               "known_intrinsics": ki}
        (folder / "results.json").write_text(json.dumps(res))

    write(tmp_path / "r1", {"A": {"s1": 90.0, "s2": 80.0}, "B": {"s1": 89.0, "s2": 79.5}})
    write(tmp_path / "r2", {"A": {"s3": 10.0, "s4": 99.0}})  # s3: one bent model for A
    write(tmp_path / "r3", {"B": {"s3": 95.0, "s4": 98.0, "s5": 50.0}})
    from gimsfm.bench.sfm import compare_scenes

    r = compare_scenes([tmp_path / f"r{i}" for i in (1, 2, 3)], "A", "B")
    assert r["scenes"] == ["s1", "s2", "s3", "s4"] and r["only_b"] == ["s5"]
    assert r["median_diff"] == pytest.approx(0.75) and r["mean_diff"] == pytest.approx((1 + 0.5 - 85 + 1) / 4)
    assert (r["wins"], r["losses"]) == (3, 1)
    write(tmp_path / "ki", {"B": {"s6": 1.0}}, ki=True)
    with pytest.raises(InputError, match="mix"):
        compare_scenes([tmp_path / "r1", tmp_path / "ki"], "A", "B")
    (tmp_path / "s3").mkdir()
    (tmp_path / "s3" / "results.json").write_text(json.dumps({"matchers": {"B": {"scenes": {"s7": {"auc@5": 1.0}}}},
                                                              "seeds": 3}))
    with pytest.raises(InputError, match="mapping seeds"):
        compare_scenes([tmp_path / "r1", tmp_path / "s3"], "A", "B")
    with pytest.raises(InputError, match="twice"):
        compare_scenes([tmp_path / "r1", tmp_path / "r1"], "A", "B")
    p = subprocess.run([sys.executable, "-m", "gimsfm", "bench", "sfm-compare", str(tmp_path / "r1"),
                        str(tmp_path / "r2"), str(tmp_path / "r3"), "--a", "A", "--b", "B", "--json",
                        str(tmp_path / "c.json")], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and "median A - B +0.75" in p.stdout, p.stderr
    assert json.loads((tmp_path / "c.json").read_text())["wins"] == 3
    p = subprocess.run([sys.executable, "-m", "gimsfm", "bench", "sfm-compare", str(tmp_path / "nope"), "--a", "A"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode != 0 and len(p.stderr.strip().splitlines()) == 1 and "results.json" in p.stderr
