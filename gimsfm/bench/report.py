"""Shared output of every benchmark: results.json, a markdown table, and the console table."""
from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any, Sequence

import torch
from rich.console import Console
from rich.table import Table


def environment() -> dict[str, Any]:
    """What the numbers were measured on."""
    import os

    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }


def fmt(value: Any, digits: int = 2) -> str:
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    table = Table(title=title)
    for h in header:
        table.add_column(str(h))
    for row in rows:
        table.add_row(*[fmt(v) for v in row])
    console = Console()
    if not console.is_terminal:  # logs and pipes: full rows rather than 80 columns of wrapped cells
        console = Console(width=200)
    console.print(table)


def write_report(out_dir: Path, results: dict[str, Any], title: str, header: Sequence[str],
                 rows: Sequence[Sequence[Any]], extra_md: str = "") -> Path:
    """Write OUT/results.json and OUT/results.md, print the table; returns the json path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = {**results, "environment": environment()}
    (out_dir / "results.json").write_text(json.dumps(results, indent=2))
    md = f"# {title}\n\n" + markdown_table(header, rows) + ("\n" + extra_md if extra_md else "")
    (out_dir / "results.md").write_text(md)
    print_table(title, header, rows)
    return out_dir / "results.json"
