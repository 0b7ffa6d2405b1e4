"""Descriptor benchmark at DoG keypoints: how well descriptors alone separate true correspondences.

On HPatches-layout homography pairs, every matcher describes the same DoG keypoints (OpenCV SIFT's detector at
one keypoint budget), so the numbers isolate the descriptor. Ground truth: keypoint pairs whose projections
through H are mutual nearest within `pos_px`. Per pair:
- mAP (HPatches "matching" task): every keypoint of image 0 with a GT partner queries its nearest descriptor
  in image 1; queries are ranked by descriptor distance and the average precision of correct retrievals
  (precision at each correct one, over all GT pairs) is reported;
- MMA@3px: fraction of mutual-nearest-neighbour matches (no ratio) within 3 px of the GT projection;
- recall: correct mutual-NN matches / GT pairs.
Means over pairs (and per set) are written with the time each matcher spent describing.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from tqdm import tqdm

from .. import logger
from ..utils.io import read_image
from ..utils.profiling import PeakMemory
from .common import build_matcher, resolve_matcher_names
from .datasets import load_homography_dataset
from .report import print_table, write_report


def gt_pairs(k0: np.ndarray, k1: np.ndarray, H: np.ndarray, size1, pos_px: float) -> tuple[np.ndarray, np.ndarray]:
    """(i0, i1) keypoint pairs that are mutual nearest within pos_px after projecting k0 with H."""
    p = np.c_[k0, np.ones(len(k0))] @ H.T
    p = p[:, :2] / p[:, 2:3]
    w, h = size1
    inside = (p[:, 0] > -0.5) & (p[:, 1] > -0.5) & (p[:, 0] < w - 0.5) & (p[:, 1] < h - 0.5)
    if not len(k0) or not len(k1):
        return np.zeros(0, int), np.zeros(0, int)
    d = torch.cdist(torch.from_numpy(p).float(), torch.from_numpy(k1).float())
    nn01 = d.argmin(1).numpy()
    nn10 = d.argmin(0).numpy()
    ok = inside & (nn10[nn01] == np.arange(len(k0))) & (d.min(1).values.numpy() < pos_px)
    i0 = np.nonzero(ok)[0]
    return i0, nn01[i0]


def pair_scores(d0: np.ndarray, d1: np.ndarray, k0: np.ndarray, k1: np.ndarray, H: np.ndarray,
                i0: np.ndarray, i1: np.ndarray, mma_px: float = 3.0) -> dict[str, float]:
    if len(i0) == 0:
        return {"map": 0.0, "mma": 0.0, "recall": 0.0, "gt": 0}
    dist = torch.cdist(torch.from_numpy(d0).float(), torch.from_numpy(d1).float())
    nn01 = dist.argmin(1).numpy()
    nn10 = dist.argmin(0).numpy()
    # mAP: GT queries ranked by their nearest-neighbour distance
    qd = dist[torch.from_numpy(i0), torch.from_numpy(nn01[i0])].numpy()
    correct = (nn01[i0] == i1)[np.argsort(qd, kind="stable")]
    hits = np.cumsum(correct)
    ap = float((hits[correct] / (np.nonzero(correct)[0] + 1)).sum() / len(i0))
    mutual = np.nonzero(nn10[nn01] == np.arange(len(d0)))[0]
    p = np.c_[k0[mutual], np.ones(len(mutual))] @ H.T
    err = np.linalg.norm(p[:, :2] / p[:, 2:3] - k1[nn01[mutual]], axis=1)
    gt_of = dict(zip(i0.tolist(), i1.tolist()))
    rec = sum(1 for m in mutual if gt_of.get(int(m)) == nn01[m]) / len(i0)
    return {"map": ap, "mma": float((err < mma_px).mean()) if len(mutual) else 0.0, "recall": float(rec),
            "gt": int(len(i0))}


def run_patch_benchmark(paths: Sequence[Path], matchers: Sequence[str] | None, out: Path,
                        max_keypoints: int = 2048, pos_px: float = 3.0, device: str = "auto",
                        add_baseline: bool = True) -> dict[str, Any]:
    names = resolve_matcher_names(matchers, add_baseline)
    sets = [load_homography_dataset(p) for p in paths]
    rows_all: dict[str, list[dict]] = {n: [] for n in names}
    t_desc = {n: 0.0 for n in names}
    n_kpts = {n: 0 for n in names}
    t0 = time.time()
    with PeakMemory() as mem:
        built = {n: build_matcher(n, device, max_keypoints) for n in names}
        for ds in sets:
            for pr in tqdm(ds.pairs, desc=ds.name, leave=False, disable=None):
                im0 = read_image(ds.root / pr.name0)
                im1 = read_image(ds.root / pr.name1)
                feats = {}
                for n, m in built.items():
                    t = time.perf_counter()
                    feats[n] = (m.extract(im0), m.extract(im1))
                    t_desc[n] += time.perf_counter() - t
                    n_kpts[n] += len(feats[n][0]["keypoints"]) + len(feats[n][1]["keypoints"])
                for n, (f0, f1) in feats.items():
                    i0, i1 = gt_pairs(f0["keypoints"], f1["keypoints"], pr.H_0to1, f1["image_size"], pos_px)
                    s = pair_scores(f0["descriptors"], f1["descriptors"], f0["keypoints"], f1["keypoints"],
                                    pr.H_0to1, i0, i1)
                    rows_all[n].append({"set": ds.name, "pair": f"{pr.name0}-{pr.name1}", **s})
    summary = {}
    for n, rows in rows_all.items():
        summary[n] = {k: round(float(np.mean([r[k] for r in rows])), 4) for k in ("map", "mma", "recall")}
        summary[n]["gt_pairs_mean"] = round(float(np.mean([r["gt"] for r in rows])), 1)
        summary[n]["ms_per_image"] = round(1000 * t_desc[n] / max(1, 2 * len(rows)), 1)
        summary[n]["ms_per_1000_kpts"] = round(1000 * t_desc[n] / max(1, n_kpts[n]) * 1000, 1)
    results = {"benchmark": "patches", "config": {"max_keypoints": max_keypoints, "pos_px": pos_px,
               "sets": [str(p) for p in paths]}, "summary": summary, "per_pair": rows_all,
               "wall_sec": time.time() - t0, "peak_mb": round(mem.peak, 1)}
    header = ["matcher", "mAP", "MMA@3px", "recall", "GT pairs/pair", "ms/image", "ms/1000 kpts"]
    rows = [[n, f"{s['map']:.3f}", f"{s['mma']:.3f}", f"{s['recall']:.3f}", f"{s['gt_pairs_mean']:.0f}",
             f"{s['ms_per_image']:.0f}", f"{s['ms_per_1000_kpts']:.0f}"] for n, s in summary.items()]
    note = (f"\nDoG keypoints ({max_keypoints} per image, the same for every matcher), GT: mutual nearest within "
            f"{pos_px} px through H. ms/image: detection + description. Wall {results['wall_sec']:.1f} s, peak "
            f"memory {results['peak_mb']:.0f} MB.\n")
    write_report(Path(out), results, "Descriptors at DoG keypoints", header, rows, extra_md=note)
    print_table("Descriptors at DoG keypoints", header, rows)
    logger.info("patch benchmark: wall %.1f s, peak memory %.0f MB; %s", results["wall_sec"], results["peak_mb"],
                Path(out) / "results.json")
    return results
