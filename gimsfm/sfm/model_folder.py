"""Find and read a model: a `gimsfm reconstruct` output folder, a COLMAP model folder (cameras/images/
points3D as .bin or .txt), or a COLMAP workspace holding sparse/0."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pycolmap

from ..errors import InputError


@dataclass
class Model:
    rec: pycolmap.Reconstruction
    model_dir: Path  # the folder holding cameras/images/points3D
    out_dir: Path | None = None  # the gimsfm output folder, when the model is one
    summary: dict[str, Any] = field(default_factory=dict)
    image_dir: Path | None = None  # where the images are, when known (a gimsfm run records it)


def _is_model_dir(path: Path) -> bool:
    return any((path / f"images.{ext}").is_file() and (path / f"cameras.{ext}").is_file() for ext in ("bin", "txt"))


def find_model_dir(path: Path) -> tuple[Path, Path | None]:
    """(model folder, gimsfm output folder or None); InputError when `path` holds no model."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path} does not exist")
    if not path.is_dir():
        raise InputError(f"{path} is not a folder (give a gimsfm output or a COLMAP model folder)")
    if _is_model_dir(path / "sparse") and (path / "run.json").exists():
        return path / "sparse", path
    for candidate in (path, path / "sparse", path / "sparse" / "0", path / "0"):
        if _is_model_dir(candidate):
            return candidate, None
    raise InputError(f"{path} is not a gimsfm output or COLMAP model folder (no cameras/images .bin or .txt)")


def load_model(path: Path) -> Model:
    model_dir, out_dir = find_model_dir(path)
    try:
        rec = pycolmap.Reconstruction(str(model_dir))
    except Exception as exc:  # pycolmap raises plain RuntimeError/ValueError on broken files
        raise InputError(f"cannot read the model in {model_dir}: {str(exc).splitlines()[0][:100]}") from None
    if rec.num_reg_images() == 0:
        raise InputError(f"the model in {model_dir} has no registered images")
    model = Model(rec, model_dir, out_dir)
    if out_dir is not None:
        for name in ("summary.json", "run.json"):
            try:
                data = json.loads((out_dir / name).read_text())
            except (OSError, json.JSONDecodeError):
                continue
            if name == "summary.json":
                model.summary = data
            elif data.get("image_dir"):
                model.image_dir = Path(data["image_dir"])
    return model
