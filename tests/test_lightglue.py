"""The LightGlue model wrapper, the registered matcher `sift-lightglue-base` and `gimsfm bench speed`."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from gimsfm.errors import InputError
from gimsfm.matchers.lightglue import BASE_WEIGHTS
from gimsfm.models import build_model

REPO = Path(__file__).resolve().parents[1]


def _random_batch(n0=200, n1=150, seed=0):
    g = torch.Generator().manual_seed(seed)
    b = {}
    for s, n in (("0", n0), ("1", n1)):
        b[f"keypoints{s}"] = torch.rand(1, n, 2, generator=g) * torch.tensor([320.0, 240.0])
        b[f"scales{s}"] = torch.rand(1, n, generator=g) * 20 + 1
        b[f"oris{s}"] = (torch.rand(1, n, generator=g) - 0.5) * 6
        b[f"descriptors{s}"] = torch.nn.functional.normalize(torch.rand(1, n, 128, generator=g), dim=-1)
        b[f"image_size{s}"] = torch.tensor([[320.0, 240.0]])
    return b


def test_training_forward_equals_kornia_forward_without_pruning():
    from kornia.feature.lightglue import filter_matches

    torch.manual_seed(0)
    m = build_model("lightglue", {"n_layers": 3}).eval()
    m.set_inference(depth_confidence=-1, width_confidence=-1)
    b = _random_batch()
    with torch.no_grad():
        la = m(b)["log_assignment"][-1]
        ours = filter_matches(la, m.conf["filter_threshold"])[0]
    kornia = m.predict(b, prune=True)["matches0"]  # kornia's forward (pruning disabled above)
    assert torch.equal(ours, kornia)


def test_deep_supervision_outputs_every_layer():
    m = build_model("lightglue", {"n_layers": 3})
    out = m(_random_batch())
    assert len(out["log_assignment"]) == 3 and len(out["conf_logits0"]) == 2
    assert out["log_assignment"][0].shape == (1, 201, 151)


def test_unknown_model_name():
    with pytest.raises(InputError):
        build_model("nope")


def test_matcher_registered():
    from gimsfm.matchers.registry import list_matchers

    names = [e.name for e in list_matchers()]
    assert "sift-lightglue-base" in names


@pytest.mark.skipif(not BASE_WEIGHTS.is_file(), reason="weights not exported yet")
def test_candidate_weights_by_name(tmp_path):
    """NAME:WEIGHTS runs a registered learned matcher with other weights; the weights' content is part of its
    configuration (benchmark caches are keyed by it), so a re-export never reuses stale matches."""
    import shutil

    from gimsfm.matchers import get_matcher

    cand = tmp_path / "cand.pt"
    shutil.copy(BASE_WEIGHTS, cand)
    m = get_matcher(f"sift-lightglue-gim:{cand}", device="cpu")
    ref = get_matcher("sift-lightglue-base", device="cpu")
    assert m.registry_name == f"sift-lightglue-gim:{cand}" and m.conf["weights"] == str(cand)
    assert m.conf["weights_sha1"] == ref.conf["weights_sha1"]
    obj = torch.load(cand, weights_only=False)
    obj["state_dict"] = {k: v + 1 if v.is_floating_point() else v for k, v in obj["state_dict"].items()}
    torch.save(obj, cand)
    assert get_matcher(f"sift-lightglue-gim:{cand}", device="cpu").conf["weights_sha1"] != ref.conf["weights_sha1"]
    with pytest.raises(InputError, match="no weights"):
        get_matcher(f"sift-nn:{cand}")
    with pytest.raises(InputError, match="weights file not found"):
        get_matcher("sift-lightglue-gim:/nonexistent.pt")


def test_matcher_options_in_the_name():
    """NAME@KEY=VALUE,... sets a matcher's options (nested with dots) over the caller's conf; the options are
    part of the conf (so of benchmark cache keys); unknown keys and malformed items are input errors."""
    from gimsfm.matchers import get_matcher
    from gimsfm.matchers.registry import parse_matcher_spec

    assert parse_matcher_spec("sift-nn") == ("sift-nn", "", {})
    assert parse_matcher_spec("sift-nn@ratio=0.9,features.max_keypoints=512,mutual=false") == (
        "sift-nn", "", {"ratio": 0.9, "features": {"max_keypoints": 512}, "mutual": False})
    m = get_matcher("sift-nn@features.max_keypoints=512", {"features": {"max_keypoints": 1024, "root": False}})
    assert m.conf["features"] == {"max_keypoints": 512, "root": False}  # deep-merged, the name wins
    assert m.extractor.conf["max_keypoints"] == 512 and m.registry_name == "sift-nn@features.max_keypoints=512"
    for bad, msg in (("sift-nn@bogus=1", "no option 'bogus'"), ("sift-nn@features.bogus=1", "no option"),
                     ("sift-nn@ratio", "not KEY=VALUE"), ("sift-nn@ratio=[1", "cannot read"),
                     ("sift-lightglue-gim@weights=x.pt", "NAME:WEIGHTS")):
        with pytest.raises(InputError, match=msg):
            parse_matcher_spec(bad)
    if BASE_WEIGHTS.is_file():
        lg = get_matcher("sift-lightglue-base@depth_confidence=-1,width_confidence=-1,filter_threshold=0.2",
                         device="cpu")
        c = lg.model.net.conf
        assert (c.depth_confidence, c.width_confidence, c.filter_threshold) == (-1, -1, 0.2)


@pytest.mark.skipif(not BASE_WEIGHTS.is_file(), reason="weights not exported yet")
def test_base_matcher_on_a_homography_pair():
    from gimsfm.matchers import get_matcher
    from gimsfm.train import labels as L
    from gimsfm.train.datasets import VAL_TEXTURES, _rng, data_root, make_homography_pair, package_texture_photos
    from gimsfm.utils.io import read_image

    torch.set_num_threads(2)
    path = data_root() / "textures" / VAL_TEXTURES[0]  # held out of training
    # Without the data folder: a bundled photo (the base model never saw scikit-image's photos).
    photo = read_image(path, grayscale=True) if path.is_file() else package_texture_photos()["skimage_chelsea"]
    img0, img1, H = make_homography_pair(photo, _rng(123, "test"), {"max_rotation": 20, "p_full_rotation": 0.0,
                                                                     "max_zoom": 1.4})
    matcher = get_matcher("sift-lightglue-base", {"features": {"max_keypoints": 1024}}, device="cpu")
    pm = matcher.match_images(img0, img1)
    assert len(pm) >= 50
    proj, _ = L.warp_points_homography(pm.kpts0, H)
    err = np.linalg.norm(proj - pm.kpts1, axis=1)
    assert (err < 3.0).mean() >= 0.9, (err < 3.0).mean()


def test_bench_speed_cli(tmp_path):
    """Repeated -m, one value with options (their commas are not split), one comma list of names."""
    r = subprocess.run([sys.executable, "-m", "gimsfm", "bench", "speed", "-m", "sift-nn",
                        "-m", "sift-nn@ratio=0.9,mutual=false", "--kpts", "256", "--repeats", "1",
                        "--out", str(tmp_path)], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "results.json").read_text())
    assert [x["matcher"] for x in res["runs"]] == ["sift-nn", "sift-nn@ratio=0.9,mutual=false"]
    assert all(x["ms_median"] > 0 for x in res["runs"])
    assert (tmp_path / "results.md").is_file()
    r = subprocess.run([sys.executable, "-m", "gimsfm", "bench", "speed", "--matchers", "sift-nn,nope", "--kpts", "256",
                        "--out", str(tmp_path / "bad")], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert r.returncode == 2 and "unknown matcher 'nope'" in r.stderr and "Traceback" not in r.stderr
