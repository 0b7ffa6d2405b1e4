"""`gim-lightglue` (GIM's released SuperPoint + LightGlue): parity with the reference implementation on the fake
checkpoint of ../shared/fixtures/gim_reference, the release-checkpoint loader's errors, and the pipelines.

The fake checkpoint is built at test time with the fixture's own make_fake_ckpt.py (never committed) and loaded
through `get_matcher("gim-lightglue:PATH")`, the code path a user's file takes. Tolerances are the fixture
README's. Parity tests print their max differences (`pytest -s`). Runtime on 2 shared CPU cores: about 2-3 min,
most of it the full-size (2048 x 2048 keypoints) matcher run and the pipeline runs (marked slow).
"""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from gimsfm.errors import InputError
from gimsfm.utils.h5io import list_h5_names
from gimsfm.matchers.release import (RELEASE_FILES, load_release_state_dict, release_signature,
                                     resolve_release_weights)
from helpers import fake_release_checkpoint, gim_fixture, run_cli

DEMO = Path(__file__).resolve().parents[1] / "scenes" / "sacre_coeur" / "images"
CROP = (slice(96, 160), slice(128, 192))  # the fixture's full-resolution window
MAXDIFF: dict[str, float] = {}


@pytest.fixture(scope="module")
def fx() -> Path:
    return gim_fixture("gim_lightglue")


@pytest.fixture(scope="module")
def ckpt(fx, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gimlg") / RELEASE_FILES["gim-lightglue"]
    return fake_release_checkpoint(fx, "gim_lightglue", out)


@pytest.fixture(scope="module")
def matcher(ckpt):
    from gimsfm.matchers import get_matcher

    return get_matcher(f"gim-lightglue:{ckpt}", device="cpu")


@pytest.fixture(scope="module")
def ref(fx):
    return dict(np.load(fx / "gim_lightglue" / "outputs.npz")), dict(np.load(fx / "inputs.npz"))


@pytest.fixture(scope="module", autouse=True)
def report_max_differences():
    yield
    if MAXDIFF:  # shown with `pytest -s`; the README quotes these
        print("\ngim-lightglue parity, max |ours - reference|:\n" + json.dumps(MAXDIFF, indent=1))


def check(name: str, got, want, tol: float, relative: bool = False) -> float:
    """max |got - want| <= tol (times max|want| when relative); records the difference."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, (name, got.shape, want.shape)
    d = float(np.abs(got - want).max()) if want.size else 0.0
    limit = tol * (float(np.abs(want).max()) if relative else 1.0)
    MAXDIFF[name] = max(MAXDIFF.get(name, 0.0), d)
    assert d <= limit, f"{name}: max diff {d:.3g} > {limit:.3g}"
    return d


@pytest.fixture(scope="module")
def detections(matcher, ref):
    """Each fixture image through SuperPoint, with the intermediate tensors, and in the stored keypoint order."""
    out, inp = ref
    result = []
    with torch.inference_mode():
        for i in (0, 1):
            grey = torch.from_numpy(inp[f"image{i}_gray"]).float()[None, None] / 255
            taps: dict[str, torch.Tensor] = {}
            pred = matcher.superpoint(grey, taps)
            kp = pred["keypoints"].numpy() + 0.5  # the reference's +0.5 convention
            index = {tuple(p): j for j, p in enumerate(kp)}
            stored = out[f"keypoints{i}"]
            order = [index.get(tuple(p), -1) for p in stored]  # our row of each stored keypoint
            result.append({"grey": grey, "taps": taps, "pred": pred, "kp": kp, "order": np.array(order)})
    return result


def test_release_signatures_equal_the_fixture_key_lists(fx):
    for name, folder in (("gim-lightglue", "gim_lightglue"), ("gim-loftr", "gim_loftr"), ("gim-dkm", "gim_dkm")):
        keys = json.loads((fx / folder / "keys.json").read_text())["keys"]
        sig = release_signature(name)
        assert list(sig) == [e["key"] for e in keys]
        assert all(sig[e["key"]] == tuple(e["shape"]) for e in keys)


def test_superpoint_parity_layer_by_layer(detections, ref):
    out, _ = ref
    for i, det in enumerate(detections):
        taps = det["taps"]
        check(f"gray{i}_input", det["grey"][0, 0][CROP], out[f"gray{i}_input"], 0)
        for layer, stride in (("conv1a", 1), ("conv2b", 2), ("conv3b", 4), ("conv4b", 8), ("convDb", 8),
                              ("convPb", 8)):
            want = out[f"sp_{layer}_{i}"]
            r, c = (slice(s.start // stride, s.stop // stride) for s in CROP)
            check(f"sp_{layer}", taps[layer][0, :want.shape[0], r, c], want, 1e-4, relative=True)
        for name in ("scores_dense", "scores_nms"):
            check(f"sp_{name}", taps[name][0][CROP], out[f"sp_{name}_{i}"], 1e-4, relative=True)
        # Keypoints as sets (near-ties may reorder rows), then everything per keypoint in the stored order.
        assert (det["order"] >= 0).all(), f"image {i}: {int((det['order'] < 0).sum())} stored keypoints not found"
        assert len(det["kp"]) == len(out[f"keypoints{i}"]) == 2048
        o = det["order"]
        check("keypoint_scores", det["pred"]["scores"].numpy()[o], out[f"keypoint_scores{i}"], 1e-4, relative=True)
        desc = det["pred"]["descriptors"].numpy()[o]
        check("descriptors_head", desc[:64], out[f"descriptors{i}_head"], 1e-4, relative=True)
        check("descriptors_cols", desc[:, :16], out[f"descriptors{i}_cols"], 1e-4, relative=True)
        # Rows whose order differs must be near-ties of the score (README "Ties").
        moved = np.nonzero(o != np.arange(len(o)))[0]
        scores = out[f"keypoint_scores{i}"]
        assert all(abs(scores[j] - scores[o[j]]) < 1e-6 for j in moved)


def test_lightglue_parity_on_the_stored_small_input(matcher, ref):
    out, _ = ref
    sizes = [torch.tensor([512.0, 384.0]), torch.tensor([352.0, 416.0])]  # (W, H) of the fixture images
    kp = [torch.from_numpy(out[f"keypoints{i}"][:64])[None] for i in (0, 1)]
    desc = [torch.from_numpy(out[f"descriptors{i}_head"])[None] for i in (0, 1)]
    taps: dict = {}
    with torch.inference_mode():
        pred = matcher.lightglue(kp[0], desc[0], sizes[0], kp[1], desc[1], sizes[1], taps)
    check("small_log_assignment", pred["log_assignment"][0], out["small_log_assignment"], 1e-3)
    check("small_desc_final", taps["layer8"][0][0], out["small_desc0_final"], 1e-4)
    check("small_desc_final", taps["layer8"][1][0], out["small_desc1_final"], 1e-4)
    assert (pred["matches0"][0].numpy() == out["small_matches0"]).all()
    check("small_matching_scores0 (log)", np.log(pred["matching_scores0"][0].numpy().clip(1e-30)),
          np.log(out["small_matching_scores0"].clip(1e-30)), 1e-3)
    for i in (0, 1):  # (cos, sin) of the first head, with the reference's swapped-size centring
        check("lg_posenc_head", taps[f"posenc{i}"][:, 0, 0], out[f"lg_posenc{i}_head"], 1e-5)


@pytest.mark.slow
def test_full_matcher_parity_on_own_detections(matcher, detections, ref):
    """The whole pipeline of the fixture: our 2048 keypoints per image (put in the stored order) through the
    9-layer matcher; per-layer descriptors, the log-assignment, its row/column maxima and the matches."""
    out, _ = ref
    sizes = [torch.tensor([512.0, 384.0]), torch.tensor([352.0, 416.0])]
    args = []
    for i, det in enumerate(detections):
        o = torch.from_numpy(det["order"])
        args += [torch.from_numpy(det["kp"])[o][None], det["pred"]["descriptors"][o][None], sizes[i]]
    taps: dict = {}
    with torch.inference_mode():
        pred = matcher.lightglue(*args, taps=taps)
    for layer in (0, 4, 8):
        for i in (0, 1):
            check(f"lg_layer{layer}_desc_head", taps[f"layer{layer}"][i][0, :64], out[f"lg_layer{layer}_desc{i}_head"],
                  1e-4)
    la = pred["log_assignment"][0].numpy()
    block = la[:-1, :-1]
    check("log_assignment_head", la[:64, :64], out["log_assignment_head"], 1e-3)
    check("log_assignment_dustbin", la[:-1, -1], out["log_assignment_dustbin_col"], 1e-3)
    check("log_assignment_dustbin", la[-1, :-1], out["log_assignment_dustbin_row"], 1e-3)
    check("log_assignment_rowmax", block.max(1), out["log_assignment_rowmax"], 1e-3)
    check("log_assignment_colmax", block.max(0), out["log_assignment_colmax"], 1e-3)
    top2 = np.sort(block, 1)[:, -2:]
    check("log_assignment_rowgap", top2[:, 1] - top2[:, 0], out["log_assignment_rowgap"], 1e-3)
    # Arg-maxima: exact wherever the gap between the best two exceeds the observed float error.
    err = MAXDIFF["log_assignment_rowmax"] * 2 + 1e-6
    rows = out["log_assignment_rowgap"] > err
    assert (block.argmax(1)[rows] == out["log_assignment_rowargmax"][rows]).all()
    colsorted = np.sort(block, 0)
    cols = colsorted[-1] - colsorted[-2] > err
    assert (block.argmax(0)[cols] == out["log_assignment_colargmax"][cols]).all()
    MAXDIFF["colargmax flipped (gap < err)"] = float((block.argmax(0) != out["log_assignment_colargmax"]).sum())
    # Released threshold: no match (as the reference); threshold 0: the same 2 mutual matches.
    assert (pred["matches0"][0].numpy() == out["matches0"]).all()
    assert (pred["matches1"][0].numpy() == out["matches1"]).all()
    from kornia.feature.lightglue import filter_matches

    m0, _, s0, _ = filter_matches(pred["log_assignment"], 0.0)
    assert (m0[0].numpy() == out["thr0_matches0"]).all()
    valid = out["thr0_matches0"] > -1
    assert valid.sum() == 2
    check("thr0_matching_scores0 (log)", np.log(s0[0].numpy()[valid]), np.log(out["thr0_matching_scores0"][valid]),
          1e-3)


def test_matcher_api_on_the_fixture_images(matcher, detections, ref):
    """extract() on RGB input: the reference's keypoints, in OpenCV pixel centres (-0.5), descriptors as
    stored. The RGB->grey conversion differs from libpng's by <= 1 level (README), so scores differ slightly."""
    out, inp = ref
    for i in (0, 1):
        f = matcher.extract(inp[f"image{i}_gray"])  # the reference's grey image: exact keypoints
        np.testing.assert_array_equal(f["keypoints"] + 0.5, detections[i]["kp"])
        assert f["descriptors"].shape == (2048, 256) and f["descriptors"].dtype == np.float32
        assert tuple(f["image_size"]) == inp[f"image{i}_rgb"].shape[1::-1]
        rgb = matcher.extract(inp[f"image{i}_rgb"])
        common = len({tuple(p) for p in rgb["keypoints"]} & {tuple(p) for p in f["keypoints"]})
        assert common > 0.8 * 2048, common
    assert matcher.feature_key.startswith("gim-superpoint-")


def test_small_and_blank_images(matcher):
    assert len(matcher.extract(np.zeros((12, 12, 3), np.uint8))["keypoints"]) == 0
    f = matcher.extract(np.full((64, 80), 128, np.uint8))
    assert f["keypoints"].shape[1] == 2 and f["descriptors"].shape[1] == 256
    m0, s0 = matcher.match(matcher.extract(np.zeros((12, 12), np.uint8)), f)
    assert m0.shape == (0,) and s0.shape == (0,)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_runs_the_same_code(ckpt, matcher, ref):
    """--device cuda: the same modules on the GPU give the reference's outputs (cuDNN may use TF32 convolutions,
    so keypoints are compared as sets with a margin)."""
    from gimsfm.matchers import get_matcher

    out, inp = ref
    gpu = get_matcher(f"gim-lightglue:{ckpt}", device="cuda")
    assert next(gpu.lightglue.parameters()).is_cuda and next(gpu.superpoint.parameters()).is_cuda
    f_gpu, f_cpu = gpu.extract(inp["image0_gray"]), matcher.extract(inp["image0_gray"])
    common = len({tuple(p) for p in f_gpu["keypoints"]} & {tuple(p) for p in f_cpu["keypoints"]})
    assert common > 0.95 * len(f_cpu["keypoints"]), common
    sizes = [torch.tensor([512.0, 384.0]).cuda(), torch.tensor([352.0, 416.0]).cuda()]
    kp = [torch.from_numpy(out[f"keypoints{i}"][:64])[None].cuda() for i in (0, 1)]
    desc = [torch.from_numpy(out[f"descriptors{i}_head"])[None].cuda() for i in (0, 1)]
    with torch.inference_mode():
        pred = gpu.lightglue(kp[0], desc[0], sizes[0], kp[1], desc[1], sizes[1])
    check("cuda small_log_assignment", pred["log_assignment"][0].cpu(), out["small_log_assignment"], 1e-2)
    m0, s0 = gpu.match(f_gpu, gpu.extract(inp["image1_gray"]))
    assert m0.shape == (len(f_gpu["keypoints"]),) and s0.dtype == np.float32


# ------------------------------------------------------------------ checkpoints


def _signature_file(path: Path, name: str, drop: int = 0, extra: bool = False) -> Path:
    """A checkpoint with `name`'s layout (zeros), `drop` keys fewer and optionally one unknown key."""
    sd = {k: torch.zeros(shape) for k, shape in release_signature(name).items()}
    for k in list(sd)[:drop]:
        del sd[k]
    if extra:
        sd["model.unknown.weight"] = torch.zeros(3)
    torch.save({"state_dict": sd, "epoch": 1}, path)
    return path


def test_bad_checkpoints_name_what_is_wrong(ckpt, tmp_path):
    blob = ckpt.read_bytes()
    (tmp_path / "truncated.ckpt").write_bytes(blob[: len(blob) // 3])
    corrupt = bytearray(blob)
    corrupt[len(blob) // 2: len(blob) // 2 + 64] = b"\x00" * 64
    (tmp_path / "corrupt.ckpt").write_bytes(bytes(corrupt))
    (tmp_path / "text.ckpt").write_text("not a checkpoint\n")
    (tmp_path / "empty.ckpt").write_bytes(b"")
    torch.save({"state_dict": {"a": 1}}, tmp_path / "notensors.ckpt")
    cases = {
        "missing.ckpt": "checkpoint not found",
        "truncated.ckpt": "truncated or corrupt",
        "corrupt.ckpt": "fails its checksum",
        "text.ckpt": "not a gim-lightglue checkpoint (no torch file",
        "empty.ckpt": "is empty",
        "notensors.ckpt": "not a checkpoint with a state_dict of tensors",
        _signature_file(tmp_path / "loftr.ckpt", "gim-loftr").name:
            "275 keys missing, looks like a gim-loftr checkpoint",
        _signature_file(tmp_path / "dkm.ckpt", "gim-dkm").name: "looks like a gim-dkm checkpoint",
        _signature_file(tmp_path / "partial.ckpt", "gim-lightglue", drop=2, extra=True).name:
            "2 keys missing (superpoint.conv1a.bias, superpoint.conv1a.weight), 1 unexpected (model.unknown.weight)",
    }
    sd = {k: torch.zeros(s) for k, s in release_signature("gim-lightglue").items()}
    sd["model.log_assignment.8.final_proj.weight"] = torch.zeros(256, 128)
    torch.save(sd, tmp_path / "shape.ckpt")
    cases["shape.ckpt"] = "1 tensors have the wrong shape (model.log_assignment.8.final_proj.weight (256, 128)"
    for file, message in cases.items():
        with pytest.raises(InputError, match=None) as err:
            load_release_state_dict(tmp_path / file, "gim-lightglue")
        assert message in str(err.value) and "\n" not in str(err.value), (file, str(err.value))
    # Through the CLI: one line, exit 2, no traceback.
    proc = run_cli("match", DEMO / "02928139_3448003521.jpg", DEMO / "03903474_1471484089.jpg", "--out",
                   tmp_path / "m", "--matcher", f"gim-lightglue:{tmp_path / 'truncated.ckpt'}", check=False)
    assert proc.returncode == 2 and "truncated or corrupt" in proc.stderr.strip().splitlines()[-1]


def test_checkpoint_layouts_accepted(ckpt, tmp_path):
    """A Lightning checkpoint with pickled configuration objects (read as inert placeholders, nothing runs) and
    a bare state dict are accepted and give the same tensors."""
    import argparse

    sd = load_release_state_dict(ckpt, "gim-lightglue")
    torch.save({"state_dict": sd, "hyper_parameters": argparse.Namespace(lr=1e-4), "epoch": 7},
               tmp_path / "lightning.ckpt")
    torch.save(dict(sd), tmp_path / "bare.ckpt")
    for f in ("lightning.ckpt", "bare.ckpt"):
        other = load_release_state_dict(tmp_path / f, "gim-lightglue")
        assert list(other) == list(sd) and all(torch.equal(other[k], sd[k]) for k in sd)


def test_weights_found_by_name(ckpt, tmp_path, monkeypatch):
    from gimsfm.matchers.registry import REGISTRY, list_matchers

    list_matchers()
    monkeypatch.setenv("GIMSFM_WEIGHTS", str(tmp_path))
    assert not REGISTRY["gim-lightglue"].available()
    with pytest.raises(InputError, match=f"looked for {tmp_path / RELEASE_FILES['gim-lightglue']}"):
        resolve_release_weights("gim-lightglue", None)
    proc = run_cli("matchers")
    assert f"gim-lightglue weights: looked for {tmp_path / RELEASE_FILES['gim-lightglue']}" in proc.stdout
    img = DEMO / "02928139_3448003521.jpg"
    proc = run_cli("match", img, img, "--out", tmp_path / "m", "--matcher", "gim-lightglue", check=False)
    assert proc.returncode == 2 and "not available (looked for" in proc.stderr.strip().splitlines()[-1]
    (tmp_path / RELEASE_FILES["gim-lightglue"]).symlink_to(ckpt)
    assert REGISTRY["gim-lightglue"].available()
    assert resolve_release_weights("gim-lightglue", None) == tmp_path / RELEASE_FILES["gim-lightglue"]
    assert f"gim-lightglue weights: {tmp_path / RELEASE_FILES['gim-lightglue']}" in run_cli("matchers").stdout
    monkeypatch.delenv("GIMSFM_WEIGHTS")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    from gimsfm.matchers.release import weights_dir

    assert weights_dir() == tmp_path / "cache" / "gimsfm" / "weights"


def test_own_weight_files_errors(tmp_path):
    """The project's own exported weights: a truncated file or a foreign one is one line, exit 2."""
    from gimsfm.matchers.lightglue import BASE_WEIGHTS
    from gimsfm.models import load_exported

    blob = BASE_WEIGHTS.read_bytes()
    (tmp_path / "trunc.pt").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(InputError, match="truncated or corrupt"):
        load_exported(tmp_path / "trunc.pt")
    obj = torch.load(BASE_WEIGHTS, map_location="cpu", weights_only=False)
    obj["state_dict"].pop(next(iter(obj["state_dict"])))
    torch.save(obj, tmp_path / "partial.pt")
    with pytest.raises(InputError, match="does not fit its model: 1 keys missing"):
        load_exported(tmp_path / "partial.pt")
    _signature_file(tmp_path / "gim.ckpt", "gim-lightglue")
    img = DEMO / "02928139_3448003521.jpg"
    for f, message in (("trunc.pt", "truncated or corrupt"), ("gim.ckpt", "not a gimsfm weights file")):
        proc = run_cli("match", img, img, "--out", tmp_path / "m", "--matcher", f"sift-lightglue-base:{tmp_path / f}",
                       check=False)
        assert proc.returncode == 2 and message in proc.stderr.strip().splitlines()[-1], proc.stderr


# ------------------------------------------------------------------ pipelines (fake weights: form, not quality)

FAST = "@features.max_keypoints=256,features.resize_max=640"


def test_match_cli(ckpt, tmp_path):
    img0, img1 = DEMO / "02928139_3448003521.jpg", DEMO / "03903474_1471484089.jpg"
    run_cli("match", img0, img1, "--out", tmp_path / "m", "--matcher", f"gim-lightglue:{ckpt}{FAST},filter_threshold=0")
    res = json.loads((tmp_path / "m" / "matches.json").read_text())
    assert res["matcher"].startswith("gim-lightglue:")
    k0, k1 = np.array(res["kpts0"]).reshape(-1, 2), np.array(res["kpts1"]).reshape(-1, 2)
    assert len(k0) == len(k1) == len(res["scores"]) == res["num_matches"] > 0  # threshold 0: mutual NN
    assert (k0 >= -0.5).all() and (k0[:, 0] < res["image_size0"][0]).all() and (k0[:, 1] < res["image_size0"][1]).all()


@pytest.mark.slow
def test_reconstruct_cli(ckpt, tmp_path):
    """reconstruct on 3 demo images: features.h5 / matches.h5 in hloc's layout with SuperPoint features. Fake
    weights give (almost) no matches, so mapping fails, and must fail with the clean ReconstructionError."""
    images = tmp_path / "images"
    images.mkdir()
    names = sorted(p.name for p in DEMO.iterdir())[:3]
    for n in names:
        (images / n).write_bytes((DEMO / n).read_bytes())
    spec = f"gim-lightglue:{ckpt}{FAST},filter_threshold=0"
    proc = run_cli("reconstruct", images, "--out", tmp_path / "rec", "--matcher", spec, "--max-keypoints", 256,
                   "--resize-max", 640, check=False)
    assert proc.returncode in (0, 4), proc.stderr
    with h5py.File(tmp_path / "rec" / "features.h5") as f:
        assert sorted(f) == names and f.attrs["feature_key"].startswith("gim-superpoint-")
        g = f[names[0]]
        n = g["keypoints"].shape[0]
        assert 0 < n <= 256 and g["keypoints"].shape == (n, 2) and g["descriptors"].shape == (256, n)
        assert g["scores"].shape == (n,) and tuple(g["image_size"][()]) == (780, 1063)
    pairs = sorted(list_h5_names(tmp_path / "rec" / "matches.h5"))  # hloc's nested layout: name0/name1
    with h5py.File(tmp_path / "rec" / "matches.h5") as f:
        assert len(pairs) == 3 and all(f[p]["matches0"].dtype == np.int32 for p in pairs)


def _superpoint_map(matcher, spec: str, sift_map: Path, out: Path) -> Path:
    """A map for `spec` made from a real map (SIFT): the same model and keypoints, with gim-lightglue's
    SuperPoint descriptors sampled at them. Fake weights cannot build a map themselves (no matches)."""
    import shutil

    import cv2

    from gimsfm.models.superpoint import sample_descriptors_legacy
    from gimsfm.matchers.gim_lightglue import network_size
    from gimsfm.utils.io import read_image

    shutil.copytree(sift_map, out)
    run = json.loads((out / "run.json").read_text())
    run["config"]["matcher"] = spec
    run["config"]["max_keypoints"] = 512  # query keypoints: keeps the test's LightGlue runs small
    (out / "run.json").write_text(json.dumps(run))
    with h5py.File(out / "features.h5", "a") as f:
        f.attrs["feature_key"] = matcher.feature_key
        for name in f:
            image = read_image(Path(run["image_dir"]) / name, grayscale=True)
            h, w = image.shape
            wn, hn = network_size(w, h, matcher.conf["features"]["resize_max"])
            x = torch.from_numpy(cv2.resize(image, (wn, hn), interpolation=cv2.INTER_AREA)).float()[None, None] / 255
            kp = f[name]["keypoints"][()]
            with torch.inference_mode():
                _, dense = matcher.superpoint.dense(x)
                desc = sample_descriptors_legacy(torch.from_numpy((kp + 0.5) * [wn / w, hn / h] - 0.5).float(),
                                                 dense[0])
            del f[name]["descriptors"]
            f[name].create_dataset("descriptors", data=desc.numpy().T)
    return out


@pytest.mark.slow
def test_localize_cli(matcher, ckpt, tmp_path):
    """localize end to end with gim-lightglue: query features, retrieval, matching against the map images,
    2D-3D pose; fake weights cannot localise anything, so every query must fail cleanly and be logged."""
    names = sorted(p.name for p in DEMO.iterdir())
    (tmp_path / "map_images").mkdir()
    for n in names[:8]:
        (tmp_path / "map_images" / n).write_bytes((DEMO / n).read_bytes())
    # A small real map (any registered subset will do), cheap to build and to match against.
    run_cli("reconstruct", tmp_path / "map_images", "--out", tmp_path / "sift_map", "--matcher", "sift-nn",
            "--max-keypoints", 2048)
    spec = f"gim-lightglue:{ckpt}"
    _superpoint_map(matcher, spec, tmp_path / "sift_map", tmp_path / "map")
    q = tmp_path / "q"
    q.mkdir()
    (q / names[8]).write_bytes((DEMO / names[8]).read_bytes())
    run_cli("localize", "--map", tmp_path / "map", "--queries", q, "--out", tmp_path / "poses.txt",
            "--matcher", spec, "--num-db", 2)
    log = json.loads((tmp_path / "poses_log.json").read_text())
    assert [e["name"] for e in log] == [names[8]]
    for e in log:
        assert len(e["retrieved"]) > 0 and (e["success"] or e["reason"].startswith("too few 2D-3D inliers")), e
    lines = (tmp_path / "poses.txt").read_text().splitlines()
    assert len(lines) == sum(e["success"] for e in log) and all(len(ln.split()) == 8 for ln in lines)
    with h5py.File(tmp_path / "poses_work" / "query_features.h5") as f:
        # the map's settings (512 query keypoints, set above) with this checkpoint's SuperPoint
        assert f.attrs["feature_key"] == matcher.feature_key.replace("-n2048-", "-n512-")
        assert f[names[8]]["descriptors"].shape[0] == 256 and f[names[8]]["keypoints"].shape[0] <= 512


@pytest.mark.slow
def test_bench_zeb_cli(ckpt, tmp_path):
    from gimsfm.bench.suites import data_root

    data = data_root() / "pose" / "middlebury_temple"
    if not (data / "pairs.txt").is_file():
        pytest.skip(f"pose data not found at {data}")
    spec = f"gim-lightglue:{ckpt}"
    run_cli("bench", "zeb", "--data", data, "--matcher", spec, "--max-pairs", 2, "--max-side", 640,
            "--max-keypoints", 256, "--no-baseline", "--out", tmp_path / "zeb")
    res = json.loads((tmp_path / "zeb" / "results.json").read_text())
    r = res["matchers"][spec]
    assert r["pairs"] == 2 and set(r["mean"]) == {"auc@5", "auc@10", "auc@20"}
    assert r["datasets"]["middlebury_temple"]["sec_match_per_pair"] > 0 and res["peak_mb"] > 0
    per_pair = json.loads((tmp_path / "zeb" / "per_pair.json").read_text())[spec]["middlebury_temple"]
    assert len(per_pair) == 2 and all({"matches", "inliers", "err"} <= set(p) for p in per_pair)
