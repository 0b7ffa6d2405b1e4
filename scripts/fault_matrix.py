"""Full fault-injection matrix (issue 26): every kill point x seeds, then a table of cases and passes.

    python scripts/fault_matrix.py [--seeds 0,1,2] [--out docs/fault_matrix.md]

Runs `pytest -m fault tests/test_fault.py` with GIMSFM_FAULT_FULL=1 (about 20 min on 2 cores) and writes
the table (one row per command and kill point) to --out and stdout.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def table(log: str, seeds: str, minutes: float | None) -> tuple[str, bool]:
    """Markdown table (one row per test and kill point) from pytest -v lines; partial logs give partial tables."""
    rows: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    failed = []
    for m in re.finditer(r"test_fault\.py::(\w+)(?:\[([^\]]*)\])? (PASSED|FAILED|ERROR)", log):
        test, param, outcome = m.group(1), m.group(2) or "-", m.group(3)
        point = re.sub(r":\d+(@[\d.]+)?$", "", param) if "killed" in test else param
        key = (test.removeprefix("test_"), point)
        rows[key][0] += 1
        rows[key][1] += outcome == "PASSED"
        if outcome != "PASSED":
            failed.append(f"{test}[{param}]")
    total = [sum(v[0] for v in rows.values()), sum(v[1] for v in rows.values())]
    took = f"{minutes:.1f} min, " if minutes is not None else ""
    lines = [f"Fault-injection matrix, seeds {seeds}: {total[1]}/{total[0]} cases passed "
             f"({took}{time.strftime('%Y-%m-%d')}).", "",
             "| test | kill point / parameter | cases | passed |", "|---|---|---|---|"]
    lines += [f"| {t} | {p} | {n} | {k} |" for (t, p), (n, k) in sorted(rows.items())]
    lines += [f"| **all** | | **{total[0]}** | **{total[1]}** |"]
    if failed:
        lines += ["", "Failed: " + ", ".join(failed)]
    return "\n".join(lines) + "\n", not failed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0,1,2", help="Comma-separated seeds drawing N and SECONDS per point.")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "fault_matrix.md")
    ap.add_argument("--log", type=Path, default=REPO / "fault_matrix.log", help="pytest -v output (kept).")
    ap.add_argument("--from-log", action="store_true", help="Only tabulate an existing (maybe partial) --log.")
    ap.add_argument("pytest_args", nargs="*", help="Extra pytest arguments, e.g. -k label.")
    args = ap.parse_args()
    minutes = None
    if not args.from_log:
        env = {**os.environ, "GIMSFM_FAULT_FULL": "1", "GIMSFM_FAULT_SEEDS": args.seeds}
        t0 = time.time()
        with open(args.log, "w") as log:
            subprocess.run([sys.executable, "-m", "pytest", "-v", "-m", "fault", "tests/test_fault.py",
                            "-p", "no:cacheprovider", *args.pytest_args], cwd=REPO, env=env, stdout=log,
                           stderr=subprocess.STDOUT)
        minutes = (time.time() - t0) / 60
    text, ok = table(args.log.read_text(), args.seeds, minutes)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("# Fault-injection matrix\n\n"
                        "`python scripts/fault_matrix.py` (see tests/test_fault.py for what each case asserts).\n\n"
                        + text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
