"""View synthesis for any sparse matcher (ASIFT, Morel & Yu 2009; MODS, Mishkin et al. 2015).

`--matcher NAME@views=MODE` wraps the registered sparse matcher NAME in a `ViewSynthesisMatcher`:

- Each image gets synthesised affine views: a tilt t (the image compressed by 1/t along one axis after an
  anti-aliasing blur, as ASIFT) at in-plane rotations 0, 72/t, 2*72/t ... < 180 degrees, and zoomed-out
  views for scale changes. The base matcher's `extract` runs on every view; keypoints go back to original
  pixels through the view's affine map (scales and orientations too), keypoints on the warped border are
  dropped, and every keypoint remembers its view and view-local geometry.
- Matching runs the base matcher on view pairs (in the views' own frames, so a learned matcher sees a
  coherent image: positions, scales, orientations and descriptors of one warped view), then pools the
  matches: one-to-one, duplicates of one physical match found in several view pairs suppressed.
- Views are grouped in levels. `views=auto` is MODS: match the plain images (level 0) and verify
  (`geometry.verification`); only if no confident model comes out, synthesise level 1, then level 2, and
  stop at the first confident level. Easy pairs cost the plain matching plus one MAGSAC check, and keep
  the plain matcher's result unchanged. `views=asift` uses all levels for every pair; `views=T1+T2+...`
  uses the given tilts (plus the plain view) for every pair.

Features of an image are the union of its extracted levels, level by level (`view_level` per keypoint), so
indices of earlier levels never change when a later pair needs a higher level: pipelines that cache
features per image (features.h5) append the new level and keep every earlier match valid.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import cv2
import numpy as np

from ..errors import InputError
from ..geometry.verification import MIN_INLIERS, verify_matches
from ..utils.io import resize_max
from .base import Matcher, PairMatches, matches0_from_pairs

MODES = ("off", "auto", "asift")
ROTATION_STEP = 72.0  # degrees, divided by the tilt (ASIFT's sampling)
AA_SIGMA = 0.8  # ASIFT's anti-aliasing constant: sigma = 0.8 sqrt(t^2 - 1)
BORDER = 6  # view pixels: keypoints this close to a warped border see the black fill
# (tilts, zooms) added by each level of views=auto; views=asift uses all of them.
LEVELS: tuple[tuple[tuple[float, ...], tuple[float, ...]], ...] = (
    ((), ()),  # level 0: the plain image
    ((2.0,), (0.5,)),
    ((4.0,), (0.25,)),
)
# Views are synthesised from the image capped at this long side (ASIFT works at low resolution too): 2.4x
# fewer pixels than 1600 for every view; the plain view keeps the base matcher's own resolution.
VIEW_MAX_SIDE = 1024
# Keypoints per synthesised view at most (a view holds 1/t of the image): reconstruct's 8192 per image would
# make every view pair 16x dearer than at 2048. Applies to matchers on the shared SIFT extractor.
VIEW_MAX_KEYPOINTS = 2048
# Per-keypoint arrays whose values depend on the view frame: stored also as view_* (view-local).
GEOMETRIC = ("keypoints", "scales", "oris")
IMAGE_LEVEL = ("image_size", "view_params", "view_affines", "view_sizes")


@dataclass(frozen=True)
class View:
    tilt: float = 1.0
    angle: float = 0.0  # degrees, in-plane rotation applied before the tilt
    zoom: float = 1.0
    level: int = 0

    @property
    def identity(self) -> bool:
        return self.tilt == 1.0 and self.angle == 0.0 and self.zoom == 1.0


def tilt_views(tilt: float, level: int) -> list[View]:
    """ASIFT's rotations for one tilt: multiples of 72/t degrees below 180."""
    step = ROTATION_STEP / tilt
    return [View(float(tilt), float(k * step), 1.0, level) for k in range(int(math.ceil(180.0 / step - 1e-9)))]


def level_views(level: int, tilts: tuple[float, ...] | None = None) -> list[View]:
    """The views a level adds (`tilts` given: a fixed list, all in level 1)."""
    if level == 0:
        return [View()]
    if tilts is not None:
        return [v for t in tilts for v in tilt_views(t, 1)] if level == 1 else []
    ts, zs = LEVELS[level]
    return [v for t in ts for v in tilt_views(t, level)] + [View(1.0, 0.0, float(z), level) for z in zs]


def parse_views(value: Any, spec: str = "") -> tuple[str, tuple[float, ...] | None]:
    """`off` | `auto` | `asift` | tilts joined by '+' (e.g. `2+4`, `sqrt2+2`) -> (mode, tilts or None)."""
    text = str(value).strip().lower()
    where = f"matcher '{spec}': " if spec else ""
    if text in MODES:
        return text, None
    tilts = []
    for part in filter(None, text.split("+")):
        try:  # `2sqrt2` = 2 * sqrt(2)
            t = float(part[:-5] or 1) * math.sqrt(2) if part.endswith("sqrt2") else float(part)
        except ValueError:
            t = float("nan")
        if not math.isfinite(t) or t <= 1.0 or t > 16.0:
            raise InputError(f"{where}bad views value '{value}': use off, auto, asift, or tilts in (1, 16] joined "
                             "by '+' (e.g. views=2+4)")
        tilts.append(round(t, 4))
    if not tilts:
        raise InputError(f"{where}bad views value '{value}': use off, auto, asift, or tilts joined by '+'")
    return "tilts", tuple(sorted(set(tilts)))


def view_affine(view: View, width: int, height: int) -> tuple[np.ndarray, tuple[int, int]]:
    """(2x3 map original pixel -> view pixel, view size (W, H)) for OpenCV pixel centres."""
    a = math.radians(view.angle)
    R = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    corners = np.array([[0, 0], [width - 1, 0], [width - 1, height - 1], [0, height - 1]], np.float64)
    rc = corners @ R.T
    lo = rc.min(0)
    sx, sy = view.zoom / view.tilt, view.zoom
    size = (max(int(round((rc[:, 0].max() - lo[0] + 1) * sx)), 1), max(int(round((rc[:, 1].max() - lo[1] + 1) * sy)), 1))
    # cv2.resize maps x -> (x + 0.5) * f - 0.5 with f = new size / old size.
    fx = size[0] / (rc[:, 0].max() - lo[0] + 1)
    fy = size[1] / (rc[:, 1].max() - lo[1] + 1)
    S = np.diag([fx, fy])
    A = np.zeros((2, 3))
    A[:, :2] = S @ R
    A[:, 2] = S @ (-lo + 0.5) - 0.5
    return A, size


def synthesize_view(image: np.ndarray, view: View) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(view image, 2x3 affine original -> view, valid mask of the view) with ASIFT's anti-aliasing."""
    h, w = image.shape[:2]
    A, (vw, vh) = view_affine(view, w, h)
    if view.identity:
        return image, A, np.ones((h, w), bool)
    a = math.radians(view.angle)
    R = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    rc = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], np.float64) @ R.T
    lo, hi = rc.min(0), rc.max(0)
    rw, rh = int(round(hi[0] - lo[0] + 1)), int(round(hi[1] - lo[1] + 1))
    A1 = np.hstack([R, (-lo)[:, None]])
    rotated = cv2.warpAffine(image, A1, (rw, rh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    mask = cv2.warpAffine(np.full((h, w), 255, np.uint8), A1, (rw, rh), flags=cv2.INTER_NEAREST)
    # Blur before subsampling: 1/t along x (tilt) and 1/zoom along both axes.
    sx, sy = view.tilt / view.zoom, 1.0 / view.zoom
    sig_x = AA_SIGMA * math.sqrt(sx * sx - 1) if sx > 1 else 0.0
    sig_y = AA_SIGMA * math.sqrt(sy * sy - 1) if sy > 1 else 0.0
    if sig_x > 0 or sig_y > 0:
        rotated = cv2.GaussianBlur(rotated, (0, 0), sigmaX=max(sig_x, 1e-3), sigmaY=max(sig_y, 1e-3))
    out = cv2.resize(rotated, (vw, vh), interpolation=cv2.INTER_LINEAR)
    valid = cv2.resize(mask, (vw, vh), interpolation=cv2.INTER_NEAREST)
    valid = cv2.erode(valid, np.ones((2 * BORDER + 1, 2 * BORDER + 1), np.uint8)) > 0
    # Exact composition (the rotation canvas is rounded to whole pixels like the resize grid).
    fx, fy = vw / rw, vh / rh
    A = np.vstack([[fx, 0, 0.5 * fx - 0.5], [0, fy, 0.5 * fy - 0.5]]) @ np.vstack([A1, [0, 0, 1]])
    return out, A, valid


def to_view(A: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return np.asarray(pts, np.float64) @ A[:, :2].T + A[:, 2]


def from_view(A: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """View pixels -> original pixels (inverse of the view's affine)."""
    Ainv = cv2.invertAffineTransform(A)
    return np.asarray(pts, np.float64) @ Ainv[:, :2].T + Ainv[:, 2]


def per_keypoint_keys(feats: dict[str, np.ndarray]) -> list[str]:
    n = len(feats["keypoints"])
    return [k for k, v in feats.items() if k not in IMAGE_LEVEL and np.ndim(v) >= 1 and len(v) == n]


def _view_block(feats: dict[str, np.ndarray], view: View, A: np.ndarray, size: tuple[int, int],
                valid: np.ndarray | None, width: int, height: int) -> dict[str, np.ndarray]:
    """Base features of one view -> features in original pixels plus the view-local copies and bookkeeping."""
    feats = {k: np.asarray(v) for k, v in feats.items()}
    kp = np.asarray(feats["keypoints"], np.float64).reshape(-1, 2)
    keep = np.ones(len(kp), bool)
    if valid is not None and len(kp):
        xi = np.clip(np.round(kp[:, 0]).astype(int), 0, valid.shape[1] - 1)
        yi = np.clip(np.round(kp[:, 1]).astype(int), 0, valid.shape[0] - 1)
        keep = valid[yi, xi]
    orig = from_view(A, kp)
    keep &= (orig[:, 0] > -0.5) & (orig[:, 1] > -0.5) & (orig[:, 0] < width - 0.5) & (orig[:, 1] < height - 0.5)
    out: dict[str, np.ndarray] = {}
    for k in per_keypoint_keys(feats):
        out[k] = feats[k][keep]
    for k in GEOMETRIC:
        if k in out:
            out[f"view_{k}"] = out[k].astype(np.float32)
    out["keypoints"] = orig[keep].astype(np.float32)
    lin = A[:, :2]
    if "scales" in out:  # an affine changes scale anisotropically: keep the geometric mean
        out["scales"] = (out["scales"] / math.sqrt(abs(np.linalg.det(lin)))).astype(np.float32)
    if "oris" in out:
        d = np.stack([np.cos(out["oris"]), np.sin(out["oris"])], 1) @ np.linalg.inv(lin).T
        out["oris"] = np.arctan2(d[:, 1], d[:, 0]).astype(np.float32)
    out["view_index"] = np.zeros(int(keep.sum()), np.int32)
    out["view_level"] = np.full(int(keep.sum()), view.level, np.int8)
    out["view_params"] = np.array([[view.tilt, view.angle, view.zoom, view.level]], np.float32)
    out["view_affines"] = A[None].astype(np.float32)
    out["view_sizes"] = np.array([size], np.int32)
    out["image_size"] = np.array([width, height], np.int32)
    return out


def append_block(feats: dict[str, np.ndarray] | None, block: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Features + one more view (or level): per-keypoint arrays concatenated, earlier indices unchanged."""
    if feats is None:
        return block
    out = dict(feats)
    offset = len(feats["view_params"])
    for k in per_keypoint_keys(block):
        add = block[k] + offset if k == "view_index" else block[k]
        out[k] = np.concatenate([np.asarray(feats[k]), add.astype(np.asarray(feats[k]).dtype)])
    for k in ("view_params", "view_affines", "view_sizes"):
        out[k] = np.concatenate([feats[k], block[k]])
    return out


def as_plain_view(feats: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Features extracted without views (e.g. a map built with views=off) as one identity view at level 0, indices
    unchanged, so that views=auto can match against them."""
    if "view_params" in feats:
        return feats
    out = dict(feats)
    n = len(feats["keypoints"])
    for k in GEOMETRIC:
        if k in feats:
            out[f"view_{k}"] = np.asarray(feats[k], np.float32)
    out["view_index"] = np.zeros(n, np.int32)
    out["view_level"] = np.zeros(n, np.int8)
    out["view_params"] = np.array([[1.0, 0.0, 1.0, 0.0]], np.float32)
    out["view_affines"] = np.eye(3, dtype=np.float32)[None, :2]
    out["view_sizes"] = np.asarray(feats["image_size"], np.int32).reshape(1, 2)
    return out


def levels_of(feats: dict[str, np.ndarray]) -> set[int]:
    return {int(p[3]) for p in feats["view_params"]}


class ViewSynthesisMatcher(Matcher):
    """A registered sparse matcher with synthesised views (see the module docstring)."""

    sparse = True

    def __init__(self, base: Matcher, mode: str, tilts: tuple[float, ...] | None = None,
                 min_inliers: int = MIN_INLIERS):
        if mode not in ("auto", "asift", "tilts"):
            raise InputError(f"views mode '{mode}' needs no wrapper")
        self.base, self.mode, self.tilts, self.min_inliers = base, mode, tilts, min_inliers
        self.name = base.name
        self.device = base.device
        views = "+".join(f"{t:g}" for t in tilts) if tilts else mode
        self.conf = {**base.conf, "views": views, "views_min_inliers": min_inliers,
                     "views_levels": repr(LEVELS), "views_max_side": VIEW_MAX_SIDE,
                     "views_max_keypoints": VIEW_MAX_KEYPOINTS}
        self.views_label = views
        self.max_level = 1 if mode == "tilts" else len(LEVELS) - 1
        self.view_max_side = min(VIEW_MAX_SIDE, int(base.conf.get("features", {}).get("resize_max") or VIEW_MAX_SIDE))
        self._view_extract = base.extract
        extractor = getattr(base, "extractor", None)
        if extractor is not None and extractor.conf.get("max_keypoints", 0) > VIEW_MAX_KEYPOINTS:
            self._view_extract = type(extractor)({**extractor.conf, "max_keypoints": VIEW_MAX_KEYPOINTS})
        self.last_level = 0  # escalation level of the last matched pair (benchmarks report it)

    def __getattr__(self, name: str) -> Any:
        # What pipelines read from a matcher beyond the interface (torch_device, model, ...) is the base's.
        if name == "base":
            raise AttributeError(name)
        return getattr(self.base, name)

    @property
    def escalates(self) -> bool:
        return self.mode == "auto"

    @property
    def feature_key(self) -> str:
        return f"{self.base.feature_key}-views-{self.views_label}"

    # --- extraction
    def extract_level(self, image: np.ndarray, level: int) -> dict[str, np.ndarray] | None:
        """Features of the views one level adds (original pixels), or None when the level adds none."""
        h, w = image.shape[:2]
        feats = None
        views = level_views(level, self.tilts if self.mode == "tilts" else None)
        if not views:
            return None
        # Views are synthesised from the image capped at the extractor's size (no work on pixels it drops).
        if not all(v.identity for v in views):
            small, _ = resize_max(image, self.view_max_side)
            sx, sy = small.shape[1] / w, small.shape[0] / h
            to_small = np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1]])
        for view in views:
            if view.identity:  # the plain image as the base matcher sees it: plain features, bit for bit
                img, A, valid = image, np.eye(3)[:2], None
            else:
                img, A, valid = synthesize_view(small, view)
                A = A @ to_small
            size = (img.shape[1], img.shape[0])
            extract = self.base.extract if view.identity else self._view_extract
            feats = append_block(feats, _view_block(extract(img), view, A, size, valid, w, h))
        return feats

    def extract(self, image: np.ndarray) -> dict[str, np.ndarray]:
        """Plain features (views=auto: higher levels come on demand) or every level (fixed views)."""
        top = 0 if self.escalates else self.max_level
        feats = None
        for level in range(top + 1):
            block = self.extract_level(image, level)
            if block is not None:
                feats = append_block(feats, block)
        return feats

    # --- matching
    def _view_features(self, feats: dict[str, np.ndarray], v: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The base matcher's features of view v (view-local geometry) and their indices in `feats`."""
        idx = np.flatnonzero(feats["view_index"] == v)
        sub = {k: np.asarray(feats[k])[idx] for k in per_keypoint_keys(feats)}
        for k in GEOMETRIC:
            if f"view_{k}" in sub:
                sub[k] = sub.pop(f"view_{k}")
        sub = {k: x for k, x in sub.items() if not k.startswith("view_")}
        sub["image_size"] = np.asarray(feats["view_sizes"][v], np.int32)
        return sub, idx

    def _match_views(self, f0, f1, pairs: list[tuple[int, int]], cache: dict) -> None:
        for v0, v1 in pairs:
            if (v0, v1) in cache:
                continue
            s0, i0 = self._view_features(f0, v0)
            s1, i1 = self._view_features(f1, v1)
            if len(i0) < 2 or len(i1) < 2:
                cache[(v0, v1)] = np.zeros((0, 3))
                continue
            m0, sc0 = self.base.match(s0, s1)
            m0 = np.asarray(m0)
            ok = np.flatnonzero(m0 > -1)
            cache[(v0, v1)] = np.stack([i0[ok], i1[m0[ok]], np.asarray(sc0)[ok]], 1) if len(ok) else np.zeros((0, 3))

    @staticmethod
    def _schedule(f0, f1, level: int) -> list[tuple[int, int]]:
        """View pairs a level adds (MODS-like, far fewer than ASIFT's all pairs): each new view against the
        other image's plain view, and new tilted views against the other image's views of the same tilt in a
        near-perpendicular direction (both images oblique, compressed along different axes)."""
        p0, p1 = f0["view_params"], f1["view_params"]
        pairs = []
        for a in range(len(p0)):
            for b in range(len(p1)):
                (t0, r0, z0, l0), (t1, r1, z1, l1) = p0[a], p1[b]
                if max(l0, l1) != level:
                    continue
                plain0, plain1 = (t0, z0) == (1, 1) and r0 == 0, (t1, z1) == (1, 1) and r1 == 0
                step = ROTATION_STEP / max(t0, 1.0)
                crossed = t0 == t1 and t0 > 1 and z0 == z1 and abs(abs(r0 - r1) - 90.0) <= step / 2 + 1e-3
                if plain0 or plain1 or crossed:
                    pairs.append((a, b))
        return pairs

    def _pool(self, f0, f1, cache: dict, level: int) -> np.ndarray:
        """One-to-one matches (i0, i1, score) pooled over view pairs up to `level`, duplicates suppressed."""
        rows = [m for (a, b), m in cache.items()
                if f0["view_params"][a, 3] <= level and f1["view_params"][b, 3] <= level and len(m)]
        if not rows:
            return np.zeros((0, 3))
        m = np.concatenate(rows)
        m = m[np.argsort(-m[:, 2], kind="stable")]
        i0, i1 = m[:, 0].astype(int), m[:, 1].astype(int)
        # One physical match seen in several view pairs: keep the best within 2 px in both images.
        cell = np.concatenate([np.round(f0["keypoints"][i0] / 2.0), np.round(f1["keypoints"][i1] / 2.0)], 1)
        _, first = np.unique(cell, axis=0, return_index=True)
        m = m[np.sort(first)]
        for col in (0, 1):  # one-to-one: each keypoint keeps its best-scored match
            _, first = np.unique(m[:, col], return_index=True)
            m = m[np.sort(first)]
        return m

    def escalate(self, f0: dict[str, np.ndarray], f1: dict[str, np.ndarray],
                 more0: Callable[[int], dict[str, np.ndarray] | None] | None = None,
                 more1: Callable[[int], dict[str, np.ndarray] | None] | None = None, max_level: int | None = None):
        """Match level by level until a confident model (views=auto) or through every level (fixed views).

        `more0` / `more1` give the features of a missing level of either image (None: only what the feature
        dicts hold); `max_level` caps the levels tried (0: the plain matches only).
        Returns (matches0, scores0, f0, f1, level): f0 / f1 grow when a level was added.
        """
        cache: dict = {}
        best = None
        top = self.max_level if max_level is None else min(self.max_level, max_level)
        for level in range(top + 1):
            for side, more in ((0, more0), (1, more1)):
                f = f0 if side == 0 else f1
                if level not in levels_of(f) and more is not None:
                    block = more(level)
                    if block is not None:
                        f = append_block(f, block)
                        f0, f1 = (f, f1) if side == 0 else (f0, f)
            pairs = self._schedule(f0, f1, level)
            if level > 0 and not pairs:
                continue
            self._match_views(f0, f1, pairs, cache)
            if level == 0 and self.escalates:
                # The plain matcher's own output, untouched: easy pairs keep today's result.
                m = cache.get((0, 0), np.zeros((0, 3)))
            else:
                m = self._pool(f0, f1, cache, level)
            if not self.escalates and level < top:
                continue
            if top == 0:  # the plain matches only: nothing to choose between, no verification needed
                best = (m, 0, 0)
                break
            i0, i1 = m[:, 0].astype(int), m[:, 1].astype(int)
            ver = verify_matches(f0["keypoints"][i0], f1["keypoints"][i1], f0["image_size"], f1["image_size"],
                                 self.min_inliers, need_fundamental=level > 0)
            if level > 0 and ver.num_inliers >= 8:
                m = m[ver.inliers]  # escalated levels: the verified matches only (many-view outliers are many)
            if best is None or ver.num_inliers > best[2]:
                best = (m, level, ver.num_inliers)
            if ver.confident or not self.escalates:
                best = (m, level, ver.num_inliers)
                break
        m, level, _ = best
        self.last_level = level
        m0, s0 = matches0_from_pairs(m[:, :2].astype(np.int64), m[:, 2].astype(np.float32), len(f0["keypoints"]))
        return m0, s0, f0, f1, level

    def match(self, feats0: dict[str, np.ndarray], feats1: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        m0, s0, *_ = self.escalate(feats0, feats1)
        return m0, s0

    def match_images(self, image0: np.ndarray, image1: np.ndarray) -> PairMatches:
        f0, f1 = self.extract(image0), self.extract(image1)
        m0, s0, f0, f1, _ = self.escalate(f0, f1, lambda lv: self.extract_level(image0, lv),
                                          lambda lv: self.extract_level(image1, lv))
        valid = m0 > -1
        return PairMatches(f0["keypoints"][valid], f1["keypoints"][m0[valid]], s0[valid])


def match_cached(matcher: ViewSynthesisMatcher, name0: str, name1: str,
                 features: Callable[[str], dict[str, np.ndarray]],
                 extract_level: Callable[[str, int], dict[str, np.ndarray] | None],
                 save: Callable[[str, dict[str, np.ndarray]], None],
                 max_level: int | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """views=auto in a pipeline that caches features per image: escalate one pair, extracting a missing level
    of either image on demand (`extract_level(name, level)`, original pixels) and `save`-ing the grown
    features (earlier levels keep their indices, so matches already written stay valid)."""
    f0, f1 = features(name0), features(name1)
    m0, s0, g0, g1, level = matcher.escalate(f0, f1, lambda lv: extract_level(name0, lv),
                                             lambda lv: extract_level(name1, lv), max_level=max_level)
    for name, old, new in ((name0, f0, g0), (name1, f1, g1)):
        if new is not old:
            save(name, new)
    return m0, s0, level


def wrap_views(matcher: Matcher, value: Any, spec: str = "") -> Matcher:
    """`matcher` with `views=value` applied (unchanged for off); dense matchers refuse views."""
    mode, tilts = parse_views(value, spec)
    if mode == "off":
        return matcher
    if not matcher.sparse:
        raise InputError(f"matcher '{spec or matcher.name}' is detector-free (dense): views need a sparse matcher")
    return ViewSynthesisMatcher(matcher, mode, tilts)
