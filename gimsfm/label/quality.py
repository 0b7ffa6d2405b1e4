"""Label quality against the hidden ground truth of synthetic videos (`gimsfm synth video` gt.h5).

The labeller never reads gt.h5; this module does, to measure precision (within 3 px of the GT
correspondence from depth + pose), density (labels per pair) and reach (frame interval) of the labels.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import h5py
import numpy as np


def gt_correspondence(p0: np.ndarray, frame0: int, frame1: int, gt: dict[str, Any], scale: float
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Where the static scene point seen at pixels `p0` of frame0 appears in frame1 (label pixels).

    Returns (p1_gt (N, 2), valid (N,)): invalid where frame0 has no depth, the pixel is sky, or the
    point lies on an independently moving object.
    """
    depth_frames = list(gt["depth_frames"])
    valid = np.zeros(len(p0), bool)
    out = np.full((len(p0), 2), np.nan)
    if frame0 not in depth_frames or len(p0) == 0:
        return out, valid
    k = depth_frames.index(frame0)
    depth, dynamic = gt["depth"][k], gt["dynamic"][k]
    h, w = depth.shape
    q = (p0 + 0.5) / scale - 0.5  # label pixels -> GT (video) pixels
    xi = np.clip(np.round(q[:, 0]).astype(int), 0, w - 1)
    yi = np.clip(np.round(q[:, 1]).astype(int), 0, h - 1)
    z = depth[yi, xi].astype(np.float64)
    valid = (z > 0) & (dynamic[yi, xi] == 0)
    K0, K1, dist = gt["K"][frame0], gt["K"][frame1], gt["dist"]
    norm = cv2.undistortPoints(q.reshape(-1, 1, 2).astype(np.float64), K0, dist).reshape(-1, 2)
    X0 = np.c_[norm * z[:, None], z]
    T = gt["cam_from_world"][frame1] @ np.linalg.inv(gt["cam_from_world"][frame0])
    X1 = X0 @ T[:3, :3].T + T[:3, 3]
    valid &= X1[:, 2] > 1e-6
    proj, _ = cv2.projectPoints(X1.reshape(-1, 1, 3), np.zeros(3), np.zeros(3), K1, dist)
    out = (proj.reshape(-1, 2) + 0.5) * scale - 0.5
    return out, valid


def label_variants(labels_h5: Path) -> list[str]:
    """Ablation variants stored beside the labels (`variants/<name>`), e.g. direct, sift-nn."""
    with h5py.File(labels_h5, "r") as f:
        return sorted(f["variants"].keys()) if "variants" in f else []


def evaluate_labels(labels_h5: Path, gt_h5: Path, thresh_px: float = 3.0, variant: str | None = None
                    ) -> dict[str, Any]:
    """Precision@thresh, median error, density and reach of one video's labels (or of a stored variant)."""
    with h5py.File(gt_h5, "r") as f:
        gt = {k: f[k][()] for k in ("K", "dist", "cam_from_world", "depth_frames", "depth", "dynamic")}
        gt_width = int(f.attrs["width"])
    errors, per_pair, intervals, n_eval, n_dynamic_or_sky, n_total = [], [], [], 0, 0, 0
    with h5py.File(labels_h5, "r") as f:
        pairs = f.get(f"variants/{variant}/pairs" if variant else "pairs", {})
        for name in pairs:
            g = pairs[name]
            k0, k1 = g["kpts0"][()], g["kpts1"][()]
            f0, f1 = int(g.attrs["frame0"]), int(g.attrs["frame1"])
            scale = float(g.attrs["size0"][0]) / gt_width
            p1, valid = gt_correspondence(k0.astype(np.float64), f0, f1, gt, scale)
            n_total += len(k0)
            per_pair.append(len(k0))
            intervals.append(f1 - f0)
            if f0 not in list(gt["depth_frames"]):
                continue
            n_eval += len(k0)
            n_dynamic_or_sky += int((~valid).sum())
            errors.append(np.linalg.norm(p1[valid] - k1[valid], axis=1))
    err = np.concatenate(errors) if errors else np.zeros(0)
    return {
        "pairs": len(per_pair),
        "labels": n_total,
        "labels_per_pair": float(np.mean(per_pair)) if per_pair else 0.0,
        "precision@3px": float(100 * np.mean(err <= thresh_px)) if err.size else float("nan"),
        "median_error_px": float(np.median(err)) if err.size else float("nan"),
        "on_moving_or_sky_pct": float(100 * n_dynamic_or_sky / max(1, n_eval)),
        "max_reach_frames": int(max(intervals, default=0)),
        "mean_interval_frames": float(np.mean(intervals)) if intervals else 0.0,
        "evaluated_labels": int(err.size),
    }
