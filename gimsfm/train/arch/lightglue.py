"""Training adapter of LightGlue on SIFT keypoints: keypoint-set batches (MixedPairs) and match validation."""
from __future__ import annotations

import time
from typing import Any

import numpy as np

from ...matchers.sift_nn import mutual_nn_ratio
from ..datasets import MixedPairs, collate, make_sample
from .common import geometric_error, run_validation, score_matches


def _evaluate_pair(model, src, i: int, val: dict, data: dict, baseline: bool) -> dict[str, float]:
    r = src.get(i)
    s = make_sample(r, val["n_kpts"], None, data["pos_th"], data["neg_th"])
    t0 = time.perf_counter()
    if baseline:
        m0 = mutual_nn_ratio(s["desc0"], s["desc1"], 0.8, True)[0].astype(np.int64)
    else:
        dev = next(model.parameters()).device
        b = {k: v.to(dev) for k, v in collate([s]).items()}
        m0 = model.predict(b, prune=True)["matches0"][0].cpu().numpy()
    out = {"s": time.perf_counter() - t0, **score_matches(s, m0, data["pos_th"])}
    pred = m0 > -1
    out["error"] = geometric_error(s["kpts0"][pred], s["kpts1"][m0[pred]], r, val["ransac_px"])
    return out


def evaluate(model, val_sources, conf: dict, data_conf: dict, baseline: bool = False,
             rank: int = 0, world: int = 1) -> dict[str, float]:
    """Precision/recall vs GT labels and homography / pose AUC on the validation pairs (one pair at a time,
    inference settings: pruning on). With baseline=True the same numbers for SIFT mutual NN + ratio 0.8."""
    return run_validation(model, val_sources, conf["max_pairs"],
                          lambda src, i: _evaluate_pair(model, src, i, conf, data_conf, baseline), baseline, rank, world)


class LightGlueArch:
    def train_data(self, sources: list, weights: list[float], seed: int, preset: dict[str, Any]) -> MixedPairs:
        d = preset["data"]
        return MixedPairs(sources, weights, d["n_kpts"], seed, d["pos_th"], d["neg_th"])

    def evaluate(self, model, val_sources: list, preset: dict[str, Any], baseline: bool = False,
                 rank: int = 0, world: int = 1) -> dict[str, float]:
        return evaluate(model, val_sources, preset["val"], preset["data"], baseline, rank, world)
