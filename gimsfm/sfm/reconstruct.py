"""The `reconstruct` pipeline: images -> features -> pairs -> matches -> verified database -> model.

Every stage is resumable: re-running the same command on the same OUT skips finished work. The run's
settings are stored in OUT/run.json; a different setting needs --overwrite (or another OUT).
"""
from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .. import logger
from ..errors import InputError, OutputExistsError, ReconstructionError
from ..matchers import get_matcher
from ..utils.cameras import read_intrinsics
from ..utils.config import PRESETS_DIR, read_yaml_extends
from ..utils.h5io import open_h5, read_matches, read_pairs
from ..utils.fault import point
from ..utils.io import list_images
from ..utils.profiling import PeakMemory, timed
from ..matchers.base import SiftMatcher
from ..utils.runlock import LOCK_NAME, RunLock
from . import database, dense, export, mapping
from .extract import extract_features
from .match import match_pairs
from .pairs import EXHAUSTIVE_MAX_IMAGES, make_pairs
from .preview import render_preview
from .scene_view import describe, left_out_images
from .viewer import write_viewer

RUN_FILE = "run.json"
# Files and folders a run creates; --overwrite removes only these, never anything else in OUT.
ARTEFACTS = ["features.h5", "matches.h5", "dense_matches.h5", "retrieval_features.h5", "global.h5", "pairs.txt",
             "database.db", "sparse", "sparse.tmp", "models", "models.attempt", "points.ply", "preview.png",
             "viewer.html", "summary.json", "gimsfm.log", RUN_FILE]
REPO_PIPELINES = PRESETS_DIR


@dataclass
class ReconstructConfig:
    # The GIM-trained matcher: it beats sift-nn on zeb-lite and bench sfm at its 2048 keypoints (README).
    matcher: str = "sift-lightglue-gim"
    pairs: str = "auto"  # auto | exhaustive | sequential | retrieval
    mapper: str = "incremental"  # incremental | global
    camera_mode: str = "auto"  # auto | single | per-folder | per-image
    camera_model: str = "SIMPLE_RADIAL"
    max_keypoints: int | None = None  # None: the matcher's own (registry `sfm_keypoints`: 2048 / sift-nn 8192)
    resize_max: int = 1600
    window: int = 8  # sequential pairs: neighbours per frame
    loop_closure: bool = False  # sequential pairs: add retrieval pairs
    num_matched: int = 20  # retrieval pairs: top-k per image
    verify_max_error: float = 4.0
    min_inliers: int = 15
    ply_remove_outliers: bool = True
    seed: int = 0
    mapping_attempts: int = 3  # reruns with seed+1, seed+2 when the model holds under 80 % of the mappable images
    mapping_threads: int = 1  # reproducible; -1 (every core) is faster on big scenes but varies run to run
    intrinsics: str | None = None  # hloc-format file of known cameras (kept fixed when every image has one)
    dense_cell: float = 2.0  # dense matchers: matched points within one cell of this many pixels merge (sfm.dense)
    matcher_conf: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.max_keypoints is None:
            from ..matchers.registry import sfm_keypoints

            self.max_keypoints = sfm_keypoints(self.matcher)

    def matcher_settings(self) -> dict[str, Any]:
        conf = dict(self.matcher_conf)
        conf["features"] = {**conf.get("features", {}), "max_keypoints": self.max_keypoints,
                            "resize_max": self.resize_max}
        return conf

    @classmethod
    def from_preset(cls, preset: str | Path | None, **overrides: Any) -> "ReconstructConfig":
        values: dict[str, Any] = {}
        if preset:
            values = load_preset(preset).get("reconstruct", {})
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise InputError(f"unknown reconstruct setting(s) in preset: {', '.join(sorted(unknown))}")
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def load_preset(preset: str | Path) -> dict[str, Any]:
    """A YAML preset by path, or by name from pipelines/ (shipped as gimsfm/presets) (`extends:` resolved)."""
    path = Path(preset)
    if not path.is_file():
        path = REPO_PIPELINES / f"{preset}.yaml"
    if not path.is_file():
        raise InputError(f"preset not found: {preset}")
    return read_yaml_extends(path)


def _check_out(out: Path, image_dir: Path) -> None:
    out = out.resolve()
    if out == image_dir or image_dir in out.parents:
        raise InputError("--out must not be inside the image folder")
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"--out {out} exists and is not a folder")


def _prepare_out(out: Path, image_dir: Path, config: ReconstructConfig, overwrite: bool) -> None:
    """Create OUT, or resume a compatible earlier run in it; never touch files that are not ours."""
    out = out.resolve()
    run_file = out / RUN_FILE
    if out.exists() and any(out.iterdir()) and not run_file.exists():
        foreign = [p.name for p in out.iterdir() if p.name not in ARTEFACTS and p.name != LOCK_NAME]
        if foreign:
            raise OutputExistsError(f"--out {out} already holds other files ({', '.join(foreign[:3])}); "
                                    "choose an empty or new folder")
    if overwrite:
        for name in ARTEFACTS:
            p = out / name
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
    elif run_file.exists():
        try:
            previous = json.loads(run_file.read_text())
        except json.JSONDecodeError:
            previous = {}
        # Settings added in a newer gimsfm take their defaults, so older runs still resume.
        before = {**asdict(ReconstructConfig()), **previous.get("config", {})}
        if before != asdict(config) or previous.get("image_dir") != str(image_dir):
            raise OutputExistsError(f"{out} holds a run with other settings or images; "
                                    "use --overwrite to redo it, or another --out")
        logger.info("resuming the run in %s", out)
    out.mkdir(parents=True, exist_ok=True)
    run_file.write_text(json.dumps({"config": asdict(config), "image_dir": str(image_dir)}, indent=2))
    # A file left broken by a crash is our own artefact: set it aside and redo that stage.
    for name in ("features.h5", "matches.h5", "global.h5"):
        p = out / name
        if p.exists():
            try:
                open_h5(p).close()
            except InputError:
                p.rename(p.with_suffix(f".h5.corrupt-{int(time.time())}"))
                logger.warning("%s was left broken by an interrupted run; recomputing it", name)


def _needs_retrieval(config: ReconstructConfig, n_images: int) -> bool:
    return (config.pairs == "retrieval" or (config.pairs == "auto" and n_images > EXHAUSTIVE_MAX_IMAGES)
            or (config.pairs == "sequential" and config.loop_closure))


def _file_log(out: Path) -> logging.Handler:
    handler = logging.FileHandler(out / "gimsfm.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    handler.handleError = lambda record: None  # a full disk: the terminal still gets the line, no traceback
    logger.addHandler(handler)
    return handler


def reconstruct(image_dir: Path, out: Path, config: ReconstructConfig | None = None, overwrite: bool = False,
                device: str = "auto") -> Path:
    """Run the whole pipeline; returns OUT/summary.json. Raises GimsfmError subclasses on bad input.

    OUT is locked for the run: a second run on it stops at once (RunLockedError)."""
    _check_out(Path(out), Path(image_dir).resolve())
    with RunLock(Path(out), "reconstruct"):
        return _reconstruct(image_dir, out, config, overwrite, device)


def _reconstruct(image_dir: Path, out: Path, config: ReconstructConfig | None, overwrite: bool, device: str) -> Path:
    config = config or ReconstructConfig()
    image_dir, out = Path(image_dir).resolve(), Path(out)
    names = list_images(image_dir)
    if not names:
        raise InputError(f"no images found in {image_dir}")
    matcher = get_matcher(config.matcher, config.matcher_settings(), device=device)
    _prepare_out(out, image_dir, config, overwrite)
    handler = _file_log(out)
    mapping.configure_colmap_logging(out)
    timings: dict[str, float] = {}
    t_start = time.perf_counter()
    summary: dict[str, Any] = {"status": "failed", "image_dir": str(image_dir), "num_images": len(names),
                               "matcher": config.matcher, "mapper": config.mapper, "pairs_method": config.pairs,
                               "timings": timings}
    try:
        with PeakMemory() as mem:
            if matcher.sparse:
                with timed(timings, "features"):
                    features, failed = extract_features(image_dir, names, out / "features.h5", matcher)
                retrieval_features = features
            else:  # keypoints come from the matches (sfm.dense); retrieval, if any, runs on RootSIFT
                with timed(timings, "features"):
                    sizes, failed = dense.read_sizes(image_dir, names)
                    retrieval_features = out / "retrieval_features.h5"
                    if _needs_retrieval(config, len(sizes)):
                        extract_features(image_dir, list(sizes), retrieval_features, SiftMatcher())
                features = out / "features.h5"
            summary["skipped_images"] = failed
            point("stage.features")
            good = [n for n in names if n not in failed]
            with timed(timings, "pairs"):
                pairs = make_pairs(good, config.pairs, out / "pairs.txt", retrieval_features, out / "global.h5",
                                   config.window, config.loop_closure, config.num_matched)
            point("stage.pairs")
            with timed(timings, "matching"):
                if matcher.sparse:
                    matches = match_pairs(pairs, features, out / "matches.h5", matcher, image_dir=image_dir)
                else:
                    pair_list = dense.dense_pairs(pairs)
                    dense.match_dense_pairs(image_dir, pair_list, out / "dense_matches.h5", matcher)
                    matches = out / "matches.h5"
                    summary["dense_keypoints"] = dense.merge_dense_matches(
                        out / "dense_matches.h5", pair_list, sizes, features, matches, config.dense_cell)
            point("stage.matching")
            known = read_intrinsics(Path(config.intrinsics)) if config.intrinsics else {}
            with timed(timings, "verification"):
                ids = database.create_database(out / "database.db", image_dir, good, features,
                                               config.camera_mode, config.camera_model, known)
                n_pairs = database.import_matches(out / "database.db", ids, pairs, matches)
                n_verified = database.verify(out / "database.db", pairs, config.verify_max_error,
                                             config.min_inliers) if n_pairs else 0
            point("stage.verification")
            summary.update(num_pairs=len(read_pairs(pairs)), num_matched_pairs=n_pairs, num_verified_pairs=n_verified)
            if n_verified == 0:
                best = max((len(read_matches(matches, a, b)[0]) for a, b in read_pairs(pairs)), default=0)
                raise ReconstructionError(f"no image pair passed geometric verification (most matches in a pair: "
                                          f"{best}); do the images show the same scene?")
            with timed(timings, "mapping"):
                models = mapping.run_mapping(out / "database.db", image_dir, out / "models", config.mapper,
                                             config.seed, refine_intrinsics=not all(n in known for n in good),
                                             attempts=config.mapping_attempts,
                                             num_threads=config.mapping_threads)
                rec = models[0]
                mapping.colorize(rec, image_dir)
                mapping.write_model_atomic(rec, out / "sparse")
            point("stage.mapping")
            with timed(timings, "export"):
                _, n_ply = export.export_ply(rec, out / "points.ply", config.ply_remove_outliers)
            registered = {rec.image(i).name for i in rec.reg_image_ids()}
            summary.update(export.model_stats(rec))
            summary.update(num_models=len(models), num_points_ply=n_ply,
                           unregistered_images=sorted(set(good) - registered))
            summary["left_out_images"] = left_out_images(out, rec, summary, config.min_inliers)
            title, stats = describe(rec, summary)
            with timed(timings, "preview"):
                render_preview(rec, out / "preview.png", title, "  \u00b7  ".join(stats))
            with timed(timings, "viewer"):
                write_viewer(rec, out / "viewer.html", title, stats, summary["left_out_images"])
            point("stage.export")
        summary.update(status="ok", peak_memory_mb=round(mem.peak, 1))
    except ReconstructionError as exc:
        summary["error"] = str(exc)
        raise
    finally:
        timings["total"] = time.perf_counter() - t_start
        try:
            (out / "summary.json").write_text(json.dumps(summary, indent=2))
        except OSError as exc:  # a full disk: report the write that failed first, not this one
            logger.warning("could not write summary.json: %s", exc)
        logger.removeHandler(handler)
        handler.close()
    logger.info("registered %d/%d images, %d points, reprojection error %.3f px in %.1f s",
                summary["num_registered"], len(names), summary["num_points3D"],
                summary["mean_reprojection_error"], timings["total"])
    return out / "summary.json"
