"""Reconstruction benchmark: register, align to GT cameras (similarity), camera and relative-pose errors."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pycolmap

from .. import logger
from ..errors import InputError, ReconstructionError
from ..geometry.evaluation import angle_error_mat, angle_error_vec
from ..utils.io import resolve_dir
from ..utils.profiling import PeakMemory
from .metrics import POSE_THRESHOLDS, auc_percent

if TYPE_CHECKING:
    from ..sfm.reconstruct import ReconstructConfig


def find_scenes(paths: list[Path]) -> list[Path]:
    """Scene folders (with images/ and gt/) among `paths` and their direct subfolders."""
    scenes = []
    for p in paths:
        p = Path(p)
        if not p.is_dir():
            raise InputError(f"benchmark data folder not found: {p}")
        if resolve_dir(p / "images").is_dir() and (p / "gt").is_dir():
            scenes.append(p)
            continue
        subs = [s for s in sorted(p.iterdir()) if resolve_dir(s / "images").is_dir()]
        found = [s for s in subs if (s / "gt").is_dir()]
        skipped = [s.name for s in subs if not (s / "gt").is_dir()]
        if skipped:
            logger.warning("skipping scenes without ground truth: %s", ", ".join(skipped))
        scenes += found
    if not scenes:
        raise InputError(f"no scene with images/ and gt/ in {', '.join(map(str, paths))}")
    return scenes


def umeyama(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Similarity (s, R, t) minimising |s R src + t - dst|^2 (Umeyama 1991)."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    xs, xd = src - mu_s, dst - mu_d
    cov = xd.T @ xs / len(src)
    U, S, Vt = np.linalg.svd(cov)
    D = np.eye(3)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        D[2, 2] = -1
    R = U @ D @ Vt
    var = (xs**2).sum() / len(src)
    s = float(np.trace(np.diag(S) @ D) / var) if var > 0 else 1.0
    return s, R, mu_d - s * R @ mu_s


def robust_similarity(src: np.ndarray, dst: np.ndarray, iters: int = 3) -> tuple[float, np.ndarray, np.ndarray]:
    """Umeyama re-fitted on the cameras within 3x the median residual (one bad camera cannot skew it)."""
    keep = np.ones(len(src), bool)
    for _ in range(iters):
        s, R, t = umeyama(src[keep], dst[keep])
        res = np.linalg.norm((s * (R @ src.T)).T + t - dst, axis=1)
        new = res <= max(3 * np.median(res), 1e-9)
        if new.sum() < 3 or (new == keep).all():
            break
        keep = new
    return s, R, t


def _w2c(image) -> np.ndarray:
    T = np.eye(4)
    T[:3] = image.cam_from_world().matrix()
    return T


def rotation_mean(rotations: np.ndarray) -> np.ndarray:
    """Chordal L2 mean of rotation matrices (N, 3, 3), projected back onto SO(3)."""
    U, _, Vt = np.linalg.svd(rotations.sum(0))
    D = np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt))])
    return U @ D @ Vt


def align_cameras(R_est: np.ndarray, c_est: np.ndarray, R_gt: np.ndarray, c_gt: np.ndarray,
                  iters: int = 3) -> tuple[float, np.ndarray, np.ndarray]:
    """Similarity (s, R, t) with X_gt = s R X_est + t from camera orientations AND centres.

    The rotation comes from the orientations (R_gt_i^T R_est_i for each camera), so it stays defined when
    the centres are collinear (a straight walk or drone flight), where centre-only alignment is degenerate;
    scale and translation then come from the centres. Cameras beyond 3x the median residual are dropped.
    """
    keep = np.ones(len(c_est), bool)
    for _ in range(iters):
        R = rotation_mean(np.einsum("nji,njk->nik", R_gt[keep], R_est[keep]))
        a = c_est[keep] @ R.T
        a0, b0 = a - a.mean(0), c_gt[keep] - c_gt[keep].mean(0)
        s = float((a0 * b0).sum() / max((a0**2).sum(), 1e-12))
        t = c_gt[keep].mean(0) - s * a.mean(0)
        res = np.linalg.norm(s * c_est @ R.T + t - c_gt, axis=1)
        new = res <= max(3 * np.median(res), 1e-9)
        if new.sum() < 3 or (new == keep).all():
            break
        keep = new
    return s, R, t


def evaluate_model(rec: pycolmap.Reconstruction | None, gt: pycolmap.Reconstruction) -> dict[str, Any]:
    """Registration, aligned camera errors, and AUC of relative-pose errors over all GT image pairs."""
    gt_images = {im.name: im for im in gt.images.values()}
    names = sorted(gt_images)
    est = {}
    if rec is not None:
        for i in rec.reg_image_ids():
            im = rec.image(i)
            if im.name in gt_images:
                est[im.name] = _w2c(im)
    gt_pose = {n: _w2c(gt_images[n]) for n in names}
    out: dict[str, Any] = {"num_gt_images": len(names), "num_registered": len(est),
                           "registration_rate": 100.0 * len(est) / max(1, len(names))}
    reg = [n for n in names if n in est]
    rot_err, pos_err = [], []
    if len(reg) >= 3:
        def centre(T):
            return -T[:3, :3].T @ T[:3, 3]

        c_est = np.array([centre(est[n]) for n in reg])
        c_gt = np.array([centre(gt_pose[n]) for n in reg])
        s, R, t = align_cameras(np.array([est[n][:3, :3] for n in reg]), c_est,
                                np.array([gt_pose[n][:3, :3] for n in reg]), c_gt)
        for n, ce, cg in zip(reg, c_est, c_gt):
            rot_err.append(angle_error_mat(est[n][:3, :3] @ R.T, gt_pose[n][:3, :3]))
            pos_err.append(float(np.linalg.norm(s * R @ ce + t - cg)))
    out["median_rotation_error_deg"] = float(np.median(rot_err)) if rot_err else float("nan")
    out["median_position_error"] = float(np.median(pos_err)) if pos_err else float("nan")
    out["max_rotation_error_deg"] = float(np.max(rot_err)) if rot_err else float("nan")
    # Relative poses need no alignment; an unregistered image fails all its pairs (error = inf).
    errors = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if a not in est or b not in est:
                errors.append(np.inf)
                continue
            rel_est = est[b] @ np.linalg.inv(est[a])
            rel_gt = gt_pose[b] @ np.linalg.inv(gt_pose[a])
            e_R = angle_error_mat(rel_est[:3, :3], rel_gt[:3, :3])
            e_t = angle_error_vec(rel_est[:3, 3], rel_gt[:3, 3])
            errors.append(max(e_R, 180.0 if np.isnan(e_t) else e_t))
    out.update(auc_percent(errors, POSE_THRESHOLDS))
    out["num_pairs"] = len(errors)
    return out


def write_gt_intrinsics(gt: pycolmap.Reconstruction, names: list[str], path: Path) -> Path:
    """The GT cameras of `names` as a `--intrinsics` file (hloc format: name MODEL W H params)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    by_name = {im.name: im for im in gt.images.values()}
    lines = []
    for n in names:
        cam = gt.camera(by_name[n].camera_id)
        lines.append(f"{n} {cam.model.name} {cam.width} {cam.height} " + " ".join(map(str, cam.params)) + "\n")
    path.write_text("".join(lines))
    return path


SEED_METRICS = ("num_registered", "registration_rate", "median_rotation_error_deg", "median_position_error",
                "max_rotation_error_deg", "auc@5", "auc@10", "auc@20")


def bench_scene(scene: Path, matcher: str, out: Path, config_overrides: dict[str, Any],
                overwrite: bool = False, known_intrinsics: bool = False, seeds: int = 1) -> dict[str, Any]:
    """Reconstruct one scene with one matcher (resumable) and evaluate it.

    known_intrinsics: the GT cameras are given and kept fixed, so the score measures matching and not also
    self-calibration (which is ill-posed for e.g. a straight flight over flat ground: every matcher lands on
    a different focal length there).
    seeds > 1: the same verified matches are mapped again with other seeds and each metric is the median
    over the seeds (per-seed AUC@5 in `seed_auc@5`): on weakly constrained scenes one mapping seed decides
    between a good and a bent model, which says nothing about the matcher.
    """
    from ..sfm.reconstruct import ReconstructConfig, reconstruct

    gt = pycolmap.Reconstruction(str(scene / "gt"))
    if known_intrinsics:
        # Beside OUT, not in it: reconstruct's OUT holds only its own artefacts.
        names = sorted(im.name for im in gt.images.values())
        path = write_gt_intrinsics(gt, names, out.parent / f"{out.name}.intrinsics.txt")
        config_overrides = {**config_overrides, "intrinsics": str(path.resolve())}
    config = ReconstructConfig(matcher=matcher, **config_overrides)
    t0 = time.perf_counter()
    rec, error = None, None
    with PeakMemory() as mem:
        try:
            reconstruct(resolve_dir(scene / "images"), out, config, overwrite=overwrite)
            rec = pycolmap.Reconstruction(str(out / "sparse"))
        except ReconstructionError as exc:  # a failed model scores 0; bad input or a stale OUT stops the run
            error = str(exc)
            logger.warning("%s / %s failed: %s", scene.name, matcher, error)
        result = evaluate_model(rec, gt)
        if seeds > 1 and (out / "database.db").exists():
            result = _median_over_seeds(result, scene, out, config, gt, seeds, refine=not known_intrinsics)
    result.update(wall_s=time.perf_counter() - t0, peak_memory_mb=mem.peak)
    if rec is not None:
        result.update(num_points3D=rec.num_points3D(),
                      mean_reprojection_error=float(rec.compute_mean_reprojection_error()))
    if error:
        result["error"] = error
    return result


def _median_over_seeds(first: dict[str, Any], scene: Path, out: Path, config: ReconstructConfig,
                       gt: pycolmap.Reconstruction, seeds: int, refine: bool) -> dict[str, Any]:
    """Map OUT's database with `seeds - 1` more seeds (spaced past each run's retries) and take medians."""
    import tempfile

    from ..sfm.mapping import run_mapping

    runs = [first]
    step = max(1, config.mapping_attempts)
    images = resolve_dir(scene / "images")
    for k in range(1, seeds):
        with tempfile.TemporaryDirectory() as tmp:
            try:
                models = run_mapping(out / "database.db", images, Path(tmp) / "models",
                                     config.mapper, config.seed + k * step, refine_intrinsics=refine,
                                     attempts=config.mapping_attempts, num_threads=config.mapping_threads)
                runs.append(evaluate_model(models[0], gt))
            except ReconstructionError:
                runs.append(evaluate_model(None, gt))
    result = dict(first)
    for key in SEED_METRICS:
        values = np.array([r[key] for r in runs], float)
        result[key] = float(np.nanmedian(values)) if np.isfinite(values).any() else float("nan")
    result["num_registered"] = int(round(result["num_registered"]))
    result["seeds"] = seeds
    result["seed_auc@5"] = [float(r["auc@5"]) for r in runs]
    return result


def compare_scenes(results: list[Path], a: str, b: str, metric: str = "auc@5") -> dict[str, Any]:
    """Per-scene `metric` of matcher A minus B, pooled over `bench sfm` output folders: the median over scenes
    (one bent model cannot swing it), the mean, and scenes won/lost. Folders must share one protocol."""
    scores: dict[str, dict[str, float]] = {a: {}, b: {}}
    protocols, seed_counts = set(), set()
    for folder in results:
        path = Path(folder) / "results.json"
        if not path.is_file():
            raise InputError(f"not a bench sfm output folder (no results.json): {folder}")
        res = json.loads(path.read_text())
        if "matchers" not in res:
            raise InputError(f"not a bench sfm results.json: {path}")
        protocols.add(bool(res.get("known_intrinsics", False)))
        seed_counts.add(int(res.get("seeds", 1)))
        for m in (a, b):
            for scene, r in res["matchers"].get(m, {}).get("scenes", {}).items():
                if scene in scores[m]:
                    raise InputError(f"scene {scene} appears twice for {m} (folders overlap)")
                if metric not in r:
                    raise InputError(f"no metric {metric!r} in {path} (e.g. auc@5, auc@10, auc@20, registration_rate)")
                scores[m][scene] = float(r[metric])
    if len(protocols) > 1:
        raise InputError("the folders mix self-calibrated and --known-intrinsics runs")
    if len(seed_counts) > 1:
        raise InputError(f"the folders mix runs over different numbers of mapping seeds ({sorted(seed_counts)})")
    common = sorted(set(scores[a]) & set(scores[b]))
    if not common:
        raise InputError(f"no scene has results for both {a} and {b}")
    diff = np.array([scores[a][s] - scores[b][s] for s in common])
    return {"a": a, "b": b, "metric": metric, "known_intrinsics": protocols.pop(), "seeds": seed_counts.pop(),
            "scenes": common,
            "a_scores": [scores[a][s] for s in common], "b_scores": [scores[b][s] for s in common],
            "median_diff": float(np.median(diff)), "mean_diff": float(diff.mean()),
            "wins": int((diff > 0).sum()), "losses": int((diff < 0).sum()),
            "only_a": sorted(set(scores[a]) - set(common)), "only_b": sorted(set(scores[b]) - set(common))}
