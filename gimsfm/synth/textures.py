"""Texture catalogue for the synthetic worlds: photos + procedural materials, one fixed, ordered list.

Sources, in this order of preference:
  * the training texture photos in ``$GIMSFM_DATA/textures`` (default ``<repo>/../shared/data/textures``);
    images from ``pose/``, ``homography/`` or ``sfm/`` are never read;
  * images shipped inside installed packages (scikit-image ``skimage.data``), used when the folder is absent;
  * procedural materials (fbm noise, wood, tiles, asphalt, sand, grass, bark, ...), always generated with
    fixed seeds so the catalogue is identical on every run.

The catalogue is built once per process (``get_catalog``) and uploaded once per renderer as a texture array.
Worlds refer to layers by index through ``TextureCatalog.pick(category, rng)``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from .. import logger
from ..utils.data import data_root

TEX_SIZE = 512
FORBIDDEN_SUBDIRS = ("pose", "homography", "sfm")


def textures_dir() -> Path | None:
    d = data_root() / "textures"
    if any(part in FORBIDDEN_SUBDIRS for part in d.resolve().parts[-2:]):
        return None
    return d if d.is_dir() else None


# ----------------------------------------------------------------------------------------------------------
# procedural materials
def fbm(rng: np.random.Generator, size: int = TEX_SIZE, octaves: int = 6, base: int = 4,
        persistence: float = 0.55) -> np.ndarray:
    """Tileable-enough fractal value noise in [0, 1], float32 (size, size)."""
    out = np.zeros((size, size), np.float32)
    amp, total = 1.0, 0.0
    cells = base
    for _ in range(octaves):
        grid = rng.random((cells + 1, cells + 1)).astype(np.float32)
        grid[-1, :] = grid[0, :]
        grid[:, -1] = grid[:, 0]
        up = cv2.resize(grid, (size + size // cells, size + size // cells), interpolation=cv2.INTER_CUBIC)
        out += amp * up[:size, :size]
        total += amp
        amp *= persistence
        cells *= 2
        if cells > size // 2:
            break
    out /= total
    lo, hi = np.percentile(out, [1, 99])
    return np.clip((out - lo) / max(hi - lo, 1e-6), 0, 1)


def _colorize(v: np.ndarray, c0, c1) -> np.ndarray:
    c0 = np.asarray(c0, np.float32)
    c1 = np.asarray(c1, np.float32)
    return v[..., None] * c1 + (1 - v[..., None]) * c0


def _speckle(rng, img, amount=0.08):
    return np.clip(img + amount * (rng.random(img.shape[:2], dtype=np.float32)[..., None] - 0.5), 0, 1)


def _wood(rng):
    s = TEX_SIZE
    n = fbm(rng, octaves=5, base=4)
    y = np.linspace(0, 1, s, dtype=np.float32)[:, None]
    rings = 0.5 + 0.5 * np.sin((y * rng.uniform(25, 45) + 6 * n) * np.pi)
    planks = ((np.arange(s)[None, :] // (s // 4)) % 2).astype(np.float32) * 0.15
    v = np.clip(0.6 * rings + 0.4 * fbm(rng, octaves=6, base=16) + planks - 0.1, 0, 1)
    img = _colorize(v, rng.uniform([0.25, 0.13, 0.05], [0.4, 0.22, 0.1]), rng.uniform([0.6, 0.4, 0.2], [0.8, 0.55, 0.3]))
    img[:, :: s // 4] *= 0.4
    return _speckle(rng, img, 0.05)


def _tiles(rng):
    s = TEX_SIZE
    n_t = int(rng.choice([4, 6, 8]))
    v = 0.5 + 0.5 * fbm(rng, octaves=6, base=8)
    base = rng.uniform(0.3, 0.9, 3).astype(np.float32)
    img = v[..., None] * base
    # per-tile shade variation
    shade = rng.uniform(0.75, 1.15, (n_t, n_t)).astype(np.float32)
    shade = cv2.resize(shade, (s, s), interpolation=cv2.INTER_NEAREST)
    img *= shade[..., None]
    step = s // n_t
    grout = rng.uniform(0.1, 0.3)
    for k in range(n_t):
        img[k * step: k * step + 4, :] = grout
        img[:, k * step: k * step + 4] = grout
    return np.clip(_speckle(rng, img, 0.06), 0, 1)


def _asphalt(rng):
    v = 0.6 * fbm(rng, octaves=7, base=16) + 0.4 * rng.random((TEX_SIZE, TEX_SIZE), dtype=np.float32)
    g = rng.uniform(0.18, 0.32)
    img = np.repeat((g + 0.25 * (v - 0.5))[..., None], 3, axis=2)
    if rng.random() < 0.6:  # lane marking
        w = TEX_SIZE // 2
        img[:, w - 6: w + 6] = np.where((np.arange(TEX_SIZE) // 64 % 2 == 0)[:, None, None], 0.85, img[:, w - 6: w + 6])
    return np.clip(img, 0, 1)


def _sand(rng):
    v = 0.5 * fbm(rng, octaves=7, base=8) + 0.3 * fbm(rng, octaves=4, base=2) + 0.2 * rng.random((TEX_SIZE, TEX_SIZE), dtype=np.float32)
    return np.clip(_colorize(v, rng.uniform([0.45, 0.38, 0.25], [0.55, 0.45, 0.3]), [0.9, 0.82, 0.62]), 0, 1)


def _grass(rng):
    v = 0.55 * fbm(rng, octaves=7, base=16) + 0.45 * rng.random((TEX_SIZE, TEX_SIZE), dtype=np.float32)
    streak = cv2.GaussianBlur(rng.random((TEX_SIZE, TEX_SIZE), dtype=np.float32), (1, 9), 0)
    v = np.clip(0.7 * v + 0.6 * (streak - 0.5), 0, 1)
    return _colorize(v, rng.uniform([0.08, 0.18, 0.03], [0.15, 0.28, 0.08]), rng.uniform([0.4, 0.6, 0.15], [0.6, 0.75, 0.3]))


def _rock(rng):
    v = fbm(rng, octaves=7, base=4, persistence=0.65)
    cracks = np.abs(fbm(rng, octaves=5, base=8) - 0.5) < 0.03
    g = _colorize(v, rng.uniform(0.15, 0.3, 3), rng.uniform(0.55, 0.75, 3))
    g[cracks] *= 0.35
    return _speckle(rng, g, 0.1)


def _bark(rng):
    s = TEX_SIZE
    n = fbm(rng, octaves=5, base=4)
    x = np.linspace(0, 1, s, dtype=np.float32)[None, :]
    v = 0.5 + 0.5 * np.sin((x * 30 + 3 * n) * np.pi)
    v = np.clip(0.5 * v + 0.5 * fbm(rng, octaves=6, base=8), 0, 1)
    return _colorize(v, [0.12, 0.08, 0.05], [0.45, 0.35, 0.25])


def _leaves(rng):
    v = np.clip(0.5 * fbm(rng, octaves=7, base=16) + 0.5 * (rng.random((TEX_SIZE, TEX_SIZE), dtype=np.float32) > 0.6), 0, 1)
    return _colorize(v, [0.03, 0.12, 0.03], rng.uniform([0.2, 0.45, 0.1], [0.4, 0.65, 0.2]))


def _plaster(rng):
    v = 0.75 + 0.25 * fbm(rng, octaves=7, base=8)
    base = rng.uniform(0.55, 0.95, 3).astype(np.float32)
    img = v[..., None] * base
    # a few stains / marks so that plain walls are still matchable
    blobs = fbm(rng, octaves=4, base=6) > 0.82
    img[blobs] *= 0.85
    return _speckle(rng, img, 0.04)


def _fabric(rng):
    s = TEX_SIZE
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32)
    v = 0.5 + 0.25 * np.sin(xx * rng.uniform(0.5, 1.5)) * np.sin(yy * rng.uniform(0.5, 1.5))
    stripes = (np.floor(xx / rng.integers(16, 64)) % 2) * 0.2
    v = np.clip(v + stripes + 0.3 * (fbm(rng, octaves=5, base=8) - 0.5), 0, 1)
    return _colorize(v, rng.uniform(0.05, 0.4, 3), rng.uniform(0.4, 1.0, 3))


def _roof(rng):
    s = TEX_SIZE
    yy, xx = np.mgrid[0:s, 0:s]
    rows = (yy // 32) % 2
    shingle = ((xx + rows * 16) % 32 < 2) | (yy % 32 < 2)
    v = 0.6 + 0.4 * fbm(rng, octaves=6, base=16)
    img = v[..., None] * rng.uniform([0.3, 0.1, 0.05], [0.7, 0.35, 0.3]).astype(np.float32)
    img[shingle] *= 0.4
    return img


def _facade(rng):
    """Window grid on a plaster wall: a procedural building face."""
    s = TEX_SIZE
    img = _plaster(rng)
    nx, ny = int(rng.integers(3, 6)), int(rng.integers(3, 6))
    win = rng.uniform(0.05, 0.35, 3).astype(np.float32)
    frame = rng.uniform(0.6, 1.0, 3).astype(np.float32)
    cw, ch = s // nx, s // ny
    for i in range(nx):
        for j in range(ny):
            x0, y0 = i * cw + cw // 4, j * ch + ch // 5
            x1, y1 = x0 + cw // 2, y0 + (3 * ch) // 5
            img[y0 - 3:y1 + 3, x0 - 3:x1 + 3] = frame
            refl = 0.6 + 0.4 * fbm(rng, size=64, octaves=3, base=2)
            img[y0:y1, x0:x1] = win * cv2.resize(refl, (x1 - x0, y1 - y0))[..., None] * rng.uniform(0.6, 1.6)
            img[y0:y1, (x0 + x1) // 2 - 2:(x0 + x1) // 2 + 2] = frame
    return np.clip(img, 0, 1)


def _coral(rng):
    v = fbm(rng, octaves=6, base=8)
    dots = rng.random((TEX_SIZE, TEX_SIZE)) > 0.97
    img = _colorize(v, rng.uniform(0.2, 0.5, 3), rng.uniform(0.6, 1.0, 3))
    img[dots] = rng.uniform(0.8, 1.0, 3)
    return cv2.GaussianBlur(img, (3, 3), 0)


PROCEDURAL = {
    "wood": (_wood, 4), "tile": (_tiles, 4), "asphalt": (_asphalt, 3), "sand": (_sand, 3),
    "grass": (_grass, 3), "rock": (_rock, 4), "bark": (_bark, 2), "leaves": (_leaves, 2),
    "plaster": (_plaster, 4), "fabric": (_fabric, 4), "roof": (_roof, 3), "facade": (_facade, 6),
    "coral": (_coral, 3),
}


# ----------------------------------------------------------------------------------------------------------
@dataclass
class TextureCatalog:
    layers: list[np.ndarray] = field(default_factory=list)  # uint8 (S, S, 3)
    names: list[str] = field(default_factory=list)
    categories: dict[str, list[int]] = field(default_factory=dict)

    def add(self, name: str, category: str, img: np.ndarray) -> None:
        self.categories.setdefault(category, []).append(len(self.layers))
        self.layers.append(img)
        self.names.append(name)

    def pick(self, rng: np.random.Generator, *categories: str) -> int:
        """A random layer index from the union of the given categories (falls back to any layer)."""
        pool = [i for c in categories for i in self.categories.get(c, [])]
        if not pool:
            pool = list(range(len(self.layers)))
        return int(pool[int(rng.integers(len(pool)))])

    def fingerprint(self) -> str:
        """Short hash of the layer names and pixels (identifies the catalogue a dataset was rendered with)."""
        import hashlib

        h = hashlib.sha1()
        for name, img in zip(self.names, self.layers):
            h.update(name.encode())
            h.update(img[::16, ::16].tobytes())
        return h.hexdigest()[:16]

    def stack(self) -> np.ndarray:
        return np.stack(self.layers, 0)


def _square(img: np.ndarray, size: int = TEX_SIZE) -> np.ndarray:
    """Centre-crop to a square and resize to size x size (uint8 RGB)."""
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    img = img[..., :3]
    h, w = img.shape[:2]
    m = min(h, w)
    y0, x0 = (h - m) // 2, (w - m) // 2
    img = img[y0:y0 + m, x0:x0 + m]
    interp = cv2.INTER_AREA if m > size else cv2.INTER_CUBIC
    return np.ascontiguousarray(cv2.resize(img, (size, size), interpolation=interp))


def _photo_category(name: str) -> str:
    if "phototourism" in name:
        return "building"  # landmark facades
    return "photo"


def package_images() -> list[tuple[str, np.ndarray]]:
    out = []
    try:
        import skimage.data as skd
    except Exception:  # pragma: no cover
        return out
    for n in ("astronaut", "chelsea", "coffee", "rocket", "camera", "hubble_deep_field", "retina", "brick",
              "grass", "gravel"):
        try:
            out.append((f"skimage_{n}", np.asarray(getattr(skd, n)())))
        except Exception:
            continue
    return out


@lru_cache(maxsize=2)
def get_catalog(tex_dir: str | None = "auto") -> TextureCatalog:
    """The process-wide texture catalogue (deterministic order and content)."""
    cat = TextureCatalog()
    d = textures_dir() if tex_dir == "auto" else (Path(tex_dir) if tex_dir else None)
    photos: list[tuple[str, np.ndarray]] = []
    if d is not None:
        for p in sorted(d.iterdir()):
            if p.suffix.lower() not in (".jpg", ".jpeg", ".png"):
                continue
            img = cv2.imread(str(p), cv2.IMREAD_COLOR)
            if img is None:
                continue
            photos.append((p.stem, img[..., ::-1]))
    if not photos:
        logger.info("synth: no texture folder found, using package images and procedural textures")
    for name, img in photos:
        cat.add(name, _photo_category(name), _square(img))
    for name, img in package_images():
        category = {"skimage_brick": "brick", "skimage_grass": "grass", "skimage_gravel": "gravel"}.get(name, "photo")
        if photos and category == "photo":
            continue  # only fall back on generic package photos without the texture folder
        cat.add(name, category, _square(img))
    rng = np.random.default_rng(12345)
    for cname, (fn, count) in PROCEDURAL.items():
        for k in range(count):
            img = fn(rng)
            cat.add(f"proc_{cname}_{k}", cname, (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8))
    # photos stand in for missing categories
    if "building" not in cat.categories:
        cat.categories["building"] = list(cat.categories.get("photo", [])) or list(cat.categories["facade"])
    return cat
