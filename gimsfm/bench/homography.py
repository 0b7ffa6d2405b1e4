"""Homography benchmark on HPatches-layout sequences: corner error of the estimated H_1_k.

Per pair: matches (images capped at 1600 px, keypoints at native resolution) -> robust homography (OpenCV
RANSAC, 3 px, by default) -> mean distance of the four image-1 corners mapped by the estimate and by the
GT; failures count as infinite error. Score: AUC of the corner error at 3 / 5 / 10 px (`error_auc`) and the
mean corner error of the successful estimates, per sequence, the mean over sequences, and pooled over pairs.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from tqdm import tqdm

from .. import logger
from ..geometry import estimate_homography, homography_corner_error
from ..utils.io import image_size
from ..utils.profiling import PeakMemory
from .common import (build_matcher, cache_dir_for, escalation_summary, finish_report, finite_or_none,
                     levels_text, resolve_matcher_names, unique_names)
from .datasets import HomographyDataset, load_homography_dataset, select_evenly
from .matching import DEFAULT_MAX_SIDE, CachedPairMatcher
from .metrics import HOMOGRAPHY_THRESHOLDS, auc_percent, mean_ranks

AUC_KEYS = tuple(f"auc@{t}" for t in HOMOGRAPHY_THRESHOLDS)


@dataclass
class HomographyEvalConfig:
    thresh_px: float = 3.0
    estimator: str = "opencv-ransac"
    confidence: float = 0.99999
    max_iters: int = 10_000
    seed: int = 0
    max_side: int | None = DEFAULT_MAX_SIDE
    max_pairs: int | None = None  # per sequence
    max_keypoints: int | None = None  # one budget for every sparse matcher (None: each matcher's default)


def _summarise(errors: list[float], records: list[dict], t_total: float) -> dict[str, Any]:
    finite = [e for e in errors if np.isfinite(e)]
    n = len(errors)
    return {
        **{k: round(v, 4) for k, v in auc_percent(errors, HOMOGRAPHY_THRESHOLDS).items()},
        "mean_error": finite_or_none(float(np.mean(finite))) if finite else None,
        "pairs": n,
        "failures": n - len(finite),
        "solved@10": int(sum(e < 10 for e in finite)),
        "median_inliers": float(np.median([r["inliers"] for r in records])) if records else 0.0,
        "sec_per_pair": round(t_total / max(n, 1), 4),
        "escalation": escalation_summary(records),
    }


def evaluate_homography_dataset(ds: HomographyDataset, matcher, cache_dir: Path, cfg: HomographyEvalConfig,
                                overwrite: bool = False, dataset_name: str | None = None,
                                cleared: set[Path] | None = None) -> dict[str, Any]:
    name = dataset_name or ds.name
    pairs = select_evenly(ds.pairs, cfg.max_pairs)
    cpm = CachedPairMatcher(matcher, ds.root, cache_dir, cfg.max_side, overwrite, cleared=cleared)
    pair_names = [(p.name0, p.name1) for p in pairs]
    cpm.prepare(pair_names, desc=name)
    records, errors, t_est = [], [], 0.0
    for p in tqdm(pairs, desc=f"{name}: homography", leave=False, disable=None):
        m = cpm.get(p.name0, p.name1)
        t0 = time.perf_counter()
        est = estimate_homography(m.kpts0, m.kpts1, cfg.thresh_px, cfg.estimator, cfg.confidence, cfg.max_iters,
                                  cfg.seed)
        t_est += time.perf_counter() - t0
        w, h = image_size(ds.root / p.name0)
        err = homography_corner_error(est.matrix, p.H_0to1, w, h)
        errors.append(err)
        records.append({"name0": p.name0, "name1": p.name1, "matches": len(m), "inliers": est.num_inliers,
                        "corner_error": finite_or_none(err), **cpm.timings.pair_cost(p.name0, p.name1)})
    t_ext, t_match = cpm.timings.seconds(pair_names)
    return {"summary": _summarise(errors, records, t_ext + t_match + t_est), "pairs": records, "errors": errors}


def run_homography_benchmark(datasets: Sequence[HomographyDataset], matcher_names: Sequence[str], out: Path,
                             cfg: HomographyEvalConfig, overwrite: bool = False, write: bool = True,
                             device: str = "auto", cache: Path | None = None) -> dict[str, Any]:
    """Run every matcher on every sequence; features / matches cached under `cache` (default OUT/cache)."""
    out = Path(out)
    cache_root = Path(cache) if cache else out / "cache"
    names = unique_names([Path(d.root) for d in datasets])
    results: dict[str, Any] = {"benchmark": "homography", "config": asdict(cfg), "matchers": {},
                               "datasets": {n: {"path": str(d.root), "pairs_total": len(d.pairs)}
                                            for d, n in zip(datasets, names)}}
    all_errors: dict[str, dict[str, list[float]]] = {}
    per_pair: dict[str, Any] = {}
    t_start = time.perf_counter()
    cleared: set[Path] = set()  # cache files already recomputed by this run (--overwrite)
    with PeakMemory() as pm_total:
        for mname in matcher_names:
            t0 = time.perf_counter()
            with PeakMemory() as pm:
                matcher = build_matcher(mname, device, cfg.max_keypoints)
                entry: dict[str, Any] = {"datasets": {}}
                pooled_err, pooled_rec, pooled_t = [], [], 0.0
                for ds, dname in zip(datasets, names):
                    res = evaluate_homography_dataset(ds, matcher, cache_dir_for(cache_root, dname, ds.root), cfg,
                                                      overwrite, dname, cleared)
                    entry["datasets"][dname] = res["summary"]
                    all_errors.setdefault(mname, {})[dname] = res["errors"]
                    per_pair.setdefault(mname, {})[dname] = res["pairs"]
                    pooled_err += res["errors"]
                    pooled_rec += res["pairs"]
                    pooled_t += res["summary"]["sec_per_pair"] * res["summary"]["pairs"]
                del matcher
            dsum = list(entry["datasets"].values())
            mean_errs = [d["mean_error"] for d in dsum if d["mean_error"] is not None]
            entry["mean"] = {**{k: round(float(np.mean([d[k] for d in dsum])), 4) for k in AUC_KEYS},
                             "mean_error": round(float(np.mean(mean_errs)), 3) if mean_errs else None}
            entry["all_pairs"] = _summarise(pooled_err, pooled_rec, pooled_t)
            entry["pairs"] = len(pooled_err)
            entry["sec_per_pair"] = entry["all_pairs"]["sec_per_pair"]
            entry["wall_sec"] = round(time.perf_counter() - t0, 2)
            entry["peak_mb"] = round(pm.peak, 1)
            results["matchers"][mname] = entry
            logger.info("%s: mean AUC@3 %.2f  @5 %.2f  @10 %.2f over %d sequences", mname, entry["mean"]["auc@3"],
                        entry["mean"]["auc@5"], entry["mean"]["auc@10"], len(dsum))
    ranks = mean_ranks({m: {d: v["auc@5"] for d, v in e["datasets"].items()} for m, e in results["matchers"].items()})
    for m, r in ranks.items():
        results["matchers"][m]["mean_rank"] = r
    results["wall_sec"] = round(time.perf_counter() - t_start, 2)
    results["peak_mb"] = round(pm_total.peak, 1)
    if write:
        _write(out, results, all_errors, per_pair)
    return results


def homography_tables(results: dict[str, Any]) -> tuple[list[str], list[list[Any]], list[str], list[list[Any]]]:
    def err(v):
        return "-" if v is None else f"{v:.2f}"

    header = ["matcher", "sequence", "pairs", "AUC@3", "AUC@5", "AUC@10", "mean err px", "failures", "s/pair"]
    rows, srows = [], []
    for m, e in results["matchers"].items():
        for d, s in e["datasets"].items():
            rows.append([m, d, s["pairs"], s["auc@3"], s["auc@5"], s["auc@10"], err(s["mean_error"]), s["failures"],
                         f"{s['sec_per_pair']:.3f}"])
        rows.append([m, "**mean over sequences**", e["pairs"], e["mean"]["auc@3"], e["mean"]["auc@5"],
                     e["mean"]["auc@10"], err(e["mean"]["mean_error"]), e["all_pairs"]["failures"],
                     f"{e['sec_per_pair']:.3f}"])
        a = e["all_pairs"]
        srows.append([m, e["mean"]["auc@3"], e["mean"]["auc@5"], e["mean"]["auc@10"], a["auc@3"], a["auc@5"],
                      a["auc@10"], err(a["mean_error"]), a["failures"], e.get("mean_rank", ""),
                      f"{e['sec_per_pair']:.3f}", f"{e['peak_mb']:.0f}", f"{e['wall_sec']:.1f}", levels_text(a),
                      a.get("solved@10", "")])
    sheader = ["matcher", "mean AUC@3", "mean AUC@5", "mean AUC@10", "pooled AUC@3", "pooled AUC@5",
               "pooled AUC@10", "mean err px", "failures", "mean rank", "s/pair", "peak MB", "wall s",
               "pairs per view level (s/pair)", "solved <10 px"]
    return header, rows, sheader, srows


def _write(out: Path, results: dict[str, Any], errors: dict[str, dict[str, list[float]]],
           per_pair: dict[str, Any]) -> None:
    title = "Homography estimation (corner error)"
    cfg = results["config"]
    note = (f"Estimator {cfg['estimator']}, threshold {cfg['thresh_px']} px, confidence {cfg['confidence']}, seed "
            f"{cfg['seed']}; images capped at long side {cfg['max_side']}; keypoints per image: "
            f"{(str(cfg['max_keypoints']) + ' for every sparse matcher') if cfg.get('max_keypoints') else 'each matcher default'}; corner error = mean distance of the 4 "
            "image-1 corners; failures count as infinite error (excluded from 'mean err'); 'mean' = mean over "
            "sequences, 'pooled' = over all pairs; AUC in percent; mean rank by AUC@5. "
            f"Wall {results['wall_sec']:.1f} s, peak memory {results['peak_mb']:.0f} MB.\n")
    panels = {"all pairs": {m: [e for errs in per_ds.values() for e in errs] for m, per_ds in errors.items()}}
    finish_report(out, results, title, homography_tables(results), note, panels, "homography_curves.png", 10.0,
                  "corner error (px)", per_pair)


def run_homography(data: Sequence[Path], matchers: Sequence[str] | None, out: Path, cfg: HomographyEvalConfig,
                   add_baseline: bool = True, overwrite: bool = False, device: str = "auto",
                   cache: Path | None = None) -> dict[str, Any]:
    names = resolve_matcher_names(matchers, add_baseline)
    datasets = [load_homography_dataset(p) for p in data]
    return run_homography_benchmark(datasets, names, out, cfg, overwrite, device=device, cache=cache)
