"""Helpers shared by the CLI tests."""
from __future__ import annotations

import subprocess
import sys


def run_cli(*args, check: bool = True) -> subprocess.CompletedProcess:
    """Run `python -m gimsfm ARGS`; never a traceback, and exit 0 when `check`."""
    proc = subprocess.run([sys.executable, "-m", "gimsfm", *map(str, args)], capture_output=True, text=True)
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    if check:
        assert proc.returncode == 0, proc.stderr[-2000:]
    return proc
