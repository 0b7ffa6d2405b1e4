"""Training pairs from GIM video labels (`gimsfm label` output) with GIM's strong augmentation.

A label store is `ROOT/<video_id>/labels.h5` (groups `pairs/<f0>_<f1>` with `kpts0`, `kpts1`: sparse, reliable
correspondences in the stored frames `ROOT/<video_id>/frames/<frame:06d>.jpg`).

**Ground truth from sparse labels.** Labels say where *some* points go; they say nothing about the rest of the
image. So a SIFT keypoint only gets a label where there is evidence (`project_labels`):

- keypoint k0 in image 0 is *anchored* when a label point l0 lies within `label_radius` (2.5 px); its
  projection into image 1 is the partner l1 moved by the same offset, p01 = A(l1 + (k0 - l0)), where A is the
  (exact, known) augmentation homography of image 1 and the video motion is taken as locally a translation.
  If p01 falls outside the augmented image 1, k0 is HIDDEN. Keypoints of image 1 are anchored the same way
  (in the un-augmented frame, through A^-1).
- anchored keypoints go through the standard labeller (`labels.label_matches`): MATCHED when mutual nearest
  within pos_th (3 px, symmetric), UNMATCHED when hidden or when no keypoint of the other image lies within
  neg_th (5 px) of the projection (the label says the point is visible there, SIFT found nothing).
- keypoints with no label point within `label_radius` are UNKNOWN, i.e. IGNORE: never asserted unmatched
  (the absence of a label is no evidence; labels are sparse).

**Augmentation vs caching.** Record `idx` is (labelled pair idx // n_aug, augmentation id idx % n_aug); the
augmentation is a pure function of (seed, video, pair, augmentation id), so every record is reproducible.
Two modes, chosen per source by the size of the label store relative to the samples a run draws:

- `cache: true` (default), a fixed pool of `n_aug` (8) augmentations per pair, each cached like the other
  sources (features + projections, one .npz of ~0.3 MB): SIFT runs once per (pair, augmentation) instead of
  once per sample (two SIFTs + warp, ~150-200 ms on this CPU). Right for small stores whose records are drawn
  many times (e.g. the real clips: ~1k pairs x 8 = ~2.6 GB). `make_sample`'s keypoint subsampling and image
  swap add variety on top.
- `cache: false`, nothing is stored and every record is computed when drawn; with a large `n_aug` (e.g. 1000)
  each draw is a fresh augmentation. Right for large stores (the 64-video synthetic corpus: ~35k pairs, drawn
  about once each in a run, where a cache would cost ~100 GB and save nothing).

Validation records are never augmented (stable numbers) and always cached. `augment: false` gives one
un-augmented record per pair (ablation "without strong augmentation"). `variant: direct | <method>` trains on
an ablation label set stored beside the labels (`gimsfm.label.pipeline` doc); validation always scores the
full labels, so ablations are compared on the same held-out pairs. `min_gap: N` trains only on the pairs at
least N frames apart (the wider baselines); validation again keeps every pair.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..errors import InputError
from ..utils.io import read_image
from . import labels as L
from .datasets import PairSource, _pack_features, _rng, cached_npz, resolve_path

# GIM step 6 (paper / release): perspective p=0.9, corners +-25 %, rotation +-180 deg, rescale 0.6-1.4 + crop,
# photometric changes, blur / motion blur, darkening.
AUGMENT_DEFAULTS: dict[str, Any] = {
    "p_perspective": 0.9,
    "corner": 0.25,         # max corner displacement, fraction of width / height
    "rotation": 180.0,      # max in-plane rotation (deg), composed with the perspective warp
    "scale": [0.6, 1.4],    # random rescale, then a random crop (or pad) back to the frame size
    "photometric": True,    # brightness / contrast, gamma, hue
    "p_blur": 0.2,
    "p_motion_blur": 0.2,
    "p_dark": 0.2,
}


# ----------------------------------------------------------------------------------------------------------
# Strong augmentation of image 1
# ----------------------------------------------------------------------------------------------------------

def sample_augmentation_homography(rng: np.random.Generator, size_wh: tuple[int, int],
                                   conf: dict[str, Any]) -> np.ndarray:
    """3x3 A mapping original pixels to augmented pixels (same canvas size): perspective (corner jitter) +
    rotation about the centre, with probability p_perspective, then rescale and a random crop."""
    w, h = size_wh
    c = np.array([(w - 1) / 2, (h - 1) / 2])
    A = np.eye(3)
    if rng.random() < conf["p_perspective"]:
        src = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], np.float64)
        dst = src + rng.uniform(-conf["corner"], conf["corner"], (4, 2)) * np.array([w, h])
        t = np.deg2rad(rng.uniform(-conf["rotation"], conf["rotation"]))
        R = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
        dst = (dst - c) @ R.T + c
        A = cv2.getPerspectiveTransform(src.astype(np.float32), dst.astype(np.float32)).astype(np.float64)
    lo, hi = conf["scale"]
    s = rng.uniform(lo, hi)
    # Crop window: when zoomed in, any offset keeping the canvas inside the scaled frame; when zoomed out,
    # the smaller frame moves anywhere inside the canvas.
    slack = np.abs(s - 1) * np.array([w, h]) / 2
    shift = rng.uniform(-slack, slack)
    S = np.array([[s, 0, (1 - s) * c[0] + shift[0]], [0, s, (1 - s) * c[1] + shift[1]], [0, 0, 1]])
    A = S @ A
    return A / A[2, 2]


def _motion_blur(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n = int(rng.integers(5, 16))
    k = np.zeros((n, n), np.float32)
    k[n // 2] = 1.0
    M = cv2.getRotationMatrix2D(((n - 1) / 2, (n - 1) / 2), rng.uniform(0, 180), 1.0)
    k = cv2.warpAffine(k, M, (n, n))
    return cv2.filter2D(img, -1, k / max(k.sum(), 1e-6))


def appearance(rgb: np.ndarray, rng: np.random.Generator, conf: dict[str, Any]) -> np.ndarray:
    """Photometric changes of an RGB uint8 image: hue, gamma, brightness/contrast, blur, motion blur, dark."""
    x = rgb
    if conf["photometric"]:
        hsv = cv2.cvtColor(x, cv2.COLOR_RGB2HSV)
        hsv[..., 0] = ((hsv[..., 0].astype(np.int32) + int(rng.integers(-18, 19))) % 180).astype(np.uint8)  # +-36 deg
        x = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB).astype(np.float32)
        x = 255.0 * (x / 255.0) ** np.exp(rng.uniform(-0.4, 0.4))
        x = (x - 128) * np.exp(rng.uniform(-0.35, 0.35)) + 128 + rng.uniform(-35, 35)
        x = np.clip(x, 0, 255).astype(np.uint8)
    if rng.random() < conf["p_blur"]:
        x = cv2.GaussianBlur(x, (0, 0), rng.uniform(0.5, 2.0))
    if rng.random() < conf["p_motion_blur"]:
        x = _motion_blur(x, rng)
    if rng.random() < conf["p_dark"]:  # night-like: dim, then sensor noise that dominates the dim signal
        x = x.astype(np.float32) * rng.uniform(0.15, 0.5) + rng.normal(0, rng.uniform(1, 4), x.shape)
        x = np.clip(x, 0, 255).astype(np.uint8)
    return x


def strong_augment(rgb: np.ndarray, rng: np.random.Generator, conf: dict[str, Any]
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(augmented image, A): geometry then appearance; A maps original to augmented pixel coordinates."""
    h, w = rgb.shape[:2]
    A = sample_augmentation_homography(rng, (w, h), conf)
    # Black outside the frame: no SIFT labels can land there (no label points), so its keypoints are ignored.
    out = cv2.warpPerspective(rgb, A, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    return appearance(out, rng, conf), A


def warp_labels(pts: np.ndarray, A: np.ndarray, size_wh) -> tuple[np.ndarray, np.ndarray]:
    """Label points through the augmentation: (warped (N, 2), keep (N,) = still inside the image)."""
    p, front = L.warp_points_homography(pts, A)
    return p.astype(np.float32), front & L._inside(p, size_wh)


# ----------------------------------------------------------------------------------------------------------
# GT projections from sparse labels
# ----------------------------------------------------------------------------------------------------------

def _anchor(kpts: np.ndarray, lab_src: np.ndarray, lab_dst: np.ndarray, radius: float):
    """For each keypoint: the nearest label point within radius (else none) -> partner + same offset."""
    kpts = np.asarray(kpts, np.float64).reshape(-1, 2)
    out = np.zeros((len(kpts), 2), np.float64)
    ok = np.zeros(len(kpts), bool)
    if len(kpts) == 0 or len(lab_src) == 0:
        return out, ok
    from scipy.spatial import cKDTree

    # A tree, not an (N, M) distance matrix: fused multi-method labels reach several thousand per pair.
    dist, nn = cKDTree(lab_src).query(kpts, k=1)
    ok = dist <= radius
    out = lab_dst[nn].astype(np.float64) + (kpts - lab_src[nn])
    return out, ok


def project_labels(kpts0: np.ndarray, kpts1: np.ndarray, lab0: np.ndarray, lab1: np.ndarray, A: np.ndarray,
                   size0, size1, radius: float = 2.5):
    """Projections + visibility codes (as `labels.project_homography`) from sparse label correspondences.

    kpts1 and size1 are in the augmented image 1, lab0 / lab1 in the stored frames, A maps frame 1 to the
    augmented image 1. Keypoints with no label within `radius` get UNKNOWN (-> ignored). See module doc."""
    A = np.asarray(A, np.float64)
    lab0, lab1 = np.asarray(lab0, np.float64).reshape(-1, 2), np.asarray(lab1, np.float64).reshape(-1, 2)
    q01, ok0 = _anchor(kpts0, lab0, lab1, radius)  # in frame 1
    p01, front01 = L.warp_points_homography(q01, A)
    k1_raw, front1 = L.warp_points_homography(kpts1, np.linalg.inv(A))
    p10, ok1 = _anchor(k1_raw, lab1, lab0, radius)
    ok1 &= front1
    vis01 = np.where(ok0, np.where(front01 & L._inside(p01, size1), L.VISIBLE, L.HIDDEN), L.UNKNOWN)
    vis10 = np.where(ok1, np.where(L._inside(p10, size0), L.VISIBLE, L.HIDDEN), L.UNKNOWN)
    return p01.astype(np.float32), vis01.astype(np.int8), p10.astype(np.float32), vis10.astype(np.int8)


# ----------------------------------------------------------------------------------------------------------
# The source
# ----------------------------------------------------------------------------------------------------------

def _hash_order(video_ids: list[str], keys: dict[str, str] | None = None) -> list[str]:
    """A fixed pseudo-random order of videos (by hash of their key, default the id): the val split and
    `max_videos` subsets depend only on the keys, and growing subsets are nested (12.5 % of the video hours is
    inside 25 %, ...)."""
    keys = keys or {}
    return sorted(video_ids, key=lambda v: hashlib.md5(keys.get(v, v).encode()).hexdigest())


def _stable_keys(root: Path, video_ids: list[str]) -> dict[str, str]:
    """Video id -> the last two components of its source path (e.g. `indoor_003/video.mp4`). Ids hash the
    absolute path, so this keeps the split identical for a store regenerated in another checkout."""
    keys = {}
    for v in video_ids:
        try:
            src = json.loads((root / v / "stats.json").read_text())["source"]
            keys[v] = "/".join(Path(src).parts[-2:])
        except (OSError, KeyError, ValueError):
            keys[v] = v
    return keys


def split_videos(video_ids: list[str], split: str, val_fraction: float = 0.1,
                 max_videos: float | None = None, keys: dict[str, str] | None = None) -> list[str]:
    """Held-out validation videos (the first ceil(val_fraction * n) in hash order, none if only one video),
    training videos the rest, optionally limited to `max_videos` (a count, or a fraction if < 1)."""
    order = _hash_order(video_ids, keys)
    n_val = int(np.ceil(val_fraction * len(order))) if len(order) > 1 and val_fraction > 0 else 0
    if split == "val":
        return order[:n_val]
    train = order[n_val:]
    if max_videos:
        n = round(max_videos * len(train)) if max_videos < 1 else int(max_videos)
        train = train[:max(n, 1)]
    return train


class VideoLabelSource(PairSource):
    """Labelled video pairs (see module doc). Record idx -> (pair idx // n_aug, augmentation idx % n_aug)."""

    kind = "video_labels"

    def __init__(self, name: str, cache_dir: Path, n_pairs: int, seed: int, sift_conf: dict, root: str | Path,
                 split: str = "train", augment: dict | bool | None = True, n_aug: int = 8,
                 label_radius: float = 2.5, val_fraction: float = 0.1, max_videos: float | None = None,
                 all_videos: bool = False, cache: bool = True, variant: str | None = None, min_gap: int = 0):
        self.root = resolve_path(root)
        # min_gap: train only on pairs at least this many frames apart (the wider-baseline, propagated ones);
        # validation keeps every pair, so runs with and without it are scored alike.
        self.min_gap = int(min_gap) if split == "train" else 0
        # h5 group of the labels: the full labels, or an ablation variant (training split only)
        self.group = f"variants/{variant}/pairs" if variant and split == "train" else "pairs"
        if not self.root.is_dir():
            raise InputError(f"label store not found: {self.root} (make it with `gimsfm label VIDEOS --out ...`)")
        done = sorted(d.name for d in self.root.iterdir() if (d / "labels.h5").is_file())
        # all_videos: a store given for this split only (`val_root`): no held-out selection.
        keys = _stable_keys(self.root, done)
        self.videos = _hash_order(done, keys) if all_videos else \
            split_videos(done, split, val_fraction, max_videos, keys)
        self.pairs = self._list_pairs(keys)
        if n_pairs:
            self.pairs = self.pairs[:n_pairs]
        self.augment = None if augment is False else {**AUGMENT_DEFAULTS, **(augment if isinstance(augment, dict) else {})}
        # Validation is scored on un-augmented pairs (stable numbers); also the ablation without augmentation.
        self.n_aug = max(1, int(n_aug)) if self.augment is not None and split == "train" else 1
        if split != "train":
            self.augment = None
        self.label_radius = float(label_radius)
        self.split = split
        self.cache = cache or split != "train"
        super().__init__(name, cache_dir, len(self.pairs) * self.n_aug, seed, sift_conf)
        # Image 0 is never augmented: its SIFT is cached per stored frame, shared by every pair, augmentation,
        # split and torchrun rank that uses the frame (halves the feature cost of uncached records).
        key = hashlib.md5(repr((str(self.root), sorted(self.sift_conf.items()))).encode()).hexdigest()[:10]
        self.frame_cache = Path(cache_dir) / f"frames-{self.root.name}-{key}"
        self.frame_cache.mkdir(parents=True, exist_ok=True)

    def _list_pairs(self, keys: dict[str, str]) -> list[tuple[str, str]]:
        import h5py

        pairs = []
        for v in self.videos:
            with h5py.File(self.root / v / "labels.h5", "r") as f:
                # A store from before variants has none; a video without labels has the variant but no pairs.
                if self.group.startswith("variants/") and self.group.rsplit("/", 1)[0] not in f:
                    raise InputError(f"{self.root / v}: no label variant {self.group.split('/')[1]!r} "
                                     f"(has: {', '.join(f['variants']) if 'variants' in f else 'none'})")
                if self.group not in f:
                    continue
                grp = f[self.group]
                pairs += [(v, k) for k in sorted(grp.keys())
                          if not self.min_gap or grp[k].attrs["frame1"] - grp[k].attrs["frame0"] >= self.min_gap]
        # Interleave videos (hash order of the pair key) so that n_train takes from every video.
        return sorted(pairs, key=lambda p: hashlib.md5(f"{keys.get(p[0], p[0])}/{p[1]}".encode()).hexdigest())

    def _cache_key(self) -> Any:
        key = (self.seed, str(self.root), tuple(self.pairs), sorted((self.augment or {}).items()), self.n_aug,
               self.label_radius)  # min_gap changes self.pairs, hence the key
        return key if self.group == "pairs" else (*key, self.group)

    def get(self, idx: int) -> dict[str, np.ndarray]:
        return super().get(idx) if self.cache else self.build(idx)

    def load_pair(self, i: int) -> dict[str, Any]:
        """Frames (RGB) and labels of labelled pair i."""
        import h5py

        v, key = self.pairs[i]
        with h5py.File(self.root / v / "labels.h5", "r") as f:
            g = f[self.group][key]
            lab0, lab1 = g["kpts0"][()], g["kpts1"][()]
            f0, f1 = int(g.attrs["frame0"]), int(g.attrs["frame1"])
        img0 = read_image(self.root / v / "frames" / f"{f0:06d}.jpg")
        img1 = read_image(self.root / v / "frames" / f"{f1:06d}.jpg")
        return {"img0": img0, "img1": img1, "lab0": lab0, "lab1": lab1, "frame0": f0}

    def frame_features(self, video: str, frame: int, rgb: np.ndarray) -> dict[str, np.ndarray]:
        """SIFT of an un-augmented stored frame, from the frame cache (computed and stored if missing)."""
        return cached_npz(self.frame_cache / f"{video}_{frame:06d}.npz", lambda: self.extractor(rgb))

    def _augmented(self, idx: int) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
        """(pair data, image 1 as record idx sees it, its augmentation homography A)."""
        i, a = divmod(idx, self.n_aug)
        v, key = self.pairs[i]
        d = self.load_pair(i)
        img1, A = d["img1"], np.eye(3)
        if self.augment is not None:
            img1, A = strong_augment(img1, _rng(self.seed, self.kind, v, key, a), self.augment)
        return d, img1, A

    def images(self, idx: int) -> tuple[np.ndarray, np.ndarray]:
        """The two grey images of record idx, as its features saw them (image 1 augmented)."""
        d, img1, _ = self._augmented(idx)
        grey = lambda im: im if im.ndim == 2 else cv2.cvtColor(im, cv2.COLOR_RGB2GRAY)  # noqa: E731
        return grey(d["img0"]), grey(img1)

    def build(self, idx: int) -> dict[str, np.ndarray]:
        v = self.pairs[idx // self.n_aug][0]
        d, img1, A = self._augmented(idx)
        img0 = d["img0"]
        f0, f1 = self.frame_features(v, d["frame0"], img0), self.extractor(img1)
        p01, vis01, p10, vis10 = project_labels(f0["keypoints"], f1["keypoints"], d["lab0"], d["lab1"], A,
                                                f0["image_size"], f1["image_size"], self.label_radius)
        return {**_pack_features(f0, 0), **_pack_features(f1, 1), "p01": p01, "vis01": vis01, "p10": p10,
                "vis10": vis10, "A": A}
