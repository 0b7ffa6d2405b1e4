"""Pieces shared by the pose and homography benchmarks: matcher selection, plots, result tables."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .. import logger
from ..errors import InputError
from ..matchers import get_matcher, list_matchers
from ..matchers.registry import split_matcher_name
from ..matchers.base import Matcher
from .metrics import recall_curve

BASELINE_MATCHER = "sift-nn"


def resolve_matcher_names(names: Sequence[str] | None, add_baseline: bool = True) -> list[str]:
    """Requested matchers in order, sift-nn first-added as the reference unless disabled; unknown -> error."""
    names = list(dict.fromkeys(names or []))
    if add_baseline and BASELINE_MATCHER not in names:
        names = [BASELINE_MATCHER] + names
    if not names:
        raise InputError("no matcher selected: give --matcher NAME")
    for n in names:
        split_matcher_name(n)  # NAME or NAME:WEIGHTS (a candidate's weights); errors before any work
    return names


def available_matcher_names() -> list[str]:
    """Every registered matcher whose weights / dependencies are present (what the gate runs)."""
    out = []
    for entry in list_matchers():
        try:
            ok = bool(entry.available())
        except Exception:  # an availability probe must never break the benchmark
            ok = False
        if ok:
            out.append(entry.name)
        else:
            logger.info("matcher %s is registered but not available: skipped", entry.name)
    return out


def build_matcher(name: str, device: str = "auto", max_keypoints: int | None = None) -> Matcher:
    """A registered matcher; `max_keypoints` (sparse matchers) overrides every matcher's own default, so
    matchers can be compared at one keypoint budget."""
    conf = {"features": {"max_keypoints": int(max_keypoints)}} if max_keypoints else None
    return get_matcher(name, conf, device=device)


def matcher_dirname(name: str) -> str:
    """A folder name for a matcher spec (`NAME:WEIGHTS@OPTIONS` holds slashes, colons, commas): the cache's
    safe form of the name, plus a short hash when that form had to change it (so specs never collide)."""
    import hashlib

    from .matching import _safe

    safe = _safe(name)
    if safe == name:
        return name
    return f"{safe.strip('_.')[:60]}-{hashlib.sha1(name.encode()).hexdigest()[:6]}"


def unique_names(paths: Sequence[Path]) -> list[str]:
    """Folder names as data set names; repeated names get their parent's name prepended."""
    names = [Path(p).name for p in paths]
    out = []
    for p, n in zip(paths, names):
        out.append(f"{Path(p).parent.name}-{n}" if names.count(n) > 1 else n)
    return out


def cache_dir_for(cache_root: Path, name: str, root: Path) -> Path:
    """Cache folder of one data set: its name plus a hash of its location, so same-named sets never mix."""
    import hashlib

    digest = hashlib.sha1(str(Path(root).resolve()).encode()).hexdigest()[:6]
    return Path(cache_root) / f"{name}-{digest}"


def finite_or_none(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def escalation_summary(records: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """Pairs per view-synthesis level reached and their mean seconds per pair (None without views)."""
    levels = [r.get("level") for r in records]
    if not records or any(lv is None for lv in levels):
        return None
    out: dict[str, Any] = {"pairs_per_level": {}, "sec_per_pair_by_level": {}}
    for lv in sorted(set(levels)):
        secs = [r["seconds"] for r in records if r["level"] == lv]
        out["pairs_per_level"][str(lv)] = len(secs)
        out["sec_per_pair_by_level"][str(lv)] = round(float(np.mean(secs)), 3)
    return out


def levels_text(summary: dict[str, Any]) -> str:
    """`L0 15 (0.4 s), L1 4 (6.2 s)`: pairs per escalation level and their seconds per pair, or '-'."""
    esc = summary.get("escalation")
    if not esc:
        return "-"
    return ", ".join(f"L{lv} {n} ({esc['sec_per_pair_by_level'][lv]:.2f} s)" for lv, n in esc["pairs_per_level"].items())


def plot_recall_curves(path: Path, panels: dict[str, dict[str, Sequence[float]]], max_error: float, xlabel: str,
                       title: str) -> Path:
    """One panel per data set (plus 'all'): cumulative fraction of pairs below each error, one line per matcher."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(panels)
    cols = min(4, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.0 * rows), squeeze=False)
    for ax, (panel, curves) in zip(axes.ravel(), panels.items()):
        for label, errors in curves.items():
            x, y = recall_curve(errors, max_error)
            ax.plot(x, 100 * y, label=label)
        ax.set_title(panel, fontsize=9)
        ax.set_xlim(0, max_error)
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.set_ylabel("pairs below error (%)", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    axes.ravel()[0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_per_pair(path: Path, records: dict[str, Any]) -> None:
    """Per-pair errors and match counts, for debugging a score (not part of results.json)."""
    def default(o):
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
        raise TypeError(type(o))

    Path(path).write_text(json.dumps(records, indent=1, default=default, allow_nan=True))


def finish_report(out: Path, results: dict[str, Any], title: str, tables: tuple, note: str,
                  panels: dict[str, dict[str, Sequence[float]]], curves_name: str, max_error: float, xlabel: str,
                  per_pair: dict[str, Any]) -> None:
    """What every pair benchmark writes: results.json/.md with a summary, the curves PNG, per_pair.json."""
    from .report import markdown_table, print_table, write_report

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    header, rows, sheader, srows = tables
    extra = "## Summary\n\n" + markdown_table(sheader, srows) + "\n" + note
    write_report(out, results, title, header, rows, extra_md=extra)
    print_table(f"{title}: summary", sheader, srows)
    plot_recall_curves(out / curves_name, panels, max_error, xlabel, title)
    write_per_pair(out / "per_pair.json", per_pair)
    logger.info("%s: wall %.1f s, peak memory %.0f MB; results in %s", title, results["wall_sec"],
                results["peak_mb"], out / "results.json")
