"""`gimsfm bench table SPEC.yaml`: a results table (e.g. an ablation table) from stored per-pair results.

The spec names the rows (a label and a matcher as named in the results) and the columns. A column reads
the per_pair.json of one or more `bench zeb` / `bench indomain` output folders (glob patterns; folders are
pooled) and shows either the mean AUC over data sets at some thresholds, or, with `minus: MATCHER`, the mean
AUC@T difference to that matcher with a 95 % paired bootstrap interval. Re-running the benchmarks and this
command rebuilds the table, so a published table is reproducible instead of hand-assembled.

    title: GIM ablations
    rows:
      - {label: full recipe, matcher: "sift-lightglue-gim:runs/ablations/abl_full.pt"}
      - {label: base, matcher: sift-lightglue-base}
    columns:
      - {name: zeb-lite-real AUC@5/10/20, results: [runs/bench/abl*_zeb_real], thresholds: [5, 10, 20]}
      - {name: Δ vs base, results: [runs/bench/abl*_zeb_*], minus: sift-lightglue-base, threshold: 5}
"""
from __future__ import annotations

import glob
from pathlib import Path
from typing import Any

import yaml

from .. import logger
from ..errors import InputError
from .compare import load_pair_errors, mean_auc
from .metrics import paired_auc_difference
from .report import markdown_table, print_table

_ROW_KEYS = {"label", "matcher"}
_COLUMN_KEYS = {"name", "results", "thresholds", "minus", "threshold"}


def load_table_spec(path: Path) -> dict[str, Any]:
    """Read and check a table spec; errors name the offending entry."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"table spec not found: {path}")
    try:
        spec = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(spec, dict) or not spec.get("rows") or not spec.get("columns"):
        raise InputError(f"{path}: a table spec needs non-empty 'rows' and 'columns' lists")
    for i, row in enumerate(spec["rows"]):
        if not isinstance(row, dict) or "matcher" not in row or set(row) - _ROW_KEYS:
            raise InputError(f"{path}: row {i + 1} must be {{label: ..., matcher: ...}}, got {row!r}")
    for i, col in enumerate(spec["columns"]):
        if not isinstance(col, dict) or "name" not in col or not col.get("results") or set(col) - _COLUMN_KEYS:
            raise InputError(f"{path}: column {i + 1} needs 'name' and 'results' (keys: "
                             f"{', '.join(sorted(_COLUMN_KEYS))}), got {col!r}")
        if isinstance(col["results"], str):
            col["results"] = [col["results"]]  # one pattern, not its characters
        thresholds = col.get("thresholds", [5])
        thresholds = thresholds if isinstance(thresholds, list) else [thresholds]
        for t in [*thresholds, col.get("threshold", 5)]:
            if isinstance(t, bool) or not isinstance(t, (int, float)) or t <= 0:
                raise InputError(f"{path}: column {i + 1}: thresholds must be positive numbers, got {t!r}")
        col["thresholds"] = thresholds
    return spec


def _folders(patterns: list[str], base: Path) -> list[Path]:
    """Expand glob patterns (relative to BASE) to result folders that hold a per_pair.json."""
    out: list[Path] = []
    for pat in patterns:
        p = str(pat) if Path(pat).is_absolute() else str(base / pat)
        hits = sorted(Path(h) for h in glob.glob(p) if (Path(h) / "per_pair.json").is_file())
        if not hits:
            raise InputError(f"no bench results (per_pair.json) match '{pat}'")
        out += [h for h in hits if h not in out]
    return out


def _cell(col: dict, errors: dict[str, dict[str, list[float]]], matcher: str, n_boot: int) -> str:
    if matcher not in errors:
        return "-"
    if "minus" in col:
        ref = str(col["minus"])
        if ref == matcher or ref not in errors:
            return ""
        t = float(col.get("threshold", 5))
        common = set(errors[matcher]) & set(errors[ref])
        if not common:
            return "-"
        a, b = ({d: errors[m][d] for d in common} for m in (matcher, ref))
        try:
            d, lo, hi = paired_auc_difference(a, b, (t,), n_boot=n_boot)[f"auc@{t:g}"]
        except ValueError as exc:
            raise InputError(f"column '{col['name']}', {matcher} vs {ref}: {exc}") from None
        return f"{d:+.2f} [{lo:+.2f}, {hi:+.2f}]"
    return " / ".join(f"{mean_auc(errors[matcher], float(t)):.1f}" for t in col.get("thresholds", [5]))


def build_table(spec_path: Path, out: Path | None = None, base: Path | None = None,
                n_boot: int = 2000) -> dict[str, Any]:
    """Build the table of SPEC (result paths relative to BASE, default the working directory); print it and,
    with OUT, write it as Markdown. Returns {header, rows, sources}."""
    spec = load_table_spec(spec_path)
    base = Path(base) if base is not None else Path.cwd()
    header = ["variant" if any("label" in r for r in spec["rows"]) else "matcher"]
    header += [str(c["name"]) for c in spec["columns"]]
    loaded: dict[tuple, dict] = {}
    sources: dict[str, list[str]] = {}
    per_col = []
    for col in spec["columns"]:
        folders = _folders([str(p) for p in col["results"]], base)
        key = tuple(folders)
        if key not in loaded:
            loaded[key] = load_pair_errors(folders)
        per_col.append(loaded[key])
        sources[str(col["name"])] = [str(f) for f in folders]
    rows, missing = [], []
    for row in spec["rows"]:
        m = str(row["matcher"])
        if all(m not in e for e in per_col):
            missing.append(m)  # not benchmarked yet: a row of "-", so a partial table still builds
        rows.append([str(row.get("label", m))] + [_cell(c, e, m, n_boot) for c, e in zip(spec["columns"], per_col)])
    if len(missing) == len(rows):
        raise InputError(f"none of the matchers of {spec_path} is in its results (first: '{missing[0]}')")
    for m in missing:
        logger.warning("matcher '%s' is in none of the results: its row is empty", m)
    title = str(spec.get("title", Path(spec_path).stem))
    print_table(title, header, rows)
    if out is not None:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        notes = spec.get("notes")
        out.write_text(f"# {title}\n\n" + markdown_table(header, rows) + (f"\n{notes.strip()}\n" if notes else ""))
    return {"header": header, "rows": rows, "sources": sources}
