"""The learned patch descriptor: patches, network, training through the shared trainer, the matchers."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from helpers import run_cli

TINY = Path(__file__).parent / "data" / "train_tiny_desc.yaml"
REPO = Path(__file__).resolve().parents[1]


def _photo() -> np.ndarray:
    from skimage import data

    return cv2.resize(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2GRAY), (480, 480), interpolation=cv2.INTER_AREA)


def test_patches_turn_with_the_image():
    """A patch cut at a DoG keypoint of a rotated image equals the patch of the same point in the original."""
    from gimsfm.features.patches import extract_patches
    from gimsfm.features.sift import SiftExtractor

    img = _photo()
    rot = cv2.rotate(img, cv2.ROTATE_90_CLOCKWISE)  # (x, y) -> (H-1-y, x)
    ex = SiftExtractor({"max_keypoints": 600})
    f0, f1 = ex.detect(img), ex.detect(rot)
    p = np.stack([img.shape[0] - 1 - f0["keypoints"][:, 1], f0["keypoints"][:, 0]], 1)
    d = np.linalg.norm(p[:, None] - f1["keypoints"][None], axis=2)
    j = d.argmin(1)
    ok = (d.min(1) < 0.5) & (np.abs(np.log(f0["scales"] / f1["scales"][j])) < 0.05)
    i, j = np.nonzero(ok)[0], j[ok]
    assert len(i) > 100
    P0 = extract_patches(img, f0["keypoints"][i], f0["scales"][i], f0["oris"][i])
    P1 = extract_patches(rot, f1["keypoints"][j], f1["scales"][j], f1["oris"][j])
    same = (P0 - P1).abs().mean((1, 2, 3)).median()
    other = (P0 - P1[torch.roll(torch.arange(len(P1)), 1)]).abs().mean((1, 2, 3)).median()
    assert P0.shape[1:] == (1, 32, 32)
    assert same < 0.04 and other > 4 * same, (same, other)


def test_descriptors_are_unit_and_deterministic():
    from gimsfm.models import build_model

    torch.manual_seed(0)
    m = build_model("patch_descriptor", {}).eval()
    x = torch.rand(50, 1, 32, 32)
    with torch.inference_mode():
        a, b = m.describe(x), m.describe(x.clone())
        c = m.describe(x[:7])
    assert a.shape == (50, 128)
    torch.testing.assert_close(a.norm(dim=1), torch.ones(50))
    assert torch.equal(a, b)
    torch.testing.assert_close(c, a[:7], atol=1e-5, rtol=1e-5)  # independent of the batch
    # invariant to affine brightness changes (patches are standardised)
    with torch.inference_mode():
        torch.testing.assert_close(m.describe(0.5 * x + 0.2), a, atol=1e-4, rtol=1e-4)


def test_cpu_inference_graph_equals_eager():
    """The frozen oneDNN graph the matchers use on CPU gives the eager network's descriptors, batch-independent,
    and is dropped as soon as the model trains again."""
    from gimsfm.models import build_model

    torch.manual_seed(0)
    m = build_model("patch_descriptor", {}).eval()
    x = torch.rand(300, 1, 32, 32)
    with torch.inference_mode():
        eager = m.describe(x)
    assert m.optimize_for_cpu()
    with torch.inference_mode():
        fast, again, few = m.describe(x), m.describe(x.clone()), m.describe(x[:1])
    torch.testing.assert_close(fast, eager, atol=1e-5, rtol=1e-5)
    assert torch.equal(fast, again)
    torch.testing.assert_close(few, eager[:1], atol=1e-5, rtol=1e-5)
    m.train()
    with torch.no_grad():
        m.net[0].weight.mul_(-1)
    m.eval()
    with torch.inference_mode():
        assert not torch.allclose(m.describe(x), fast, atol=1e-3)  # the changed weights, not the stale graph


def _tiny(tmp_path: Path) -> dict:
    from gimsfm.train.trainer import load_preset

    p = load_preset(TINY)
    p["out_dir"] = str(tmp_path / "run")
    p["data"]["cache_dir"] = str(tmp_path / "cache")
    return p


def test_loss_falls_on_a_tiny_batch(tmp_path):
    from gimsfm.train.trainer import Trainer

    torch.set_num_threads(1)
    tr = Trainer(_tiny(tmp_path), device="cpu")
    tr.build()
    batch = tr.train_data.batch(0, 64)
    assert batch["patches0"].shape == batch["patches1"].shape == (64, 1, 32, 32)
    ex = batch["exclude"]  # pairs never used as negatives of each other (the diagonal: the positives)
    assert ex.shape == (64, 64) and ex.diagonal().all() and torch.equal(ex, ex.T)
    losses = []
    for _ in range(30):
        loss, _ = tr.model.loss(batch, tr.model(batch))
        tr.opt.zero_grad()
        loss.backward()
        tr.opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.6 * losses[0], losses


def test_train_export_and_match(tmp_path):
    """The shared trainer trains, validates (against RootSIFT on the same keypoints) and exports a descriptor
    that `gimsfm match` uses as dog-desc-base:FILE."""
    import yaml

    p = yaml.safe_load(TINY.read_text())
    p["out_dir"] = str(tmp_path / "run")
    p["data"]["cache_dir"] = str(tmp_path / "cache")
    preset = tmp_path / "tiny.yaml"
    preset.write_text(yaml.safe_dump(p))
    run_cli("train", "--preset", preset, "--device", "cpu")
    val = (tmp_path / "run" / "val_log.csv").read_text()
    assert "textures/precision" in val and "sift-nn:textures/precision" in val
    weights = tmp_path / "desc.pt"
    run_cli("train", "--preset", preset, "--export", weights)
    assert weights.stat().st_size < 200_000  # fp16
    pair = tmp_path / "pair"
    pair.mkdir()
    img = _photo()
    H = np.array([[0.9, 0.1, 20], [-0.08, 0.95, 10], [1e-4, 0, 1]])
    cv2.imwrite(str(pair / "a.png"), img)
    cv2.imwrite(str(pair / "b.png"), cv2.warpPerspective(img, H, (480, 480)))
    out = tmp_path / "m"
    run_cli("match", pair / "a.png", pair / "b.png", "--out", out, "--matcher", f"dog-desc-base:{weights}",
            "--geometry", "homography")
    assert (out / "matches.txt").is_file() or any(out.iterdir())


@pytest.mark.parametrize("content,message", [
    (b"", "empty"),
    (b"not a torch file at all", "no torch file"),
])
def test_bad_weights_are_one_line_errors(tmp_path, content, message):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(content)
    proc = run_cli("match", REPO / "scenes/sacre_coeur/images" / sorted(
        (REPO / "scenes/sacre_coeur/images").iterdir())[0].name, REPO / "scenes/sacre_coeur/images" / sorted(
        (REPO / "scenes/sacre_coeur/images").iterdir())[1].name, "--out", tmp_path / "o",
        "--matcher", f"dog-desc-gim:{bad}", check=False)
    assert proc.returncode == 2
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_foreign_and_truncated_weights(tmp_path):
    """A LightGlue export given to the descriptor, and a truncated export: one line each, exit 2."""
    lg = REPO / "gimsfm" / "weights" / "sift_lightglue_gim.pt"
    trunc = tmp_path / "trunc.pt"
    trunc.write_bytes(lg.read_bytes()[: lg.stat().st_size // 2])
    imgs = sorted((REPO / "scenes/sacre_coeur/images").iterdir())[:2]
    for w, message in ((lg, "not a 'patch_descriptor' model"), (trunc, "truncated or corrupt")):
        proc = run_cli("match", imgs[0], imgs[1], "--out", tmp_path / "o", "--matcher", f"dog-desc-gim:{w}",
                       check=False)
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    proc = run_cli("match", imgs[0], imgs[1], "--out", tmp_path / "o2", "--matcher", f"sift-lightglue-gim:{trunc}",
                   check=False)
    assert proc.returncode == 2 and "truncated or corrupt" in proc.stderr, proc.stderr


def test_shipped_descriptor_reconstructs_and_matches(tmp_path):
    """The shipped dog-desc-gim in the real pipeline: the demo scene reconstructs, its features cached in hloc's
    features.h5 like SIFT's."""
    import json

    import h5py

    from gimsfm.matchers.dog_desc import GIM_WEIGHTS

    if not GIM_WEIGHTS.is_file():
        pytest.skip("dog-desc-gim weights not shipped")
    demo = REPO / "scenes" / "sacre_coeur" / "images"
    out = tmp_path / "rec"
    # 4096 keypoints (the matcher's sfm default is 8192): at 2048 this model's demo map registers 3 of 10 images
    # although all 45 pairs verify (no pair reaches COLMAP's 100-inlier initial-pair threshold and the relaxed
    # initialisation picks a dead end; sift-nn and dog-desc-base register 10), see
    # docs/dog_desc.md.
    run_cli("reconstruct", demo, "--out", out, "--matcher", "dog-desc-gim", "--max-keypoints", "4096")
    s = json.loads((out / "summary.json").read_text())
    assert s["num_registered"] >= 9 and s["num_points3D"] > 300 and s["mean_reprojection_error"] < 1.5, s
    with h5py.File(out / "features.h5", "r") as f:
        g = f[next(iter(f.keys()))]
        assert g["descriptors"].shape[0] == 128 or g["descriptors"].shape[-1] == 128
        assert g["keypoints"].shape[0] <= 4096
