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
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0,1,2", help="Comma-separated seeds drawing N and SECONDS per point.")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "fault_matrix.md")
    args = ap.parse_args()
    junit = REPO / ".fault_matrix.xml"
    env = {**os.environ, "GIMSFM_FAULT_FULL": "1", "GIMSFM_FAULT_SEEDS": args.seeds}
    t0 = time.time()
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "fault", "tests/test_fault.py", f"--junitxml={junit}",
                    "-p", "no:cacheprovider"], cwd=REPO, env=env)
    minutes = (time.time() - t0) / 60
    rows: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    failed = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        name = case.get("name", "")
        test, _, param = name.partition("[")
        param = param.rstrip("]")
        point = re.sub(r":\d+(@[\d.]+)?$", "", param) if "killed" in test else param or "-"
        key = (test.removeprefix("test_"), point)
        ok = case.find("failure") is None and case.find("error") is None
        skipped = case.find("skipped") is not None
        if skipped:
            continue
        rows[key][0] += 1
        rows[key][1] += ok
        if not ok:
            failed.append(name)
    junit.unlink(missing_ok=True)
    total = [sum(v[0] for v in rows.values()), sum(v[1] for v in rows.values())]
    lines = [f"Fault-injection matrix, seeds {args.seeds}: {total[1]}/{total[0]} cases passed "
             f"({minutes:.1f} min, {time.strftime('%Y-%m-%d')}).", "",
             "| test | kill point / parameter | cases | passed |", "|---|---|---|---|"]
    lines += [f"| {t} | {p} | {n} | {k} |" for (t, p), (n, k) in sorted(rows.items())]
    lines += [f"| **all** | | **{total[0]}** | **{total[1]}** |"]
    if failed:
        lines += ["", "Failed: " + ", ".join(failed)]
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("# Fault-injection matrix\n\n"
                        "`python scripts/fault_matrix.py` (see tests/test_fault.py for what each case asserts).\n\n"
                        + text)
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
