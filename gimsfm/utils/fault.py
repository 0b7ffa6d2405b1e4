"""Fault injection for the crash-safety suite (tests/test_fault.py, scripts/fault_matrix.py).

`GIMSFM_FAULT=POINT[:N][@SECONDS]` SIGKILLs this process the N-th time (default 1) the code passes
`point(POINT)`, or SECONDS after it: the delayed kill comes from a separate `sleep; kill -9` process, so it
lands inside long C++ calls (COLMAP mapping, verification) that hold the interpreter. Unset, `point` costs
one environment lookup.
"""
from __future__ import annotations

import os
import signal
import subprocess
from collections import Counter

_hits: Counter = Counter()


def _parse(spec: str) -> tuple[str, int, float | None]:
    name, _, delay = spec.partition("@")
    name, _, nth = name.partition(":")
    return name, int(nth or 1), float(delay) if delay else None


def point(name: str) -> None:
    """A place where a crash must lose nothing; kills the process here when GIMSFM_FAULT names it."""
    spec = os.environ.get("GIMSFM_FAULT")
    if not spec:
        return
    target, nth, delay = _parse(spec)
    if target != name:
        return
    _hits[name] += 1
    if _hits[name] != nth:
        return
    if delay is None:
        os.kill(os.getpid(), signal.SIGKILL)
    else:
        subprocess.Popen(["sh", "-c", f"sleep {delay}; kill -9 {os.getpid()} 2>/dev/null"],
                         start_new_session=True)
