"""Shared pytest fixtures (keep minimal; other test files may add their own)."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The developer data root ($GIMSFM_DATA or <repo>/../shared/data); skips the test when absent."""
    from gimsfm.bench.suites import data_root

    root = data_root()
    if not (root / "pose").is_dir() or not (root / "homography").is_dir():
        pytest.skip(f"shared data not found at {root} (set GIMSFM_DATA)")
    return root
