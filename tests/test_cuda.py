"""CUDA parity: the matcher and the trainer give the CPU's results on a GPU (`--device cuda`).

Skipped where torch sees no CUDA device (CI, laptops); run on a GPU machine with `pytest tests/test_cuda.py`.
The training tests read the texture photos of the data root ($GIMSFM_DATA or ../shared/data).
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "scenes" / "sacre_coeur" / "images"

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(autouse=True)
def _exact_fp32():
    """TF32 would make GPU matmuls differ from the CPU's by ~1e-3 relative; parity is checked in full fp32."""
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def _needs_textures():
    from gimsfm.train.datasets import data_root

    if not (data_root() / "textures").is_dir():
        pytest.skip("texture photos not found (set GIMSFM_DATA)")


@pytest.mark.parametrize("name", ["sift-lightglue-base", "sift-lightglue-gim"])
def test_matcher_matches_equal_on_cpu_and_cuda(name):
    from gimsfm.matchers.registry import get_matcher
    from gimsfm.utils.io import read_image

    images = sorted(DEMO.glob("*.jpg"))[:3]
    cpu, gpu = get_matcher(name, device="cpu"), get_matcher(name, device="cuda")
    assert next(gpu.model.parameters()).is_cuda
    feats = [cpu.extract(read_image(p)) for p in images]  # same features for both: only matching differs
    for i, j in ((0, 1), (0, 2), (1, 2)):
        m_cpu, s_cpu = cpu.match(feats[i], feats[j])
        m_gpu, s_gpu = gpu.match(feats[i], feats[j])
        both = (m_cpu > -1) | (m_gpu > -1)
        assert (m_cpu > -1).sum() >= 50, "too few matches for a meaningful comparison"
        # Borderline matches (score at the filter threshold) may flip with float summation order.
        assert np.mean(m_cpu[both] == m_gpu[both]) > 0.98
        common = (m_cpu > -1) & (m_cpu == m_gpu)
        np.testing.assert_allclose(s_cpu[common], s_gpu[common], atol=1e-2)  # measured max 2.5e-3


def _tiny(tmp_path: Path, name: str) -> dict:
    from gimsfm.train.trainer import load_preset

    p = load_preset(REPO / "tests" / "data" / "train_tiny.yaml")
    p["out_dir"] = str(tmp_path / name)
    p["data"]["cache_dir"] = str(tmp_path / "cache")  # shared: both devices train on the same cached records
    p["train"].update({"max_iters": 3, "val_every": 3})
    return p


def test_training_step_equals_cpu(tmp_path):
    """Same batch, same initial weights: equal loss and gradients on both devices.

    Gradients, not updated weights, are compared: Adam's first step is lr * sign(grad) for every weight, so a
    gradient near zero flips a weight by 2 lr on float noise alone.
    """
    from gimsfm.train.trainer import Trainer

    _needs_textures()
    torch.manual_seed(0)
    trainers = {d: Trainer(_tiny(tmp_path, d), device=d) for d in ("cpu", "cuda")}
    for t in trainers.values():
        t.build()
    trainers["cuda"].model.load_state_dict(trainers["cpu"].model.state_dict())
    batch = trainers["cpu"].train_data.batch(0, 2)
    losses, grads = {}, {}
    for d, t in trainers.items():
        b = {k: v.to(t.device) for k, v in batch.items()}
        t.model.train()
        loss, _ = t.model.loss(b, t.model(b))
        t.opt.zero_grad()
        loss.backward()
        losses[d] = float(loss.detach())
        grads[d] = {k: p.grad.detach().cpu() for k, p in t.model.named_parameters() if p.grad is not None}
    assert losses["cuda"] == pytest.approx(losses["cpu"], rel=1e-4)
    assert grads["cpu"].keys() == grads["cuda"].keys() and len(grads["cpu"]) > 10
    # Relative to the whole gradient: a tensor whose gradient nearly cancels over keypoints and layers (the
    # positional encoding's: norm 3e-5) differs by 70 % of itself between devices on summation order alone.
    g_cpu = torch.cat([g.flatten() for g in grads["cpu"].values()])
    g_gpu = torch.cat([grads["cuda"][k].flatten() for k in grads["cpu"]])
    scale = float(g_cpu.norm())
    assert float((g_gpu - g_cpu).norm()) <= 1e-3 * scale
    worst = max(grads["cpu"], key=lambda k: float((grads["cuda"][k] - grads["cpu"][k]).norm()))
    assert float((grads["cuda"][worst] - grads["cpu"][worst]).norm()) <= 1e-3 * scale, worst
    trainers["cuda"].opt.step()  # the optimizer state lives on the GPU too
    assert all(p.is_cuda for p in trainers["cuda"].model.parameters())


def test_train_cli_on_cuda_exports_weights_that_load_on_cpu(tmp_path):
    """`gimsfm train --device cuda` runs, validates, checkpoints; its export matches like the GPU model."""
    import yaml

    from gimsfm.train.trainer import load_exported

    _needs_textures()
    p = yaml.safe_load((REPO / "tests" / "data" / "train_tiny.yaml").read_text())
    p["out_dir"], p["data"]["cache_dir"] = str(tmp_path / "run"), str(tmp_path / "cache")
    preset = tmp_path / "tiny.yaml"
    preset.write_text(yaml.safe_dump(p))
    cli = [sys.executable, "-m", "gimsfm", "train", "--preset", str(preset)]
    r = subprocess.run([*cli, "--device", "cuda", "--no-progress"], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr
    ck = torch.load(tmp_path / "run" / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert ck["iteration"] == 3
    assert (tmp_path / "run" / "val_log.csv").read_text().count("\n") >= 2
    r = subprocess.run([*cli, "--export", str(tmp_path / "w.pt")], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr
    model, info = load_exported(tmp_path / "w.pt", device="cpu")
    assert info["iteration"] == 3 and not next(model.parameters()).is_cuda
