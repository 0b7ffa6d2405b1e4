"""Robust two-view model estimation: essential (+ relative pose), fundamental and homography.

Estimators (all seeded, so results are deterministic; OpenCV's RANSAC draws its samples from a fixed internal
generator that `cv2.setRNGSeed` does not reach (measured), so for the OpenCV estimators a seed other than 0
shuffles the correspondences before the call: another reproducible sample sequence; seed 0 keeps the order):
- ``opencv-ransac``: OpenCV's plain RANSAC (the ZEB / SuperGlue / LoFTR evaluation protocol for E).
- ``opencv-magsac``: OpenCV USAC_MAGSAC (MAGSAC++), the default for `gimsfm match`.
- ``poselib``: PoseLib's LO-RANSAC with non-linear refinement.

The essential matrix follows ZEB exactly for the OpenCV estimators: keypoints are normalised by K, the pixel
threshold is divided by the mean focal length, every candidate E that OpenCV returns (stacked 3x3 blocks)
goes through recoverPose and the one with most cheirality inliers is kept.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from ..errors import InputError

ESTIMATORS = ("opencv-ransac", "opencv-magsac", "poselib")
GEOMETRIES = ("essential", "fundamental", "homography")
MIN_MATCHES = {"essential": 5, "fundamental": 8, "homography": 4}
DEFAULT_CONFIDENCE = {"essential": 0.99999, "fundamental": 0.999999, "homography": 0.99999}
DEFAULT_MAX_ITERS = 10_000


@dataclass
class TwoViewModel:
    """Result of a robust fit. `matrix` is None when estimation failed (too few matches, degenerate)."""

    geometry: str
    matrix: np.ndarray | None
    inliers: np.ndarray  # (M,) bool over the input correspondences
    R: np.ndarray | None = None  # essential only: x1 = R x0 + t (camera-0 to camera-1)
    t: np.ndarray | None = None  # unit vector
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def success(self) -> bool:
        return self.matrix is not None

    @property
    def num_inliers(self) -> int:
        return int(self.inliers.sum())

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.geometry, "success": self.success, "num_inliers": self.num_inliers}
        out["matrix"] = None if self.matrix is None else np.asarray(self.matrix).tolist()
        if self.R is not None:
            out["R"] = self.R.tolist()
            out["t"] = self.t.tolist()
        out.update({k: v for k, v in self.info.items() if isinstance(v, (int, float, str, bool, list))})
        return out


def _check_inputs(kpts0: np.ndarray, kpts1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    kpts0 = np.asarray(kpts0, np.float64).reshape(-1, 2)
    kpts1 = np.asarray(kpts1, np.float64).reshape(-1, 2)
    if len(kpts0) != len(kpts1):
        raise InputError(f"keypoint arrays differ in length: {len(kpts0)} vs {len(kpts1)}")
    return kpts0, kpts1


def _check_estimator(method: str) -> None:
    if method not in ESTIMATORS:
        raise InputError(f"unknown estimator '{method}'; choose one of {', '.join(ESTIMATORS)}")


def _cv_method(method: str) -> int:
    return cv2.USAC_MAGSAC if method == "opencv-magsac" else cv2.RANSAC


def _mask(mask: np.ndarray | None, n: int) -> np.ndarray:
    if mask is None:
        return np.zeros(n, bool)
    return np.asarray(mask).ravel()[:n] > 0


def _failed(geometry: str, n: int, reason: str) -> TwoViewModel:
    return TwoViewModel(geometry, None, np.zeros(n, bool), info={"reason": reason})


def _prepare(geometry: str, kpts0, kpts1, method: str, confidence: float | None):
    """Shared prologue: validated (N, 2) float64 arrays, N, the confidence to use, or a failure result."""
    _check_estimator(method)
    kpts0, kpts1 = _check_inputs(kpts0, kpts1)
    n = len(kpts0)
    conf = DEFAULT_CONFIDENCE[geometry] if confidence is None else confidence
    failed = _failed(geometry, n, "too few matches") if n < MIN_MATCHES[geometry] else None
    return kpts0, kpts1, n, conf, failed


def _poselib_ransac(threshold_key: str, thresh_px: float, confidence: float, max_iters: int, seed: int) -> dict:
    return {threshold_key: float(thresh_px), "success_prob": confidence, "seed": int(seed),
            "max_iterations": int(max_iters), "min_iterations": min(1000, int(max_iters))}


def _seeded_order(seed: int, x0: np.ndarray, x1: np.ndarray) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Seed OpenCV and return (order, x0, x1) in the order OpenCV sees the correspondences: as given for seed 0
    (order None), else a seeded permutation (the seed OpenCV's RANSAC itself ignores)."""
    cv2.setRNGSeed(int(seed))
    if int(seed) == 0:
        return None, x0, x1
    order = np.random.default_rng(int(seed)).permutation(len(x0))
    return order, x0[order], x1[order]


def _unpermute(mask: np.ndarray, order: np.ndarray | None) -> np.ndarray:
    """An inlier mask over the shuffled correspondences -> the same mask in the caller's order."""
    if order is None:
        return mask
    out = np.zeros(len(order), bool)
    out[order] = mask
    return out


def normalize_keypoints(kpts: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Pixel coordinates -> normalised camera coordinates (x - c) / f (skew ignored, as ZEB)."""
    K = np.asarray(K, np.float64)
    return (np.asarray(kpts, np.float64) - K[[0, 1], [2, 2]][None]) / K[[0, 1], [0, 1]][None]


def pose_from_essential(E: np.ndarray, kn0: np.ndarray, kn1: np.ndarray, mask: np.ndarray | None = None
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """Decompose one or several stacked essential matrices (3k x 3) with cheirality on normalised points.

    Returns (E, R, t, inlier mask) of the candidate with most points in front of both cameras, or None.
    """
    E = np.asarray(E, np.float64)
    if E.ndim != 2 or E.shape[1] != 3 or E.shape[0] % 3:
        return None
    mask_u8 = (np.ones(len(kn0), np.uint8) if mask is None else np.asarray(mask, np.uint8).reshape(-1, 1))
    best, best_n = None, 0
    for E_i in np.split(E, E.shape[0] // 3):
        # distanceThresh 1e9 as ZEB/SuperGlue: only the sign of the depth matters (cheirality).
        n, R, t, m, _ = cv2.recoverPose(E_i, kn0, kn1, np.eye(3), distanceThresh=1e9,
                                         mask=mask_u8.copy())
        if n > best_n:
            best_n = n
            best = (E_i, R, t.ravel() / max(np.linalg.norm(t), 1e-12), np.asarray(m).ravel() > 0)
    return best


def estimate_essential(kpts0: np.ndarray, kpts1: np.ndarray, K0: np.ndarray, K1: np.ndarray,
                       thresh_px: float = 0.5, method: str = "opencv-ransac", confidence: float | None = None,
                       max_iters: int = DEFAULT_MAX_ITERS, seed: int = 0) -> TwoViewModel:
    """Essential matrix and relative pose (x1 = R x0 + t) from pixel correspondences and intrinsics.

    `thresh_px` is the inlier threshold in pixels; the OpenCV paths divide it by the mean focal length of both
    cameras, as ZEB does (ZEB's public code ignores its threshold argument; here it is honoured).
    """
    kpts0, kpts1, n, confidence, failed = _prepare("essential", kpts0, kpts1, method, confidence)
    if failed:
        return failed
    K0, K1 = np.asarray(K0, np.float64), np.asarray(K1, np.float64)
    if method == "poselib":
        import poselib

        cams = [{"model": "PINHOLE", "width": int(2 * K[0, 2] + 1), "height": int(2 * K[1, 2] + 1),
                 "params": [K[0, 0], K[1, 1], K[0, 2], K[1, 2]]} for K in (K0, K1)]
        ransac = _poselib_ransac("max_epipolar_error", thresh_px, confidence, max_iters, seed)
        pose, info = poselib.estimate_relative_pose(kpts0, kpts1, cams[0], cams[1], ransac, {})
        inliers = np.asarray(info.get("inliers", []), bool)
        if inliers.sum() < MIN_MATCHES["essential"]:
            return _failed("essential", n, "no model")
        R, t = np.asarray(pose.R), np.asarray(pose.t)
        if not np.isfinite(R).all() or np.linalg.norm(t) < 1e-12:
            return _failed("essential", n, "degenerate model")
        t = t / np.linalg.norm(t)
        tx = np.array([[0, -t[2], t[1]], [t[2], 0, -t[0]], [-t[1], t[0], 0]])
        return TwoViewModel("essential", tx @ R, inliers, R, t,
                            info={"iterations": int(info.get("iterations", 0))})
    kn0, kn1 = normalize_keypoints(kpts0, K0), normalize_keypoints(kpts1, K1)
    f_mean = np.mean([K0[0, 0], K0[1, 1], K1[0, 0], K1[1, 1]])
    order, kn0, kn1 = _seeded_order(seed, kn0, kn1)
    try:
        E, mask = cv2.findEssentialMat(kn0, kn1, np.eye(3), method=_cv_method(method), prob=confidence,
                                       threshold=float(thresh_px) / f_mean, maxIters=int(max_iters))
    except cv2.error:  # degenerate samples (e.g. nearly identical points) trip OpenCV's 5-point solver
        return _failed("essential", n, "degenerate input")
    if E is None or mask is None or E.size == 0:
        return _failed("essential", n, "no model")
    best = pose_from_essential(E, kn0, kn1, mask)
    if best is None:
        return _failed("essential", n, "no pose with points in front of both cameras")
    E_best, R, t, inliers = best
    # OpenCV's scale is arbitrary (USAC returns E with singular values ~600): normalise to (1, 1, 0).
    E_best = E_best * (np.sqrt(2) / max(np.linalg.norm(E_best), 1e-12))
    return TwoViewModel("essential", E_best, _unpermute(inliers, order), R, t,
                        info={"candidates": int(E.shape[0] // 3)})


def estimate_fundamental(kpts0: np.ndarray, kpts1: np.ndarray, thresh_px: float = 1.0,
                         method: str = "opencv-magsac", confidence: float | None = None,
                         max_iters: int = DEFAULT_MAX_ITERS, seed: int = 0) -> TwoViewModel:
    """Fundamental matrix (x1^T F x0 = 0) with an inlier threshold in pixels."""
    kpts0, kpts1, n, confidence, failed = _prepare("fundamental", kpts0, kpts1, method, confidence)
    if failed:
        return failed
    if method == "poselib":
        import poselib

        ransac = _poselib_ransac("max_epipolar_error", thresh_px, confidence, max_iters, seed)
        F, info = poselib.estimate_fundamental(kpts0, kpts1, ransac, {})
        inliers = np.asarray(info.get("inliers", []), bool)
        if inliers.sum() < MIN_MATCHES["fundamental"] or not np.isfinite(F).all():
            return _failed("fundamental", n, "no model")
        return TwoViewModel("fundamental", np.asarray(F) / np.linalg.norm(F), inliers)
    order, kpts0, kpts1 = _seeded_order(seed, kpts0, kpts1)
    F, mask = cv2.findFundamentalMat(kpts0, kpts1, _cv_method(method), float(thresh_px), confidence,
                                     int(max_iters))
    if F is None or mask is None or F.shape != (3, 3):
        # OpenCV may return up to three stacked solutions only for the 7-point method, not for RANSAC.
        return _failed("fundamental", n, "no model")
    return TwoViewModel("fundamental", F / np.linalg.norm(F), _unpermute(_mask(mask, n), order))


def estimate_homography(kpts0: np.ndarray, kpts1: np.ndarray, thresh_px: float = 3.0,
                        method: str = "opencv-magsac", confidence: float | None = None,
                        max_iters: int = DEFAULT_MAX_ITERS, seed: int = 0) -> TwoViewModel:
    """Homography x1 ~ H x0 with a reprojection threshold in pixels (in image 1)."""
    kpts0, kpts1, n, confidence, failed = _prepare("homography", kpts0, kpts1, method, confidence)
    if failed:
        return failed
    if method == "poselib":
        import poselib

        ransac = _poselib_ransac("max_reproj_error", thresh_px, confidence, max_iters, seed)
        H, info = poselib.estimate_homography(kpts0, kpts1, ransac, {})
        inliers = np.asarray(info.get("inliers", []), bool)
        H = np.asarray(H)
        if inliers.sum() < MIN_MATCHES["homography"] or not np.isfinite(H).all() or abs(H[2, 2]) < 1e-12:
            return _failed("homography", n, "no model")
        return TwoViewModel("homography", H / H[2, 2], inliers)
    order, kpts0, kpts1 = _seeded_order(seed, kpts0, kpts1)
    H, mask = cv2.findHomography(kpts0, kpts1, _cv_method(method), float(thresh_px), maxIters=int(max_iters),
                                 confidence=confidence)
    if H is None or mask is None or H.shape != (3, 3) or abs(H[2, 2]) < 1e-12:
        return _failed("homography", n, "no model")
    return TwoViewModel("homography", H / H[2, 2], _unpermute(_mask(mask, n), order))


def estimate_two_view(geometry: str, kpts0: np.ndarray, kpts1: np.ndarray, K0: np.ndarray | None = None,
                      K1: np.ndarray | None = None, thresh_px: float | None = None,
                      method: str = "opencv-magsac", **kwargs) -> TwoViewModel:
    """Dispatch by geometry name; `thresh_px` defaults to 0.5 (E), 1.0 (F), 3.0 (H)."""
    if geometry == "essential":
        if K0 is None or K1 is None:
            raise InputError("essential-matrix estimation needs intrinsics for both images")
        return estimate_essential(kpts0, kpts1, K0, K1, 0.5 if thresh_px is None else thresh_px, method, **kwargs)
    if geometry == "fundamental":
        return estimate_fundamental(kpts0, kpts1, 1.0 if thresh_px is None else thresh_px, method, **kwargs)
    if geometry == "homography":
        return estimate_homography(kpts0, kpts1, 3.0 if thresh_px is None else thresh_px, method, **kwargs)
    raise InputError(f"unknown geometry '{geometry}'; choose one of {', '.join(GEOMETRIES)}")
