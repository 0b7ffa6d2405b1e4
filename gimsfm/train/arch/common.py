"""Validation helpers shared by the adapters: per-pair scores against GT labels and geometry."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch.distributed as dist

from ...geometry.estimation import estimate_essential, estimate_homography
from ...geometry.evaluation import error_auc, homography_corner_error, pose_error
from .. import labels as L


def geometric_error(k0: np.ndarray, k1: np.ndarray, rec: dict[str, np.ndarray], ransac_px: float) -> float | None:
    """Homography corner error (px) or pose error max(R, t) (deg, ZEB protocol) of matches k0 <-> k1; None for
    records without GT geometry (video labels)."""
    if "H" in rec:
        m = estimate_homography(k0, k1, ransac_px, "opencv-magsac", 0.9999, 2000)
        w, h = (int(v) for v in rec["size0"])
        return homography_corner_error(m.matrix if m.success else None, rec["H"], w, h)
    if "K0" in rec:
        m = estimate_essential(k0, k1, rec["K0"], rec["K1"], 0.5, "opencv-ransac", 0.99999)
        return max(pose_error(rec["T_0to1"], m.R, m.t)) if m.success else 180.0
    return None


def score_matches(sample: dict[str, np.ndarray], m0: np.ndarray, pos_th: float) -> dict[str, float]:
    """Precision / recall of predicted matches m0 (index into image 1 or -1) against a labelled sample."""
    gt0 = sample["gt0"]
    pred = m0 > -1
    correct = pred & (m0 == gt0)
    # A prediction is also correct when it reprojects within pos_th (its GT label may be 'ignore').
    if pred.any():
        err = np.linalg.norm(sample["p01"][pred] - sample["kpts1"][m0[pred]], axis=1)
        ok = (sample["vis01"][pred] == L.VISIBLE) & (err < pos_th)
        correct[np.nonzero(pred)[0][ok]] = True
    known = pred & ((gt0 >= -1) | correct)
    return {"precision": correct.sum() / max(known.sum(), 1),
            "recall": (pred & (m0 == gt0)).sum() / max((gt0 >= 0).sum(), 1), "matches": float(pred.sum())}


def evaluate_sources(val_sources: list, max_pairs: int, eval_pair: Callable[[Any, int], dict[str, float]],
                     rank: int = 0, world: int = 1, metrics: tuple[str, ...] = ("precision", "recall", "matches"),
                     ) -> tuple[dict[str, float], float, int]:
    """Run eval_pair(src, i) on the validation pairs (rank r of `world` takes every world-th pair; all ranks
    get the same result) -> ({source/metric: mean, source/auc@t}, seconds in the model, pairs)."""
    res: dict[str, float] = {}
    t_model, n_all = 0.0, 0
    for src in val_sources:
        n = min(len(src), max_pairs)
        rows = [{"index": i, **eval_pair(src, i)} for i in range(rank, n, world)]
        if world > 1:
            parts: list = [None] * world
            dist.all_gather_object(parts, rows)
            rows = sorted((r for p in parts for r in p), key=lambda r: r["index"])
        key = src.name.rsplit("-", 1)[0]
        for m in metrics:
            res[f"{key}/{m}"] = float(np.mean([r[m] for r in rows])) if rows else 0.0
        errs = [r["error"] for r in rows if r.get("error") is not None]
        if src.kind != "video_labels":
            ths = (3, 5, 10) if src.kind == "homography" else (5, 10, 20)
            for k, v in error_auc(errs, ths).items():
                res[f"{key}/{k}"] = v
        res[f"{key}/pairs"] = n
        t_model += sum(r.get("s", 0.0) for r in rows)
        n_all += n
    return res, t_model, n_all


def run_validation(model, val_sources: list, max_pairs: int, eval_pair: Callable[[Any, int], dict[str, float]],
                   baseline: bool, rank: int = 0, world: int = 1) -> dict[str, float]:
    """evaluate_sources with the model in eval mode, plus the model's latency per pair (not for baselines)."""
    if model is not None:
        model.eval()
    res, t_model, n_all = evaluate_sources(val_sources, max_pairs, eval_pair, rank, world)
    if not baseline and val_sources:
        res["ms_per_pair"] = 1000 * t_model / max(1, n_all)
    return res
