"""Camera and weather effects applied after rendering: sensor noise, vignetting, rain streaks,
exposure / white-balance drift (slow auto-exposure), all seeded."""
from __future__ import annotations

import cv2
import numpy as np

from .camera import Smooth1D


def sensor_noise(rgb: np.ndarray, sigma: float, rng: np.random.Generator, shot: bool = False) -> np.ndarray:
    """Additive Gaussian read noise (sigma in [0, 1] units), plus signal-dependent shot noise if asked."""
    if sigma <= 0:
        return rgb
    x = rgb.astype(np.float32)
    scale = sigma * 255.0
    if shot:
        scale = scale * (0.4 + 0.6 * np.sqrt(np.maximum(x, 1.0) / 255.0))
    noise = rng.standard_normal(x.shape[:2], dtype=np.float32)[..., None] * 0.6 + rng.standard_normal(x.shape, dtype=np.float32) * 0.8
    x += noise * scale
    return np.clip(x + 0.5, 0, 255).astype(np.uint8)


_VIGNETTE: dict = {}


def vignette_map(h: int, w: int, strength: float) -> np.ndarray:
    key = (h, w, round(strength, 3))
    if key not in _VIGNETTE:
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        r2 = ((xx - (w - 1) / 2) ** 2 + (yy - (h - 1) / 2) ** 2) / ((w / 2) ** 2 + (h / 2) ** 2)
        _VIGNETTE[key] = (1.0 - strength * r2)[..., None].astype(np.float32)
    return _VIGNETTE[key]


def vignette(rgb: np.ndarray, strength: float) -> np.ndarray:
    if strength <= 0:
        return rgb
    return np.clip(rgb.astype(np.float32) * vignette_map(rgb.shape[0], rgb.shape[1], strength), 0, 255).astype(np.uint8)


def rain(rgb: np.ndarray, rng: np.random.Generator, density: float = 0.0015, length: int = 18, angle: float = 0.15,
         brightness: float = 0.25) -> np.ndarray:
    """Motion-blurred rain streaks (screen-space, new drops every frame)."""
    h, w = rgb.shape[:2]
    drops = (rng.random((h, w), dtype=np.float32) < density).astype(np.float32)
    k = np.zeros((length, length), np.float32)
    for i in range(length):
        x = int(round(length / 2 + (i - length / 2) * angle))
        if 0 <= x < length:
            k[i, x] = 1.0
    k /= k.sum()
    streak = cv2.filter2D(drops, -1, k) * length * brightness
    out = rgb.astype(np.float32) * (1 - 0.3 * np.clip(streak, 0, 1)[..., None]) + 255 * np.clip(streak, 0, 1)[..., None] * 0.6
    return np.clip(out, 0, 255).astype(np.uint8)


class PhotometricDrift:
    """Slowly varying exposure and white balance (auto exposure / auto white balance hunting)."""

    def __init__(self, rng: np.random.Generator, exposure_amp: float = 0.15, wb_amp: float = 0.04):
        self.e = Smooth1D(rng, 0.02, 0.15)
        self.r = Smooth1D(rng, 0.01, 0.08)
        self.b = Smooth1D(rng, 0.01, 0.08)
        self.ea, self.wa = exposure_amp, wb_amp

    def gain(self, t: float) -> np.ndarray:
        e = np.exp(self.ea * self.e(t))
        return e * np.array([1 + self.wa * self.r(t), 1.0, 1 + self.wa * self.b(t)])


class NoiseBank:
    """Fast per-frame sensor noise for videos: random crops of a few pre-drawn Gaussian fields (drawing
    a fresh 640x480x3 field costs ~15 ms; a crop + scale costs ~2 ms), with signal-dependent shot noise."""

    def __init__(self, rng: np.random.Generator, height: int, width: int, n: int = 4, pad: int = 32):
        self.rng, self.h, self.w, self.pad = rng, height, width, pad
        self.bank = (rng.standard_normal((n, height + pad, width + pad, 3), dtype=np.float32) * 0.8
                     + rng.standard_normal((n, height + pad, width + pad, 1), dtype=np.float32) * 0.6)

    def apply(self, rgb: np.ndarray, sigma: float, vignette_strength: float = 0.0) -> np.ndarray:
        """Vignetting (optional) and noise in one float pass."""
        if sigma <= 0 and vignette_strength <= 0:
            return rgb
        if sigma <= 0:
            return vignette(rgb, vignette_strength)
        k = int(self.rng.integers(len(self.bank)))
        dy, dx = (int(v) for v in self.rng.integers(0, self.pad, 2))
        noise = self.bank[k, dy:dy + self.h, dx:dx + self.w]
        if self.rng.random() < 0.5:
            noise = noise[::-1]
        x = rgb.astype(np.float32)
        if vignette_strength > 0:
            x *= vignette_map(rgb.shape[0], rgb.shape[1], vignette_strength)
        scale = (sigma * 255.0 * 0.4) + (sigma * 255.0 * 0.6 / 16.0) * np.sqrt(np.maximum(x, 1.0))
        x += noise * scale
        np.clip(x, 0, 255, out=x)
        return x.astype(np.uint8)
