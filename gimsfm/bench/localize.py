"""Localization benchmark: split a GT scene into map and queries, build the map, localize, compare to GT."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pycolmap

from .. import logger
from ..errors import ReconstructionError
from ..geometry.evaluation import angle_error_mat
from ..utils.io import resolve_dir
from ..utils.profiling import PeakMemory
from .sfm import align_cameras, write_gt_intrinsics

# (metres, degrees) as in the Aachen Day-Night / InLoc benchmarks.
THRESHOLDS = ((0.25, 2.0), (0.5, 5.0), (5.0, 10.0))


def split_scene(scene: Path, query_every: int = 2) -> tuple[list[str], list[str]]:
    """Map/query names: the scene's own split files if present (map.txt / query.txt), else every other image."""
    if (scene / "map.txt").exists() and (scene / "query.txt").exists():
        read = lambda p: [ln.split()[0] for ln in p.read_text().splitlines() if ln.strip()]  # noqa: E731
        return read(scene / "map.txt"), read(scene / "query.txt")
    gt = pycolmap.Reconstruction(str(scene / "gt"))
    names = sorted(im.name for im in gt.images.values())
    queries = names[1::query_every]
    return [n for n in names if n not in queries], queries


def _link_images(src: Path, names: list[str], dst: Path) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for n in names:
        target = dst / n
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            os.symlink((src / n).resolve(), target)
    return dst


def _w2c(rigid: pycolmap.Rigid3d) -> np.ndarray:
    T = np.eye(4)
    T[:3] = rigid.matrix()
    return T


def evaluate_queries(map_rec: pycolmap.Reconstruction, gt: pycolmap.Reconstruction, poses: dict[str, np.ndarray],
                     queries: list[str]) -> dict[str, Any]:
    """Align the map to GT with its cameras, then position/rotation errors of each query in GT units."""
    gt_by_name = {im.name: _w2c(im.cam_from_world()) for im in gt.images.values()}
    centre = lambda T: -T[:3, :3].T @ T[:3, 3]  # noqa: E731
    map_names = [map_rec.image(i).name for i in map_rec.reg_image_ids() if map_rec.image(i).name in gt_by_name]
    out: dict[str, Any] = {"num_queries": len(queries), "num_localized": sum(q in poses for q in queries)}
    if len(map_names) < 3:
        out.update({f"within_{m}m_{d}deg": 0.0 for m, d in THRESHOLDS})
        out.update(median_position_error=float("inf"), median_rotation_error_deg=float("inf"))
        return out
    est = {n: _w2c(map_rec.find_image_with_name(n).cam_from_world()) for n in map_names}
    s, R, t = align_cameras(np.array([est[n][:3, :3] for n in map_names]),
                            np.array([centre(est[n]) for n in map_names]),
                            np.array([gt_by_name[n][:3, :3] for n in map_names]),
                            np.array([centre(gt_by_name[n]) for n in map_names]))
    pos_err, rot_err = [], []
    for q in queries:
        if q not in poses:
            pos_err.append(np.inf)
            rot_err.append(180.0)
            continue
        T = poses[q]
        pos_err.append(float(np.linalg.norm(s * R @ centre(T) + t - centre(gt_by_name[q]))))
        rot_err.append(angle_error_mat(T[:3, :3] @ R.T, gt_by_name[q][:3, :3]))
    pos_err, rot_err = np.array(pos_err), np.array(rot_err)
    for m, d in THRESHOLDS:
        out[f"within_{m}m_{d}deg"] = float(100.0 * np.mean((pos_err <= m) & (rot_err <= d)))
    out.update(median_position_error=float(np.median(pos_err)), median_rotation_error_deg=float(np.median(rot_err)),
               position_errors=pos_err.tolist(), rotation_errors_deg=rot_err.tolist())
    return out


def read_poses(path: Path) -> dict[str, np.ndarray]:
    """hloc poses as 4x4 cam_from_world matrices."""
    from ..sfm.scene_view import read_poses as read_rigid

    return {name: np.vstack([pose.matrix(), [0, 0, 0, 1]]) for name, pose in read_rigid(path).items()}


def bench_scene(scene: Path, matcher: str, out: Path, query_every: int = 2,
                config_overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    from ..localization.localize import localize
    from ..sfm.reconstruct import ReconstructConfig, reconstruct

    images = resolve_dir(scene / "images")
    gt = pycolmap.Reconstruction(str(scene / "gt"))
    map_names, query_names = split_scene(scene, query_every)
    map_dir = _link_images(images, map_names, out.parent / "map_images")
    query_dir = _link_images(images, query_names, out.parent / "query_images")
    t0 = time.perf_counter()
    with PeakMemory() as mem:
        # Known calibration for the map, as localization benchmarks do (Aachen, InLoc).
        map_intr = write_gt_intrinsics(gt, map_names, out / "map_intrinsics.txt")
        try:
            reconstruct(map_dir, out / "map", ReconstructConfig(matcher=matcher, intrinsics=str(map_intr.resolve()),
                                                                **(config_overrides or {})))
        except ReconstructionError as exc:
            logger.warning("%s / %s: the map failed (%s); all queries count as failures", scene.name, matcher, exc)
            result = evaluate_queries(pycolmap.Reconstruction(), gt, {}, query_names)
            result.update(map_images=len(map_names), map_s=time.perf_counter() - t0, localize_s=0.0,
                          sec_per_query=0.0, peak_memory_mb=mem.peak, error=f"map failed: {exc}")
            return result
        t_map = time.perf_counter() - t0
        intr = write_gt_intrinsics(gt, query_names, out / "query_intrinsics.txt")
        poses_path, _ = localize(out / "map", query_dir, out / "poses.txt", matcher, intr)
    t_loc = time.perf_counter() - t0 - t_map
    result = evaluate_queries(pycolmap.Reconstruction(str(out / "map" / "sparse")), gt, read_poses(poses_path),
                              query_names)
    result.update(map_images=len(map_names), map_s=t_map, localize_s=t_loc,
                  sec_per_query=t_loc / max(1, len(query_names)), peak_memory_mb=mem.peak)
    logger.info("%s / %s: %d/%d localized", scene.name, matcher, result["num_localized"], len(query_names))
    return result
