"""`gim-dkm` (gimsfm.models.dkm + gimsfm.matchers.gim_dkm): parity with the GIM reference on fake weights,
checkpoint loading, sampling, and the pipelines end to end.

The fake checkpoint is built at test time with the fixture's make_fake_ckpt.py and loaded through the same
code path as a user's `gim_dkm_100h.ckpt` (`--matcher gim-dkm:PATH`). Tolerances: README of
../shared/fixtures/gim_reference. `pytest -s` prints the max differences.

Runtime: the full-resolution parity run (one 672x896 + 1152x1536 pair, both directions; the reference took
239 s on 2 threads) is shared by the three parity tests, marked slow: 12 min wall on this machine at load 25.
The fast tests need ~1 min of CPU; the pipeline tests run at `resize=256` (a few CPU seconds per pair plus
loading the 280 MB checkpoint per CLI call).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from gimsfm.bench.suites import data_root
from gimsfm.matchers.release import RELEASE_FILES
from helpers import fake_release_checkpoint, gim_fixture, run_cli


@pytest.fixture(scope="module")
def fx() -> Path:
    return gim_fixture("gim_dkm")


@pytest.fixture(scope="module")
def fake_ckpt(fx, tmp_path_factory) -> Path:
    return fake_release_checkpoint(fx, "gim_dkm", tmp_path_factory.mktemp("dkm") / RELEASE_FILES["gim-dkm"])


@pytest.fixture(scope="module")
def ref(fx) -> dict[str, np.ndarray]:
    return dict(np.load(fx / "gim_dkm" / "outputs.npz"))


@pytest.fixture(scope="module")
def inputs(fx) -> dict[str, np.ndarray]:
    return dict(np.load(fx / "inputs.npz"))


def _matcher(ckpt: Path, options: str = ""):
    from gimsfm.matchers.registry import get_matcher

    return get_matcher(f"gim-dkm:{ckpt}" + (f"@{options}" if options else ""), device="cpu")


def _maxdiff(a, b) -> float:
    return float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).max())


# ------------------------------------------------------------------------------------------ fast checks
def test_kde_density_matches_reference(ref):
    from gimsfm.models.dkm import kde

    got = kde(torch.from_numpy(ref["kde_points"]), std=0.1, chunk=1000).numpy()
    d = _maxdiff(got, ref["kde_density"])
    print(f"kde_density max abs diff {d:.3g} (values up to {ref['kde_density'].max():.0f})")
    assert d <= 1e-4 * np.abs(ref["kde_density"]).max()


def test_padding_matches_reference(ref, inputs):
    from gimsfm.matchers.gim_dkm import pad_to_4_3

    x = torch.from_numpy(inputs["image1_rgb"]).permute(2, 0, 1)[None].float() / 255
    padded, (left, top) = pad_to_4_3(x)
    assert tuple(padded.shape[-2:]) == (416, 554) and (left, top) == (101, 0)
    assert _maxdiff(padded[0, :, 200].numpy(), ref["padded_image1_row200"]) == 0


def test_sampling_is_seeded_and_balanced():
    from gimsfm.models.dkm import sample_matches

    g = torch.Generator().manual_seed(1)
    warp = torch.rand(96, 256, 4, generator=g) * 2 - 1
    cert = torch.rand(96, 256, generator=g) * 0.1
    cert[:, :64] = 0  # never drawn: plenty of positive cells elsewhere

    def draw(seed):
        return sample_matches(warp, cert, 500, 0.05, generator=torch.Generator().manual_seed(seed))

    (m1, c1), (m2, c2), (m3, _) = draw(0), draw(0), draw(1)
    assert m1.shape == (500, 4) and c1.shape == (500,)
    assert torch.equal(m1, m2) and torch.equal(c1, c2) and not torch.equal(m1, m3)
    assert (c1 > 0).all()  # un-thresholded certainty is returned, masked cells are not drawn
    # every returned match is a cell of the warp with its certainty
    idx = torch.cdist(m1, warp.reshape(-1, 4)).argmin(dim=1)
    assert torch.equal(cert.reshape(-1)[idx], c1)
    # fewer positive cells than 4 * num: no error, only positive cells
    m, c = sample_matches(warp, cert * (torch.rand(cert.shape, generator=g) < 0.01), 500)
    assert 0 < len(m) <= 500 and (c > 0).all()


def test_checkpoint_layouts_and_errors(fake_ckpt, image_pair, tmp_path):
    """The release layout loads strictly; unprefixed keys and DKM's ResNet classifier (either layout) are
    accepted; a truncated file and another model's keys are one-line errors with exit code 2."""
    from gimsfm.errors import InputError

    m = _matcher(fake_ckpt)
    sd = torch.load(fake_ckpt, map_location="cpu", weights_only=True)["state_dict"]
    got = m.model.state_dict()
    assert len(got) == len(sd) == 811
    for k in ("encoder.net.conv1.weight", "decoder.gps.16.pos_conv.weight", "decoder.conv_refiner.1.out_conv.bias"):
        assert torch.equal(got[k], sd["model." + k])

    bare = {k[len("model."):]: v for k, v in sd.items()}
    bare["encoder.net.fc.weight"], bare["encoder.net.fc.bias"] = torch.zeros(1000, 2048), torch.zeros(1000)
    alt = tmp_path / "bare.ckpt"
    torch.save({"state_dict": bare, "epoch": 3}, alt)
    assert torch.equal(_matcher(alt).model.state_dict()["decoder.proj.32.bias"], sd["model.decoder.proj.32.bias"])

    with_fc = dict(sd, **{"model.encoder.net.fc.bias": torch.zeros(1000)})
    torch.save({"state_dict": with_fc}, alt)
    _matcher(alt)

    partial = {k: v for k, v in sd.items() if "conv_refiner" not in k}
    torch.save({"state_dict": partial}, alt)
    with pytest.raises(InputError, match=r"gim-dkm: \d+ keys missing"):
        _matcher(alt)

    truncated = tmp_path / "trunc.ckpt"
    truncated.write_bytes(fake_ckpt.read_bytes()[: 10_000_000])
    r = run_cli("match", *image_pair, "--matcher", f"gim-dkm:{truncated}", "--out", tmp_path / "o", check=False)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "gim-dkm" in r.stderr and str(truncated) in r.stderr
    for bad in ("num_samples=0", "resize=10"):
        with pytest.raises(InputError, match="gim-dkm"):
            _matcher(fake_ckpt, bad)


# ------------------------------------------------------------------------------- full-resolution parity
@pytest.fixture(scope="module")
def parity_run(fake_ckpt, inputs):
    """One run of the user's code path at GIM's settings (672x896 + 1152x1536), recording every layer."""
    m = _matcher(fake_ckpt)
    record: dict[str, torch.Tensor] = {}
    warp, certainty, _, _ = m.dense_warp(inputs["image0_rgb"], inputs["image1_rgb"], record=record)
    return {k: v.numpy() for k, v in record.items()}, warp.numpy(), certainty.numpy()


def _window(a: np.ndarray) -> np.ndarray:
    h, w = a.shape[-2:]
    return a[:, :8, h // 2:h // 2 + 8, w // 2:w // 2 + 8]


def _report(name: str, got: np.ndarray, want: np.ndarray) -> tuple[float, float]:
    d = _maxdiff(got, want)
    rel = d / max(float(np.abs(want).max()), 1e-12)
    print(f"{name}: max abs diff {d:.3g}, relative to max|ref| {rel:.3g}")
    return d, rel


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_encoder_parity(parity_run, ref):
    record = parity_run[0]
    for p in (0, 1):
        for s in (2, 4, 8, 16, 32):
            _, rel = _report(f"pass{p}_enc_s{s}", _window(record[f"pass{p}_enc_s{s}"]), ref[f"pass{p}_enc_s{s}"])
            assert rel <= 1e-4


# Subsampling of the stored decoder outputs (README: every 2nd/4th/8th/16th pixel).
STEPS = {0: {32: 1, 16: 1, 8: 1, 4: 2, 2: 4, 1: 8}, 1: {8: 2, 4: 4, 2: 8, 1: 16}}


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_decoder_parity_layer_by_layer(parity_run, ref):
    """Flows and certainty logits within 1e-3 of max|ref| (README: the GP's ill-conditioned kernels amplify
    float32 rounding about 1e4-fold; with fake weights the flows reach 19, far outside [-1, 1]); certainties
    after the sigmoid within 1e-3 absolute."""
    record = parity_run[0]
    for p, steps in STEPS.items():
        for s, k in steps.items():
            key = f"pass{p}_s{s}"
            flow = record[f"{key}_flow"][..., ::k, ::k]
            cert = record[f"{key}_certainty"][..., ::k, ::k]
            assert flow.shape == ref[f"{key}_flow"].shape and cert.shape == ref[f"{key}_certainty"].shape
            _, rel_flow = _report(f"{key}_flow", flow, ref[f"{key}_flow"])
            _, rel_logit = _report(f"{key}_certainty", cert, ref[f"{key}_certainty"])
            sig = lambda a: 1 / (1 + np.exp(-a.astype(np.float64)))  # noqa: E731
            d_sig, _ = _report(f"{key}_certainty (sigmoid)", sig(cert), sig(ref[f"{key}_certainty"]))
            assert rel_flow <= 1e-3 and rel_logit <= 1e-3 and d_sig <= 1e-3


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_end_to_end_parity(parity_run, ref):
    """The warp is the clamped final flow: per direction its error is bounded by the flow tolerance (1e-3 of
    the pre-clamp max|ref|, which reaches 18 in the image-1 -> image-0 half on fake weights). Certainties
    (after sigmoid and masks) within 1e-3, except cells whose flow sits on the |flow| <= 1 mask's edge."""
    _, warp, certainty = parity_run
    assert warp.shape == (1152, 3072, 4) and certainty.shape == (1152, 3072)
    got_w, got_c = warp[::16, ::16], certainty[::16, ::16]
    want_w, want_c = ref["warp_sub"], ref["certainty_sub"]
    for i, half in enumerate((slice(0, 96), slice(96, 192))):
        d, _ = _report(f"warp_sub, direction {i}->{1 - i}", got_w[:, half], want_w[:, half])
        assert d <= 1e-3 * np.abs(ref["pass1_s1_flow"][i]).max()
    flipped = (got_c == 0) != (want_c == 0)  # one side masked: |flow| > 1 by less than the flow error
    edge = np.abs(np.abs(want_w) - 1).min(axis=-1) <= 1e-3 * np.abs(ref["pass1_s1_flow"]).max()
    assert (edge | ~flipped).all()
    print(f"certainty_sub: {flipped.sum()} of {flipped.size} cells masked on one side only (flow on the edge)")
    d_cert, _ = _report("certainty_sub (other cells)", got_c[~flipped], want_c[~flipped])
    assert d_cert <= 1e-3
    from gimsfm.models.dkm import kde

    pts = warp[::32, ::32].reshape(-1, 4)
    _report("kde_points", pts, ref["kde_points"])
    d_kde, rel_kde = _report("kde_density (own warp)", kde(torch.from_numpy(pts)).numpy(), ref["kde_density"])
    assert rel_kde <= 1e-2


# ------------------------------------------------------------------------------- pipelines end to end
DEMO = Path(__file__).resolve().parents[1] / "scenes" / "sacre_coeur" / "images"
SMALL = "resize=256,num_samples=400"  # bounded-memory mode, a few seconds per pair


@pytest.fixture(scope="module")
def image_pair(tmp_path_factory, inputs) -> tuple[Path, Path]:
    import cv2

    d = tmp_path_factory.mktemp("dkm_pair")
    cv2.imwrite(str(d / "a.png"), inputs["image0_rgb"][..., ::-1])
    cv2.imwrite(str(d / "b.png"), inputs["image1_rgb"][..., ::-1])
    return d / "a.png", d / "b.png"


def test_match_cli_small(fake_ckpt, image_pair, tmp_path):
    """`gimsfm match` with the fake checkpoint in bounded-memory mode: matches of the right form, inside both
    images (image 1's black padding is never matched), reproducible with the same seed."""
    a, b = image_pair
    runs = []
    for i in range(2):
        out = tmp_path / f"m{i}"
        run_cli("match", a, b, "--matcher", f"gim-dkm:{fake_ckpt}@{SMALL}", "--out", out)
        runs.append(json.loads((out / "matches.json").read_text()))
    res = runs[0]
    k0, k1, s = np.array(res["kpts0"]), np.array(res["kpts1"]), np.array(res["scores"])
    n = res["num_matches"]
    assert 0 < n <= 400 and k0.shape == (n, 2) and k1.shape == (n, 2) and s.shape == (n,)
    assert (s > 0).all() and (s <= 1).all()
    assert (k0 >= -0.5).all() and (k0[:, 0] < 512 - 0.5).all() and (k0[:, 1] < 384 - 0.5).all()
    assert (k1 >= -0.5).all() and (k1[:, 0] < 352 - 0.5).all() and (k1[:, 1] < 416 - 0.5).all()
    assert runs[1]["kpts0"] == res["kpts0"] and runs[1]["scores"] == res["scores"]


@pytest.mark.slow
def test_reconstruct_and_bench_on_fake_checkpoint(fake_ckpt, tmp_path):
    """reconstruct (3 demo images) and bench zeb (2 pairs) run end to end with gim-dkm; outputs have hloc's
    layout (quality is meaningless on fake weights, so mapping may register nothing: exit 0 or 4)."""
    import h5py

    from gimsfm.utils.h5io import list_h5_names, read_features, read_matches

    spec = f"gim-dkm:{fake_ckpt}@{SMALL}"
    images = tmp_path / "images"
    images.mkdir()
    names = sorted(p.name for p in DEMO.iterdir())[:3]
    for n in names:
        (images / n).symlink_to(DEMO / n)
    proc = run_cli("reconstruct", images, "--out", tmp_path / "rec", "--matcher", spec, "--device", "cpu",
                   check=False)
    assert proc.returncode in (0, 4), proc.stderr[-500:]
    summary = json.loads((tmp_path / "rec" / "summary.json").read_text())
    d = summary["dense_keypoints"]
    assert d["matched_points"] == 2 * d["raw_matches"] > 0
    assert d["keypoints"] + d["keypoints_merged"] == d["matched_points"]
    with h5py.File(tmp_path / "rec" / "features.h5") as f:
        assert set(f) == set(names)
        assert sum(len(f[n]["keypoints"]) for n in f) == d["keypoints"]
    assert len(list_h5_names(tmp_path / "rec" / "matches.h5")) == 3
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            idx, _ = read_matches(tmp_path / "rec" / "matches.h5", a, b)
            for col, n in ((0, a), (1, b)):
                assert idx[:, col].max(initial=-1) < len(read_features(tmp_path / "rec" / "features.h5", n)["keypoints"])

    zeb = tmp_path / "zeb"
    run_cli("bench", "zeb", "--data", data_root() / "pose" / "middlebury_temple", "--matcher", spec,
            "--no-baseline", "--max-pairs", "2", "--out", zeb)
    res = json.loads((zeb / "results.json").read_text())
    assert spec in json.dumps(res)
    assert (zeb / "results.md").is_file()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu(fake_ckpt, inputs):
    """`--device cuda` runs the same code: the dense output agrees with the CPU run."""
    from gimsfm.matchers.registry import get_matcher

    outs = []
    for device in ("cpu", "cuda"):
        m = get_matcher(f"gim-dkm:{fake_ckpt}@{SMALL}", device=device)
        warp, cert, _, _ = m.dense_warp(inputs["image0_rgb"], inputs["image1_rgb"])
        outs.append((warp.cpu().numpy(), cert.cpu().numpy()))
        assert len(m.match_images(inputs["image0_rgb"], inputs["image1_rgb"])) > 0
    (w0, c0), (w1, c1) = outs
    both = (c0 > 0) & (c1 > 0)
    assert np.abs(w0 - w1)[both].max() <= 1e-2 and np.abs(c0 - c1)[both].max() <= 1e-2
