"""Training batches of corresponding patches for patch descriptors, from the same pair sources as LightGlue.

Every source (homographies of photos, synthetic depth + pose pairs, GIM video labels) yields cached pair records:
DoG (SIFT) keypoints of both images and their GT projections (`gimsfm.train.datasets`). A *patch record* adds the
patches: the keypoint pairs labelled MATCHED (mutual nearest within `pos_th` px of the projection) whose sizes
agree with the pair's median scale change (within `max_log_scale`), each patch cut at its own image's keypoint
(own position, size and orientation, so detector noise is in the data), stored as uint8 in one .npz per record
(written atomically, so `--prepare` workers and training share the cache safely).

A batch takes `pairs_per_record` patch pairs from each of several records (random records by source weight,
random subsets): hardest negatives then come from the same images, the distractors matching meets. Pairs of one
record whose keypoints lie within `exclude_px` of each other in either image are excluded as negatives (two
DoG keypoints on one blob, e.g. SIFT's several orientations at one location). Batch `it` is a pure function of
(seed, it): runs resume exactly.
"""
from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import torch

from ..errors import InputError
from ..features.patches import extract_patches
from . import labels as L
from .datasets import PairSource, cached_npz, weighted_sources


def matched_pairs(rec: dict[str, np.ndarray], pos_th: float, max_log_scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Indices (i0, i1) of the GT keypoint correspondences of a record that agree in scale."""
    gt0, _ = L.label_matches(rec["kpts0"], rec["kpts1"], rec["p01"], rec["vis01"], rec["p10"], rec["vis10"],
                             pos_th, pos_th + 2.0)
    i0 = np.nonzero(gt0 >= 0)[0]
    i1 = gt0[i0]
    if len(i0) == 0:
        return i0, i1
    ls = np.log(rec["scales1"][i1] / np.maximum(rec["scales0"][i0], 1e-6))
    keep = np.abs(ls - np.median(ls)) <= max_log_scale
    return i0[keep], i1[keep]


class PatchPairs:
    """Weighted mixture of pair sources turned into batches of corresponding patches."""

    def __init__(self, sources: list[PairSource], weights: list[float], seed: int, conf: dict[str, Any]):
        self.sources, self.weights = weighted_sources(sources, weights)
        self.seed = seed
        self.c = {"patch_size": 32, "mr_size": 3.0, "pos_th": 2.0, "max_log_scale": 0.5, "pairs_per_record": 32,
                  "exclude_px": 4.0, "min_pairs": 8, **conf}
        key = hashlib.md5(repr((self.c["patch_size"], self.c["mr_size"], self.c["pos_th"],
                                self.c["max_log_scale"])).encode()).hexdigest()[:8]
        self.tag = f"patches-{key}"

    def record(self, src: PairSource, idx: int) -> dict[str, np.ndarray]:
        """Patch record idx of `src` (computed and cached if missing)."""
        path = src.cache_dir / self.tag / f"{idx:06d}.npz"
        path.parent.mkdir(parents=True, exist_ok=True)
        return cached_npz(path, lambda: self._build(src, idx))

    def _build(self, src: PairSource, idx: int) -> dict[str, np.ndarray]:
        rec = src.get(idx)
        i0, i1 = matched_pairs(rec, float(self.c["pos_th"]), float(self.c["max_log_scale"]))
        ps, mr = int(self.c["patch_size"]), float(self.c["mr_size"])
        out = {"kpts0": rec["kpts0"][i0], "kpts1": rec["kpts1"][i1],
               "patches0": np.zeros((0, ps, ps), np.uint8), "patches1": np.zeros((0, ps, ps), np.uint8)}
        if len(i0):
            img0, img1 = src.images(idx)[:2]
            for side, img, ii in (("0", img0, i0), ("1", img1, i1)):
                p = extract_patches(img, rec["kpts" + side][ii], rec["scales" + side][ii], rec["oris" + side][ii],
                                    ps, mr)
                out["patches" + side] = (p[:, 0].numpy() * 255 + 0.5).clip(0, 255).astype(np.uint8)
        return out

    def batch(self, it: int, batch_size: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, 11, it])
        per = int(self.c["pairs_per_record"])
        p0, p1, k0, k1, rid = [], [], [], [], []
        tries = 0
        while sum(len(x) for x in p0) < batch_size:
            tries += 1
            if tries > 50 * (batch_size // per + 1):
                raise InputError("patch batches: the sources give (almost) no matched keypoints")
            s = int(rng.choice(len(self.sources), p=self.weights))
            src = self.sources[s]
            r = self.record(src, int(rng.integers(len(src))))
            n = len(r["patches0"])
            if n < int(self.c["min_pairs"]):
                continue
            take = min(per, n, batch_size - sum(len(x) for x in p0))
            sel = rng.choice(n, take, replace=False)
            swap = rng.random() < 0.5
            a, b = ("1", "0") if swap else ("0", "1")
            p0.append(r["patches" + a][sel]); p1.append(r["patches" + b][sel])
            k0.append(r["kpts" + a][sel]); k1.append(r["kpts" + b][sel])
            rid.append(np.full(take, len(rid)))
        return collate_patch_pairs(p0, p1, k0, k1, rid, float(self.c["exclude_px"]))


def collate_patch_pairs(p0, p1, k0, k1, rid, exclude_px: float) -> dict[str, torch.Tensor]:
    P0 = torch.from_numpy(np.concatenate(p0)).float().div_(255).unsqueeze(1)
    P1 = torch.from_numpy(np.concatenate(p1)).float().div_(255).unsqueeze(1)
    K0, K1 = torch.from_numpy(np.concatenate(k0)), torch.from_numpy(np.concatenate(k1))
    R = torch.from_numpy(np.concatenate(rid))
    same = R[:, None] == R[None]
    near = (torch.cdist(K0, K0) < exclude_px) | (torch.cdist(K1, K1) < exclude_px)
    return {"patches0": P0, "patches1": P1, "exclude": same & near}
