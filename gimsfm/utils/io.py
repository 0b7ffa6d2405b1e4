"""Robust image reading and listing: odd formats become 8-bit RGB, bad files raise InputError."""
from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .. import logger
from ..errors import InputError

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".ppm", ".pgm", ".bmp", ".tif", ".tiff", ".webp"}
# Decompression-bomb guard stays on, but real photos of up to ~200 MP are allowed.
Image.MAX_IMAGE_PIXELS = 200_000_000


def list_images(image_dir: Path, recursive: bool = True) -> list[str]:
    """Relative names (POSIX) of the files in `image_dir` whose extension looks like an image, sorted."""
    image_dir = Path(image_dir)
    if not image_dir.exists():
        raise InputError(f"image folder does not exist: {image_dir}")
    if not image_dir.is_dir():
        raise InputError(f"not a folder: {image_dir}")
    pattern = "**/*" if recursive else "*"
    names, skipped = [], []
    for p in sorted(image_dir.glob(pattern)):
        if not p.is_file() or any(part.startswith(".") for part in p.relative_to(image_dir).parts):
            continue
        if p.suffix.lower() in IMAGE_EXTENSIONS:
            names.append(p.relative_to(image_dir).as_posix())
        else:
            skipped.append(p.name)
    if skipped:
        logger.warning("skipping %d non-image file(s): %s", len(skipped), ", ".join(skipped[:5]))
    return names


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    """Map any integer/float depth to uint8 by its type range (16-bit -> >> 8, float -> [0, 1])."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.uint16:
        return (arr >> 8).astype(np.uint8)
    if np.issubdtype(arr.dtype, np.integer):
        hi = max(int(arr.max()), 1)
        return np.clip(arr.astype(np.float64) * 255.0 / (65535 if hi > 255 else 255), 0, 255).astype(np.uint8)
    arr = arr.astype(np.float64)
    hi = arr.max() if arr.size else 1.0
    scale = 255.0 if hi <= 1.0 else 255.0 / hi
    return np.clip(arr * scale, 0, 255).astype(np.uint8)


def _pil_to_rgb(img: Image.Image) -> np.ndarray:
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        return np.repeat(_to_uint8(np.asarray(img))[..., None], 3, axis=2)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        # Composite on white: transparent pixels carry arbitrary colour values.
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(background, rgba).convert("RGB"))
    return np.asarray(img.convert("RGB"))


def read_image(path: Path, grayscale: bool = False) -> np.ndarray:
    """Read an image as uint8 RGB (H, W, 3) or grayscale (H, W), EXIF orientation applied.

    Handles 8/16-bit, grayscale, palette and RGBA files. Raises InputError for unreadable files.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"image not found: {path}")
    rgb = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as img:
                img.load()
                img = ImageOps.exif_transpose(img)
                # PIL silently truncates 16-bit RGB; OpenCV keeps the depth.
                if img.mode in ("RGB", "RGBA") and path.suffix.lower() in (".png", ".tif", ".tiff"):
                    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
                    if raw is not None and raw.dtype == np.uint16 and raw.shape[:2] == img.size[::-1]:
                        raw = raw[..., :3][..., ::-1]
                        rgb = _to_uint8(raw)
                if rgb is None:
                    rgb = _pil_to_rgb(img)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED | cv2.IMREAD_ANYDEPTH)
        if raw is None:
            raise InputError(f"cannot read image {path.name}: {str(exc).splitlines()[0][:120]}") from None
        raw = _to_uint8(raw)
        if raw.ndim == 2:
            rgb = np.repeat(raw[..., None], 3, axis=2)
        else:
            rgb = raw[..., :3][..., ::-1]
    if rgb.ndim != 3 or rgb.shape[0] < 8 or rgb.shape[1] < 8:
        raise InputError(f"image {path.name} is too small or malformed: shape {rgb.shape}")
    rgb = np.ascontiguousarray(rgb)
    if grayscale:
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return rgb


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) after EXIF orientation, without decoding the pixels when possible."""
    try:
        with Image.open(path) as img:
            w, h = img.size
            orientation = img.getexif().get(0x0112, 1)
            return (h, w) if orientation in (5, 6, 7, 8) else (w, h)
    except Exception:
        h, w = read_image(path).shape[:2]
        return w, h


def exif_focal_px(path: Path, width: int, height: int) -> float | None:
    """Focal length in pixels from EXIF (35 mm equivalent or focal-plane resolution), or None."""
    try:
        with Image.open(path) as img:
            exif = img.getexif()
            sub = exif.get_ifd(0x8769)
    except Exception:
        return None
    f35 = sub.get(0xA405) or exif.get(0xA405)
    if f35:
        try:
            f35 = float(f35)
            if f35 > 0:
                return f35 / 36.0 * max(width, height)
        except (TypeError, ValueError):
            pass
    f_mm, xres, unit = sub.get(0x920A), sub.get(0xA20E), sub.get(0xA210, 2)
    try:
        if f_mm and xres and float(xres) > 0:
            mm_per_unit = {2: 25.4, 3: 10.0, 4: 1.0}.get(int(unit), 25.4)
            # Focal-plane resolution refers to the unrotated sensor; use the long side's density.
            return float(f_mm) * float(xres) / mm_per_unit
    except (TypeError, ValueError, ZeroDivisionError):
        pass
    return None


def resize_max(image: np.ndarray, max_side: int | None) -> tuple[np.ndarray, float]:
    """Downscale so the long side is <= max_side (INTER_AREA); returns (image, scale original/new)."""
    h, w = image.shape[:2]
    if not max_side or max(h, w) <= max_side:
        return image, 1.0
    s = max_side / max(h, w)
    new = cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    return new, max(h, w) / max(new.shape[:2])


def exif_camera(path: Path) -> str | None:
    """'Make Model' from EXIF, or None."""
    try:
        with Image.open(path) as img:
            exif = img.getexif()
    except Exception:
        return None
    make, model = exif.get(0x010F), exif.get(0x0110)
    return f"{make or ''} {model or ''}".strip() or None


def resolve_dir(path: Path) -> Path:
    """A folder, following a symlink stored as a small text file holding a relative path (as git does on
    checkouts without symlink support, e.g. shared/data/sfm/*/images)."""
    path = Path(path)
    if path.is_file() and path.stat().st_size < 1024:
        try:
            target = (path.parent / path.read_text().strip()).resolve()
        except (OSError, UnicodeDecodeError):
            return path
        if target.is_dir():
            return target
    return path
