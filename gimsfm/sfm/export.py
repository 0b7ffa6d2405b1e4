"""Stage 6: what a person looks at: PLY point cloud, a preview picture, summary statistics."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pycolmap

from .. import logger
from ..utils.fault import point


def model_stats(rec: pycolmap.Reconstruction) -> dict:
    return {
        "num_registered": rec.num_reg_images(),
        "num_points3D": rec.num_points3D(),
        "mean_track_length": float(rec.compute_mean_track_length()) if rec.num_points3D() else 0.0,
        "mean_reprojection_error": float(rec.compute_mean_reprojection_error()) if rec.num_points3D() else 0.0,
        "mean_observations_per_image": float(rec.compute_mean_observations_per_reg_image()),
        "num_cameras": rec.num_cameras(),
    }


def points_and_colors(rec: pycolmap.Reconstruction) -> tuple[np.ndarray, np.ndarray]:
    pts = [(p.xyz, p.color) for p in rec.points3D.values()]
    if not pts:
        return np.zeros((0, 3)), np.zeros((0, 3), np.uint8)
    xyz = np.array([p[0] for p in pts], np.float64)
    rgb = np.array([p[1] for p in pts], np.uint8)
    return xyz, rgb


def export_ply(rec: pycolmap.Reconstruction, path: Path, remove_outliers: bool = True,
               nb_neighbors: int = 20, std_ratio: float = 2.0) -> tuple[Path, int]:
    """Coloured point cloud (open3d), optionally with statistical outlier removal; returns (path, points)."""
    import open3d as o3d

    xyz, rgb = points_and_colors(rec)
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(xyz))
    cloud.colors = o3d.utility.Vector3dVector(rgb.astype(np.float64) / 255.0)
    if remove_outliers and len(xyz) > nb_neighbors * 2:
        cloud, _ = cloud.remove_statistical_outlier(nb_neighbors=nb_neighbors, std_ratio=std_ratio)
    tmp = Path(path).with_name(Path(path).stem + ".tmp.ply")
    o3d.io.write_point_cloud(str(tmp), cloud, write_ascii=False)
    point("export.ply")
    tmp.replace(path)
    return Path(path), len(cloud.points)


def render_preview(rec: pycolmap.Reconstruction, path: Path, title: str = "") -> Path:
    """Two views of the points and camera centres: along the scene's thinnest axis, and from the side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xyz, rgb = points_and_colors(rec)
    centers = np.array([rec.image(i).projection_center() for i in rec.reg_image_ids()])
    dirs = np.array([rec.image(i).viewing_direction() for i in rec.reg_image_ids()])
    # Robust frame: centre and principal axes of the inner 90 % of points.
    if len(xyz) >= 10:
        d = np.linalg.norm(xyz - np.median(xyz, 0), axis=1)
        inner = xyz[d <= np.quantile(d, 0.9)]
    else:
        inner = np.concatenate([xyz, centers]) if len(xyz) else centers
    mean = inner.mean(0)
    _, _, vt = np.linalg.svd(inner - mean, full_matrices=False)
    if vt.shape[0] < 3:
        vt = np.eye(3)
    p = (xyz - mean) @ vt.T
    c = (centers - mean) @ vt.T
    v = dirs @ vt.T
    extent = np.quantile(np.abs(p), 0.95, axis=0) if len(p) else np.ones(3)
    scale = 0.08 * float(np.max(np.abs(np.concatenate([p, c])[:, :2]))) if len(p) else 1.0
    fig, axes = plt.subplots(1, 2, figsize=(12, 6))
    for ax, (i, j), name in zip(axes, [(0, 1), (0, 2)], ["top (along thinnest axis)", "side"]):
        ax.scatter(p[:, i], -p[:, j], s=2.0, c=rgb / 255.0 if len(rgb) else None, linewidths=0)
        ax.scatter(c[:, i], -c[:, j], s=18, c="red", marker="^", label="cameras")
        ax.quiver(c[:, i], -c[:, j], v[:, i] * scale, -v[:, j] * scale, color="red", angles="xy",
                  scale_units="xy", scale=1, width=0.003)
        lim_i = max(extent[i] * 1.6, np.abs(c[:, i]).max() * 1.1 if len(c) else 1)
        lim_j = max(extent[j] * 1.6, np.abs(c[:, j]).max() * 1.1 if len(c) else 1)
        ax.set_xlim(-lim_i, lim_i)
        ax.set_ylim(-lim_j, lim_j)
        ax.set_aspect("equal")
        ax.set_title(name)
        ax.legend(loc="upper right")
    fig.suptitle(title or f"{rec.num_reg_images()} cameras, {rec.num_points3D()} points")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    logger.info("preview written to %s", path)
    return Path(path)
