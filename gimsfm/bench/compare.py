"""`gimsfm bench compare`: is a score difference between two matchers more than the luck of the pair sample?

Reads the per-pair errors that `bench zeb` / `bench indomain` write (per_pair.json) and reports the mean AUC
difference with a paired bootstrap interval (`metrics.paired_auc_difference`). With `runs`, each pair's repeated
estimates (`bench zeb --ransac-runs K`) replace its single one: the AUC is then the mean over the K runs, the
expectation over RANSAC's sampling instead of one draw of it.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import InputError
from .metrics import POSE_THRESHOLDS, paired_auc_difference, runs_auc
from .report import print_table


def _err(x) -> float:
    return float(x) if x is not None and not math.isnan(float(x)) else math.inf


def load_pair_errors(folders: Sequence[Path], runs: bool = False) -> dict[str, dict[str, Any]]:
    """matcher -> data set -> per-pair pose errors (failures as inf), pooled over result folders; with `runs`,
    (runs, pairs) arrays of the repeated estimates."""
    out: dict[str, dict[str, list[float]]] = {}
    for folder in folders:
        path = Path(folder) / "per_pair.json"
        if not path.is_file():
            raise InputError(f"no per_pair.json in {folder} (give the --out folder of bench zeb / indomain)")
        try:
            data = json.loads(path.read_text())
        except ValueError as exc:
            raise InputError(f"{path}: not readable JSON ({exc})") from None
        for m, per_ds in data.items():
            for d, rows in per_ds.items():
                if runs:
                    if any("err_runs" not in r for r in rows):
                        raise InputError(f"{path}: {m} / {d} has one estimate per pair; rerun bench zeb with "
                                         "--ransac-runs K (K > 1) to compare expectations over RANSAC runs")
                    errs = np.array([[_err(x) for x in r["err_runs"]] for r in rows], np.float64).T.tolist()
                else:
                    errs = [_err(r.get("err")) for r in rows]
                if out.get(m, {}).get(d) == errs:
                    continue  # the same data set twice (e.g. a baseline every run adds): count it once
                key = d if d not in out.get(m, {}) else f"{Path(folder).name}/{d}"
                out.setdefault(m, {})[key] = errs
    return out


def _difference(errors: dict, a: str, b: str, n_boot: int) -> tuple[list[str], dict, dict, dict]:
    for m in (a, b):
        if m not in errors:
            raise InputError(f"matcher '{m}' not in these results; they hold: {', '.join(sorted(errors))}")
    common = sorted(set(errors[a]) & set(errors[b]))
    if not common:
        raise InputError(f"'{a}' and '{b}' share no data set in these results")
    ea, eb = ({d: errors[m][d] for d in common} for m in (a, b))
    try:
        diff = paired_auc_difference(ea, eb, POSE_THRESHOLDS, n_boot=n_boot)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    return common, ea, eb, diff


def mean_auc(errs: dict[str, Any], t: float) -> float:
    """Mean over data sets of the AUC (percent) up to threshold T (averaged over runs for (runs, pairs))."""
    return sum(next(iter(runs_auc(np.asarray(e, np.float64), [t]).values())) for e in errs.values()) / len(errs)


def _n_pairs(errs: dict[str, Any]) -> int:
    return sum(np.atleast_2d(np.asarray(v)).shape[1] for v in errs.values())


def compare_many(folders: Sequence[Path], matchers: Sequence[str], b: str, n_boot: int = 2000,
                 runs: bool = False) -> list[dict[str, Any]]:
    """One row per matcher: its mean AUC and its difference to B with the paired interval (ablation tables)."""
    errors = load_pair_errors(folders, runs)
    out, rows = [], []
    for a in matchers:
        common, ea, eb, diff = _difference(errors, a, b, n_boot)
        mean = {f"auc@{t}": mean_auc(ea, t) for t in POSE_THRESHOLDS}
        out.append({"a": a, "b": b, "datasets": common, "pairs": _n_pairs(ea),
                    "mean": mean, "difference": diff})
        rows.append([a, len(common), out[-1]["pairs"], " / ".join(f"{v:.1f}" for v in mean.values()),
                     *(f"{d:+.2f} [{lo:+.2f}, {hi:+.2f}]" for d, lo, hi in diff.values())])
    print_table(f"mean AUC over data sets, and minus {b} (95 % paired bootstrap interval)",
                ["matcher", "data sets", "pairs", "AUC@" + "/".join(str(t) for t in POSE_THRESHOLDS),
                 *(f"ΔAUC@{t}" for t in POSE_THRESHOLDS)], rows)
    return out


def compare_results(folders: Sequence[Path], a: str, b: str, n_boot: int = 2000,
                    runs: bool = False) -> dict[str, Any]:
    common, ea, eb, diff = _difference(load_pair_errors(folders, runs), a, b, n_boot)
    rows = [[d, _n_pairs({d: ea[d]}), *(f"{mean_auc({d: ea[d]}, t):.1f} / {mean_auc({d: eb[d]}, t):.1f}"
                                         for t in POSE_THRESHOLDS)] for d in common]
    print_table(f"AUC of {a} / {b} (percent)", ["data set", "pairs", *(f"AUC@{t}" for t in POSE_THRESHOLDS)], rows)
    drows = [[len(common), _n_pairs(ea),
              *(f"{d:+.2f} [{lo:+.2f}, {hi:+.2f}]" for d, lo, hi in diff.values())]]
    print_table(f"mean AUC of {a} minus {b} over data sets (95 % paired bootstrap interval)",
                ["data sets", "pairs", *(f"ΔAUC@{t}" for t in POSE_THRESHOLDS)], drows)
    return {"a": a, "b": b, "datasets": common, "difference": diff}
