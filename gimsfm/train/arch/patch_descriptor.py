"""Training adapter of patch descriptors on DoG keypoints: patch-pair batches and matching validation.

Validation describes the keypoints of each held-out pair (the strongest `val.n_kpts` per image), matches them by
mutual nearest neighbour (no ratio: the descriptor's own separation) and scores precision / recall against the GT
labels, plus the homography / pose AUC of the matches with the model's ratio test. The baseline is RootSIFT on
the very same keypoints (mutual NN + ratio 0.8), so the numbers isolate the descriptor.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from ...features.patches import extract_patches
from ...matchers.sift_nn import mutual_nn_ratio
from ..datasets import make_sample
from ..patch_pairs import PatchPairs
from .common import geometric_error, run_validation, score_matches


def _describe(model, img: np.ndarray, s: dict, side: str) -> np.ndarray:
    c = model.conf
    p = extract_patches(img, s["kpts" + side], s["scales" + side], s["oris" + side], c["patch_size"], c["mr_size"])
    dev = next(model.parameters()).device
    with torch.inference_mode():
        return model.describe(p.to(dev)).cpu().numpy()


def _evaluate_pair(model, src, i: int, val: dict, data: dict, baseline: bool) -> dict[str, float]:
    r = src.get(i)
    s = make_sample(r, val["n_kpts"], None, data["pos_th"], data["neg_th"])
    t0 = time.perf_counter()
    if baseline:
        d0, d1, ratio = s["desc0"], s["desc1"], 0.8
    else:
        img0, img1 = src.images(i)[:2]
        d0, d1, ratio = _describe(model, img0, s, "0"), _describe(model, img1, s, "1"), float(model.conf["ratio"])
    t = time.perf_counter() - t0
    m_nn = mutual_nn_ratio(d0, d1, 1.0, True)[0].astype(np.int64)
    m_ratio = mutual_nn_ratio(d0, d1, ratio, True)[0].astype(np.int64)
    out = {"s": t, **score_matches(s, m_nn, data["pos_th"])}
    pred = m_ratio > -1
    out["error"] = geometric_error(s["kpts0"][pred], s["kpts1"][m_ratio[pred]], r, val["ransac_px"])
    return out


class PatchDescriptorArch:
    def train_data(self, sources: list, weights: list[float], seed: int, preset: dict[str, Any]) -> PatchPairs:
        m = preset["model"].get("conf", {})
        conf = {k: v for k, v in m.items() if k in ("patch_size", "mr_size")}
        return PatchPairs(sources, weights, seed, {**conf, **preset["data"].get("patches", {})})

    def prepare(self, data: PatchPairs, src, i: int) -> None:
        data.record(src, i)

    def evaluate(self, model, val_sources: list, preset: dict[str, Any], baseline: bool = False,
                 rank: int = 0, world: int = 1) -> dict[str, float]:
        val, data = preset["val"], preset["data"]
        return run_validation(model, val_sources, val["max_pairs"],
                              lambda src, i: _evaluate_pair(model, src, i, val, data, baseline), baseline, rank, world)


def tune_ratio(model, val_sources: list, preset: dict[str, Any], ratios: list[float]) -> dict[float, float]:
    """Mean over validation sources of the AUC (pose AUC@5 or homography AUC@5) of the model's matches for each
    Lowe ratio: describes every validation pair once, then scores each ratio. The ratio is an inference setting
    tuned on held-out training data (never on a benchmark), shipped with `--set model.conf.ratio=R --export`."""
    from ...geometry.evaluation import error_auc

    model.eval()
    val, data = preset["val"], preset["data"]
    per_src = {r: [] for r in ratios}
    for src in val_sources:
        if src.kind == "video_labels":
            continue
        errs = {r: [] for r in ratios}
        for i in range(min(len(src), val["max_pairs"])):
            rec = src.get(i)
            s = make_sample(rec, val["n_kpts"], None, data["pos_th"], data["neg_th"])
            img0, img1 = src.images(i)[:2]
            d0, d1 = _describe(model, img0, s, "0"), _describe(model, img1, s, "1")
            for r in ratios:
                m = mutual_nn_ratio(d0, d1, r, True)[0].astype(np.int64)
                ok = m > -1
                errs[r].append(geometric_error(s["kpts0"][ok], s["kpts1"][m[ok]], rec, val["ransac_px"]))
        for r in ratios:
            per_src[r].append(error_auc(errs[r], (5,))["auc@5"])
    return {r: float(np.mean(v)) if v else 0.0 for r, v in per_src.items()}
