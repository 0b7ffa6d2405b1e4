"""Tests of the synthetic world / video simulator (gimsfm.synth): exact GT, determinism, formats, CLI."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy.ndimage import map_coordinates

from gimsfm.synth import camera as cam
from gimsfm.synth.gt import dense_correspondences, relative_pose
from gimsfm.synth.mesh import MeshBuilder
from gimsfm.synth.render import get_renderer
from gimsfm.synth.world import DOMAINS, Environment, World, build_world


def _two_views(domain="indoor", seed=3, w=640, h=480):
    world = build_world(domain, seed)
    world.env.sun_var = 0.0
    rng = np.random.default_rng(1)
    traj = world.trajectory(rng, world.pair_kinds[0])
    K0, K1 = cam.intrinsics(w, h, 60), cam.intrinsics(w, h, 75, cx=w / 2 - 3.0, cy=h / 2 + 2.0)
    T0, T1 = traj.pose(2.0), traj.pose(2.6)
    r = get_renderer()
    f0 = r.render(world, T0, K0, w, h, t=0.0, dynamic_time=0.0)
    f1 = r.render(world, T1, K1, w, h, t=0.0, dynamic_time=0.0)
    return f0, f1, K0, K1, relative_pose(T0, T1)


def _sampson(x0, x1, K0, K1, T01):
    R, t = T01[:3, :3], T01[:3, 3]
    tx = np.array([[0, -t[2], t[1]], [t[2], 0, -t[0]], [-t[1], t[0], 0]])
    F = np.linalg.inv(K1).T @ tx @ R @ np.linalg.inv(K0)
    h0, h1 = np.c_[x0, np.ones(len(x0))], np.c_[x1, np.ones(len(x1))]
    Fx0, Ftx1 = h0 @ F.T, h1 @ F
    num = np.sum(h1 * Fx0, 1)
    return np.sqrt(num ** 2 / (Fx0[:, 0] ** 2 + Fx0[:, 1] ** 2 + Ftx1[:, 0] ** 2 + Ftx1[:, 1] ** 2))


def test_depth_matches_analytic_plane():
    """A single textured ground plane seen from an oblique camera: depth at every pixel centre equals the
    ray-plane intersection computed from K (OpenCV pixel centres) and the pose."""
    m = MeshBuilder()
    m.add_quad([-50, -50, 0], [50, -50, 0], [50, 50, 0], [-50, 50, 0], layer=0, uv_scale=0.2)
    world = World("test", 0, m.build(), [], Environment(), 0.05, 500.0, (60, 60), {"pan": 1}, ("pan",), lambda r, k: None)
    w, h = 320, 240
    K = cam.intrinsics(w, h, 70, cx=161.3, cy=117.8)
    T = cam.look_dir([1.0, 2.0, 3.0], yaw=0.4, pitch=-0.5, roll=0.05)
    f = get_renderer().render(world, T, K, w, h)
    v, u = np.mgrid[0:h, 0:w]
    rays = np.stack([u, v, np.ones_like(u)], -1).reshape(-1, 3) @ np.linalg.inv(K).T
    R_c2w = T[:3, :3].T
    C = cam.camera_center(T)
    dz = rays @ R_c2w.T
    lam = -C[2] / dz[:, 2]
    hit = C + lam[:, None] * dz
    on_quad = (np.abs(hit[:, 0]) < 50) & (np.abs(hit[:, 1]) < 50)
    expected = np.where((dz[:, 2] < 0) & on_quad & (lam < 500), lam, 0).reshape(h, w)
    valid = (expected > 0) & (f.depth > 0)
    assert valid.mean() > 0.5
    rel = np.abs(f.depth[valid] - expected[valid]) / expected[valid]
    assert np.median(rel) < 1e-5 and rel.max() < 1e-3
    assert ((expected > 0) == (f.depth > 0)).mean() > 0.999  # sky / ground split at the right pixels


def _two_facades(vary):
    """Two identical 4 x 3 m facades (same photo layer, same tint, stretched like the street facades) side by
    side, seen frontally; returns the two rendered patches (grey, float)."""
    m = MeshBuilder(vary=vary)
    for x0 in (-4.5, 0.5):
        m.add_quad([x0, 0, 0], [x0 + 4, 0, 0], [x0 + 4, 0, 3], [x0, 0, 3], layer=0, stretch=True)
    world = World("test", 0, m.build(), [], Environment(), 0.05, 500.0, (60, 60), {"pan": 1}, ("pan",), lambda r, k: None)
    w, h = 200, 50
    K = cam.intrinsics(w, h, 90)
    T = cam.look_dir([0.0, -5.0, 1.5], yaw=np.pi / 2, pitch=0.0)
    f = get_renderer().render(world, T, K, w, h)
    assert (f.depth > 0).mean() > 0.4
    g = cv2.cvtColor(f.rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    cols = np.flatnonzero((f.depth > 0).all(0))
    left, right = cols[cols < w // 2], cols[cols >= w // 2]
    n = min(len(left), len(right))
    return g[:, left[:n]], g[:, right[-n:]], f


def test_instances_of_the_same_texture_look_different():
    """Per-instance appearance variation (UV window / flip, tint jitter): two facades with the same layer
    differ in a world built with a variation generator, are identical without one, and the variation is
    deterministic (same generator seed -> same pixels)."""
    a0, b0, _ = _two_facades(None)
    assert np.abs(a0 - b0).mean() < 1.0  # no variation: pixel-identical copies
    a1, b1, f1 = _two_facades(np.random.default_rng(5))
    assert np.abs(a1 - b1).mean() > 10.0
    assert np.corrcoef(a1.ravel(), b1.ravel())[0, 1] < 0.9
    _, _, f2 = _two_facades(np.random.default_rng(5))
    assert np.array_equal(f1.rgb, f2.rgb)


def test_reprojection_agrees_with_rendered_pixels():
    f0, f1, K0, K1, T01 = _two_views()
    pix0, pix1 = dense_correspondences(f0.depth, K0, f1.depth, K1, T01, stride=2)
    assert len(pix0) > 10000
    static = (f0.dynamic[pix0[:, 1].astype(int), pix0[:, 0].astype(int)] == 0)
    g0 = cv2.cvtColor(f0.rgb, cv2.COLOR_RGB2GRAY).astype(np.float64)
    g1 = cv2.cvtColor(f1.rgb, cv2.COLOR_RGB2GRAY).astype(np.float64)
    c0 = g0[pix0[static, 1].astype(int), pix0[static, 0].astype(int)]
    c1 = map_coordinates(g1, [pix1[static, 1], pix1[static, 0]], order=1)
    c1_shift = map_coordinates(g1, [pix1[static, 1], pix1[static, 0] + 2.0], order=1)
    err, err_shift = np.median(np.abs(c0 - c1)), np.median(np.abs(c0 - c1_shift))
    print(f"reprojection colour error: median {err:.2f} grey levels (2 px shifted warp: {err_shift:.2f})")
    assert err < 1.5
    assert err < 0.4 * err_shift


def test_sift_matches_satisfy_gt_epipolar_geometry():
    f0, f1, K0, K1, T01 = _two_views()
    # A lower contrast threshold: without the data folder the world uses low-contrast procedural textures.
    sift = cv2.SIFT_create(4000, contrastThreshold=0.02)
    g0, g1 = (cv2.cvtColor(f.rgb, cv2.COLOR_RGB2GRAY) for f in (f0, f1))
    k0, d0 = sift.detectAndCompute(g0, None)
    k1, d1 = sift.detectAndCompute(g1, None)
    knn = cv2.BFMatcher().knnMatch(d0, d1, k=2)
    good = [m[0] for m in knn if len(m) == 2 and m[0].distance < 0.8 * m[1].distance]
    x0 = np.array([k0[m.queryIdx].pt for m in good])
    x1 = np.array([k1[m.trainIdx].pt for m in good])
    assert len(good) > 50
    err = _sampson(x0, x1, K0, K1, T01)
    _, inl = cv2.findFundamentalMat(x0, x1, cv2.USAC_MAGSAC, 1.0, 0.9999, 10000)
    inl = inl.ravel() > 0
    print(f"SIFT: {len(good)} matches, median Sampson error {np.median(err):.3f} px (MAGSAC inliers: {np.median(err[inl]):.3f} px)")
    assert np.median(err) < 0.5
    assert np.median(err[inl]) < 0.3


@pytest.mark.parametrize("domain", DOMAINS)
def test_every_domain_renders_a_textured_image(domain):
    world = build_world(domain, 11)
    assert world.n_triangles < 40000
    traj = world.trajectory(np.random.default_rng(0))
    f = get_renderer().render(world, traj.pose(1.0), cam.intrinsics(160, 120, 70), 160, 120, t=1.0)
    grey = cv2.cvtColor(f.rgb, cv2.COLOR_RGB2GRAY).astype(np.float64)
    lap = cv2.Laplacian(grey, cv2.CV_64F)
    assert grey.std() > 5, f"{domain}: flat image"
    assert np.abs(lap).mean() > 1.0, f"{domain}: no texture"
    assert (f.depth > 0).mean() > 0.2, f"{domain}: looking at the sky"


def test_pairs_format_and_determinism(tmp_path):
    from gimsfm.synth.pairs import generate_pairs, read_pairs

    kw = dict(width=320, height=240, views_per_world=10, pairs_per_world=3, progress=False)
    a = generate_pairs(["indoor"], 3, 7, tmp_path / "a", **kw)
    b = generate_pairs(["indoor"], 3, 7, tmp_path / "b", **kw)
    txt = (a / "pairs.txt").read_text()
    assert txt == (b / "pairs.txt").read_text()
    pairs = read_pairs(a / "pairs.txt")
    assert len(pairs) == 3
    for line in txt.splitlines():
        assert len(line.split()) == 38
    for p in pairs:
        for name in (p["name0"], p["name1"]):
            assert name.startswith("images/")
            assert (a / name).read_bytes() == (b / name).read_bytes()
            d = np.load(a / "depth" / (Path(name).stem + ".npy"))
            assert d.dtype == np.float32 and d.shape == (240, 320)
            assert np.array_equal(d, np.load(b / "depth" / (Path(name).stem + ".npy")))
        assert 0.0 <= p["covis0"] <= 1.0 and 0.0 <= p["covis1"] <= 1.0
        assert abs(np.linalg.det(p["T_0to1"][:3, :3]) - 1) < 1e-6
        assert p["K0"][0, 2] == pytest.approx(159.5)
        # GT from the files: dense correspondences exist where covis says so
        d0 = np.load(a / "depth" / (Path(p["name0"]).stem + ".npy"))
        d1 = np.load(a / "depth" / (Path(p["name1"]).stem + ".npy"))
        c0, _ = dense_correspondences(d0, p["K0"], d1, p["K1"], p["T_0to1"], stride=8)
        assert len(c0) > 0
    with pytest.raises(Exception, match="exists"):
        generate_pairs(["indoor"], 3, 7, tmp_path / "a", **kw)


def test_video_decodes_with_gt(tmp_path):
    import av

    from gimsfm.synth.video import generate_video, read_gt

    out = generate_video("street", 1.0, 8, 2, tmp_path / "v", width=160, height=120, motion_blur=3, distortion=True,
                         depth_every=4, progress=False)
    with av.open(str(out / "video.mp4")) as c:
        assert c.streams.video[0].codec_context.name == "h264"
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(frames) == 8 and frames[0].shape == (120, 160, 3)
    gt = read_gt(out / "gt.h5")
    assert gt["cam_from_world"].shape == (8, 4, 4) and gt["K"].shape == (8, 3, 3)
    assert list(gt["depth_frames"]) == [0, 4] and gt["depth"].shape == (2, 120, 160)
    assert gt["dist"][0] < 0  # barrel distortion recorded
    assert (gt["depth"] > 0).mean() > 0.2


def test_scene_gt_loads_in_pycolmap(tmp_path):
    import pycolmap

    from gimsfm.synth.scene import generate_scene

    out = generate_scene("object", tmp_path / "s", seed=1, n_images=4, n_queries=2, width=160, height=120)
    rec = pycolmap.Reconstruction(str(out / "gt"))
    assert rec.num_images() == 6
    assert len((out / "map.txt").read_text().split()) == 4 and len((out / "query.txt").read_text().split()) == 2
    cam0 = rec.cameras[1]
    assert cam0.params[2] == pytest.approx(80.0)  # OpenCV 79.5 + 0.5


def test_presets_mirror_builtin_definitions():
    import yaml

    from gimsfm.synth.suites import BUILTIN, PRESET_FILES, pipelines_dir

    for name, fname in PRESET_FILES.items():
        f = pipelines_dir() / fname
        assert f.is_file(), f
        assert yaml.safe_load(f.read_text()) == BUILTIN[name]


def test_ensure_suite_generates_once(tmp_path, monkeypatch):
    from gimsfm.synth import suites

    tiny = {"name": "tiny", "kind": "pairs", "sets": [{"name": "synth_object", "domains": ["object"], "pairs": 2, "seed": 1,
                                                      "mode": "eval", "image_format": "jpg", "width": 160, "height": 120}]}
    monkeypatch.setattr(suites, "ZEB_LITE_SYNTH", tiny)
    dirs = suites.ensure_zeb_lite_synth(tmp_path)
    assert [d.name for d in dirs] == ["synth_object"] and (dirs[0] / "pairs.txt").is_file()
    stamp = (dirs[0] / "pairs.txt").stat().st_mtime_ns
    assert suites.ensure_zeb_lite_synth(tmp_path) == dirs
    assert (dirs[0] / "pairs.txt").stat().st_mtime_ns == stamp


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "gimsfm", "synth", *args], capture_output=True, text=True, timeout=300, cwd=cwd)


def test_cli_unknown_domain_is_one_line_error(tmp_path):
    r = _cli("pairs", "--domain", "moon", "--pairs", "2", "--out", str(tmp_path / "x"))
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "unknown domain" in lines[0]


def test_cli_scene_and_video(tmp_path):
    r = _cli("scene", "--domain", "object", "--images", "3", "--queries", "1", "--width", "160", "--height", "120",
             "--out", str(tmp_path / "s"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "s" / "gt" / "images.txt").is_file()
    r = _cli("video", "--domain", "indoor", "--seconds", "0.5", "--fps", "6", "--width", "160", "--height", "120",
             "--out", str(tmp_path / "v"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "v" / "video.mp4").is_file() and (tmp_path / "v" / "gt.h5").is_file()
    r = _cli("video", "--domain", "indoor", "--seconds", "0.5", "--out", str(tmp_path / "v"))  # exists -> error
    assert r.returncode != 0 and "Traceback" not in r.stderr


def test_distorted_video_gt_is_consistent_with_pinhole_render(tmp_path):
    """Depth stored for a distorted video pixel equals the pinhole depth at its undistorted position."""
    from gimsfm.synth.video import generate_video, read_gt

    out = generate_video("indoor", 0.25, 4, 5, tmp_path / "v", width=320, height=240, motion_blur=1, distortion=True,
                         depth_every=1, progress=False)
    gt = read_gt(out / "gt.h5")
    K, dist, T, depth = gt["K"][0], gt["dist"], gt["cam_from_world"][0], gt["depth"][0]
    assert dist[0] < 0
    world = build_world("indoor", 5)
    pin = get_renderer().render(world, T, K, 320, 240, t=0.0).depth
    v, u = np.mgrid[8:232:8, 8:312:8]
    pts = np.stack([u.ravel(), v.ravel()], -1).astype(np.float64)[:, None]
    und = cv2.undistortPoints(pts, K, dist, None, K).reshape(-1, 2)
    inside = (und[:, 0] > 1) & (und[:, 0] < 318) & (und[:, 1] > 1) & (und[:, 1] < 238)
    zd = depth[v.ravel(), u.ravel()][inside]
    zp = pin[np.rint(und[inside, 1]).astype(int), np.rint(und[inside, 0]).astype(int)]
    ok = (zd > 0) & (zp > 0)
    rel = np.abs(zd[ok] - zp[ok]) / zp[ok]
    assert ok.sum() > 500 and np.median(rel) < 0.01


def test_pairs_multi_domain_with_val_split(tmp_path):
    import json

    from gimsfm.synth.pairs import generate_pairs, read_pairs

    out = generate_pairs(["object,aerial"], 4, 3, tmp_path / "p", width=160, height=120, views_per_world=8,
                         pairs_per_world=2, val_fraction=0.5, progress=False)
    assert len(read_pairs(out / "pairs.txt")) == 2 and len(read_pairs(out / "val" / "pairs.txt")) == 2
    meta, vmeta = (json.loads((d / "meta.json").read_text()) for d in (out, out / "val"))
    assert [p["domain"] for p in meta["pairs"]] == ["object", "aerial"]
    assert not {p["world_seed"] for p in meta["pairs"]} & {p["world_seed"] for p in vmeta["pairs"]}  # held-out worlds


def test_sfm_lite_preset_worlds_are_not_training_worlds():
    """pipelines/synth_sfm_lite.yaml (bench sfm scenes) uses no (domain, seed) world of a training corpus."""
    from gimsfm.synth.suites import load_preset, pipelines_dir

    sfm = load_preset(str(pipelines_dir() / "synth_sfm_lite.yaml"))
    assert sfm["kind"] == "scene" and len(sfm["scenes"]) == 4
    assert all(s["queries"] == 0 and s["images"] >= 16 for s in sfm["scenes"])
    worlds = {(s["domain"], s["seed"]) for s in sfm["scenes"]}
    for name in ("synth_video_corpus_large.yaml", "synth_video_corpus.yaml"):
        v = load_preset(str(pipelines_dir() / name))
        # the seeds run_video_preset gives its videos
        train = {(d, v["seed"] + 1000 * i + k) for i, d in enumerate(v["domains"])
                 for k in range(v["videos_per_domain"])}
        assert not worlds & train, name
