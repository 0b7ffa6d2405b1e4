"""Benchmark metrics: AUC of recall-vs-error curves (ZEB / LoFTR `error_auc`), ranks, summaries."""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

# The AUC functions live with the other metrics in gimsfm.geometry (training validation uses them too).
from ..geometry.evaluation import (HOMOGRAPHY_THRESHOLDS, POSE_THRESHOLDS, _fmt_thr, auc_percent,  # noqa: F401
                                   error_auc, pose_errors_max)


def mean_ranks(scores: dict[str, dict[str, float]]) -> dict[str, float]:
    """Mean rank of each method across datasets: scores[method][dataset] (higher is better, rank 1 = best).

    Ties share the average rank; a dataset only counts if every method has a score for it.
    """
    from scipy.stats import rankdata

    methods = list(scores)
    if not methods:
        return {}
    datasets = [d for d in scores[methods[0]] if all(d in scores[m] for m in methods)]
    if not datasets:
        return {m: float("nan") for m in methods}
    ranks = np.stack([rankdata([-scores[m][d] for m in methods]) for d in datasets])  # (D, M)
    return {m: float(r) for m, r in zip(methods, ranks.mean(0))}


def recall_curve(errors: Iterable[float], max_error: float, n: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """(x, recall(x)) on a regular grid in [0, max_error] for cumulative error plots."""
    errs = np.sort(np.asarray(list(errors), np.float64))
    x = np.linspace(0, max_error, n)
    if errs.size == 0:
        return x, np.zeros_like(x)
    return x, np.searchsorted(errs, x, side="right") / errs.size


def runs_auc(errors: np.ndarray, thresholds: Sequence[float] = POSE_THRESHOLDS) -> dict[str, float]:
    """(runs, pairs) errors of repeated estimates of the same pairs -> the AUC (percent) averaged over runs."""
    per_run = [list(auc_percent(e, thresholds).values()) for e in np.atleast_2d(errors)]
    return {f"auc@{_fmt_thr(t)}": float(v) for t, v in zip(thresholds, np.mean(per_run, axis=0))}


def paired_auc_difference(errors_a: dict[str, Sequence[float]], errors_b: dict[str, Sequence[float]],
                          thresholds: Sequence[float] = POSE_THRESHOLDS, n_boot: int = 2000,
                          seed: int = 0) -> dict[str, tuple[float, float, float]]:
    """Mean-over-datasets AUC of A minus B (percent), with a 95 % paired bootstrap interval.

    errors_*[dataset] are per-pair errors of the same pairs in the same order, or (runs, pairs) arrays of
    repeated estimates (`bench zeb --ransac-runs`; the AUC is then averaged over runs). Each replicate resamples
    the pairs of every dataset with replacement, the same pairs for A and B (and for every run), so the interval
    reflects how much the score depends on which pairs were drawn (on 15-25 pairs per dataset, a few AUC
    points). An interval that excludes 0 is a difference this pair sample supports.
    """
    names = sorted(set(errors_a) & set(errors_b))
    if not names:
        raise ValueError("no dataset in common")
    A = {d: np.atleast_2d(np.asarray(errors_a[d], np.float64)) for d in names}  # (runs, pairs)
    B = {d: np.atleast_2d(np.asarray(errors_b[d], np.float64)) for d in names}
    for d in names:
        if A[d].shape[1] != B[d].shape[1]:
            raise ValueError(f"{d}: {A[d].shape[1]} vs {B[d].shape[1]} pairs: not the same pairs")

    def delta(idx: dict[str, np.ndarray]) -> np.ndarray:
        da = [list(runs_auc(A[d][:, idx[d]], thresholds).values()) for d in names]
        db = [list(runs_auc(B[d][:, idx[d]], thresholds).values()) for d in names]
        return np.mean(da, axis=0) - np.mean(db, axis=0)

    n_pairs = {d: A[d].shape[1] for d in names}
    point = delta({d: np.arange(n_pairs[d]) for d in names})
    rng = np.random.default_rng(seed)
    boots = np.array([delta({d: rng.integers(0, n_pairs[d], n_pairs[d]) for d in names}) for _ in range(n_boot)])
    lo, hi = np.percentile(boots, [2.5, 97.5], axis=0)
    return {f"auc@{_fmt_thr(t)}": (round(float(p), 2), round(float(a), 2), round(float(b), 2))
            for t, p, a, b in zip(thresholds, point, lo, hi)}
