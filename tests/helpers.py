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


def gim_fixture(folder: str):
    """../shared/fixtures/gim_reference (the GIM parity fixtures), skipping the test when `folder` is absent."""
    import pytest

    from gimsfm.bench.suites import data_root

    root = data_root().parent / "fixtures" / "gim_reference"
    if not (root / folder / "outputs.npz").is_file():
        pytest.skip(f"GIM reference fixtures not found at {root}")
    return root


def fake_release_checkpoint(fixtures, folder: str, out):
    """The fake-weight release checkpoint of a GIM fixture folder, written by the fixture's own script."""
    proc = subprocess.run([sys.executable, str(fixtures / "make_fake_ckpt.py"), str(fixtures / folder / "keys.json"),
                           str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out
