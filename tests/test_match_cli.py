"""`gimsfm match` end to end (subprocess, as a user runs it)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

H_GT = np.array([[0.92, 0.1, 25.0], [-0.06, 0.97, 18.0], [1.5e-4, -1e-4, 1.0]])


def _gimsfm(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gimsfm", *args], capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def warped_pair(tmp_path_factory) -> tuple[Path, Path]:
    from skimage import data

    d = tmp_path_factory.mktemp("pair")
    img0 = data.astronaut()
    img1 = cv2.warpPerspective(img0, H_GT, (img0.shape[1], img0.shape[0]))
    cv2.imwrite(str(d / "a.png"), img0[..., ::-1])
    cv2.imwrite(str(d / "b.png"), img1[..., ::-1])
    return d / "a.png", d / "b.png"


def test_match_homography_outputs(warped_pair, tmp_path):
    a, b = warped_pair
    out = tmp_path / "m"
    r = _gimsfm("match", str(a), str(b), "--geometry", "homography", "--out", str(out))
    assert r.returncode == 0, r.stderr
    res = json.loads((out / "matches.json").read_text())
    k0, k1 = np.array(res["kpts0"]), np.array(res["kpts1"])
    n = res["num_matches"]
    assert k0.shape == (n, 2) and k1.shape == (n, 2) and len(res["scores"]) == n and len(res["inliers"]) == n
    assert n > 100 and res["num_inliers"] == sum(res["inliers"])
    # Matched points are in original pixel coordinates: inliers follow the true homography.
    inl = np.array(res["inliers"])
    proj = cv2.perspectiveTransform(k0[inl][None], H_GT)[0]
    assert np.median(np.linalg.norm(proj - k1[inl], axis=1)) < 1.0
    H = np.array(res["model"]["matrix"])
    from gimsfm.geometry import homography_corner_error

    assert homography_corner_error(H, H_GT, 512, 512) < 1.0
    assert res["model"]["type"] == "homography" and res["estimator"] == "opencv-magsac"
    for pic in ("matches.png", "warp_overlay.png"):
        assert (out / pic).is_file() and cv2.imread(str(out / pic)) is not None


def test_match_essential_with_intrinsics_stereo(tmp_path):
    from skimage import data

    left, right, _ = data.stereo_motorcycle()
    cv2.imwrite(str(tmp_path / "l.png"), left[..., ::-1])
    cv2.imwrite(str(tmp_path / "r.png"), right[..., ::-1])
    (tmp_path / "K1.txt").write_text("994.978 0 342.279\n0 994.978 254.877\n0 0 1\n")
    out = tmp_path / "m"
    r = _gimsfm("match", str(tmp_path / "l.png"), str(tmp_path / "r.png"), "--intrinsics", "994.978,311.193,254.877",
                "--intrinsics", str(tmp_path / "K1.txt"), "--estimator", "poselib", "--out", str(out))
    assert r.returncode == 0, r.stderr
    res = json.loads((out / "matches.json").read_text())
    assert res["geometry"] == "essential" and res["model"]["success"]
    R, t = np.array(res["model"]["R"]), np.array(res["model"]["t"])
    assert np.abs(R - np.eye(3)).max() < 0.01
    assert abs(abs(t[0]) - 1) < 1e-3
    assert (out / "matches.png").is_file() and not (out / "warp_overlay.png").exists()


@pytest.mark.parametrize("args, message", [
    (["match", "missing0.png", "missing1.png", "--out", "OUT"], "image not found"),
    (["match", "A", "B", "--geometry", "essential", "--out", "OUT"], "needs --intrinsics"),
    (["match", "A", "B", "--intrinsics", "1,2", "--out", "OUT"], "intrinsics need"),
    (["match", "A", "B", "--geometry", "affine", "--out", "OUT"], "unknown geometry"),
    (["match", "A", "B", "--matcher", "nope", "--out", "OUT"], "unknown matcher"),
])
def test_match_bad_input_one_line_error(warped_pair, tmp_path, args, message):
    a, b = warped_pair
    args = [{"A": str(a), "B": str(b), "OUT": str(tmp_path / "o")}.get(x, x) for x in args]
    r = _gimsfm(*args)
    assert r.returncode != 0
    assert "Traceback" not in r.stderr and message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_matchers_lists_every_name_whole_at_80_columns(monkeypatch):
    """A container's terminal is 80 columns: `gimsfm matchers` must still print every name users type."""
    from helpers import run_cli

    from gimsfm.matchers.registry import list_matchers

    monkeypatch.setenv("COLUMNS", "80")
    out = run_cli("matchers").stdout
    for entry in list_matchers():
        assert f" {entry.name} " in out, entry.name
