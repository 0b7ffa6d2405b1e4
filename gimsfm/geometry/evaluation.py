"""Errors of two-view estimates against ground truth (degrees for poses, pixels for homographies) and the
AUC of their recall curves: the one home of these metrics, used by benchmarks and training validation alike."""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

POSE_THRESHOLDS = (5, 10, 20)  # degrees
HOMOGRAPHY_THRESHOLDS = (3, 5, 10)  # pixels


def rotation_angle(R: np.ndarray) -> float:
    """Angle (degrees) of a rotation matrix; clipped so round-off never gives NaN."""
    cos = (np.trace(np.asarray(R, np.float64)) - 1) / 2
    return float(np.rad2deg(np.arccos(np.clip(cos, -1.0, 1.0))))


def angle_error_mat(R1: np.ndarray, R2: np.ndarray) -> float:
    """Angle (degrees) of the relative rotation R1^T R2."""
    return rotation_angle(np.asarray(R1, np.float64).T @ np.asarray(R2, np.float64))


def angle_error_vec(v1: np.ndarray, v2: np.ndarray) -> float:
    """Angle (degrees) between two vectors; NaN if either is zero."""
    v1, v2 = np.asarray(v1, np.float64).ravel(), np.asarray(v2, np.float64).ravel()
    n = np.linalg.norm(v1) * np.linalg.norm(v2)
    if n < 1e-15:
        return float("nan")
    return float(np.rad2deg(np.arccos(np.clip(v1 @ v2 / n, -1.0, 1.0))))


def pose_error(T_0to1: np.ndarray, R: np.ndarray | None, t: np.ndarray | None) -> tuple[float, float]:
    """(translation direction error, rotation error) in degrees, as ZEB / SuperGlue.

    The translation error is folded as min(e, 180 - e) because E fixes t only up to sign. A failed estimate
    (R or t None) gives (180, 180). A zero ground-truth baseline has no direction: its translation error is
    reported as 0 so that only rotation counts (pose sets avoid such pairs; ZEB would produce NaN).
    """
    if R is None or t is None:
        return 180.0, 180.0
    T_0to1 = np.asarray(T_0to1, np.float64)
    R_gt, t_gt = T_0to1[:3, :3], T_0to1[:3, 3]
    err_R = angle_error_mat(R, R_gt)
    if np.linalg.norm(t_gt) < 1e-12:
        err_t = 0.0
    else:
        err_t = angle_error_vec(t, t_gt)
        err_t = 180.0 if np.isnan(err_t) else min(err_t, 180.0 - err_t)
    if np.isnan(err_R):
        err_R = 180.0
    return float(err_t), float(err_R)


def homography_corner_error(H_est: np.ndarray | None, H_gt: np.ndarray, width: int, height: int) -> float:
    """Mean distance (pixels, in image 1) between the 4 image-0 corners mapped by H_est and by H_gt.

    Corners are the outer pixel centres (0, 0) .. (w-1, h-1). Failure (None / non-finite) gives inf.
    """
    if H_est is None or not np.isfinite(H_est).all():
        return float("inf")
    corners = np.array([[0, 0, 1], [width - 1, 0, 1], [width - 1, height - 1, 1], [0, height - 1, 1]], np.float64)
    p_est = corners @ np.asarray(H_est, np.float64).T
    p_gt = corners @ np.asarray(H_gt, np.float64).T
    with np.errstate(divide="ignore", invalid="ignore"):
        p_est = p_est[:, :2] / p_est[:, 2:]
        p_gt = p_gt[:, :2] / p_gt[:, 2:]
        err = float(np.linalg.norm(p_est - p_gt, axis=1).mean())
    return err if np.isfinite(err) else float("inf")


def error_auc(errors: Iterable[float], thresholds: Sequence[float]) -> dict[str, float]:
    """Area under the recall-vs-error curve up to each threshold, normalised to [0, 1].

    Exactly ZEB's / LoFTR's `error_auc`: errors sorted with 0 prepended, recall = linspace(0, 1), the curve
    cut at the threshold (recall held flat up to it) and integrated with the trapezoid rule. NaN errors
    count as failures (inf). An empty error list gives 0.
    """
    errs = np.asarray(list(errors), np.float64)
    errs = np.where(np.isnan(errs), np.inf, errs)
    out: dict[str, float] = {}
    if errs.size == 0:
        return {f"auc@{_fmt_thr(t)}": 0.0 for t in thresholds}
    e = np.r_[0.0, np.sort(errs)]
    recall = np.linspace(0, 1, len(e))
    for thr in thresholds:
        last = int(np.searchsorted(e, thr))  # e[:last] < thr
        y = np.r_[recall[:last], recall[last - 1]]
        x = np.r_[e[:last], thr]
        out[f"auc@{_fmt_thr(thr)}"] = float(np.trapezoid(y, x) / thr)
    return out


def _fmt_thr(t: float) -> str:
    return str(int(t)) if float(t).is_integer() else str(t)


def pose_errors_max(err_t: Sequence[float], err_R: Sequence[float]) -> np.ndarray:
    """ZEB's per-pair error: max of the translation-direction and rotation errors (degrees)."""
    return np.maximum(np.asarray(err_t, np.float64), np.asarray(err_R, np.float64))


def auc_percent(errors: Iterable[float], thresholds: Sequence[float]) -> dict[str, float]:
    """`error_auc` in percent (the unit of every results.json)."""
    return {k: 100.0 * v for k, v in error_auc(errors, thresholds).items()}
