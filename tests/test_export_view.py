"""`gimsfm export` (COLMAP text, nerfstudio, PLY, --undistort), `gimsfm view` and preview.png on synthetic
models with exact geometry: each format checked against its own rules, bad input refused without damage."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pycolmap
import pytest
from PIL import Image

from helpers import run_cli
from model_helpers import synthetic_model, write_images

OPENGL_FROM_OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> tuple[Path, Path, pycolmap.Reconstruction]:
    """A bare COLMAP binary model folder (2 cameras with radial distortion) and its images."""
    root = tmp_path_factory.mktemp("model")
    rec = synthetic_model(num_points=1500, num_cams=6, num_camera_models=2)
    (root / "model").mkdir()
    rec.write_binary(str(root / "model"))
    return root / "model", write_images(rec, root / "images"), rec


def c2w(rec: pycolmap.Reconstruction, image: pycolmap.Image) -> np.ndarray:
    T = np.eye(4)
    T[:3] = image.cam_from_world().inverse().matrix()
    return T


def test_colmap_text_round_trips(model, tmp_path):
    model_dir, _, rec = model
    run_cli("export", model_dir, "--format", "colmap-text", "--out", tmp_path / "ct")
    back = pycolmap.Reconstruction(str(tmp_path / "ct" / "sparse" / "0"))
    assert (tmp_path / "ct" / "sparse" / "0" / "images.txt").exists()
    assert back.num_reg_images() == rec.num_reg_images() and back.num_points3D() == rec.num_points3D()
    for image in rec.images.values():
        other = back.find_image_with_name(image.name)
        assert np.abs(other.cam_from_world().matrix() - image.cam_from_world().matrix()).max() < 1e-6
        assert np.allclose(back.camera(other.camera_id).params, rec.camera(image.camera_id).params, atol=1e-9)
    for pid, p in rec.points3D.items():
        assert np.abs(back.point3D(pid).xyz - p.xyz).max() < 1e-6 and (back.point3D(pid).color == p.color).all()
    assert back.compute_mean_reprojection_error() < 1e-6


def test_nerfstudio_follows_its_conventions(model, tmp_path):
    model_dir, image_dir, rec = model
    run_cli("export", model_dir, "--format", "nerfstudio", "--images", image_dir, "--out", tmp_path / "ns")
    meta = json.loads((tmp_path / "ns" / "transforms.json").read_text())
    assert meta["camera_model"] == "OPENCV" and len(meta["frames"]) == rec.num_reg_images()
    A = np.eye(4)
    A[:3] = np.array(meta["applied_transform"])
    assert np.allclose(A[:3, :3] @ A[:3, :3].T, np.eye(3), atol=1e-9) and np.linalg.det(A[:3, :3]) > 0
    ups = []
    for frame in meta["frames"]:
        image = rec.find_image_with_name(Path(frame["file_path"]).relative_to("images").as_posix())
        path = tmp_path / "ns" / frame["file_path"]  # relative to the json
        assert path.exists()
        camera = rec.camera(image.camera_id)
        # Two cameras: intrinsics per frame, exactly the model's (SIMPLE_RADIAL -> OPENCV with k1 only).
        f, cx, cy, k1 = camera.params
        assert (frame["w"], frame["h"]) == Image.open(path).size == (camera.width, camera.height)
        assert (frame["fl_x"], frame["fl_y"], frame["cx"], frame["cy"], frame["k1"]) == (f, f, cx, cy, k1)
        assert frame["k2"] == frame["p1"] == frame["p2"] == 0.0
        T = np.array(frame["transform_matrix"])
        assert T.shape == (4, 4) and np.allclose(T[3], [0, 0, 0, 1])
        # The pose round-trips to the COLMAP model: undo the world turn and the OpenGL camera axes.
        back = np.linalg.inv(A) @ T @ OPENGL_FROM_OPENCV
        assert np.abs(back - c2w(rec, image)).max() < 1e-6
        # OpenGL axes: the camera looks along -Z; a point in front projects with fx, -fy.
        point = next(rec.point3D(p.point3D_id).xyz for p in image.points2D if p.has_point3D())
        cam = np.linalg.inv(T) @ A @ np.r_[point, 1.0]
        assert cam[2] < 0
        ups.append(T[:3, 1])
    # World turned so the scene's up (here the model's +z, cameras upright) is nerfstudio's +Z.
    assert np.mean(ups, 0) @ [0, 0, 1] > 0.95
    assert np.abs(A[:3, :3] @ [0, 0, 1] - [0, 0, 1]).max() < 0.05
    import open3d as o3d

    cloud = o3d.io.read_point_cloud(str(tmp_path / "ns" / meta["ply_file_path"]))
    xyz = np.array([p.xyz for p in rec.points3D.values()])
    assert len(cloud.points) == len(xyz)
    assert np.abs(np.sort(np.asarray(cloud.points), 0) - np.sort(xyz @ A[:3, :3].T, 0)).max() < 1e-5


def test_undistort_gives_pinhole_images_and_model(model, tmp_path):
    model_dir, image_dir, rec = model
    run_cli("export", model_dir, "--format", "colmap-text", "--undistort", "--images", image_dir,
            "--out", tmp_path / "gs")
    und = pycolmap.Reconstruction(str(tmp_path / "gs" / "sparse" / "0"))
    assert {c.model_name for c in und.cameras.values()} == {"PINHOLE"}
    assert und.num_reg_images() == rec.num_reg_images()
    for image in und.images.values():
        cam = und.camera(image.camera_id)
        assert Image.open(tmp_path / "gs" / "images" / image.name).size == (cam.width, cam.height)
        orig = rec.find_image_with_name(image.name)
        assert np.abs(image.cam_from_world().matrix() - orig.cam_from_world().matrix()).max() < 1e-6
    # Undistorted observations still fit the points: the pinhole model reprojects them exactly.
    assert und.compute_mean_reprojection_error() < 0.05
    # nerfstudio with --undistort: shared-or-per-frame PINHOLE intrinsics, no distortion terms.
    run_cli("export", model_dir, "--format", "nerfstudio", "--undistort", "--images", image_dir,
            "--out", tmp_path / "nsu")
    meta = json.loads((tmp_path / "nsu" / "transforms.json").read_text())
    assert meta["camera_model"] == "PINHOLE" and all("k1" not in f for f in meta["frames"])
    assert all((tmp_path / "nsu" / f["file_path"]).exists() for f in meta["frames"])


def test_ply_export(model, tmp_path):
    import open3d as o3d

    model_dir, _, rec = model
    run_cli("export", model_dir, "--format", "ply", "--out", tmp_path / "ply")
    cloud = o3d.io.read_point_cloud(str(tmp_path / "ply" / "points.ply"))
    assert len(cloud.points) == rec.num_points3D() and cloud.has_colors()


def test_export_bad_input_changes_nothing(model, tmp_path):
    model_dir, image_dir, _ = model
    cases = [
        (["export", tmp_path, "--format", "ply", "--out", tmp_path / "a"], 2, "not a gimsfm output or COLMAP model"),
        (["export", model_dir, "--format", "obj", "--out", tmp_path / "a"], 2, "unknown format 'obj'"),
        (["export", model_dir, "--format", "ply", "--undistort", "--out", tmp_path / "a"], 2, "--undistort"),
        (["export", model_dir, "--format", "nerfstudio", "--out", tmp_path / "a"], 2, "--images"),
    ]
    for args, code, text in cases:
        proc = run_cli(*args, check=False)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == code and text in lines[-1], proc.stderr
        assert not (tmp_path / "a").exists()
    # A folder holding someone's files: refused, untouched, even with --overwrite.
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    for extra in ([], ["--overwrite"]):
        proc = run_cli("export", model_dir, "--format", "ply", "--out", mine, *extra, check=False)
        assert proc.returncode == 3 and (mine / "notes.txt").read_text() == "keep me"
        assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]
    # An earlier export: refused without --overwrite, replaced with it; a file added there blocks replacing.
    run_cli("export", model_dir, "--format", "ply", "--out", tmp_path / "e")
    proc = run_cli("export", model_dir, "--format", "colmap-text", "--out", tmp_path / "e", check=False)
    assert proc.returncode == 3 and "--overwrite" in proc.stderr
    run_cli("export", model_dir, "--format", "colmap-text", "--out", tmp_path / "e", "--overwrite")
    assert sorted(p.name for p in (tmp_path / "e").iterdir()) == [".gimsfm-export.json", "sparse"]
    (tmp_path / "e" / "mine.txt").write_text("x")
    proc = run_cli("export", model_dir, "--format", "ply", "--out", tmp_path / "e", "--overwrite", check=False)
    assert proc.returncode == 3 and (tmp_path / "e" / "sparse").is_dir()
    assert not list(tmp_path.glob(".*partial*"))  # no staging folder left behind


def test_view_a_colmap_folder_with_queries(model, tmp_path):
    model_dir, _, rec = model
    text_model = tmp_path / "text"
    text_model.mkdir()
    rec.write_text(str(text_model))
    proc = run_cli("view", text_model, "--max-points", "500")
    page = (text_model / "viewer.html").read_text()
    assert "showing 500 of 1,500 points" in page and "500 of 1,500 points" in proc.stdout
    assert 'generator" content="gimsfm viewer"' in page
    assert not re.search(r"<script[^>]+src=", page)  # self-contained: plotly.js is inside
    assert "Plotly.newPlot" in page and len(page) > 3_000_000
    assert all(image.name in page for image in rec.images.values())
    # Queries: two images of the model posed as queries, one failure with its reason.
    names = sorted(image.name for image in rec.images.values())[:2]
    lines = []
    for n in names:
        pose = rec.find_image_with_name(n).cam_from_world()
        q, t = pose.rotation.quat, pose.translation
        lines.append(f"q_{n} {q[3]} {q[0]} {q[1]} {q[2]} {t[0]} {t[1]} {t[2]}")
    (tmp_path / "poses.txt").write_text("\n".join(lines) + "\n")
    log = [{"name": f"q_{n}", "success": True, "num_inliers": 99, "intrinsics": "PINHOLE 320 240 300 300 160 120",
            "reason": ""} for n in names] + [{"name": "lost.jpg", "success": False, "reason": "too few 2D-3D inliers"}]
    (tmp_path / "poses_log.json").write_text(json.dumps(log))
    run_cli("view", text_model, "--poses", tmp_path / "poses.txt")
    page = (tmp_path / "poses_viewer.html").read_text()
    assert "Localized queries (2)" in page and "q_" + names[0] in page
    assert "Queries not localized (1)" in page and "too few 2D-3D inliers" in page


def test_view_bad_input(model, tmp_path):
    model_dir, _, _ = model
    proc = run_cli("view", tmp_path, check=False)
    assert proc.returncode == 2 and "not a gimsfm output or COLMAP model" in proc.stderr.strip().splitlines()[-1]
    (tmp_path / "page.html").write_text("<html>mine</html>")
    proc = run_cli("view", model_dir, "--out", tmp_path / "page.html", check=False)
    assert proc.returncode == 3 and (tmp_path / "page.html").read_text() == "<html>mine</html>"
    (tmp_path / "broken").mkdir()
    for name in ("cameras.bin", "images.bin", "points3D.bin"):
        (tmp_path / "broken" / name).write_bytes(b"\x01\x02")
    proc = run_cli("view", tmp_path / "broken", check=False)
    assert proc.returncode == 2 and "cannot read the model" in proc.stderr


@pytest.mark.parametrize("layout", ["arc", "forward"])
def test_preview_fills_the_frame(tmp_path, layout):
    """Photos around a building and a forward-driving sequence: the points cover most of the picture's
    width or height, in colour, with the cameras drawn."""
    from gimsfm.sfm.preview import BACKGROUND, CAMERA_COLOR, render_preview

    rec = synthetic_model(num_points=3000, num_cams=12, layout=layout)
    render_preview(rec, tmp_path / "p.png", layout, "caption")
    img = np.asarray(Image.open(tmp_path / "p.png").convert("RGB")).astype(int)
    assert img.shape == (1000, 1600, 3)
    plot = img[:-80]
    bg = np.array([int(BACKGROUND[i:i + 2], 16) for i in (1, 3, 5)])
    cam = np.array([int(CAMERA_COLOR[i:i + 2], 16) for i in (1, 3, 5)])
    drawn = np.abs(plot - bg).sum(2) > 30
    ys, xs = np.where(drawn)
    span_x = (np.quantile(xs, 0.99) - np.quantile(xs, 0.01)) / plot.shape[1]
    span_y = (np.quantile(ys, 0.99) - np.quantile(ys, 0.01)) / plot.shape[0]
    assert max(span_x, span_y) > 0.8 and min(span_x, span_y) > 0.4, (span_x, span_y)
    assert drawn.mean() > 0.08  # not a few specks
    assert (np.abs(plot - cam).sum(2) < 40).sum() > 500  # frustum lines
    assert len(np.unique(plot[drawn] // 32, axis=0)) > 20  # the points' colours, not one flat colour
