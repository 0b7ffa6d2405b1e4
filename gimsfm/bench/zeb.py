"""The ZEB relative-pose protocol (GIM, ICLR 2024) on ZEB-format data sets, for any registered matcher.

Per pair: matches -> essential matrix (OpenCV RANSAC on K-normalised points, 0.5 px / mean focal, prob
0.99999, OpenCV's default 1000 iterations) -> recoverPose on every candidate -> error = max(rotation error,
folded translation-direction error); failures count 180 deg. Score: AUC@5/10/20 (trapezoid, `error_auc`) per
data set, the mean over data sets, and each matcher's mean rank (by AUC@5) across data sets.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from tqdm import tqdm

from .. import logger
from ..geometry import estimate_essential, pose_error
from ..utils.profiling import PeakMemory
from .common import (BASELINE_MATCHER, build_matcher, cache_dir_for, escalation_summary, finish_report,
                     levels_text, resolve_matcher_names, unique_names)
from .datasets import PoseDataset, load_pose_dataset, select_evenly
from .matching import DEFAULT_MAX_SIDE, CachedPairMatcher
from .metrics import POSE_THRESHOLDS, auc_percent, mean_ranks, paired_auc_difference, runs_auc
from .report import markdown_table


@dataclass
class PoseEvalConfig:
    """Everything that changes a pose score (recorded in results.json)."""

    thresh_px: float = 0.5  # ZEB: 0.5 px, divided by the mean focal length
    estimator: str = "opencv-ransac"  # ZEB: cv2.findEssentialMat(method=RANSAC)
    confidence: float = 0.99999
    max_iters: int = 1000  # OpenCV's default, which ZEB's call leaves in place
    seed: int = 0
    max_side: int | None = DEFAULT_MAX_SIDE
    max_pairs: int | None = None  # per data set, spread evenly (CI-sized runs)
    max_keypoints: int | None = None  # one budget for every sparse matcher (None: each matcher's default)
    # Estimates per pair (seeds seed, seed+1, ...): run 0 is the protocol's score; the mean AUC over runs is the
    # expectation over the estimator's sampling, which one RANSAC call per pair only samples once.
    ransac_runs: int = 1


def evaluate_pose_dataset(ds: PoseDataset, matcher, cache_dir: Path, cfg: PoseEvalConfig,
                          overwrite: bool = False, dataset_name: str | None = None,
                          cleared: set[Path] | None = None) -> dict[str, Any]:
    """Match (cached) and estimate every pair of one data set; returns a summary and per-pair records."""
    name = dataset_name or ds.name
    pairs = select_evenly(ds.pairs, cfg.max_pairs)
    cpm = CachedPairMatcher(matcher, ds.root, cache_dir, cfg.max_side, overwrite, cleared=cleared)
    pair_names = [(p.name0, p.name1) for p in pairs]
    cpm.prepare(pair_names, desc=name)
    records, errors = [], []
    t_est = 0.0
    for p in tqdm(pairs, desc=f"{name}: pose", leave=False, disable=None):
        m = cpm.get(p.name0, p.name1)

        def estimate(seed: int):
            return estimate_essential(m.kpts0, m.kpts1, p.K0, p.K1, cfg.thresh_px, cfg.estimator, cfg.confidence,
                                      cfg.max_iters, seed)

        t0 = time.perf_counter()
        est = estimate(cfg.seed)
        t_est += time.perf_counter() - t0
        err_t, err_R = pose_error(p.T_0to1, est.R, est.t)
        err = max(err_t, err_R)
        errors.append(err)
        records.append({"name0": p.name0, "name1": p.name1, "matches": len(m), "inliers": est.num_inliers,
                        "err_t": err_t, "err_R": err_R, "err": err, "success": est.success,
                        **cpm.timings.pair_cost(p.name0, p.name1)})
        if cfg.ransac_runs > 1:
            more = (estimate(cfg.seed + k) for k in range(1, cfg.ransac_runs))
            records[-1]["err_runs"] = [err] + [max(pose_error(p.T_0to1, e.R, e.t)) for e in more]
    t_ext, t_match = cpm.timings.seconds(pair_names)
    n = len(pairs)
    summary = {
        **{k: round(v, 4) for k, v in auc_percent(errors, POSE_THRESHOLDS).items()},
        "pairs": n,
        "failures": int(sum(not r["success"] for r in records)),
        "median_matches": float(np.median([r["matches"] for r in records])) if records else 0.0,
        "median_inliers": float(np.median([r["inliers"] for r in records])) if records else 0.0,
        "sec_per_pair": round((t_ext + t_match + t_est) / max(n, 1), 4),
        "sec_extract_per_image": round(t_ext / max(len({x for q in pair_names for x in q}), 1), 4),
        "sec_match_per_pair": round(t_match / max(n, 1), 4),
        "sec_estimate_per_pair": round(t_est / max(n, 1), 5),
        "escalation": escalation_summary(records),
    }
    if cfg.ransac_runs > 1:
        runs = np.array([r["err_runs"] for r in records], np.float64).T  # (runs, pairs)
        for k, v in runs_auc(runs).items():
            summary[f"{k}_runs"] = round(v, 4)
    return {"summary": summary, "pairs": records, "errors": errors}


def run_pose_benchmark(datasets: Sequence[PoseDataset], matcher_names: Sequence[str], out: Path,
                       cfg: PoseEvalConfig, overwrite: bool = False, title: str = "ZEB relative pose",
                       benchmark: str = "zeb", write: bool = True, device: str = "auto",
                       cache: Path | None = None) -> dict[str, Any]:
    """Run every matcher on every data set; write results.json / results.md / pose_curves.png under `out`.

    Features and matches are cached under `cache` (default OUT/cache); point several runs at one cache to
    compare estimators or thresholds without matching again.
    """
    out = Path(out)
    cache_root = Path(cache) if cache else out / "cache"
    names = unique_names([Path(d.root).parent / d.name for d in datasets])
    results: dict[str, Any] = {"benchmark": benchmark, "config": asdict(cfg), "datasets": {},
                               "matchers": {}}
    for ds, dname in zip(datasets, names):
        results["datasets"][dname] = {"path": str(ds.root), "pairs_total": len(ds.pairs)}
    per_pair: dict[str, Any] = {}
    all_errors: dict[str, dict[str, list[float]]] = {}
    t_start = time.perf_counter()
    cleared: set[Path] = set()  # cache files already recomputed by this run (--overwrite)
    with PeakMemory() as pm_total:
        for mname in matcher_names:
            t0 = time.perf_counter()
            with PeakMemory() as pm:
                matcher = build_matcher(mname, device, cfg.max_keypoints)
                entry: dict[str, Any] = {"datasets": {}}
                for ds, dname in zip(datasets, names):
                    res = evaluate_pose_dataset(ds, matcher, cache_dir_for(cache_root, dname, ds.root), cfg,
                                                overwrite, dname, cleared)
                    entry["datasets"][dname] = res["summary"]
                    per_pair.setdefault(mname, {})[dname] = res["pairs"]
                    all_errors.setdefault(mname, {})[dname] = res["errors"]
                    s = res["summary"]
                    logger.info("%s / %s: AUC@5 %.2f  @10 %.2f  @20 %.2f  (%d pairs, %.3f s/pair)", mname, dname,
                                s["auc@5"], s["auc@10"], s["auc@20"], s["pairs"], s["sec_per_pair"])
                del matcher
            dsum = entry["datasets"].values()
            entry["mean"] = {k: round(float(np.mean([d[k] for d in dsum])), 4)
                             for k in ("auc@5", "auc@10", "auc@20")}
            if cfg.ransac_runs > 1:
                entry["mean_runs"] = {k: round(float(np.mean([d[f"{k}_runs"] for d in dsum])), 4)
                                      for k in ("auc@5", "auc@10", "auc@20")}
                logger.info("%s: mean AUC@5/10/20 over %d RANSAC runs per pair: %s", mname, cfg.ransac_runs,
                            " / ".join(f"{v:.2f}" for v in entry["mean_runs"].values()))
            total_pairs = sum(d["pairs"] for d in dsum)
            entry["pairs"] = total_pairs
            entry["sec_per_pair"] = round(sum(d["sec_per_pair"] * d["pairs"] for d in dsum) / max(total_pairs, 1), 4)
            entry["wall_sec"] = round(time.perf_counter() - t0, 2)
            entry["peak_mb"] = round(pm.peak, 1)
            entry["escalation"] = escalation_summary([r for recs in per_pair[mname].values() for r in recs])
            results["matchers"][mname] = entry
    ranks = mean_ranks({m: {d: v["auc@5"] for d, v in e["datasets"].items()} for m, e in results["matchers"].items()})
    for m, r in ranks.items():
        results["matchers"][m]["mean_rank"] = r
    results["wall_sec"] = round(time.perf_counter() - t_start, 2)
    results["peak_mb"] = round(pm_total.peak, 1)
    if write:
        write_pose_report(out, results, all_errors, per_pair, title)
    return results


def pose_tables(results: dict[str, Any]) -> tuple[list[str], list[list[Any]], list[str], list[list[Any]]]:
    """(per-dataset header, rows, summary header, rows) of a pose results dict."""
    header = ["matcher", "dataset", "pairs", "AUC@5", "AUC@10", "AUC@20", "failures", "s/pair"]
    rows, srows = [], []
    for m, e in results["matchers"].items():
        for d, s in e["datasets"].items():
            rows.append([m, d, s["pairs"], s["auc@5"], s["auc@10"], s["auc@20"], s.get("failures", 0),
                         f"{s['sec_per_pair']:.3f}"])
        rows.append([m, "**mean**", e["pairs"], e["mean"]["auc@5"], e["mean"]["auc@10"], e["mean"]["auc@20"], "",
                     f"{e['sec_per_pair']:.3f}"])
        srows.append([m, e["mean"]["auc@5"], e["mean"]["auc@10"], e["mean"]["auc@20"], e.get("mean_rank", "")
                      , f"{e['sec_per_pair']:.3f}", f"{e['peak_mb']:.0f}", f"{e['wall_sec']:.1f}", levels_text(e)])
    sheader = ["matcher", "mean AUC@5", "mean AUC@10", "mean AUC@20", "mean rank", "s/pair", "peak MB", "wall s",
               "pairs per view level (s/pair)"]
    runs = results["config"].get("ransac_runs", 1)
    if runs > 1:  # the expectation over RANSAC's sampling next to the protocol's single draw
        sheader.insert(4, f"AUC@5/10/20, mean of {runs} RANSAC runs")
        for r, e in zip(srows, results["matchers"].values()):
            r.insert(4, " / ".join(f"{v:.2f}" for v in e["mean_runs"].values()))
    return header, rows, sheader, srows


def write_pose_report(out: Path, results: dict[str, Any], errors: dict[str, dict[str, list[float]]],
                      per_pair: dict[str, Any], title: str) -> None:
    cfg = results["config"]
    note = (f"Estimator {cfg['estimator']}, threshold {cfg['thresh_px']} px (divided by the mean focal length), "
            f"confidence {cfg['confidence']}, max {cfg['max_iters']} iterations, seed {cfg['seed']}; images capped "
            f"at long side {cfg['max_side']}; keypoints per image: "
            f"{(str(cfg['max_keypoints']) + ' for every sparse matcher') if cfg.get('max_keypoints') else 'each matcher default'}; failures count 180 deg; AUC in percent; "
            "mean rank by AUC@5. "
            f"Wall {results['wall_sec']:.1f} s, peak memory {results['peak_mb']:.0f} MB.\n")
    base = BASELINE_MATCHER if BASELINE_MATCHER in errors else None
    if base is not None and len(errors) > 1:
        # Is a difference to the classical baseline more than the luck of the pair sample? (paired bootstrap)
        rows = []
        for m in errors:
            if m != base:
                diff = paired_auc_difference(errors[m], errors[base])
                results["matchers"][m][f"vs_{base}"] = {k: list(v) for k, v in diff.items()}
                rows.append([m, *(f"{d:+.2f} [{lo:+.2f}, {hi:+.2f}]" for d, lo, hi in diff.values())])
        note += ("\n## Difference to " + base + " (mean AUC, 95 % paired bootstrap interval over pairs)\n\n"
                 + markdown_table(["matcher", *(f"ΔAUC@{t}" for t in POSE_THRESHOLDS)], rows))
    panels: dict[str, dict[str, list[float]]] = {}
    for m, per_ds in errors.items():
        for d, errs in per_ds.items():
            panels.setdefault(d, {})[m] = errs
        panels.setdefault("all pairs", {})[m] = [e for errs in per_ds.values() for e in errs]
    finish_report(out, results, title, pose_tables(results), note, panels, "pose_curves.png", 20.0,
                  "pose error (deg)", per_pair)


def run_zeb(data: Sequence[Path], matchers: Sequence[str] | None, out: Path, cfg: PoseEvalConfig,
            add_baseline: bool = True, overwrite: bool = False, device: str = "auto",
            cache: Path | None = None) -> dict[str, Any]:
    """`gimsfm bench zeb`: ZEB-format folders -> results under `out`."""
    names = resolve_matcher_names(matchers, add_baseline)
    datasets = [load_pose_dataset(p) for p in data]
    return run_pose_benchmark(datasets, names, out, cfg, overwrite, device=device, cache=cache)
