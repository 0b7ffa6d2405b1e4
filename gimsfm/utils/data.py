"""Where the developer data lives: one low-level definition that synth, bench and train all import."""
from __future__ import annotations

import os
from pathlib import Path


def data_root() -> Path:
    """Developer data: $GIMSFM_DATA, else `<repo>/../shared/data`."""
    env = os.environ.get("GIMSFM_DATA")
    if env:
        return Path(env).expanduser()
    import gimsfm

    return Path(gimsfm.__file__).resolve().parents[2] / "shared" / "data"
