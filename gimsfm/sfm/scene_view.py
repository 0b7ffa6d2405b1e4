"""Geometry shared by the viewer (viewer.html) and the picture (preview.png): the cameras as drawable
frustums, the scene's up direction, an oblique viewpoint that frames the points, which points to draw, and
why images were left out of the model."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pycolmap

from ..errors import InputError


@dataclass
class DrawnCamera:
    name: str
    center: np.ndarray  # (3,) world
    world_from_cam: np.ndarray  # (3, 3) rotation
    corners_cam: np.ndarray  # (4, 3) image corners on the z=1 plane of the camera (undistorted rays)
    info: str = ""  # hover text beyond the name


def _corner_rays(camera: pycolmap.Camera) -> np.ndarray:
    w, h = camera.width, camera.height
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64)
    xy = np.asarray(camera.cam_from_img(corners), np.float64)
    if not np.isfinite(xy).all():  # a distortion model that cannot invert the corners: pinhole rays
        f = camera.mean_focal_length()
        xy = (corners - [camera.principal_point_x, camera.principal_point_y]) / f
    return np.hstack([xy, np.ones((4, 1))])


def drawn_camera(name: str, cam_from_world: pycolmap.Rigid3d, camera: pycolmap.Camera, info: str = "") -> DrawnCamera:
    world_from_cam = cam_from_world.inverse()
    return DrawnCamera(name, np.asarray(world_from_cam.translation, np.float64),
                       np.asarray(world_from_cam.rotation.matrix(), np.float64), _corner_rays(camera), info)


def model_cameras(rec: pycolmap.Reconstruction) -> list[DrawnCamera]:
    """Registered images of the model, sorted by name."""
    cams = []
    for image_id in rec.reg_image_ids():
        image = rec.image(image_id)
        camera = rec.camera(image.camera_id)
        info = (f"camera {image.camera_id} {camera.model_name} {camera.width}x{camera.height}, "
                f"f={camera.mean_focal_length():.0f} px, {image.num_points3D} points")
        cams.append(drawn_camera(image.name, image.cam_from_world(), camera, info))
    return sorted(cams, key=lambda c: c.name)


def frustum_vertices(cam: DrawnCamera, size: float) -> np.ndarray:
    """(5, 3): the centre and the four image corners at depth `size`, in world coordinates."""
    corners = cam.center + (cam.corners_cam * size) @ cam.world_from_cam.T
    return np.vstack([cam.center, corners])


# Vertex order that draws all 8 edges of a frustum as one polyline with two breaks (None / NaN rows).
FRUSTUM_PATH = [0, 1, 2, 0, 3, 4, 0, None, 1, 4, None, 2, 3, None]


def points_and_colors(rec: pycolmap.Reconstruction) -> tuple[np.ndarray, np.ndarray]:
    if rec.num_points3D() == 0:
        return np.zeros((0, 3)), np.zeros((0, 3), np.uint8)
    pts = rec.points3D.values()
    xyz = np.array([p.xyz for p in pts], np.float64)
    rgb = np.array([p.color for p in pts], np.uint8)
    return xyz, rgb


def subsample(n: int, cap: int, seed: int = 0) -> np.ndarray:
    """Indices of at most `cap` of n items: all of them, or a fixed random subset (sorted)."""
    if n <= cap:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, cap, replace=False))


def scene_up(cams: list[DrawnCamera], points: np.ndarray) -> np.ndarray:
    """Unit 'up' vector of the world: the mean of the cameras' up axes (-y), since people and vehicles hold
    cameras roughly upright; the points' thinnest axis when the cameras disagree (e.g. all-round captures)."""
    if cams:
        ups = np.array([-c.world_from_cam[:, 1] for c in cams])
        mean = ups.mean(0)
        if np.linalg.norm(mean) > 0.5:
            return mean / np.linalg.norm(mean)
    if len(points) >= 3:
        _, _, vt = np.linalg.svd(points - points.mean(0), full_matrices=False)
        up = vt[-1]
        if cams and np.mean([np.dot(-c.world_from_cam[:, 1], up) for c in cams]) < 0:
            up = -up
        return up
    return np.array([0.0, -1.0, 0.0])  # COLMAP's image y axis points down


def inlier_points(points: np.ndarray, keep: float = 0.95) -> np.ndarray:
    """Mask of the points within the `keep` quantile of distance from the median (drops far outliers)."""
    if len(points) < 20:
        return np.ones(len(points), bool)
    d = np.linalg.norm(points - np.median(points, 0), axis=1)
    return d <= np.quantile(d, keep)


def focus_points(points: np.ndarray, cams: list[DrawnCamera], reach: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """What an overview should frame: the inner 95 % of the points, and a mask of the cameras within `reach`
    times the cloud's radius (photos taken from far away would otherwise shrink the scene to a speck)."""
    pts = points[inlier_points(points)]
    centers = np.array([c.center for c in cams]).reshape(-1, 3)
    if len(pts) < 3:
        return pts, np.ones(len(cams), bool)
    mid = np.median(pts, 0)
    radius = float(np.quantile(np.linalg.norm(pts - mid, axis=1), 0.9)) or 1.0
    return pts, np.linalg.norm(centers - mid, axis=1) <= reach * radius


def frustum_size(cams: list[DrawnCamera], points: np.ndarray) -> float:
    """Frustum depth: a small fraction of the scene, and under the spacing of neighbouring cameras so a
    dense video trajectory stays readable."""
    pts = points[inlier_points(points)] if len(points) else np.zeros((0, 3))
    centers = np.array([c.center for c in cams]) if cams else np.zeros((0, 3))
    allp = np.vstack([pts, centers])
    if len(allp) < 2:
        return 1.0
    extent = float(np.linalg.norm(np.quantile(allp, 0.95, 0) - np.quantile(allp, 0.05, 0))) or 1.0
    size = 0.06 * extent
    if len(centers) >= 2:
        d = np.linalg.norm(centers[:, None] - centers[None], axis=2)
        np.fill_diagonal(d, np.inf)
        spacing = float(np.median(d.min(1)))
        if spacing > 0:
            size = min(size, max(spacing, 0.01 * extent))
    return size


def moves_forward(cams: list[DrawnCamera], horiz: np.ndarray, up: np.ndarray) -> bool:
    """True for a forward-moving sequence (driving, walking with a camera): the camera centres spread
    mostly along the direction the cameras look."""
    if len(cams) < 3:
        return False
    centers = np.array([c.center for c in cams])
    flat = centers - centers.mean(0)
    flat -= np.outer(flat @ up, up)
    _, s, vt = np.linalg.svd(flat, full_matrices=False)
    return bool(s[0] > 2 * s[1] and abs(np.dot(vt[0], horiz)) > 0.7)


def oblique_view(cams: list[DrawnCamera], points: np.ndarray, up: np.ndarray, elevation: float | None = None,
                 azimuth: float = 25.0) -> np.ndarray:
    """Unit viewing direction for an overview: from behind the cameras (looking where they look), turned
    `azimuth` degrees about up and tilted `elevation` down (default 32, or 50 for a forward-moving sequence,
    whose path then leads into the scene)."""
    horiz = np.zeros(3)
    if cams:
        dirs = np.array([c.world_from_cam[:, 2] for c in cams])
        horiz = dirs.mean(0)
        horiz -= np.dot(horiz, up) * up
    if np.linalg.norm(horiz) < 0.2:  # cameras look all around (an object capture): face the broad side
        flat = points - points.mean(0) if len(points) >= 3 else np.eye(3)
        flat = flat - np.outer(flat @ up, up)
        _, _, vt = np.linalg.svd(flat, full_matrices=False)
        horiz = vt[1] - np.dot(vt[1], up) * up
    horiz /= np.linalg.norm(horiz)
    if elevation is None:
        elevation = 50.0 if moves_forward(cams, horiz, up) else 32.0
    side = np.cross(up, horiz)
    a, e = np.radians(azimuth), np.radians(elevation)
    horiz = np.cos(a) * horiz + np.sin(a) * side
    return np.cos(e) * horiz - np.sin(e) * up


def read_poses(path: Path) -> dict[str, pycolmap.Rigid3d]:
    """hloc poses file (`name qw qx qy qz tx ty tz`, cam_from_world) as written by `gimsfm localize`."""
    poses = {}
    for i, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split()
        try:
            qw, qx, qy, qz, tx, ty, tz = map(float, parts[1:8])
        except ValueError:
            raise InputError(f"{path}:{i} is not `name qw qx qy qz tx ty tz`") from None
        if len(parts) != 8:
            raise InputError(f"{path}:{i} is not `name qw qx qy qz tx ty tz`")
        poses[parts[0]] = pycolmap.Rigid3d(pycolmap.Rotation3d(np.array([qx, qy, qz, qw])), np.array([tx, ty, tz]))
    return poses


def left_out_images(out_dir: Path | None, rec: pycolmap.Reconstruction, summary: dict | None,
                    min_inliers: int = 15) -> dict[str, str]:
    """Why each image of a `gimsfm reconstruct` run is not in the model (empty for a bare COLMAP model)."""
    summary = summary or {}
    reasons = {n: "unreadable or not an image" for n in summary.get("skipped_images", [])}
    registered = {rec.image(i).name for i in rec.reg_image_ids()}
    db_path = Path(out_dir) / "database.db" if out_dir else None
    if db_path and db_path.exists():
        from .database import verified_pairs

        with pycolmap.Database.open(db_path) as db:
            names = {im.image_id: im.name for im in db.read_all_images()}
        degree = {i: 0 for i in names}
        for a, b in verified_pairs(db_path, min_inliers):
            degree[a] += 1
            degree[b] += 1
        for image_id, name in names.items():
            if name in registered:
                continue
            reasons[name] = ("no image pair passed geometric verification" if degree[image_id] == 0 else
                             f"{degree[image_id]} verified pair(s), but the mapper could not register it in "
                             "the largest model")
    else:
        for name in summary.get("unregistered_images", []):
            reasons.setdefault(name, "not registered by the mapper")
    return dict(sorted(reasons.items()))


def load_summary(out_dir: Path) -> dict:
    path = Path(out_dir) / "summary.json"
    try:
        return json.loads(path.read_text()) if path.exists() else {}
    except json.JSONDecodeError:
        return {}


def describe(rec: pycolmap.Reconstruction, summary: dict | None, fallback_name: str = "model") -> tuple[str, list[str]]:
    """Title (the scene's folder name) and the facts a caption states: registered images, points,
    reprojection error, track length, matcher."""
    summary = summary or {}
    title = fallback_name
    if summary.get("image_dir"):
        image_dir = Path(summary["image_dir"])
        title = image_dir.parent.name if image_dir.name in ("images", "frames", "rgb") else image_dir.name
    total = summary.get("num_images", rec.num_images())
    has_points = rec.num_points3D() > 0
    stats = [f"{rec.num_reg_images()} / {total} images registered", f"{rec.num_points3D():,} points"]
    if has_points:
        stats += [f"reprojection error {rec.compute_mean_reprojection_error():.2f} px",
                  f"track length {rec.compute_mean_track_length():.2f}"]
    if summary.get("matcher"):
        stats.append(f"matcher {summary['matcher']}")
    return title, stats
