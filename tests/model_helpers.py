"""Synthetic COLMAP models built in code: exact geometry, any size, no pipeline run needed."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pycolmap
from PIL import Image


def look_at(center: np.ndarray, target: np.ndarray, up=(0.0, 0.0, 1.0)) -> pycolmap.Rigid3d:
    """cam_from_world of a camera at `center` looking at `target`, image up along world `up` (z up)."""
    z = target - center
    z = z / np.linalg.norm(z)
    x = np.cross(z, up)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    R = np.stack([x, y, z])  # rows: camera axes in world
    return pycolmap.Rigid3d(pycolmap.Rotation3d(R), -R @ center)


def synthetic_model(num_points: int = 2000, num_cams: int = 8, seed: int = 0, observations: bool = True,
                    layout: str = "arc", num_camera_models: int = 1, size=(320, 240)) -> pycolmap.Reconstruction:
    """Coloured points on a box-shaped 'building' (z up) seen by cameras on an arc in front of it
    (`arc`), or driving along a street between two facades (`forward`). With `observations`, every point
    visible in a camera is observed there at its exact projection (reprojection error 0)."""
    rng = np.random.default_rng(seed)
    w, h = size
    rec = pycolmap.Reconstruction()
    for cid in range(1, num_camera_models + 1):
        cam = pycolmap.Camera.create_from_model_name(cid, "SIMPLE_RADIAL", 1.0, w, h)
        cam.params = np.array([0.9 * w + 20 * cid, w / 2, h / 2, 0.04 * cid])
        rec.add_camera_with_trivial_rig(cam)
    if layout == "arc":
        # A facade (x, z) with depth relief, and ground points in front of it.
        n_f = num_points * 2 // 3
        facade = np.c_[rng.uniform(-4, 4, n_f), rng.uniform(0, 0.6, n_f), rng.uniform(0, 5, n_f)]
        facade[:, 1] += 0.8 * (np.abs(facade[:, 0]) < 1.5)  # a porch
        ground = np.c_[rng.uniform(-4, 4, num_points - n_f), rng.uniform(-6, 0, num_points - n_f),
                       np.zeros(num_points - n_f)]
        xyz = np.vstack([facade, ground])
        angles = np.linspace(-0.6, 0.6, num_cams)
        centers = np.c_[9 * np.sin(angles), -9 * np.cos(angles), np.full(num_cams, 1.6)]
        targets = np.tile([0.0, 0.0, 2.0], (num_cams, 1))
    else:
        # A street along +y: two facades at x = +-5, cameras driving along y looking ahead.
        n = num_points // 2
        left = np.c_[np.full(n, -5.0) + rng.normal(0, 0.1, n), rng.uniform(0, 60, n), rng.uniform(0, 8, n)]
        right = np.c_[np.full(num_points - n, 5.0) + rng.normal(0, 0.1, num_points - n),
                      rng.uniform(0, 60, num_points - n), rng.uniform(0, 8, num_points - n)]
        xyz = np.vstack([left, right])
        centers = np.c_[np.zeros(num_cams), np.linspace(0, 20, num_cams), np.full(num_cams, 1.5)]
        targets = centers + [0.0, 10.0, 0.0]
    colors = np.clip(np.c_[40 + 25 * xyz[:, 2], 120 + 10 * xyz[:, 0], 200 - 20 * xyz[:, 2]], 0, 255).astype(np.uint8)
    colors = np.clip(colors.astype(int) + rng.integers(-20, 20, colors.shape), 0, 255).astype(np.uint8)
    point_ids = [rec.add_point3D(p, pycolmap.Track(), c) for p, c in zip(xyz, colors)]
    for i in range(num_cams):
        pose = look_at(centers[i], targets[i])
        camera = rec.camera(1 + i % num_camera_models)
        points2D, observed = [], []
        if observations:
            cam_pts = xyz @ pose.rotation.matrix().T + pose.translation
            front = cam_pts[:, 2] > 0.1
            uv = np.full((len(xyz), 2), -1.0)
            uv[front] = camera.img_from_cam(cam_pts[front])
            inside = front & (uv[:, 0] >= 0) & (uv[:, 0] < w) & (uv[:, 1] >= 0) & (uv[:, 1] < h)
            for k in np.where(inside)[0]:
                points2D.append(pycolmap.Point2D(uv[k]))
                observed.append(k)
        image = pycolmap.Image(name=f"img_{i:03d}.jpg", points2D=points2D, camera_id=camera.camera_id,
                               image_id=i + 1)
        rec.add_image_with_trivial_frame(image, pose)
        for idx, k in enumerate(observed):
            rec.add_observation(point_ids[k], pycolmap.TrackElement(i + 1, idx))
    return rec


def write_images(rec: pycolmap.Reconstruction, image_dir: Path, seed: int = 0) -> Path:
    """A textured picture of each image's size (undistortion and copies need real files)."""
    rng = np.random.default_rng(seed)
    image_dir.mkdir(parents=True, exist_ok=True)
    for image in rec.images.values():
        cam = rec.camera(image.camera_id)
        tile = rng.integers(0, 255, (cam.height // 8 + 1, cam.width // 8 + 1, 3), dtype=np.uint8)
        pixels = np.kron(tile, np.ones((8, 8, 1), np.uint8))[: cam.height, : cam.width]
        Image.fromarray(pixels).save(image_dir / image.name, quality=92)
    return image_dir
