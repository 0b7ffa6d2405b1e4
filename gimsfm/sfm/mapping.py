"""Stage 5: incremental (COLMAP) or global (GLOMAP-style) mapping with pycolmap."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pycolmap
from ..utils.progress import tqdm

from .. import logger
from ..errors import InputError, ReconstructionError
from ..utils.io import read_image

MAPPERS = ("incremental", "global")


def configure_colmap_logging(log_dir: Path | None) -> None:
    """Send COLMAP's glog output to a file in the run folder instead of the terminal."""
    pycolmap.logging.logtostderr = False
    pycolmap.logging.alsologtostderr = False
    pycolmap.logging.stderrthreshold = 3  # COLMAP errors go to the log; ours are reported
    if log_dir is not None:
        pycolmap.logging.set_log_destination(pycolmap.logging.INFO, str(Path(log_dir) / "colmap.log."))


def run_mapping(database_path: Path, image_dir: Path, models_dir: Path, mapper: str = "incremental",
                seed: int = 0, min_model_size: int = 3, refine_intrinsics: bool = True
                ) -> list[pycolmap.Reconstruction]:
    """Map the verified database; returns the models sorted by registered images (largest first)."""
    if mapper not in MAPPERS:
        raise InputError(f"unknown mapper '{mapper}' ({', '.join(MAPPERS)})")
    models_dir = Path(models_dir)
    if models_dir.exists():
        shutil.rmtree(models_dir)
    models_dir.mkdir(parents=True)
    if mapper == "incremental":
        options = pycolmap.IncrementalPipelineOptions()
        options.min_model_size = min_model_size
        options.random_seed = seed
        options.extract_colors = False  # colours are taken from our own image reader (EXIF, 16-bit)
        options.ba_refine_focal_length = refine_intrinsics
        options.ba_refine_extra_params = refine_intrinsics
        models = pycolmap.incremental_mapping(database_path, image_dir, models_dir, options)
    else:
        options = pycolmap.GlobalPipelineOptions()
        options.min_model_size = min_model_size
        options.random_seed = seed
        options.mapper.bundle_adjustment.refine_focal_length = refine_intrinsics
        options.mapper.bundle_adjustment.refine_extra_params = refine_intrinsics
        models = pycolmap.global_mapping(database_path, image_dir, models_dir, options)
    ordered = sorted(models.values(), key=lambda r: (r.num_reg_images(), r.num_points3D()), reverse=True)
    ordered = [r for r in ordered if r.num_reg_images() >= 2 and r.num_points3D() > 0]
    if not ordered:
        raise ReconstructionError("mapping found no model: too few reliable matches between the images")
    return ordered


def colorize(rec: pycolmap.Reconstruction, image_dir: Path) -> None:
    """Colour each 3D point by the mean of its observations, reading images with gimsfm's reader."""
    sums: dict[int, np.ndarray] = {}
    counts: dict[int, int] = {}
    for image_id in tqdm(rec.reg_image_ids(), desc="colours", unit="img", leave=False):
        image = rec.image(image_id)
        try:
            rgb = read_image(Path(image_dir) / image.name)
        except InputError:
            continue
        h, w = rgb.shape[:2]
        for p2d in image.points2D:
            if not p2d.has_point3D():
                continue
            x, y = np.clip(np.round(p2d.xy - 0.5).astype(int), 0, [w - 1, h - 1])
            pid = p2d.point3D_id
            sums[pid] = sums.get(pid, 0) + rgb[y, x].astype(np.float64)
            counts[pid] = counts.get(pid, 0) + 1
    for pid, total in sums.items():
        rec.point3D(pid).color = np.round(total / counts[pid]).astype(np.uint8)


def write_model_atomic(rec: pycolmap.Reconstruction, out_dir: Path) -> Path:
    """Binary model written next to `out_dir` and renamed, so an interruption never leaves half a model."""
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    rec.write_binary(str(tmp))
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)
    logger.info("model written to %s", out_dir)
    return out_dir
