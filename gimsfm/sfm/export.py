"""Stage 6: the PLY point cloud and summary statistics (pictures: preview.py and viewer.py)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pycolmap

from ..utils.fault import point
from .scene_view import points_and_colors


def model_stats(rec: pycolmap.Reconstruction) -> dict:
    return {
        "num_registered": rec.num_reg_images(),
        "num_points3D": rec.num_points3D(),
        "mean_track_length": float(rec.compute_mean_track_length()) if rec.num_points3D() else 0.0,
        "mean_reprojection_error": float(rec.compute_mean_reprojection_error()) if rec.num_points3D() else 0.0,
        "mean_observations_per_image": float(rec.compute_mean_observations_per_reg_image()),
        "num_cameras": rec.num_cameras(),
    }


def export_ply(rec: pycolmap.Reconstruction, path: Path, remove_outliers: bool = True,
               nb_neighbors: int = 20, std_ratio: float = 2.0) -> tuple[Path, int]:
    """Coloured point cloud (open3d), optionally with statistical outlier removal; returns (path, points)."""
    import open3d as o3d

    xyz, rgb = points_and_colors(rec)
    cloud = _cloud(xyz, rgb)
    if remove_outliers and len(xyz) > nb_neighbors * 2:
        cloud, _ = cloud.remove_statistical_outlier(nb_neighbors=nb_neighbors, std_ratio=std_ratio)
    tmp = Path(path).with_name(Path(path).stem + ".tmp.ply")
    o3d.io.write_point_cloud(str(tmp), cloud, write_ascii=False)
    point("export.ply")
    tmp.replace(path)
    return Path(path), len(cloud.points)


def _cloud(xyz: np.ndarray, rgb: np.ndarray):
    import open3d as o3d

    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(xyz))
    cloud.colors = o3d.utility.Vector3dVector(rgb.astype(np.float64) / 255.0)
    return cloud


def write_ply(xyz: np.ndarray, rgb: np.ndarray, path: Path) -> Path:
    """Binary PLY of coloured points (x y z red green blue), every point kept."""
    import open3d as o3d

    if not o3d.io.write_point_cloud(str(path), _cloud(xyz, rgb), write_ascii=False):
        raise OSError(f"cannot write {path}")
    return Path(path)
