"""Ground-truth correspondence labels for keypoint matchers.

Two steps, so that cached pairs can be re-labelled cheaply after keypoint subsampling:

1. *Projection* (once per pair): every keypoint of image 0 is mapped into image 1 (and back) with a homography
   or with depth + pose, and gets a visibility code: VISIBLE (lands inside the other image and, with depth,
   passes the depth-consistency / occlusion check), HIDDEN (outside the other image or occluded) or UNKNOWN
   (no valid depth at the keypoint).
2. *Labelling* (per training sample): a keypoint pair is MATCHED when both are visible, mutual nearest
   neighbours in the symmetric reprojection distance, and that distance is < pos_th (about 3 px). A keypoint
   is UNMATCHED (-1) when it is hidden, or when every keypoint of the other image is farther than neg_th;
   IGNORE (-2) otherwise (in between, or unknown depth).

Pixel coordinates follow OpenCV (top-left pixel centre at (0, 0)) everywhere.
"""
from __future__ import annotations

import numpy as np

VISIBLE, HIDDEN, UNKNOWN = 1, 0, -1
UNMATCHED, IGNORE = -1, -2


def _inside(pts: np.ndarray, size_wh, margin: float = 0.0) -> np.ndarray:
    w, h = size_wh
    return ((pts[:, 0] >= -0.5 + margin) & (pts[:, 0] <= w - 0.5 - margin)
            & (pts[:, 1] >= -0.5 + margin) & (pts[:, 1] <= h - 0.5 - margin))


def warp_points_homography(pts: np.ndarray, H: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x' ~ H x. Returns (points (N, 2), in_front (N,) bool: positive homogeneous scale)."""
    pts = np.asarray(pts, np.float64).reshape(-1, 2)
    ph = np.concatenate([pts, np.ones((len(pts), 1))], 1) @ np.asarray(H, np.float64).T
    w = ph[:, 2]
    ok = w > 1e-8
    out = ph[:, :2] / np.where(ok, w, 1.0)[:, None]
    return out, ok


def project_homography(kpts0, kpts1, H_0to1, size0, size1):
    """Projections + visibility codes in both directions for a planar pair (x1 ~ H x0)."""
    H = np.asarray(H_0to1, np.float64)
    p01, ok01 = warp_points_homography(kpts0, H)
    p10, ok10 = warp_points_homography(kpts1, np.linalg.inv(H))
    vis01 = np.where(ok01 & _inside(p01, size1), VISIBLE, HIDDEN).astype(np.int8)
    vis10 = np.where(ok10 & _inside(p10, size0), VISIBLE, HIDDEN).astype(np.int8)
    return p01.astype(np.float32), vis01, p10.astype(np.float32), vis10


def sample_depth(depth: np.ndarray, pts: np.ndarray, max_rel_spread: float = 0.05) -> np.ndarray:
    """Depth at sub-pixel points: bilinear where the 4 neighbours are valid and agree (within max_rel_spread),
    else the nearest pixel's value; 0 where invalid or outside."""
    h, w = depth.shape
    pts = np.asarray(pts, np.float64).reshape(-1, 2)
    out = np.zeros(len(pts), np.float64)
    x, y = pts[:, 0], pts[:, 1]
    inside = (x >= -0.5) & (x <= w - 0.5) & (y >= -0.5) & (y <= h - 0.5)
    if not inside.any():
        return out.astype(np.float32)
    xi, yi = np.clip(x[inside], 0, w - 1), np.clip(y[inside], 0, h - 1)
    x0, y0 = np.floor(xi).astype(int), np.floor(yi).astype(int)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    ax, ay = xi - x0, yi - y0
    d00, d01, d10, d11 = depth[y0, x0], depth[y0, x1], depth[y1, x0], depth[y1, x1]
    quad = np.stack([d00, d01, d10, d11], 1).astype(np.float64)
    bil = (d00 * (1 - ax) * (1 - ay) + d01 * ax * (1 - ay) + d10 * (1 - ax) * ay + d11 * ax * ay)
    valid4 = (quad > 0).all(1)
    spread = (quad.max(1) - quad.min(1)) / np.maximum(quad.max(1), 1e-12)
    nearest = depth[np.clip(np.round(yi).astype(int), 0, h - 1), np.clip(np.round(xi).astype(int), 0, w - 1)]
    out[inside] = np.where(valid4 & (spread <= max_rel_spread), bil, nearest)
    return out.astype(np.float32)


def project_depth_one_way(kpts, depth_src, depth_dst, K_src, K_dst, T_src_to_dst, rel_depth_th: float = 0.05):
    """Projections of `kpts` into the other image and their visibility codes (VISIBLE / HIDDEN / UNKNOWN)."""
    kpts = np.asarray(kpts, np.float64).reshape(-1, 2)
    z = sample_depth(depth_src, kpts).astype(np.float64)
    has_depth = z > 0
    xy1 = np.concatenate([kpts, np.ones((len(kpts), 1))], 1)
    X = (xy1 @ np.linalg.inv(np.asarray(K_src, np.float64)).T) * z[:, None]
    T = np.asarray(T_src_to_dst, np.float64)
    Xd = X @ T[:3, :3].T + T[:3, 3]
    zd = Xd[:, 2]
    front = zd > 1e-6
    uv = Xd @ np.asarray(K_dst, np.float64).T
    p = uv[:, :2] / np.where(front, uv[:, 2], 1.0)[:, None]
    h, w = depth_dst.shape
    inside = front & _inside(p, (w, h))
    zd_obs = sample_depth(depth_dst, np.where(inside[:, None], p, -10.0))
    # Occlusion / depth consistency: the surface seen in the other view must be at the projected depth.
    consistent = inside & (zd_obs > 0) & (np.abs(zd_obs - zd) <= rel_depth_th * np.maximum(zd, 1e-6))
    vis = np.where(~has_depth, UNKNOWN, np.where(consistent, VISIBLE, HIDDEN))
    # Inside but no valid depth in the other view: we cannot tell -> unknown.
    vis = np.where(has_depth & inside & (zd_obs <= 0), UNKNOWN, vis)
    return p.astype(np.float32), vis.astype(np.int8)


def project_depth(kpts0, kpts1, depth0, depth1, K0, K1, T_0to1, rel_depth_th: float = 0.05):
    """Projections + visibility codes in both directions with depth maps, intrinsics and relative pose
    (X_cam1 = T_0to1 @ X_cam0)."""
    T = np.asarray(T_0to1, np.float64)
    p01, vis01 = project_depth_one_way(kpts0, depth0, depth1, K0, K1, T, rel_depth_th)
    p10, vis10 = project_depth_one_way(kpts1, depth1, depth0, K1, K0, np.linalg.inv(T), rel_depth_th)
    return p01, vis01, p10, vis10


def label_matches(kpts0, kpts1, p01, vis01, p10, vis10, pos_th: float = 3.0, neg_th: float = 5.0):
    """GT assignment from projections. Returns (gt0 (N0,), gt1 (N1,)) int64: index of the match in the
    other image, UNMATCHED (-1) or IGNORE (-2)."""
    kpts0 = np.asarray(kpts0, np.float32).reshape(-1, 2)
    kpts1 = np.asarray(kpts1, np.float32).reshape(-1, 2)
    n0, n1 = len(kpts0), len(kpts1)
    gt0 = np.full(n0, IGNORE, np.int64)
    gt1 = np.full(n1, IGNORE, np.int64)
    vis01, vis10 = np.asarray(vis01), np.asarray(vis10)
    gt0[vis01 == HIDDEN] = UNMATCHED
    gt1[vis10 == HIDDEN] = UNMATCHED
    if n0 == 0 or n1 == 0:
        gt0[vis01 == VISIBLE] = UNMATCHED
        gt1[vis10 == VISIBLE] = UNMATCHED
        return gt0, gt1
    inf = np.float32(np.inf)
    d01 = np.sqrt(((p01[:, None, :] - kpts1[None]) ** 2).sum(-1))  # (N0, N1) error in image 1
    d10 = np.sqrt(((kpts0[:, None, :] - p10[None]) ** 2).sum(-1))  # (N0, N1) error in image 0
    d01[vis01 != VISIBLE] = inf
    d10[:, vis10 != VISIBLE] = inf
    # Symmetric distance where both projections are known; one-sided where the other side is unknown depth.
    both = (vis01 == VISIBLE)[:, None] & (vis10 == VISIBLE)[None]
    dist = np.where(both, np.maximum(d01, d10), inf)
    nn01 = dist.argmin(1)
    nn10 = dist.argmin(0)
    mutual = nn10[nn01] == np.arange(n0)
    pos = mutual & (dist[np.arange(n0), nn01] < pos_th)
    idx0 = np.nonzero(pos)[0]
    gt0[idx0] = nn01[idx0]
    gt1[nn01[idx0]] = idx0
    # Unmatched: visible but far (one-sided distance, so a point whose partner lacks depth is not called
    # unmatched) from every keypoint of the other image.
    far0 = (vis01 == VISIBLE) & (d01.min(1) > neg_th) & ~pos
    d10_one = np.where((vis10 == VISIBLE)[None], d10, inf)
    far1 = (vis10 == VISIBLE) & (d10_one.min(0) > neg_th)
    far1[nn01[idx0]] = False
    gt0[far0] = UNMATCHED
    gt1[far1] = UNMATCHED
    return gt0, gt1
