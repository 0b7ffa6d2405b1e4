"""`gimsfm bench compare`: is a score difference between two matchers more than the luck of the pair sample?

Reads the per-pair errors that `bench zeb` / `bench indomain` write (per_pair.json) and reports the mean AUC
difference with a paired bootstrap interval (`metrics.paired_auc_difference`).
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

from ..errors import InputError
from .metrics import POSE_THRESHOLDS, auc_percent, paired_auc_difference
from .report import print_table


def load_pair_errors(folders: Sequence[Path]) -> dict[str, dict[str, list[float]]]:
    """matcher -> data set -> per-pair pose errors (failures as inf), pooled over result folders."""
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
                errs = [float(r["err"]) if r.get("err") is not None
                        and not math.isnan(float(r["err"])) else math.inf for r in rows]
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


def mean_auc(errs: dict[str, list[float]], t: float) -> float:
    """Mean over data sets of the AUC (percent) up to threshold T."""
    return sum(next(iter(auc_percent(e, [t]).values())) for e in errs.values()) / len(errs)


def compare_many(folders: Sequence[Path], matchers: Sequence[str], b: str, n_boot: int = 2000) -> list[dict[str, Any]]:
    """One row per matcher: its mean AUC and its difference to B with the paired interval (ablation tables)."""
    errors = load_pair_errors(folders)
    out, rows = [], []
    for a in matchers:
        common, ea, eb, diff = _difference(errors, a, b, n_boot)
        mean = {f"auc@{t}": mean_auc(ea, t) for t in POSE_THRESHOLDS}
        out.append({"a": a, "b": b, "datasets": common, "pairs": sum(len(v) for v in ea.values()),
                    "mean": mean, "difference": diff})
        rows.append([a, len(common), out[-1]["pairs"], " / ".join(f"{v:.1f}" for v in mean.values()),
                     *(f"{d:+.2f} [{lo:+.2f}, {hi:+.2f}]" for d, lo, hi in diff.values())])
    print_table(f"mean AUC over data sets, and minus {b} (95 % paired bootstrap interval)",
                ["matcher", "data sets", "pairs", "AUC@" + "/".join(str(t) for t in POSE_THRESHOLDS),
                 *(f"ΔAUC@{t}" for t in POSE_THRESHOLDS)], rows)
    return out


def compare_results(folders: Sequence[Path], a: str, b: str, n_boot: int = 2000) -> dict[str, Any]:
    common, ea, eb, diff = _difference(load_pair_errors(folders), a, b, n_boot)
    rows = [[d, len(ea[d]), *(f"{auc_percent(ea[d], [t])[f'auc@{t}']:.1f} / {auc_percent(eb[d], [t])[f'auc@{t}']:.1f}"
                              for t in POSE_THRESHOLDS)] for d in common]
    print_table(f"AUC of {a} / {b} (percent)", ["data set", "pairs", *(f"AUC@{t}" for t in POSE_THRESHOLDS)], rows)
    drows = [[len(common), sum(len(v) for v in ea.values()),
              *(f"{d:+.2f} [{lo:+.2f}, {hi:+.2f}]" for d, lo, hi in diff.values())]]
    print_table(f"mean AUC of {a} minus {b} over data sets (95 % paired bootstrap interval)",
                ["data sets", "pairs", *(f"ΔAUC@{t}" for t in POSE_THRESHOLDS)], drows)
    return {"a": a, "b": b, "datasets": common, "difference": diff}
