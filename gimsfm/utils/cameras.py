"""Known intrinsics in hloc's text format: `name MODEL WIDTH HEIGHT PARAMS...` (COLMAP conventions)."""
from __future__ import annotations

from pathlib import Path

import pycolmap

from ..errors import InputError


def read_intrinsics(path: Path) -> dict[str, pycolmap.Camera]:
    """name -> camera; one line per image (COLMAP pixel centres: cx, cy = OpenCV + 0.5)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"intrinsics file not found: {path}")
    cams = {}
    for i, line in enumerate(path.read_text().splitlines()):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        try:
            name, model, w, h = parts[0], parts[1], int(parts[2]), int(parts[3])
            cam = pycolmap.Camera.create_from_model_name(0, model, 1.0, w, h)
            cam.params = [float(p) for p in parts[4:]]
            if not cam.verify_params():
                raise ValueError("wrong number of parameters")
        except (ValueError, IndexError, TypeError) as exc:
            raise InputError(f"{path}:{i + 1}: expected 'name MODEL W H params...' ({exc})") from None
        cams[name] = cam
    return cams
