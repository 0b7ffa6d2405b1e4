"""`gimsfm localize` on a map of the demo scene, and `gimsfm bench localize` on Strecha (shared data)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pycolmap
import pytest
from PIL import Image
from skimage import data

from gimsfm.bench.localize import read_poses
from gimsfm.geometry.evaluation import angle_error_mat
from helpers import run_cli

DEMO = Path(__file__).resolve().parents[1] / "scenes" / "sacre_coeur" / "images"




@pytest.fixture(scope="module")
def demo_map(tmp_path_factory) -> tuple[Path, list[str], list[str]]:
    root = tmp_path_factory.mktemp("loc")
    names = sorted(p.name for p in DEMO.iterdir())
    map_names, query_names = names[:8], names[8:]
    (root / "map_images").mkdir()
    for n in map_names:
        shutil.copy(DEMO / n, root / "map_images" / n)
    run_cli("reconstruct", root / "map_images", "--out", root / "map")  # 8192 keypoints: 4096 is borderline here
    return root, map_names, query_names


def test_localize_queries_and_failures(demo_map):
    root, map_names, query_names = demo_map
    q = root / "queries"
    q.mkdir()
    for n in query_names:
        shutil.copy(DEMO / n, q / n)
    rec = pycolmap.Reconstruction(str(root / "map" / "sparse"))
    assert rec.num_reg_images() >= 7
    known = sorted(rec.image(i).name for i in rec.reg_image_ids())[len(map_names) // 2]
    shutil.copy(DEMO / known, q / "again.jpg")  # a registered map image under another name: known pose
    Image.fromarray(data.astronaut()).save(q / "elsewhere.png")  # another place entirely
    (q / "corrupt.jpg").write_bytes(b"\xff\xd8\xff" + b"\x00" * 50)
    # Known intrinsics for the map image (from the map), estimated focal for the others.
    cam = rec.camera(rec.find_image_with_name(known).camera_id)
    (root / "intrinsics.txt").write_text(f"again.jpg {cam.model.name} {cam.width} {cam.height} "
                                         + " ".join(map(str, cam.params)) + "\n")
    run_cli("localize", "--map", root / "map", "--queries", q, "--out", root / "poses.txt",
            "--intrinsics", root / "intrinsics.txt")
    poses = read_poses(root / "poses.txt")
    log = {e["name"]: e for e in json.loads((root / "poses_log.json").read_text())}
    assert set(log) == {*query_names, "again.jpg", "elsewhere.png", "corrupt.jpg"}
    for n in [*query_names, "again.jpg"]:
        assert log[n]["success"] and log[n]["num_inliers"] >= 50, log[n]
        assert n in poses
    assert not log["elsewhere.png"]["success"] and "elsewhere.png" not in poses
    assert not log["corrupt.jpg"]["success"] and "corrupt.jpg" not in poses
    # The map image posed as a query lands on its own map pose.
    T = np.eye(4)
    T[:3] = rec.find_image_with_name(known).cam_from_world().matrix()
    centre = lambda M: -M[:3, :3].T @ M[:3, 3]  # noqa: E731
    scene_size = np.ptp(np.array([p.xyz for p in rec.points3D.values()]), axis=0).max()
    assert log["again.jpg"]["camera"] == "file"
    assert angle_error_mat(T[:3, :3], poses["again.jpg"][:3, :3]) < 0.5
    assert np.linalg.norm(centre(T) - centre(poses["again.jpg"])) < 0.01 * scene_size
    assert len(list((root / "poses_viz").glob("*.jpg"))) == 3


def test_localize_bad_input(demo_map, tmp_path):
    root, _, _ = demo_map
    proc = run_cli("localize", "--map", tmp_path, "--queries", DEMO, "--out", tmp_path / "p.txt", check=False)
    assert proc.returncode != 0 and "not a gimsfm map" in proc.stderr.strip().splitlines()[-1]
    (tmp_path / "empty").mkdir()
    proc = run_cli("localize", "--map", root / "map", "--queries", tmp_path / "empty", "--out", tmp_path / "p.txt",
                   check=False)
    assert proc.returncode != 0 and "no query images" in proc.stderr.strip().splitlines()[-1]


def test_bench_localize_strecha(shared_data, tmp_path):
    scene = shared_data / "sfm" / "strecha_fountain"
    run_cli("bench", "localize", "--data", scene, "--out", tmp_path, "--max-keypoints", "4096")
    r = json.loads((tmp_path / "results.json").read_text())["matchers"]["sift-nn"]["scenes"]["strecha_fountain"]
    assert r["num_queries"] == 5 and r["num_localized"] == 5
    assert r["within_0.25m_2.0deg"] >= 80.0
    assert r["median_rotation_error_deg"] < 1.0


def test_localize_views_auto_escalates_only_unposed_queries(demo_map, tmp_path):
    """`--matcher sift-nn@views=auto` on a sift-nn map: queries the plain matches pose keep exactly the plain
    result (no views synthesised); a query they cannot pose gets views against its top retrieved images only,
    and still fails cleanly."""
    from gimsfm.localization.localize import ESCALATE_TOP
    from gimsfm.utils.h5io import read_features

    root, _, query_names = demo_map
    run_cli("reconstruct", root / "map_images", "--out", tmp_path / "map", "--matcher", "sift-nn")
    q = tmp_path / "queries"
    q.mkdir()
    shutil.copy(DEMO / query_names[0], q / query_names[0])
    Image.fromarray(data.astronaut()).save(q / "elsewhere.png")
    logs = {}
    for spec in ("sift-nn", "sift-nn@views=auto"):
        out = tmp_path / spec.replace("@", "_").replace("=", "_") / "poses.txt"
        run_cli("localize", "--map", tmp_path / "map", "--queries", q, "--out", out, "--matcher", spec)
        logs[spec] = {e["name"]: e for e in json.loads(out.with_name("poses_log.json").read_text())}
        if "views" in spec:
            feats = {n: read_features(out.with_name("poses_work") / "query_features.h5", n)
                     for n in (query_names[0], "elsewhere.png")}
    plain, auto = logs["sift-nn"], logs["sift-nn@views=auto"]
    n = query_names[0]
    assert plain[n]["success"] and auto[n]["success"]
    assert auto[n]["num_inliers"] == plain[n]["num_inliers"]
    assert set(np.unique(feats[n]["view_level"])) == {0}  # posed plainly: no views extracted
    assert not auto["elsewhere.png"]["success"]
    assert max(np.unique(feats["elsewhere.png"]["view_level"])) >= 1  # escalated ...
    assert ESCALATE_TOP < 10  # ... against its top retrieved images, not all 10 (--num-db)
