"""Robust filtering and fusion of correspondences (GIM steps 3-4)."""
from __future__ import annotations

import cv2
import numpy as np


def magsac_fundamental_inliers(k0: np.ndarray, k1: np.ndarray, thresh_px: float = 0.5,
                               confidence: float = 0.999999, max_iters: int = 100_000) -> np.ndarray:
    """Inlier mask of a fundamental matrix fitted with OpenCV USAC_MAGSAC (all False if it fails)."""
    mask = np.zeros(len(k0), bool)
    if len(k0) < 8:
        return mask
    cv2.setRNGSeed(0)
    try:
        F, m = cv2.findFundamentalMat(k0.astype(np.float64), k1.astype(np.float64), cv2.USAC_MAGSAC, thresh_px,
                                      confidence, max_iters)
    except cv2.error:  # degenerate sets (e.g. all points on a line or coincident) have no model
        return mask
    if F is None or m is None or F.shape != (3, 3):
        return mask
    return m.ravel().astype(bool)


def drop_static(k0: np.ndarray, k1: np.ndarray, min_motion_px: float = 1.0) -> np.ndarray:
    """Keep mask without "watermark" matches: points that move less than 1 px in both x and y."""
    d = np.abs(k1 - k0)
    return ~((d[:, 0] < min_motion_px) & (d[:, 1] < min_motion_px))


def dedup(k0: np.ndarray, k1: np.ndarray, cell: float = 1.0) -> np.ndarray:
    """Indices of unique correspondences: one per rounded point in image 0 and in image 1 (first wins)."""
    if len(k0) == 0:
        return np.zeros(0, int)
    q0 = np.round(k0 / cell).astype(np.int64)
    q1 = np.round(k1 / cell).astype(np.int64)
    _, i0 = np.unique(q0, axis=0, return_index=True)
    keep = np.zeros(len(k0), bool)
    keep[i0] = True
    idx = np.where(keep)[0]
    _, i1 = np.unique(q1[idx], axis=0, return_index=True)
    return np.sort(idx[i1])


def fuse(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate correspondence sets (priority order) and de-duplicate."""
    parts = [p for p in parts if len(p[0])]
    if not parts:
        return np.zeros((0, 2), np.float32), np.zeros((0, 2), np.float32)
    k0 = np.concatenate([p[0] for p in parts]).astype(np.float32)
    k1 = np.concatenate([p[1] for p in parts]).astype(np.float32)
    keep = dedup(k0, k1)
    return k0[keep], k1[keep]
