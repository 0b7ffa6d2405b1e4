"""View synthesis (`--matcher NAME@views=...`): option parsing, view geometry, and an extreme-tilt pair."""
from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest

from gimsfm.errors import InputError
from gimsfm.geometry import estimate_homography, homography_corner_error
from gimsfm.matchers import get_matcher
from gimsfm.matchers.views import View, ViewSynthesisMatcher, from_view, parse_views, synthesize_view, to_view


def plane_homography(w: int, h: int, angle_deg: float, f: float = 700.0, closer: float = 0.55) -> np.ndarray:
    """Image of a fronto-parallel plane -> the same plane seen from a camera rotated by `angle_deg` about the
    vertical axis through the plane's centre, at `closer` times the distance (a grazing, zoomed-in view)."""
    K = np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1.0]])
    a = np.deg2rad(angle_deg)
    R = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    centre = np.array([0, 0, 1.0])
    t = closer * centre - R @ centre
    H = K @ (R + np.outer(t, [0, 0, 1.0])) @ np.linalg.inv(K)
    return H / H[2, 2]


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    from skimage import data

    return data.astronaut()


# --- option parsing


@pytest.mark.parametrize("spec, mode, tilts", [
    ("sift-nn@views=auto", "auto", None),
    ("sift-nn@views=asift", "asift", None),
    ("sift-nn@views=2+4", "tilts", (2.0, 4.0)),
    ("sift-nn@ratio=0.9,views=sqrt2+2sqrt2", "tilts", (1.4142, 2.8284)),
])
def test_views_option_wraps_any_sparse_matcher(spec, mode, tilts):
    m = get_matcher(spec)
    assert isinstance(m, ViewSynthesisMatcher) and m.mode == mode and m.tilts == tilts
    assert m.registry_name == spec and m.feature_key.startswith(m.base.feature_key + "-views-")
    assert m.conf["views"] and m.base.conf.get("views") is None  # the base matcher never sees the option
    if "ratio" in spec:
        assert m.base.conf["ratio"] == 0.9


def test_views_off_is_the_plain_matcher():
    m = get_matcher("sift-nn@views=off")
    assert not isinstance(m, ViewSynthesisMatcher) and type(m) is type(get_matcher("sift-nn"))


@pytest.mark.parametrize("value", ["banana", "0.5", "1", "2+x", "+", "20", "nan"])
def test_bad_views_values_are_one_line_errors(value):
    with pytest.raises(InputError) as exc:
        get_matcher(f"sift-nn@views={value}")
    assert "views" in str(exc.value) and "\n" not in str(exc.value)


def test_views_sub_options_and_cli_error():
    with pytest.raises(InputError, match="no option 'views.x'|no option 'views'"):
        get_matcher("sift-nn@views.x=1")
    r = subprocess.run([sys.executable, "-m", "gimsfm", "match", "a.png", "b.png", "--out", "x",
                        "--matcher", "sift-nn@views=sideways"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "views" in lines[0] and "Traceback" not in r.stderr


def test_parse_views_values():
    assert parse_views("AUTO") == ("auto", None)
    assert parse_views("4+2+2") == ("tilts", (2.0, 4.0))


# --- view geometry


def test_synthesised_view_maps_points_back(photo):
    """Bright dots drawn on a dark image: their centroids in a tilted, rotated, zoomed view map back to
    where they were drawn (the view's affine is the warp actually applied, pixel centres included)."""
    h, w = 400, 520
    img = np.zeros((h, w), np.uint8)
    rng = np.random.default_rng(0)
    pts = np.stack([rng.uniform(60, w - 60, 12), rng.uniform(60, h - 60, 12)], 1).round()
    for x, y in pts:
        cv2.circle(img, (int(x), int(y)), 5, 255, -1)
    for view in (View(2.0, 36.0), View(4.0, 126.0), View(2.0 * np.sqrt(2), 50.9, 0.5), View(1.0, 0.0, 0.25)):
        out, A, valid = synthesize_view(img, view)
        assert valid.shape == out.shape[:2]
        n, labels, stats, cents = cv2.connectedComponentsWithStats((out > 40).astype(np.uint8))
        back = from_view(A, cents[1:])
        d = np.linalg.norm(back[:, None] - pts[None], axis=2)
        # every drawn dot is found once, within a pixel of the original (the view shrinks it up to 8x)
        assert n - 1 == len(pts), view
        assert d.min(1).max() < 1.0 + 0.5 * view.tilt / view.zoom, (view, d.min(1).max())
        np.testing.assert_allclose(to_view(A, from_view(A, cents[1:])), cents[1:], atol=1e-6)


def test_view_keypoints_round_trip(photo):
    """Keypoints of every synthesised view: original coordinates inside the image, mapped by the view's
    affine onto their view-local positions; the plain level equals the plain matcher's features."""
    m = get_matcher("sift-nn@views=2")
    feats = m.extract(photo)
    plain = m.base.extract(photo)
    lvl0 = feats["view_level"] == 0
    np.testing.assert_array_equal(feats["keypoints"][lvl0], plain["keypoints"])
    np.testing.assert_array_equal(feats["descriptors"][lvl0], plain["descriptors"])
    assert len(feats["view_params"]) == 1 + 5  # plain + tilt 2 at 0, 36, 72, 108, 144 degrees
    h, w = photo.shape[:2]
    k = feats["keypoints"]
    assert (k >= -0.5).all() and (k[:, 0] < w - 0.5).all() and (k[:, 1] < h - 0.5).all()
    for v, A in enumerate(feats["view_affines"].astype(np.float64)):
        sel = feats["view_index"] == v
        assert sel.sum() > 50
        np.testing.assert_allclose(to_view(A, k[sel]), feats["view_keypoints"][sel], atol=0.02)
    # A view keypoint's orientation maps back too: the same physical gradient direction.
    sel = feats["view_index"] == 3
    A = feats["view_affines"][3].astype(np.float64)
    d = np.stack([np.cos(feats["oris"][sel]), np.sin(feats["oris"][sel])], 1) @ A[:, :2].T
    np.testing.assert_allclose(np.arctan2(d[:, 1], d[:, 0]) % (2 * np.pi),
                               feats["view_oris"][sel] % (2 * np.pi), atol=1e-3)


# --- an extreme viewpoint


def test_grazing_view_needs_views_and_auto_solves_it(photo, tmp_path):
    """A plane seen at 78 degrees from its normal (and closer): plain sift-nn finds no usable homography;
    views=auto escalates and recovers it. Run through the benchmarks' cached path: the escalated level is
    appended to the cached features, and an easy pair sharing the image stays at level 0 with exactly the
    plain matcher's matches (only level-0 keypoints)."""
    from gimsfm.bench.matching import CachedPairMatcher

    h, w = photo.shape[:2]
    H = plane_homography(w, h, 78.0)
    H_easy = plane_homography(w, h, 20.0, closer=0.9)
    for name, img in (("a.png", photo), ("grazing.png", cv2.warpPerspective(photo, H, (w, h), flags=cv2.INTER_AREA)),
                      ("easy.png", cv2.warpPerspective(photo, H_easy, (w, h), flags=cv2.INTER_AREA))):
        cv2.imwrite(str(tmp_path / name), img[..., ::-1])
    pairs = [("a.png", "grazing.png"), ("a.png", "easy.png")]
    plain = CachedPairMatcher(get_matcher("sift-nn"), tmp_path, tmp_path / "cache")
    plain.prepare(pairs)
    pm = plain.get(*pairs[0])
    est = estimate_homography(pm.kpts0, pm.kpts1, 3.0, "opencv-ransac")
    assert homography_corner_error(est.matrix, H, w, h) >= 10.0

    auto = CachedPairMatcher(get_matcher("sift-nn@views=auto"), tmp_path, tmp_path / "cache")
    auto.prepare(pairs)
    pm = auto.get(*pairs[0])
    est = estimate_homography(pm.kpts0, pm.kpts1, 3.0, "opencv-ransac")
    assert auto.timings.level == {"a.png/grazing.png": 1, "a.png/easy.png": 0}
    assert est.num_inliers >= 30 and homography_corner_error(est.matrix, H, w, h) < 5.0
    feats = auto.features("a.png")
    assert set(feats["view_level"].tolist()) == {0, 1}
    ref, got = plain.get(*pairs[1]), auto.get(*pairs[1])
    np.testing.assert_array_equal(got.kpts0, ref.kpts0)
    np.testing.assert_array_equal(got.kpts1, ref.kpts1)


def test_sfm_matching_escalates_only_weakly_connected_images(photo, tmp_path, caplog):
    """reconstruct's matching stage with views=auto: every pair is matched plainly first; only the image left
    without verified pairs (a 78-degree grazing view) gets view synthesis, and it comes out linked. A rerun
    changes nothing (the escalated images are recorded in matches.h5)."""
    from gimsfm.sfm.extract import extract_features
    from gimsfm.sfm.match import ESCALATED_ATTR, FeatureCache, _pair_links, match_pairs
    from gimsfm.sfm.pairs import pairs_exhaustive
    from gimsfm.utils.h5io import names_to_pair, open_h5, read_matches, write_pairs

    h, w = photo.shape[:2]
    images = {"a.png": photo}
    for name, angle, closer in (("easy1.png", 20.0, 0.9), ("easy2.png", -25.0, 0.85), ("grazing.png", 78.0, 0.55)):
        images[name] = cv2.warpPerspective(photo, plane_homography(w, h, angle, closer=closer), (w, h),
                                           flags=cv2.INTER_AREA)
    img_dir = tmp_path / "images"
    img_dir.mkdir()
    for name, img in images.items():
        cv2.imwrite(str(img_dir / name), img[..., ::-1])
    names = sorted(images)
    pairs = pairs_exhaustive(names)
    pairs_path = write_pairs(tmp_path / "pairs.txt", pairs)
    matcher = get_matcher("sift-nn@views=auto")
    features, failed = extract_features(img_dir, names, tmp_path / "features.h5", matcher)
    assert not failed
    matches = match_pairs(pairs_path, features, tmp_path / "matches.h5", matcher, image_dir=img_dir)
    with open_h5(matches) as f:
        assert list(f.attrs[ESCALATED_ATTR]) == ["grazing.png"]
        levels = {p: int(f[names_to_pair(*p)].attrs["view_level"]) for p in pairs
                  if "view_level" in f[names_to_pair(*p)].attrs}
    assert sorted(levels) == sorted(p for p in pairs if "grazing.png" in p)
    assert max(levels.values()) >= 1
    links = _pair_links(pairs, matches, FeatureCache(features), 15)
    assert all(links[p] > 0 for p in pairs if "grazing.png" not in p)  # the plain pairs verify
    assert sum(links[p] > 0 for p in pairs if "grazing.png" in p) >= 1  # and the grazing image is linked now
    before = {p: read_matches(matches, *p)[0] for p in pairs}
    match_pairs(pairs_path, features, matches, matcher, image_dir=img_dir)
    for p in pairs:
        np.testing.assert_array_equal(read_matches(matches, *p)[0], before[p])
