"""`gimsfm average`: weight averaging of fine-tuned matchers (model soup)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
BASE = REPO / "gimsfm/weights/sift_lightglue_base.pt"
GIM = REPO / "gimsfm/weights/sift_lightglue_gim.pt"
H_GT = np.array([[0.9, 0.12, 30.0], [-0.08, 0.95, 20.0], [2e-4, -1e-4, 1.0]])


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gimsfm", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=180)


def _one_line_error(r: subprocess.CompletedProcess, text: str) -> None:
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert r.returncode != 0 and len(lines) == 1 and text in lines[0], r.stderr


def test_average_is_the_mean_and_matches(tmp_path):
    out = tmp_path / "soup.pt"
    r = _cli("average", str(BASE), str(GIM), "--out", str(out))
    assert r.returncode == 0, r.stderr
    a, b, s = (torch.load(p, map_location="cpu", weights_only=False) for p in (BASE, GIM, out))
    assert s["conf"] == a["conf"] and set(s["state_dict"]) == set(a["state_dict"])
    for k, v in s["state_dict"].items():
        mean = (a["state_dict"][k].double() + b["state_dict"][k].double()) / 2
        assert torch.allclose(v.double(), mean.to(v.dtype).double(), atol=1e-3, rtol=0), k
    ing = s["info"]["soup"]
    assert [Path(i["path"]).name for i in ing] == [BASE.name, GIM.name] and all(i["weight"] == 0.5 for i in ing)
    card = out.with_suffix(".md").read_text()
    assert "sift_lightglue_base.pt" in card and "sift_lightglue_gim.pt" in card

    # Weighted: 1/0 gives back the first model exactly.
    one = tmp_path / "one.pt"
    assert _cli("average", str(BASE), str(GIM), "--weight", "1", "--weight", "0", "--out", str(one)).returncode == 0
    o = torch.load(one, map_location="cpu", weights_only=False)
    assert all(torch.equal(o["state_dict"][k], v) for k, v in a["state_dict"].items())

    # The soup is a working matcher: on a warped real photo its inliers follow the true homography.
    from skimage import data

    from gimsfm.matchers import get_matcher

    img0 = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2GRAY)
    img1 = cv2.warpPerspective(img0, H_GT, (img0.shape[1], img0.shape[0]))
    m = get_matcher(f"sift-lightglue-gim:{out}", {"max_keypoints": 1024}, device="cpu")
    pm = m.match_images(img0, img1)
    k0, k1 = pm.kpts0, pm.kpts1
    proj = cv2.perspectiveTransform(k0[None].astype(np.float64), H_GT)[0]
    good = np.linalg.norm(proj - k1, axis=1) < 3
    assert len(k0) > 200 and good.mean() > 0.9, (len(k0), good.mean())


def test_average_bad_input(tmp_path):
    out = tmp_path / "soup.pt"
    _one_line_error(_cli("average", str(BASE), "--out", str(out)), "at least two")
    _one_line_error(_cli("average", str(BASE), str(tmp_path / "missing.pt"), "--out", str(out)), "not found")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    _one_line_error(_cli("average", str(BASE), str(junk), "--out", str(out)), "not a gimsfm weights file")
    other = tmp_path / "other.pt"
    w = torch.load(BASE, map_location="cpu", weights_only=False)
    torch.save({**w, "conf": {**w["conf"], "n_layers": 3}}, other)
    _one_line_error(_cli("average", str(BASE), str(other), "--out", str(out)), "different model")
    _one_line_error(_cli("average", str(BASE), str(GIM), "--weight", "1", "--out", str(out)), "one non-negative")
    # An existing output is never overwritten unless asked.
    out.write_bytes(b"keep me")
    _one_line_error(_cli("average", str(BASE), str(GIM), "--out", str(out)), "exists")
    assert out.read_bytes() == b"keep me"
    assert _cli("average", str(BASE), str(GIM), "--out", str(out), "--overwrite").returncode == 0
