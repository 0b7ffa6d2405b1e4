"""Label propagation (GIM step 5): chain A-B and B-C into A-C where the B points agree within 1 px,
doubling the frame interval each round while enough correspondences survive."""
from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from .filtering import dedup, fuse, magsac_fundamental_inliers

Labels = dict[tuple[int, int], tuple[np.ndarray, np.ndarray]]  # (sample a, sample b) -> (kpts_a, kpts_b)


def chain(ab: tuple[np.ndarray, np.ndarray], bc: tuple[np.ndarray, np.ndarray],
          tol_px: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """A-C correspondences through B points that agree within `tol_px` (nearest, each C used once)."""
    a, b = ab
    b2, c = bc
    if len(b) == 0 or len(b2) == 0:
        return np.zeros((0, 2), np.float32), np.zeros((0, 2), np.float32)
    dist, idx = cKDTree(b2).query(b, k=1, distance_upper_bound=tol_px)
    ok = np.isfinite(dist)
    a_sel, c_sel = a[ok], c[idx[ok]]
    keep = dedup(a_sel, c_sel)
    return a_sel[keep], c_sel[keep]


def propagate(direct: Labels, min_count: int = 1024, max_rounds: int = 8, tol_px: float = 1.0) -> Labels:
    """All labels after propagation: direct pairs plus chained pairs at doubled intervals.

    Round r chains pairs of interval d = 2^r (in sampling steps) into 2d; a chained pair is kept while it has
    at least `min_count` correspondences, merged with the direct labels of that pair when they exist.
    """
    labels: Labels = dict(direct)
    by_interval: dict[int, Labels] = {}
    for (a, b), v in direct.items():
        by_interval.setdefault(b - a, {})[(a, b)] = v
    d = 1
    for _ in range(max_rounds):
        current = {k: v for k, v in labels.items() if k[1] - k[0] == d}
        grown: Labels = {}
        for (a, b), ab in current.items():
            bc = current.get((b, b + d))
            if bc is None:
                continue
            ac = chain(ab, bc, tol_px)
            if (a, b + d) in direct:
                ac = fuse([direct[(a, b + d)], ac])
            if len(ac[0]) >= min_count:
                grown[(a, b + d)] = ac
        if not grown:
            break
        labels.update(grown)
        d *= 2
    return labels


def final_filter(labels: Labels, thresh_px: float = 1.0, min_labels: int = 64) -> Labels:
    """Final MAGSAC F at 1 px; pairs with fewer than `min_labels` inliers are dropped."""
    out: Labels = {}
    for key, (k0, k1) in labels.items():
        mask = magsac_fundamental_inliers(k0, k1, thresh_px)
        if mask.sum() >= min_labels:
            out[key] = (k0[mask], k1[mask])
    return out
