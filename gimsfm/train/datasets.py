"""Training pairs with cached SIFT features and GT projections.

Every source (random homographies of texture photos, synthetic depth + pose pairs) is turned into the same
*cached pair* record, computed once and stored as one small ``.npz`` per pair (written atomically, so a killed
run never leaves a broken cache and a resumed run picks up where it stopped):

    kpts{i} (N, 2) float32, scales{i} (N,) SIFT size in pixels, oris{i} (N,) radians, scores{i} (N,),
    desc{i} (N, 128) uint8 (RootSIFT * 255), size{i} (2,) = (W, H), for i in 0, 1;
    p01 (N0, 2), vis01 (N0,), p10 (N1, 2), vis10 (N1,)  (see gimsfm.train.labels);
    H (3, 3) for homography pairs, K0, K1, T_0to1 for depth pairs.

A training sample subsamples the keypoints and is labelled on the fly (cheap), so one cached pair gives many
different samples. Randomness depends only on (seed, source, index) or (seed, iteration): runs are
reproducible and resume exactly.
"""
from __future__ import annotations

import hashlib
import os
import zlib  # noqa: F401  (keep zlib loaded before anything imports pycolmap)
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from .. import logger
from ..errors import InputError
from ..features.sift import SiftExtractor
from ..utils.data import data_root
from ..utils.io import IMAGE_EXTENSIONS, read_image
from . import labels as L

# Photos held out of training for the in-domain validation split (fixed list; never change it, or the
# validation numbers of different runs stop being comparable).
VAL_TEXTURES = (
    "magsac_BrusselsA.jpg",
    "magsac_boxesandbooksA.jpg",
    "magsac_kampaA.jpg",
    "magsac_plantA.jpg",
    "phototourism_piazza_san_marco_43351518_2659980686.jpg",
    "phototourism_st_pauls_cathedral_37347628_10902811376.jpg",
)


def resolve_path(p: str | Path, base: Path | None = None) -> Path:
    """`{data}` expands to the data root; relative paths are relative to the repository root."""
    s = str(p).replace("{data}", str(data_root()))
    path = Path(s)
    if not path.is_absolute():
        path = (base or Path(__file__).resolve().parents[2]) / path
    return path


def _rng(*keys) -> np.random.Generator:
    ints = [int(hashlib.md5(str(k).encode()).hexdigest()[:8], 16) if not isinstance(k, (int, np.integer)) else int(k)
            for k in keys]
    return np.random.default_rng(ints)


def _atomic_savez(path: Path, **arrays) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


# ----------------------------------------------------------------------------------------------------------
# Homography pairs from texture photos
# ----------------------------------------------------------------------------------------------------------

def cached_npz(path: Path, compute) -> dict[str, np.ndarray]:
    """The arrays stored at `path`, or `compute()`'s, stored atomically (shared by processes and ranks)."""
    if path.exists():
        try:
            with np.load(path) as z:
                return {k: z[k] for k in z.files}
        except Exception:  # noqa: BLE001 - a partial file from another process: rebuild it
            pass
    rec = compute()
    _atomic_savez(path, **rec)
    return rec


def _rot(deg: float) -> np.ndarray:
    t = np.deg2rad(deg)
    return np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])


def sample_view(rng: np.random.Generator, photo_wh, canvas_wh, scale: float, rot_deg: float, persp: float,
                center: np.ndarray | None = None, jitter: float = 0.0) -> np.ndarray:
    """3x3 M mapping canvas pixels to photo pixels, for a random quad that lies inside the photo."""
    pw, ph = photo_wh
    W, H = canvas_wh
    rect = np.array([[0, 0], [W - 1, 0], [W - 1, H - 1], [0, H - 1]], np.float64)
    base = rect - rect.mean(0)
    fit = min(pw / W, ph / H)
    s = scale * fit
    for _ in range(60):
        q = base * s
        q = q + rng.uniform(-persp, persp, (4, 2)) * np.array([W, H]) * s
        q = q @ _rot(rot_deg).T
        lo, hi = q.min(0), q.max(0)
        span = hi - lo
        if span[0] < pw - 2 and span[1] < ph - 2:
            cmin = -lo + 0.5
            cmax = np.array([pw - 1.5, ph - 1.5]) - hi
            if center is None:
                c = rng.uniform(cmin, cmax)
            else:
                c = np.clip(center + rng.uniform(-jitter, jitter, 2) * span, cmin, cmax)
            quad = (q + c).astype(np.float32)
            return cv2.getPerspectiveTransform(rect.astype(np.float32), quad).astype(np.float64)
        s *= 0.9
    raise RuntimeError("could not fit a view into the photo")


def photometric(img: np.ndarray, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    x = img.astype(np.float32)
    if rng.random() < 0.3 * strength:
        k = rng.uniform(0.3, 1.5 * strength + 0.3)
        x = cv2.GaussianBlur(x, (0, 0), k)
    gamma = np.exp(rng.uniform(-0.35, 0.35) * strength)
    x = 255.0 * (np.clip(x, 0, 255) / 255.0) ** gamma
    x = (x - 128) * np.exp(rng.uniform(-0.3, 0.3) * strength) + 128 + rng.uniform(-30, 30) * strength
    if rng.random() < 0.5 * strength:
        x = x + rng.normal(0, rng.uniform(1, 6), x.shape)
    return np.clip(x, 0, 255).astype(np.uint8)


def make_homography_pair(photo: np.ndarray, rng: np.random.Generator, conf: dict[str, Any]):
    """Two warped views of a grey photo and H_0to1 (x1 ~ H x0)."""
    ph, pw = photo.shape[:2]
    W, H = conf.get("canvas", (640, 480))
    s0 = rng.uniform(0.5, 0.95)
    M0 = sample_view(rng, (pw, ph), (W, H), s0, rng.uniform(-15, 15), 0.05)
    c0 = M0 @ np.array([(W - 1) / 2, (H - 1) / 2, 1.0])
    c0 = c0[:2] / c0[2]
    max_rot = conf.get("max_rotation", 45.0) if rng.random() > conf.get("p_full_rotation", 0.15) else 180.0
    zoom = conf.get("max_zoom", 2.0)  # scale ratio between the views in [1/zoom, zoom]
    s1 = min(s0 * float(np.exp(rng.uniform(-np.log(zoom), np.log(zoom)))), 0.98)
    M1 = sample_view(rng, (pw, ph), (W, H), s1,
                     rng.uniform(-max_rot, max_rot), conf.get("perspective", 0.12), center=c0, jitter=0.25)
    img0 = cv2.warpPerspective(photo, M0, (W, H), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_REFLECT)
    img1 = cv2.warpPerspective(photo, M1, (W, H), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_REFLECT)
    strength = conf.get("photometric", 1.0)
    img0, img1 = photometric(img0, rng, strength * 0.5), photometric(img1, rng, strength)
    H01 = np.linalg.inv(M1) @ M0
    return img0, img1, H01 / H01[2, 2]


def _pack_features(f: dict, i: int) -> dict[str, np.ndarray]:
    return {
        f"kpts{i}": f["keypoints"].astype(np.float32),
        f"scales{i}": f["scales"].astype(np.float32),
        f"oris{i}": f["oris"].astype(np.float32),
        f"scores{i}": f["scores"].astype(np.float32),
        f"desc{i}": np.clip(np.round(f["descriptors"] * 255.0), 0, 255).astype(np.uint8),
        f"size{i}": np.asarray(f["image_size"], np.int32),
    }


class PairSource:
    """A list of cached pairs of one kind; `get(i)` returns the record, computing + caching it if missing."""

    kind = "base"

    def __init__(self, name: str, cache_dir: Path, n_pairs: int, seed: int, sift_conf: dict[str, Any]):
        self.name = name
        self.n_pairs = n_pairs
        self.seed = seed
        self.sift_conf = {"max_keypoints": 1024, "resize_max": None, **(sift_conf or {})}
        key = hashlib.md5(repr((self.kind, self._cache_key(), self.sift_conf)).encode()).hexdigest()[:10]
        self.cache_dir = Path(cache_dir) / f"{name}-{key}"
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self._extractor = None

    def _cache_key(self) -> Any:
        return self.seed

    @property
    def extractor(self) -> SiftExtractor:
        if self._extractor is None:
            self._extractor = SiftExtractor(self.sift_conf)
        return self._extractor

    def __len__(self) -> int:
        return self.n_pairs

    def get(self, idx: int) -> dict[str, np.ndarray]:
        return cached_npz(self.cache_dir / f"{idx:06d}.npz", lambda: self.build(idx))

    def build(self, idx: int) -> dict[str, np.ndarray]:
        raise NotImplementedError


# `texture_dir: auto` without the data folder: scikit-image's bundled photos (BSD), one held out for validation.
PACKAGE_TEXTURES = ("astronaut", "chelsea", "coffee", "camera", "brick", "grass", "gravel", "rocket")
PACKAGE_VAL_TEXTURES = ("skimage_rocket",)


def package_texture_photos() -> dict[str, np.ndarray]:
    """The PACKAGE_TEXTURES among synth's package images, as grayscale uint8, named `skimage_<name>`."""
    from ..synth.textures import package_images

    wanted = {f"skimage_{n}" for n in PACKAGE_TEXTURES}
    return {name: cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) if img.ndim == 3 else img.astype(np.uint8)
            for name, img in package_images() if name in wanted}


class HomographySource(PairSource):
    """Random homography pairs of texture photos.

    texture_dir: a folder of photos, or `auto`: the data root's `textures/` when present, else scikit-image's
    bundled photos (enough for smoke runs and tests in a clone without the data, far too few for a model).
    """
    kind = "homography"

    def __init__(self, name, cache_dir, n_pairs, seed, sift_conf, split: str = "train",
                 texture_dir: str | Path = "{data}/textures", val_textures=VAL_TEXTURES, warp: dict | None = None):
        self._photo_cache: dict[str, np.ndarray] = {}
        if str(texture_dir) == "auto" and not (data_root() / "textures").is_dir():
            logger.warning("no texture folder at %s: homography pairs from scikit-image's %d bundled photos",
                           data_root() / "textures", len(PACKAGE_TEXTURES))
            self.texture_dir = None
            self._photo_cache = package_texture_photos()
            names, val_textures = list(self._photo_cache), PACKAGE_VAL_TEXTURES
        else:
            self.texture_dir = resolve_path("{data}/textures" if str(texture_dir) == "auto" else texture_dir)
            if not self.texture_dir.is_dir():
                raise InputError(f"texture folder not found: {self.texture_dir}")
            names = [q.name for q in self.texture_dir.iterdir() if q.suffix.lower() in IMAGE_EXTENSIONS]
        # val_textures: names held out for validation, or an int N: every N-th photo in name order (large folders)
        val = set(sorted(names)[::int(val_textures)]) if isinstance(val_textures, int) else set(val_textures)
        self.photos = sorted(n for n in names if (n in val) == (split == "val"))
        if not self.photos:
            raise InputError(f"no {split} texture photos in {self.texture_dir or 'the package photos'}")
        self.split = split
        self.warp = dict(warp or {})
        super().__init__(name, cache_dir, n_pairs, seed, sift_conf)

    def _cache_key(self) -> Any:
        return (self.seed, self.split, tuple(self.photos), sorted(self.warp.items()))

    def photo(self, name: str) -> np.ndarray:
        if name not in self._photo_cache:
            self._photo_cache[name] = read_image(self.texture_dir / name, grayscale=True)
        return self._photo_cache[name]

    def build(self, idx: int) -> dict[str, np.ndarray]:
        rng = _rng(self.seed, self.kind, self.split, idx)
        photo = self.photo(self.photos[idx % len(self.photos)])
        img0, img1, H = make_homography_pair(photo, rng, self.warp)
        f0, f1 = self.extractor(img0), self.extractor(img1)
        p01, vis01, p10, vis10 = L.project_homography(f0["keypoints"], f1["keypoints"], H,
                                                      f0["image_size"], f1["image_size"])
        return {**_pack_features(f0, 0), **_pack_features(f1, 1), "p01": p01, "vis01": vis01, "p10": p10,
                "vis10": vis10, "H": H.astype(np.float64)}

    def images(self, idx: int):
        """The two images of pair idx (re-generated deterministically; for exporting a benchmark set)."""
        rng = _rng(self.seed, self.kind, self.split, idx)
        return make_homography_pair(self.photo(self.photos[idx % len(self.photos)]), rng, self.warp)


def export_homography_val(src: "HomographySource", out_dir: Path, n: int | None = None) -> list[Path]:
    """Write the validation pairs of a homography source as HPatches-layout sequences
    (OUT/<name>_<i>/1.png, 2.png, H_1_2), so `gimsfm bench homography --data ...` can score them."""
    out_dir = Path(out_dir)
    dirs = []
    for i in range(min(len(src), n or len(src))):
        d = out_dir / f"{src.name}_{i:03d}"
        d.mkdir(parents=True, exist_ok=True)
        img0, img1, H = src.images(i)
        cv2.imwrite(str(d / "1.png"), img0)
        cv2.imwrite(str(d / "2.png"), img1)
        np.savetxt(d / "H_1_2", H / H[2, 2], fmt="%.10g")
        dirs.append(d)
    return dirs


@dataclass
class DepthPair:
    img0: str
    img1: str
    K0: np.ndarray
    K1: np.ndarray
    T_0to1: np.ndarray


def read_zeb_pairs(path: Path) -> list[DepthPair]:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"pairs file not found: {path}")
    pairs = []
    for i, line in enumerate(path.read_text().splitlines()):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        if len(parts) < 38:
            raise InputError(f"{path}:{i + 1}: expected 38 fields (ZEB format), got {len(parts)}")
        v = np.array(parts[4:38], np.float64)
        pairs.append(DepthPair(parts[0], parts[1], v[:9].reshape(3, 3), v[9:18].reshape(3, 3), v[18:34].reshape(4, 4)))
    return pairs


class DepthPoseSource(PairSource):
    """Pairs with depth + pose in the synth/ZEB layout: DIR/pairs.txt, DIR/images/..., DIR/depth/<stem>.npy."""

    kind = "depth"

    def __init__(self, name, cache_dir, n_pairs, seed, sift_conf, root: str | Path, rel_depth_th: float = 0.05):
        self.root = resolve_path(root)
        self.pairs = read_zeb_pairs(self.root / "pairs.txt")
        if not self.pairs:
            raise InputError(f"no pairs in {self.root / 'pairs.txt'}")
        self.rel_depth_th = rel_depth_th
        n = len(self.pairs) if not n_pairs else min(n_pairs, len(self.pairs))
        super().__init__(name, cache_dir, n, seed, sift_conf)

    def _cache_key(self) -> Any:
        st = (self.root / "pairs.txt").stat()
        return (str(self.root), st.st_size, int(st.st_mtime), self.rel_depth_th)

    def depth(self, img: str) -> np.ndarray:
        p = self.root / "depth" / (Path(img).stem + ".npy")
        if not p.is_file():
            raise InputError(f"depth map not found: {p}")
        return np.load(p).astype(np.float32)

    def images(self, idx: int) -> tuple[np.ndarray, np.ndarray]:
        """The two grey images of pair idx, as the record's features saw them."""
        pr = self.pairs[idx]
        return read_image(self.root / pr.img0, grayscale=True), read_image(self.root / pr.img1, grayscale=True)

    def build(self, idx: int) -> dict[str, np.ndarray]:
        pr = self.pairs[idx]
        im0, im1 = self.images(idx)
        f0, f1 = self.extractor(im0), self.extractor(im1)
        p01, vis01, p10, vis10 = L.project_depth(f0["keypoints"], f1["keypoints"], self.depth(pr.img0),
                                                 self.depth(pr.img1), pr.K0, pr.K1, pr.T_0to1, self.rel_depth_th)
        return {**_pack_features(f0, 0), **_pack_features(f1, 1), "p01": p01, "vis01": vis01, "p10": p10,
                "vis10": vis10, "K0": pr.K0, "K1": pr.K1, "T_0to1": pr.T_0to1}


# ----------------------------------------------------------------------------------------------------------
# Samples, mixing and batching
# ----------------------------------------------------------------------------------------------------------

def make_sample(rec: dict[str, np.ndarray], n_kpts: int, rng: np.random.Generator | None,
                pos_th: float = 3.0, neg_th: float = 5.0) -> dict[str, np.ndarray]:
    """Subsample keypoints (random when rng is given, else the strongest n_kpts), optionally swap the images,
    and label. Returns numpy arrays ready for `collate`."""
    swap = rng is not None and rng.random() < 0.5
    a, b = ("1", "0") if swap else ("0", "1")
    pa, va, pb, vb = (rec["p10"], rec["vis10"], rec["p01"], rec["vis01"]) if swap else \
        (rec["p01"], rec["vis01"], rec["p10"], rec["vis10"])

    def pick(n_all):
        if n_all <= n_kpts:
            return np.arange(n_all)
        if rng is None:
            return np.arange(n_kpts)
        # Keypoints are sorted by SIFT response: sample among the strongest 1.25 n (as top-k at inference,
        # with some variety).
        pool = min(n_all, int(round(n_kpts * 1.25)))
        return np.sort(rng.choice(pool, n_kpts, replace=False))

    i0, i1 = pick(len(rec["kpts" + a])), pick(len(rec["kpts" + b]))
    out = {}
    for side, src, idx in (("0", a, i0), ("1", b, i1)):
        out["kpts" + side] = rec["kpts" + src][idx]
        out["scales" + side] = rec["scales" + src][idx]
        out["oris" + side] = rec["oris" + src][idx]
        d = rec["desc" + src][idx].astype(np.float32) / 255.0
        out["desc" + side] = d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-6)
        out["size" + side] = rec["size" + src].astype(np.float32)
    p01, vis01, p10, vis10 = pa[i0], va[i0], pb[i1], vb[i1]
    gt0, gt1 = L.label_matches(out["kpts0"], out["kpts1"], p01, vis01, p10, vis10, pos_th, neg_th)
    out.update(gt0=gt0, gt1=gt1, p01=p01, vis01=vis01)
    return out


def collate(samples: list[dict[str, np.ndarray]]) -> dict[str, torch.Tensor]:
    """Pad to the largest keypoint count of the batch; mask{0,1} (B, N) mark real keypoints, padded
    keypoints get GT label IGNORE."""
    B = len(samples)
    out: dict[str, torch.Tensor] = {}
    for side in "01":
        n = max(max(len(s["kpts" + side]) for s in samples), 1)
        D = samples[0]["desc" + side].shape[1]
        kp = torch.zeros(B, n, 2)
        sc = torch.ones(B, n)
        ori = torch.zeros(B, n)
        desc = torch.zeros(B, n, D)
        mask = torch.zeros(B, n, dtype=torch.bool)
        gt = torch.full((B, n), L.IGNORE, dtype=torch.long)
        size = torch.zeros(B, 2)
        for b, s in enumerate(samples):
            k = len(s["kpts" + side])
            kp[b, :k] = torch.from_numpy(s["kpts" + side])
            sc[b, :k] = torch.from_numpy(s["scales" + side])
            ori[b, :k] = torch.from_numpy(s["oris" + side])
            desc[b, :k] = torch.from_numpy(s["desc" + side])
            mask[b, :k] = True
            gt[b, :k] = torch.from_numpy(s["gt" + side])
            size[b] = torch.from_numpy(s["size" + side])
            # Padded keypoints sit at the image centre, so they normalise inside [-1, 1].
            kp[b, k:] = size[b] / 2
        out.update({f"keypoints{side}": kp, f"scales{side}": sc, f"oris{side}": ori, f"descriptors{side}": desc,
                    f"mask{side}": mask, f"gt_matches{side}": gt, f"image_size{side}": size})
    return out


def weighted_sources(sources: list, weights: list[float]) -> tuple[list, np.ndarray]:
    """The non-empty sources with a positive weight, and their weights normalised to sum 1."""
    keep = [(s, w) for s, w in zip(sources, weights) if s is not None and len(s) > 0 and w > 0]
    if not keep:
        raise InputError("no training data: every source is empty or missing")
    w = np.array([w for _, w in keep], np.float64)
    return [s for s, _ in keep], w / w.sum()


class MixedPairs:
    """Weighted mixture of sources. Batch `it` is a pure function of (seed, it): exact resume."""

    def __init__(self, sources: list[PairSource], weights: list[float], n_kpts: int, seed: int,
                 pos_th: float = 3.0, neg_th: float = 5.0):
        self.sources, self.weights = weighted_sources(sources, weights)
        self.n_kpts, self.seed, self.pos_th, self.neg_th = n_kpts, seed, pos_th, neg_th
        self.min_kpts = 16

    def batch(self, it: int, batch_size: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, 7, it])
        samples = []
        while len(samples) < batch_size:
            s = self.sources[rng.choice(len(self.sources), p=self.weights)]
            rec = s.get(int(rng.integers(len(s))))
            if min(len(rec["kpts0"]), len(rec["kpts1"])) < self.min_kpts:
                continue  # (nearly) featureless image: nothing to learn
            samples.append(make_sample(rec, self.n_kpts, rng, self.pos_th, self.neg_th))
        return collate(samples)
