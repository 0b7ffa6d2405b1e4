"""`gim-loftr` (LoFTR with GIM's ResNet-50 FPN backbone): parity with the reference implementation on the fake
checkpoint of ../shared/fixtures/gim_reference, layer by layer and end to end, and the pipelines on it.

The fake checkpoint is built at test time with the fixture's make_fake_ckpt.py (never committed) and loaded with
`get_matcher("gim-loftr:PATH")`, the code path a user's file takes. Tolerances are the fixture README's
(`1e-4 max|ref|` for features, `1e-3 max|ref|` for the dual-softmax confidences, exact integers except where the
reference's own gap is below our float error). `pytest -s` prints the max differences. Runtime on 2 shared CPU
cores: about 1 min (one full-size network run at 512x384 + 416x352, the pipeline runs at 160 px).
"""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from gimsfm.matchers.release import RELEASE_FILES
from helpers import fake_release_checkpoint, gim_fixture, run_cli

DEMO = Path(__file__).resolve().parents[1] / "scenes" / "sacre_coeur" / "images"
WIN = (slice(12, 20), slice(16, 24))  # the fixture's window on the coarse grid
MAXDIFF: dict[str, tuple[float, float]] = {}


@pytest.fixture(scope="module")
def fx() -> Path:
    return gim_fixture("gim_loftr")


@pytest.fixture(scope="module")
def ckpt(fx, tmp_path_factory) -> Path:
    return fake_release_checkpoint(fx, "gim_loftr", tmp_path_factory.mktemp("gimloftr") / RELEASE_FILES["gim-loftr"])


@pytest.fixture(scope="module")
def matcher(ckpt):
    from gimsfm.matchers import get_matcher

    # native size (the fixture images are multiples of 8) and threshold 0, the reference's second pass
    return get_matcher(f"gim-loftr:{ckpt}@resize=0,certainty_threshold=0", device="cpu")


@pytest.fixture(scope="module")
def ref(fx):
    return dict(np.load(fx / "gim_loftr" / "outputs.npz"))


@pytest.fixture(scope="module")
def inputs(fx):
    return dict(np.load(fx / "inputs.npz"))


@pytest.fixture(scope="module")
def out(matcher, inputs):
    x = [matcher.to_tensor(inputs[f"image{i}_rgb"])[0] for i in (0, 1)]
    torch.manual_seed(0)
    return {k: v.cpu().numpy() for k, v in matcher.model(x[0], x[1], thr=0.0, keep=True).items()}


def close(name: str, got: np.ndarray, want: np.ndarray, rel: float) -> None:
    """|got - want| <= rel * max|want|, recorded for the report."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, (name, got.shape, want.shape)
    diff = float(np.abs(got - want).max()) if want.size else 0.0
    scale = float(np.abs(want).max()) if want.size else 0.0
    MAXDIFF[name] = (diff, scale)
    print(f"{name}: max |diff| {diff:.3g} (max |ref| {scale:.3g})")
    assert diff <= rel * scale, f"{name}: {diff:.3g} > {rel} * {scale:.3g}"


def test_backbone_fpn_and_positional_encoding(out, ref):
    for i in "01":
        for level, f in (("1", 4), ("2", 2), ("3", 1)):
            rows, cols = slice(WIN[0].start * f, WIN[0].stop * f), slice(WIN[1].start * f, WIN[1].stop * f)
            close(f"enc_layer{level}_{i}", out[f"layer{level}{i}"][0, :16, rows, cols], ref[f"enc_layer{level}_{i}"],
                  1e-4)
        close(f"feat_c{i}_crop", out[f"coarse{i}"][0][:, WIN[0], WIN[1]], ref[f"feat_c{i}_crop"], 1e-4)
        close(f"feat_f{i}_crop", out[f"fine{i}"][0, :32, 48:80, 64:96], ref[f"feat_f{i}_crop"], 1e-4)
    from gimsfm.models.loftr import sine_position_encoding

    for i in "01":
        c = out[f"coarse{i}"]
        pe = sine_position_encoding(256, *c.shape[-2:], torch.device("cpu")).numpy()
        close(f"posenc_c{i}_crop", (c + pe)[0, :32, WIN[0], WIN[1]], ref[f"posenc_c{i}_crop"], 1e-4)


def test_coarse_transformer_and_confidence(out, ref):
    for i in "01":
        close(f"coarse_tokens{i}", out[f"tokens{i}"][::37], ref[f"coarse_tokens{i}"], 1e-4)
    conf = out["conf"]
    close("conf_head", conf[:64, :64], ref["conf_head"], 1e-3)
    close("conf_rowmax", conf.max(1), ref["conf_rowmax"], 1e-3)
    close("conf_colmax", conf.max(0), ref["conf_colmax"], 1e-3)
    err = 1e-3 * float(ref["conf_rowmax"].max())
    # argmax: exact wherever the top-1/top-2 gap exceeds our float error
    flips = conf.argmax(1) != ref["conf_rowargmax"]
    assert not (flips & (ref["conf_rowgap"] > err)).any()
    top2 = np.sort(conf, 0)[-2:]
    flips = conf.argmax(0) != ref["conf_colargmax"]
    assert not (flips & (top2[1] - top2[0] > err)).any()
    print(f"argmax flips: rows {int((conf.argmax(1) != ref['conf_rowargmax']).sum())}, "
          f"cols {int(flips.sum())} (all below the gap tolerance)")


def test_coarse_and_fine_matches_threshold_0(out, ref):
    for k in ("i_ids", "j_ids"):
        np.testing.assert_array_equal(out[k], ref[f"thr0_{k}"])
    for k in ("mkpts0_c", "mkpts1_c"):
        np.testing.assert_array_equal(out[k], ref[f"thr0_{k}"])
    close("thr0_mconf", out["mconf"], ref["thr0_mconf"], 1e-3)
    close("thr0_fine_feat0_head", out["fine_win0"], ref["thr0_fine_feat0_head"], 1e-4)
    close("thr0_fine_feat1_head", out["fine_win1"], ref["thr0_fine_feat1_head"], 1e-4)
    close("thr0_expec_f", out["expec_f"], ref["thr0_expec_f"], 1e-4)
    close("thr0_mkpts1_f", out["mkpts1_f"], ref["thr0_mkpts1_f"], 1e-4)


def test_end_to_end_through_the_matcher(matcher, inputs, ref):
    """`match_images` (the pipelines' entry point) returns the reference's matches in pixels: 10 at threshold 0
    and none at GIM's released threshold 0.2 (fake weights keep every confidence below 4.3e-4)."""
    pm = matcher.match_images(inputs["image0_rgb"], inputs["image1_rgb"])
    order = np.lexsort(ref["thr0_mkpts0_f"].T[::-1])
    mine = np.lexsort(pm.kpts0.T[::-1])
    close("e2e_thr0_mkpts0_f", pm.kpts0[mine], ref["thr0_mkpts0_f"][order], 1e-6)
    close("e2e_thr0_mkpts1_f", pm.kpts1[mine], ref["thr0_mkpts1_f"][order], 1e-4)
    close("e2e_thr0_mconf", pm.scores[mine], ref["thr0_mconf"][order], 1e-3)
    from gimsfm.matchers import get_matcher

    released = get_matcher(f"gim-loftr:{matcher.conf['weights']}@resize=0", device="cpu")
    assert len(released.match_images(inputs["image0_rgb"], inputs["image1_rgb"])) == len(ref["real_mconf"]) == 0


def test_found_by_name_in_the_weights_folder(ckpt, monkeypatch):
    from gimsfm.matchers import get_matcher
    from gimsfm.matchers.registry import list_matchers

    monkeypatch.setenv("GIMSFM_WEIGHTS", str(ckpt.parent))
    assert {e.name: e for e in list_matchers()}["gim-loftr"].available()
    assert get_matcher("gim-loftr", device="cpu").conf["weights"] == str(ckpt)


def test_checkpoint_layouts_load_the_same(ckpt, tmp_path):
    """A bare state dict and the `matcher.` prefix some exports use load like the release layout."""
    from gimsfm.matchers import get_matcher

    sd = torch.load(ckpt, weights_only=True)["state_dict"]
    bare = tmp_path / "bare.ckpt"
    torch.save({k[len("model."):]: v for k, v in sd.items()}, bare)
    m = get_matcher(f"gim-loftr:{bare}", device="cpu")
    w = m.model.backbone.encode.conv1.weight
    assert torch.equal(w, sd["model.backbone.encode.conv1.weight"])


def test_bad_checkpoints_are_one_line_errors(ckpt, tmp_path, fx):
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(ckpt.read_bytes()[: 1 << 20])
    proc = run_cli("match", DEMO / "02928139_3448003521.jpg", DEMO / "03903474_1471484089.jpg", "--out",
                   tmp_path / "m", "--matcher", f"gim-loftr:{truncated}", check=False)
    assert proc.returncode == 2 and "gim-loftr" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    sd = torch.load(ckpt, weights_only=True)["state_dict"]
    del sd["model.loftr_fine.layers.1.merge.weight"]
    missing = tmp_path / "missing.ckpt"
    torch.save({"state_dict": sd}, missing)
    proc = run_cli("match", DEMO / "02928139_3448003521.jpg", DEMO / "03903474_1471484089.jpg", "--out",
                   tmp_path / "m", "--matcher", f"gim-loftr:{missing}", check=False)
    assert proc.returncode == 2 and "1 keys missing" in proc.stderr, proc.stderr


@pytest.mark.slow
def test_pipelines_run_on_the_fake_checkpoint(ckpt, tmp_path):
    """match / reconstruct / bench zeb with gim-loftr end to end at 160 px (quality is meaningless on fake
    weights: LoFTR's mutual nearest neighbours of near-uniform confidences fit no geometry)."""
    spec = f"gim-loftr:{ckpt}@resize=160,certainty_threshold=0"
    a, b = DEMO / "02928139_3448003521.jpg", DEMO / "03903474_1471484089.jpg"
    run_cli("match", a, b, "--out", tmp_path / "m", "--matcher", spec)
    res = json.loads((tmp_path / "m" / "matches.json").read_text())
    assert res["num_matches"] > 0 and len(res["kpts0"]) == len(res["kpts1"]) == res["num_matches"]
    k1 = np.asarray(res["kpts1"])
    assert (k1 >= -0.5).all() and (k1[:, 0] < res["image_size1"][0]).all()

    images = tmp_path / "images"
    images.mkdir()
    for p in sorted(DEMO.iterdir())[:3]:
        (images / p.name).symlink_to(p)
    proc = run_cli("reconstruct", images, "--out", tmp_path / "rec", "--matcher", spec, "--device", "cpu",
                   check=False)
    # no pair verifies on fake weights: exit 4 with one line, after the dense stages wrote hloc files
    assert proc.returncode == 4 and "geometric verification" in proc.stderr, proc.stderr[-500:]
    summary = json.loads((tmp_path / "rec" / "summary.json").read_text())
    d = summary["dense_keypoints"]
    assert d["matched_points"] == 2 * d["raw_matches"] > 0 and d["keypoints"] + d["keypoints_merged"] == \
        d["matched_points"]
    with h5py.File(tmp_path / "rec" / "features.h5") as f:
        assert set(f) == {p.name for p in images.iterdir()}
        assert sum(len(f[n]["keypoints"]) for n in f) == d["keypoints"]
    from gimsfm.utils.h5io import list_h5_names, read_features, read_matches

    names = sorted(p.name for p in images.iterdir())
    assert len(list_h5_names(tmp_path / "rec" / "matches.h5")) == 3
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            idx, _ = read_matches(tmp_path / "rec" / "matches.h5", a, b)
            for col, n in ((0, a), (1, b)):
                assert idx[:, col].max(initial=-1) < len(read_features(tmp_path / "rec" / "features.h5", n)["keypoints"])

    from gimsfm.bench.suites import data_root

    zeb = tmp_path / "zeb"
    run_cli("bench", "zeb", "--data", data_root() / "pose" / "middlebury_temple", "--matcher", spec,
            "--no-baseline", "--max-pairs", "2", "--out", zeb)
    res = json.loads((zeb / "results.json").read_text())
    print(json.dumps(res)[:600])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_gives_the_cpu_matches(ckpt, inputs, ref):
    """`--device cuda` runs the same code on the GPU (TF32 off: parity, not speed, is checked here)."""
    from gimsfm.matchers import get_matcher

    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    gpu = get_matcher(f"gim-loftr:{ckpt}@resize=0,certainty_threshold=0", device="cuda")
    pm = gpu.match_images(inputs["image0_rgb"], inputs["image1_rgb"])
    order, mine = np.lexsort(ref["thr0_mkpts0_f"].T[::-1]), np.lexsort(pm.kpts0.T[::-1])
    close("cuda_thr0_mkpts1_f", pm.kpts1[mine], ref["thr0_mkpts1_f"][order], 1e-4)
    close("cuda_thr0_mconf", pm.scores[mine], ref["thr0_mconf"][order], 1e-3)


def test_oversized_images_are_refused_in_one_line(matcher):
    from gimsfm.errors import InputError

    with pytest.raises(InputError, match="resize=640"):
        matcher._check_memory((8000, 6000), (8000, 6000))
