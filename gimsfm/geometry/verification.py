"""Is a set of matches explained by a confident two-view model? The test view synthesis escalates on.

Both a homography and a fundamental matrix are fitted with MAGSAC++ (OpenCV USAC); a model counts only if it
has enough inliers spread over a non-trivial area and is not degenerate: a homography must keep orientation
and stay well conditioned on its inliers, and a fundamental matrix whose inliers are at least half explained by
a homography (mostly a plane, the classic F degeneracy) is judged as that homography.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

MIN_INLIERS = 15
# A model whose inliers cover under 15 % of both images is extrapolated over the rest: not confident (on the
# dev homography pairs every plain sift-nn model under this coverage was off by >= 40 px at the corners).
MIN_SPREAD = 0.15


@dataclass
class Verification:
    """Result of `verify_matches`: which model (if any) is confident, and its inliers."""

    confident: bool
    model: str  # "homography" | "fundamental" | ""
    inliers: np.ndarray  # (M,) bool, inliers of the chosen model (all False when there is none)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def num_inliers(self) -> int:
        return int(self.inliers.sum())


def inlier_threshold(size0: np.ndarray, size1: np.ndarray) -> float:
    """A pixel threshold that grows with the images: 3 px at 1600 px, never under 1.5 or over 8."""
    side = float(max(np.max(size0), np.max(size1)))
    return float(np.clip(0.002 * side, 1.5, 8.0))


def _spread(pts: np.ndarray, size: np.ndarray) -> float:
    """Area of the points' convex hull as a fraction of the image."""
    if len(pts) < 3:
        return 0.0
    hull = cv2.convexHull(pts.astype(np.float32))
    return float(cv2.contourArea(hull)) / float(max(size[0] * size[1], 1))


def homography_degenerate(H: np.ndarray, pts0: np.ndarray) -> str:
    """Reason a homography is implausible on its inliers ("" if it is not): a mirror or fold, or a near-singular map."""
    A = H[:2, :2] - np.outer(H[:2, 2], H[2, :2])  # Jacobian at the origin; sign checked on the inliers below
    if not np.isfinite(H).all() or abs(np.linalg.det(A)) < 1e-8:
        return "singular"
    w = pts0 @ H[2, :2] + H[2, 2]
    if (w <= 0).any() and (w >= 0).any():
        return "inliers on both sides of the horizon"
    # Local area scale of the map at each inlier: det(J) = det(H) / w^3. A mirror flips its sign.
    det = np.linalg.det(H) / w ** 3
    if (det <= 0).any():
        return "mirror"
    ratio = np.abs(det)
    if ratio.max() / max(ratio.min(), 1e-12) > 1e4 or ratio.max() > 1e4 or ratio.min() < 1e-4:
        return "ill-conditioned"
    return ""


def verify_matches(kpts0: np.ndarray, kpts1: np.ndarray, size0: np.ndarray, size1: np.ndarray,
                   min_inliers: int = MIN_INLIERS, min_spread: float = MIN_SPREAD, seed: int = 0,
                   max_iters: int = 5000, need_fundamental: bool = False) -> Verification:
    """Fit H and F with MAGSAC++; confident when either has >= `min_inliers` inliers covering at least
    `min_spread` of either image (convex hull), and is not degenerate. Without `need_fundamental`, a confident homography
    stops there (the cheap path for easy pairs)."""
    k0 = np.asarray(kpts0, np.float64).reshape(-1, 2)
    k1 = np.asarray(kpts1, np.float64).reshape(-1, 2)
    n = len(k0)
    none = np.zeros(n, bool)
    info: dict[str, Any] = {"matches": n}
    if n < max(min_inliers, 8):
        return Verification(False, "", none, {**info, "reason": "too few matches"})
    thr = inlier_threshold(size0, size1)
    cv2.setRNGSeed(int(seed))
    H, mask = cv2.findHomography(k0, k1, cv2.USAC_MAGSAC, thr, maxIters=max_iters, confidence=0.9999)
    h_in = none if H is None or mask is None else mask.ravel() > 0
    h_ok, h_reason = False, "no model"
    if H is not None and h_in.sum() >= min_inliers:
        h_reason = homography_degenerate(H / H[2, 2], k0[h_in])
        spread = max(_spread(k0[h_in], size0), _spread(k1[h_in], size1))
        if not h_reason and spread < min_spread:
            h_reason = "inliers in a tiny area"
        h_ok = not h_reason
    info.update(h_inliers=int(h_in.sum()), h_reason=h_reason)
    if h_ok and not need_fundamental:
        return Verification(True, "homography", h_in, info)
    cv2.setRNGSeed(int(seed))
    F, fmask = cv2.findFundamentalMat(k0, k1, cv2.USAC_MAGSAC, thr / 2, 0.9999, max_iters)
    f_in = none if F is None or fmask is None or F.shape != (3, 3) else fmask.ravel()[:n] > 0
    f_ok = bool(f_in.sum() >= min_inliers + 5)
    f_reason = "" if f_ok else "too few inliers"
    if f_ok:
        spread = max(_spread(k0[f_in], size0), _spread(k1[f_in], size1))
        if spread < min_spread:
            f_ok, f_reason = False, "inliers in a tiny area"
        elif (h_in & f_in).sum() >= 0.5 * f_in.sum():
            # Mostly a plane: F is then undetermined (DEGENSAC's case) and absorbs outliers along its free
            # epipolar lines; the homography decides.
            f_ok, f_reason = False, "planar (homography explains the inliers)"
    info.update(f_inliers=int(f_in.sum()), f_reason=f_reason)
    if f_ok and (not h_ok or f_in.sum() > 1.2 * h_in.sum()):
        return Verification(True, "fundamental", f_in, info)
    if h_ok:
        return Verification(True, "homography", h_in, info)
    best = h_in if h_in.sum() >= f_in.sum() else f_in
    return Verification(False, "", best, {**info, "reason": h_reason or f_reason})
