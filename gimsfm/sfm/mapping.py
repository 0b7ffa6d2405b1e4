"""Stage 5: incremental (COLMAP) or global (GLOMAP-style) mapping with pycolmap."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pycolmap
from ..utils.progress import tqdm

from .. import logger
from ..errors import InputError, ReconstructionError
from ..utils.fault import point
from ..utils.io import read_image
from .database import verified_pairs

MAPPERS = ("incremental", "global")


def configure_colmap_logging(log_dir: Path | None) -> None:
    """Send COLMAP's glog output to a file in the run folder instead of the terminal."""
    pycolmap.logging.logtostderr = False
    pycolmap.logging.alsologtostderr = False
    pycolmap.logging.stderrthreshold = 3  # COLMAP errors go to the log; ours are reported
    if log_dir is not None:
        pycolmap.logging.set_log_destination(pycolmap.logging.INFO, str(Path(log_dir) / "colmap.log."))


def mappable_images(database_path: Path, min_inliers: int = 15) -> int:
    """Images with at least one verified pair the mapper can use (COLMAP's default min_num_matches)."""
    return len({image_id for pair in verified_pairs(database_path, min_inliers) for image_id in pair})


def _map_once(database_path: Path, image_dir: Path, models_dir: Path, mapper: str, seed: int,
              min_model_size: int, refine_intrinsics: bool, num_threads: int) -> list[pycolmap.Reconstruction]:
    if models_dir.exists():
        shutil.rmtree(models_dir)
    models_dir.mkdir(parents=True)
    point("mapping.start")  # with @SECONDS: killed inside COLMAP's mapper
    if mapper == "incremental":
        options = pycolmap.IncrementalPipelineOptions()
        options.min_model_size = min_model_size
        options.random_seed = seed
        options.num_threads = num_threads
        options.extract_colors = False  # colours are taken from our own image reader (EXIF, 16-bit)
        options.ba_refine_focal_length = refine_intrinsics
        options.ba_refine_extra_params = refine_intrinsics
        models = pycolmap.incremental_mapping(database_path, image_dir, models_dir, options)
    else:
        options = pycolmap.GlobalPipelineOptions()
        options.min_model_size = min_model_size
        options.random_seed = seed
        options.num_threads = num_threads
        options.mapper.bundle_adjustment.refine_focal_length = refine_intrinsics
        options.mapper.bundle_adjustment.refine_extra_params = refine_intrinsics
        models = pycolmap.global_mapping(database_path, image_dir, models_dir, options)
    ordered = sorted(models.values(), key=_rank, reverse=True)
    return [r for r in ordered if r.num_reg_images() >= 2 and r.num_points3D() > 0]


def run_mapping(database_path: Path, image_dir: Path, models_dir: Path, mapper: str = "incremental",
                seed: int = 0, min_model_size: int = 3, refine_intrinsics: bool = True,
                attempts: int = 3, retry_below: float = 0.8, num_threads: int = 1
                ) -> list[pycolmap.Reconstruction]:
    """Map the verified database; returns the models sorted by registered images (largest first).

    COLMAP's initial pair and RANSAC draws hang on the seed, and an unlucky draw can leave a two-image
    model on a scene that maps fully with another: when the largest model holds under `retry_below` of
    the mappable images, mapping reruns with the next seeds (up to `attempts` in all) and keeps the best.
    COLMAP's threads race (the same seed gave 10 or 2 registered images run to run), so one thread is
    the default: the result is then a function of the database and the seed; -1 uses every core.
    """
    if mapper not in MAPPERS:
        raise InputError(f"unknown mapper '{mapper}' ({', '.join(MAPPERS)})")
    database_path, models_dir = Path(database_path), Path(models_dir)
    mappable = mappable_images(database_path)
    attempts = max(1, attempts)
    scratch = models_dir.with_name(models_dir.name + ".attempt")
    best: list[pycolmap.Reconstruction] = []
    for attempt in range(attempts):
        models = _map_once(database_path, image_dir, scratch, mapper, seed + attempt, min_model_size,
                           refine_intrinsics, num_threads)
        point("mapping.attempt")
        if models and (not best or _rank(models[0]) > _rank(best[0])):
            best = models
            if models_dir.exists():
                shutil.rmtree(models_dir)
            scratch.rename(models_dir)  # models/ always holds the kept attempt's output
        if (best and best[0].num_reg_images() >= retry_below * mappable) or attempt + 1 == attempts:
            break
        logger.warning("mapping with seed %d registered %d of %d mappable images; retrying with seed %d",
                       seed + attempt, models[0].num_reg_images() if models else 0, mappable, seed + attempt + 1)
    if scratch.exists():
        shutil.rmtree(scratch)
    if not best:
        raise ReconstructionError("mapping found no model: too few reliable matches between the images")
    return best


def _rank(rec: pycolmap.Reconstruction) -> tuple[int, int]:
    return rec.num_reg_images(), rec.num_points3D()


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
    point("model.write")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)
    logger.info("model written to %s", out_dir)
    return out_dir
