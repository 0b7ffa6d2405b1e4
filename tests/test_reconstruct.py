"""End-to-end `gimsfm reconstruct` on the embedded demo scene, odd formats and bad input (real pipeline)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import h5py
import numpy as np
import pycolmap
import pytest
from PIL import Image
from skimage import data

from helpers import run_cli

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "scenes" / "sacre_coeur" / "images"




@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "out"
    run_cli("reconstruct", DEMO, "--out", out)
    return out


def test_demo_scene_reconstructs(demo_run):
    s = json.loads((demo_run / "summary.json").read_text())
    assert s["status"] == "ok"
    assert s["num_images"] == 10 and s["num_registered"] == 10
    assert s["mean_reprojection_error"] < 1.5
    assert s["num_points3D"] > 500 and s["mean_track_length"] > 2.5
    assert {"features", "matching", "mapping", "total"} <= set(s["timings"])
    rec = pycolmap.Reconstruction(str(demo_run / "sparse"))
    assert rec.num_reg_images() == 10 and rec.num_points3D() == s["num_points3D"]
    assert (demo_run / "preview.png").stat().st_size > 10_000
    page = (demo_run / "viewer.html").read_text()
    assert "Plotly.newPlot" in page and all(rec.image(i).name in page for i in rec.reg_image_ids())
    assert s["left_out_images"] == {} and {"preview", "viewer"} <= set(s["timings"])
    assert (demo_run / "gimsfm.log").exists()


def test_outputs_are_hloc_compatible(demo_run):
    import open3d as o3d

    cloud = o3d.io.read_point_cloud(str(demo_run / "points.ply"))
    assert len(cloud.points) > 500 and cloud.has_colors()
    pairs = (demo_run / "pairs.txt").read_text().split("\n")
    assert len([p for p in pairs if p]) == 45
    with h5py.File(demo_run / "features.h5") as f:
        name = sorted(f.keys())[0]
        kp, desc = f[name]["keypoints"][()], f[name]["descriptors"][()]
        assert kp.shape[1] == 2 and desc.shape == (128, kp.shape[0])  # hloc stores (D, N)
        w, h = f[name]["image_size"][()]
        assert (kp >= -0.5).all() and (kp[:, 0] < w).all() and (kp[:, 1] < h).all()
    with h5py.File(demo_run / "matches.h5") as f:
        a, b = pairs[0].split()
        grp = f[f"{a}/{b}"]
        m0 = grp["matches0"][()]
        assert m0.dtype.kind == "i"
        assert (m0 >= -1).all() and (m0 > -1).sum() > 0
        assert grp["matching_scores0"].shape == m0.shape


def test_rerun_resumes_and_settings_are_protected(demo_run):
    proc = run_cli("reconstruct", DEMO, "--out", demo_run)
    s = json.loads((demo_run / "summary.json").read_text())
    assert s["num_registered"] == 10
    assert s["timings"]["matching"] < 2.0 and s["timings"]["features"] < 2.0  # nothing recomputed
    proc = run_cli("reconstruct", DEMO, "--out", demo_run, "--max-keypoints", "1024", check=False)
    assert proc.returncode == 3 and "--overwrite" in proc.stderr


def test_mapping_is_reproducible_and_retries_unlucky_seeds(demo_run, tmp_path):
    from gimsfm.sfm.mapping import run_mapping

    def stats(models):
        return models[0].num_reg_images(), models[0].num_points3D()

    db = tmp_path / "database.db"
    shutil.copy(demo_run / "database.db", db)
    # One mapping thread: the same seed gives the same model (with COLMAP's threads it gave 10 or 2 images).
    first, again = (stats(run_mapping(db, DEMO, tmp_path / f"same{i}", seed=7, attempts=1)) for i in range(2))
    assert first == again
    singles = [stats(run_mapping(db, DEMO, tmp_path / f"seed{s}", seed=s, attempts=1)) for s in (0, 1, 2)]
    # A bar no model reaches: every attempt runs, and the best one is returned and left in models/.
    best = run_mapping(db, DEMO, tmp_path / "retry", seed=0, attempts=3, retry_below=1.01)
    assert stats(best) == max(singles)
    on_disk = [pycolmap.Reconstruction(str(d)) for d in (tmp_path / "retry").iterdir()]
    assert max((r.num_reg_images(), r.num_points3D()) for r in on_disk) == stats(best)
    assert not (tmp_path / "retry.attempt").exists()


def _odd_format_scene(root: Path) -> Path:
    """The demo photos stored as 16-bit PNG, RGBA, grayscale, EXIF-rotated, very large; plus junk files."""
    names = sorted(p.name for p in DEMO.iterdir())
    root.mkdir()
    for i, name in enumerate(names):
        rgb = np.asarray(Image.open(DEMO / name).convert("RGB"))
        stem = Path(name).stem
        if i == 0:
            cv2.imwrite(str(root / f"{stem}.png"), rgb[..., ::-1].astype(np.uint16) * 257)
        elif i == 1:
            Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])).save(root / f"{stem}.png")
        elif i == 2:
            Image.fromarray(rgb).convert("L").save(root / f"{stem}.jpg", quality=95)
        elif i == 3:
            exif = Image.Exif()
            exif[0x0112] = 8  # displayed = stored rotated 90 deg counter-clockwise
            Image.fromarray(np.rot90(rgb, k=-1).copy()).save(root / f"{stem}.jpg", exif=exif.tobytes(), quality=95)
        elif i == 4:
            big = cv2.resize(rgb, None, fx=3.0, fy=3.0, interpolation=cv2.INTER_CUBIC)
            Image.fromarray(big).save(root / f"{stem}.jpg", quality=90)
        else:
            shutil.copy(DEMO / name, root / name)
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 100)
    (root / "README.txt").write_text("not an image")
    return root


def test_odd_formats_reconstruct(tmp_path):
    images = _odd_format_scene(tmp_path / "images")
    out = tmp_path / "out"
    run_cli("reconstruct", images, "--out", out)
    s = json.loads((out / "summary.json").read_text())
    assert s["skipped_images"] == ["broken.jpg"]
    assert s["num_images"] == 11 and s["num_registered"] >= 9
    assert s["mean_reprojection_error"] < 1.5
    # Every image missing from the model has its reason, on the page too.
    assert s["left_out_images"]["broken.jpg"] == "unreadable or not an image"
    assert set(s["left_out_images"]) == {"broken.jpg", *s["unregistered_images"]}
    assert "unreadable or not an image" in (out / "viewer.html").read_text()
    # nerfstudio export: the 16-bit, RGBA, grey and EXIF-rotated files come out as the model saw them.
    run_cli("export", out, "--format", "nerfstudio", "--out", tmp_path / "ns")
    meta = json.loads((tmp_path / "ns" / "transforms.json").read_text())
    for frame in meta["frames"]:
        w, h = frame.get("w", meta.get("w")), frame.get("h", meta.get("h"))
        assert Image.open(tmp_path / "ns" / frame["file_path"]).size == (w, h), frame["file_path"]


def test_bad_inputs_fail_cleanly(tmp_path):
    proc = run_cli("reconstruct", tmp_path / "missing", "--out", tmp_path / "o1", check=False)
    assert proc.returncode != 0 and "does not exist" in proc.stderr
    (tmp_path / "empty").mkdir()
    proc = run_cli("reconstruct", tmp_path / "empty", "--out", tmp_path / "o2", check=False)
    assert proc.returncode != 0 and "no images" in proc.stderr
    proc = run_cli("reconstruct", DEMO, "--out", tmp_path / "o3", "--matcher", "nope", check=False)
    assert proc.returncode != 0 and "unknown matcher" in proc.stderr
    # Output folder holding the user's own files is refused, and the files are untouched.
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    proc = run_cli("reconstruct", DEMO, "--out", tmp_path / "mine", "--overwrite", check=False)
    assert proc.returncode != 0 and (tmp_path / "mine" / "thesis.tex").read_text() == "precious"
    assert len(proc.stderr.strip().splitlines()) == 1


def test_unrelated_images_fail_without_model(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(data.astronaut()).save(images / "a.png")
    Image.fromarray(data.coffee()).save(images / "b.png")
    Image.fromarray(data.chelsea()).save(images / "c.png")
    out = tmp_path / "out"
    proc = run_cli("reconstruct", images, "--out", out, check=False)
    assert proc.returncode == 4, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error:") and "no image pair passed geometric verification" in last, last
    assert not (out / "sparse").exists()
    assert json.loads((out / "summary.json").read_text())["status"] == "failed"


def test_interrupted_run_recovers(tmp_path, demo_run):
    out = tmp_path / "out"
    shutil.copytree(demo_run, out)
    (out / "summary.json").unlink()
    shutil.rmtree(out / "sparse")
    (out / "features.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 64)  # truncated by a crash
    # run.json records the absolute image dir, so the copy resumes the same run.
    run_cli("reconstruct", DEMO, "--out", out)
    s = json.loads((out / "summary.json").read_text())
    assert s["num_registered"] == 10
    assert list(out.glob("features.h5.corrupt-*"))


def test_reconstruct_presets_load():
    """Every reconstruction preset in pipelines/ loads, and names a registered matcher (with valid options)."""
    from gimsfm.matchers.registry import parse_matcher_spec
    from gimsfm.sfm.reconstruct import ReconstructConfig

    names = ["reconstruct", "reconstruct_gim", "reconstruct_sift", "video", "large"]
    for name in names:
        config = ReconstructConfig.from_preset(name)
        parse_matcher_spec(config.matcher)
    gim = ReconstructConfig.from_preset("reconstruct_gim")
    assert gim.matcher == "sift-lightglue-gim" and gim.max_keypoints == 2048
    sift = ReconstructConfig.from_preset("reconstruct_sift")
    assert sift.matcher == "sift-nn" and sift.max_keypoints == 8192
    # The preset and the built-in defaults agree; keypoints follow the matcher unless given.
    assert ReconstructConfig.from_preset("reconstruct") == ReconstructConfig() == gim
    assert ReconstructConfig(matcher="sift-nn").max_keypoints == 8192
    assert sift.pairs == gim.pairs and sift.resize_max == gim.resize_max  # inherited through `extends:`
    assert ReconstructConfig(matcher="sift-lightglue-base@filter_threshold=0.2").max_keypoints == 2048
    assert ReconstructConfig(matcher="sift-nn", max_keypoints=1024).max_keypoints == 1024


def test_reconstruct_preset_extends(tmp_path):
    """A user's preset can extend a shipped one and change single settings; a cycle is a clear error."""
    from gimsfm.errors import InputError
    from gimsfm.sfm.reconstruct import REPO_PIPELINES, ReconstructConfig

    mine = tmp_path / "mine.yaml"
    mine.write_text(f"extends: {REPO_PIPELINES / 'reconstruct.yaml'}\nreconstruct: {{mapper: global}}\n")
    c = ReconstructConfig.from_preset(mine)
    assert c.mapper == "global" and c.matcher == "sift-lightglue-gim" and c.max_keypoints == 2048
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    with pytest.raises(InputError, match="circular"):
        ReconstructConfig.from_preset(tmp_path / "a.yaml")
