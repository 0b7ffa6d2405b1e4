"""Exact ground-truth geometry from rendered depth: back-projection, covisibility, dense correspondences."""
from __future__ import annotations

import numpy as np


def relative_pose(T0: np.ndarray, T1: np.ndarray) -> np.ndarray:
    """T_0to1 with X_cam1 = T_0to1 @ X_cam0, from two cam_from_world matrices."""
    return T1 @ np.linalg.inv(T0)


def backproject(depth: np.ndarray, K: np.ndarray, stride: int = 1, offset: int = 0):
    """Pixel coordinates (N, 2) and camera points (N, 3) of valid depth samples on a regular grid."""
    h, w = depth.shape
    v, u = np.mgrid[offset:h:stride, offset:w:stride]
    z = depth[v, u].astype(np.float64)
    ok = z > 0
    u, v, z = u[ok].astype(np.float64), v[ok].astype(np.float64), z[ok]
    Kinv = np.linalg.inv(K)
    rays = np.stack([u, v, np.ones_like(u)], -1) @ Kinv.T
    return np.stack([u, v], -1), rays * z[:, None]


def warp_points(pix0: np.ndarray, X0: np.ndarray, T_0to1: np.ndarray, K1: np.ndarray, depth1: np.ndarray,
                rel_tol: float = 0.02):
    """Project camera-0 points into image 1; returns (uv1 (N, 2), visible mask (N,)) where visible means
    inside image 1, in front of the camera and consistent with depth1 at the nearest pixel (not occluded)."""
    X1 = X0 @ T_0to1[:3, :3].T + T_0to1[:3, 3]
    z1 = X1[:, 2]
    front = z1 > 1e-6
    uv = (X1 @ K1.T)
    uv = uv[:, :2] / np.where(front, z1, 1.0)[:, None]
    h, w = depth1.shape
    ui, vi = np.rint(uv[:, 0]).astype(np.int64), np.rint(uv[:, 1]).astype(np.int64)
    inside = front & (ui >= 0) & (ui < w) & (vi >= 0) & (vi < h)
    vis = np.zeros(len(X0), bool)
    d1 = depth1[vi[inside], ui[inside]]
    vis[inside] = (d1 > 0) & (np.abs(d1 - z1[inside]) <= rel_tol * z1[inside])
    return uv, vis


def covisibility(depth0, K0, depth1, K1, T_0to1, stride: int = 8) -> float:
    """Fraction of image 0's valid-depth pixels (sampled on a grid) that are visible in image 1."""
    pix, X0 = backproject(depth0, K0, stride, stride // 2)
    if len(X0) == 0:
        return 0.0
    _, vis = warp_points(pix, X0, T_0to1, K1, depth1)
    return float(vis.mean())


def dense_correspondences(depth0, K0, depth1, K1, T_0to1, stride: int = 1, rel_tol: float = 0.01):
    """All (or grid-sampled) GT correspondences (pix0 (N, 2), pix1 (N, 2)) between two depth views."""
    pix, X0 = backproject(depth0, K0, stride)
    uv, vis = warp_points(pix, X0, T_0to1, K1, depth1, rel_tol)
    return pix[vis], uv[vis]
