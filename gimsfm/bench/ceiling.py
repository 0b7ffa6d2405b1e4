"""How far a matcher is from what its keypoints allow: match precision and pose-AUC ceilings on pose sets
with depth ground truth (ZEB layout + `depth/<stem>.npy`, e.g. zeb-lite-synth from `gimsfm synth pairs`).

Per matcher and data set, with the estimator and settings of `gimsfm bench zeb` (so `auc@5` equals its score):
- `precision`: share of the matches whose point in image 0, projected with depth + GT pose, lands within
  `pos_th` px of its partner (matches on moving objects or without depth are left out of the count);
- `correct`: correct matches per pair (median); `auc5_correct_only`: AUC@5 from the correct matches alone,
  i.e. the same matcher with a perfect outlier filter.
Per set of keypoints (each sparse feature configuration once):
- `gt`: ground-truth correspondences per pair (median; mutual nearest within `pos_th` after projection) and
  `pairs_lt8`, pairs with fewer than 8, where no matcher on these keypoints can estimate a pose;
- `auc5_all_gt`: AUC@5 from every GT correspondence, the ceiling of any matcher on these keypoints;
- `auc5_nn_gt`: AUC@5 from the GT correspondences whose partner is the descriptor's nearest neighbour, the
  ceiling of a perfect verifier of nearest-neighbour candidates.
Features and matches come from (and go to) the same cache as `bench zeb`, so a set already benchmarked costs
only the projections and the extra pose estimates.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np
from tqdm import tqdm

from .. import logger
from ..errors import InputError
from ..geometry import estimate_essential, pose_error
from ..train.labels import UNKNOWN, VISIBLE, label_matches, project_depth, project_depth_one_way
from ..utils.profiling import PeakMemory
from .common import build_matcher, cache_dir_for, resolve_matcher_names, unique_names
from .datasets import PoseDataset, PosePair, load_pose_dataset, select_evenly
from .matching import CachedPairMatcher
from .metrics import auc_percent
from .report import markdown_table, print_table, write_report
from .zeb import PoseEvalConfig


def check_depth_gt(root: Path, ds: PoseDataset) -> None:
    """Every image of the set needs `depth/<stem>.npy`; else a one-line error naming the first missing one."""
    if not (root / "depth").is_dir():
        raise InputError(f"{root} has no depth/ folder: the ceiling needs depth ground truth "
                         "(e.g. --suite zeb-lite-synth or a `gimsfm synth pairs` folder)")
    for name in ds.image_names:
        if not (root / "depth" / f"{Path(name).stem}.npy").is_file():
            raise InputError(f"{root}: no depth map for {name} (depth/{Path(name).stem}.npy)")


def load_depth_gt(root: Path, name: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Depth map (0 = invalid) and the moving-object mask (None when the image has none)."""
    stem = Path(name).stem
    try:
        depth = np.load(root / "depth" / f"{stem}.npy").astype(np.float32)
    except (OSError, ValueError) as exc:
        raise InputError(f"{root}: unreadable depth map depth/{stem}.npy ({exc})") from None
    dyn_path = root / "dynamic" / f"{stem}.png"
    dyn = cv2.imread(str(dyn_path), cv2.IMREAD_GRAYSCALE) if dyn_path.is_file() else None
    return depth, (None if dyn is None else dyn > 0)


def _on_mask(mask: np.ndarray | None, pts: np.ndarray) -> np.ndarray:
    if mask is None or len(pts) == 0:
        return np.zeros(len(pts), bool)
    h, w = mask.shape
    xi = np.clip(np.round(pts[:, 0]).astype(int), 0, w - 1)
    yi = np.clip(np.round(pts[:, 1]).astype(int), 0, h - 1)
    return mask[yi, xi]


def match_correctness(kpts0: np.ndarray, kpts1: np.ndarray, gt0: tuple, gt1: tuple, p: PosePair,
                      pos_th: float) -> tuple[np.ndarray, np.ndarray]:
    """(correct, known) per match: point 0 projected into image 1 within pos_th px of point 1; unknown where
    point 0 has no depth or either point lies on a moving object. gt0/gt1 = (depth, dynamic mask)."""
    p01, vis01 = project_depth_one_way(kpts0, gt0[0], gt1[0], p.K0, p.K1, p.T_0to1)
    moving = _on_mask(gt0[1], kpts0) | _on_mask(gt1[1], kpts1)
    known = (vis01 != UNKNOWN) & ~moving
    correct = known & (vis01 == VISIBLE) & (np.linalg.norm(p01 - kpts1, axis=1) < pos_th)
    return correct, known


def gt_correspondences(feats0: dict, feats1: dict, gt0: tuple, gt1: tuple, p: PosePair,
                       pos_th: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices (i0, i1) of the GT correspondences between two keypoint sets, and whether each partner is the
    descriptor nearest neighbour of its keypoint in image 0."""
    k0, k1 = feats0["keypoints"], feats1["keypoints"]
    p01, vis01, p10, vis10 = project_depth(k0, k1, gt0[0], gt1[0], p.K0, p.K1, p.T_0to1)
    vis01 = np.where(_on_mask(gt0[1], k0), UNKNOWN, vis01)
    vis10 = np.where(_on_mask(gt1[1], k1), UNKNOWN, vis10)
    m0, _ = label_matches(k0, k1, p01, vis01, p10, vis10, pos_th=pos_th, neg_th=pos_th)
    i0 = np.nonzero(m0 >= 0)[0]
    i1 = m0[i0]
    nn = np.zeros(len(i0), bool)
    if len(i0) and "descriptors" in feats0 and "descriptors" in feats1:
        d0 = np.asarray(feats0["descriptors"], np.float32)[i0]
        d1 = np.asarray(feats1["descriptors"], np.float32)
        dist = (d0 ** 2).sum(1)[:, None] - 2 * d0 @ d1.T + (d1 ** 2).sum(1)[None]
        nn = dist.argmin(1) == i1
    return i0, i1, nn


def features_name(path: Path | None) -> str | None:
    """The keypoint set a cached features file holds (its name without the extension)."""
    return None if path is None else path.stem.removeprefix("features-")


def _pose_err(k0: np.ndarray, k1: np.ndarray, p: PosePair, cfg: PoseEvalConfig) -> float:
    est = estimate_essential(k0, k1, p.K0, p.K1, cfg.thresh_px, cfg.estimator, cfg.confidence, cfg.max_iters,
                             cfg.seed)
    err_t, err_R = pose_error(p.T_0to1, est.R, est.t)
    return max(err_t, err_R)


def _auc5(errors: Sequence[float]) -> float:
    return round(auc_percent(errors, (5,))["auc@5"], 2)


def evaluate_set(ds: PoseDataset, dname: str, matchers: dict[str, Any], cache_root: Path, cfg: PoseEvalConfig,
                 pos_th: float, overwrite: bool, cleared: set[Path]) -> tuple[dict, dict, dict]:
    """One data set: (per-matcher summaries, per-keypoint-set summaries, per-pair records)."""
    root = Path(ds.root)
    pairs = select_evenly(ds.pairs, cfg.max_pairs)
    names = [(p.name0, p.name1) for p in pairs]
    cpms = {}
    for mname, matcher in matchers.items():
        cpm = CachedPairMatcher(matcher, root, cache_dir_for(cache_root, dname, root), cfg.max_side, overwrite,
                                cleared=cleared)
        cpm.prepare(names, desc=f"{dname} / {mname}")
        cpms[mname] = cpm
    # One keypoint ceiling per features file (matchers sharing a feature_key share it).
    feature_sets = {c.features_path: c for c in cpms.values() if c.features_path is not None}
    acc: dict[str, dict[str, list]] = {m: {"err": [], "err_correct": [], "n": [], "correct": [], "known": []}
                                       for m in cpms}
    kacc: dict[Path, dict[str, list]] = {f: {"err_all": [], "err_nn": [], "gt": []} for f in feature_sets}
    per_pair: dict[str, list] = {m: [] for m in cpms}
    gt_cache: dict[str, tuple] = {}
    for p in tqdm(pairs, desc=f"{dname}: ceiling", leave=False, disable=None):
        for name in (p.name0, p.name1):
            if name not in gt_cache:
                gt_cache[name] = load_depth_gt(root, name)
        g0, g1 = gt_cache[p.name0], gt_cache[p.name1]
        for mname, cpm in cpms.items():
            m = cpm.get(p.name0, p.name1)
            correct, known = match_correctness(m.kpts0, m.kpts1, g0, g1, p, pos_th)
            err = _pose_err(m.kpts0, m.kpts1, p, cfg)
            err_c = _pose_err(m.kpts0[correct], m.kpts1[correct], p, cfg)
            a = acc[mname]
            a["err"].append(err)
            a["err_correct"].append(err_c)
            a["n"].append(len(m))
            a["correct"].append(int(correct.sum()))
            a["known"].append(int(known.sum()))
            per_pair[mname].append({"name0": p.name0, "name1": p.name1, "matches": len(m),
                                    "correct": int(correct.sum()), "known": int(known.sum()), "err": err,
                                    "err_correct_only": err_c})
        for fpath in feature_sets:
            owner = feature_sets[fpath]  # its LRU already holds this pair's features
            f0, f1 = owner.features(p.name0), owner.features(p.name1)
            i0, i1, nn = gt_correspondences(f0, f1, g0, g1, p, pos_th)
            k0, k1 = f0["keypoints"], f1["keypoints"]
            kacc[fpath]["gt"].append(len(i0))
            kacc[fpath]["err_all"].append(_pose_err(k0[i0], k1[i1], p, cfg))
            kacc[fpath]["err_nn"].append(_pose_err(k0[i0[nn]], k1[i1[nn]], p, cfg))
        if len(gt_cache) > 64:
            gt_cache.clear()
    msum = {}
    for mname, a in acc.items():
        msum[mname] = {"auc@5": _auc5(a["err"]), "auc5_correct_only": _auc5(a["err_correct"]),
                       "precision": round(float(np.sum(a["correct"]) / max(np.sum(a["known"]), 1)), 4),
                       "matches": float(np.median(a["n"])) if a["n"] else 0.0,
                       "correct": float(np.median(a["correct"])) if a["correct"] else 0.0,
                       "pairs": len(pairs), "features": features_name(cpms[mname].features_path)}
    ksum = {}
    for fpath, k in kacc.items():
        ksum[features_name(fpath)] = {"gt": float(np.median(k["gt"])) if k["gt"] else 0.0,
                                     "pairs_lt8": int(sum(g < 8 for g in k["gt"])),
                                     "auc5_all_gt": _auc5(k["err_all"]), "auc5_nn_gt": _auc5(k["err_nn"])}
    return msum, ksum, per_pair


def run_ceiling(data: Sequence[Path], matchers: Sequence[str] | None, out: Path, cfg: PoseEvalConfig,
                pos_th: float = 3.0, add_baseline: bool = True, overwrite: bool = False, device: str = "auto",
                cache: Path | None = None) -> dict[str, Any]:
    """`gimsfm bench ceiling`: precision and pose ceilings of every matcher on depth-GT pose sets -> `out`."""
    names = resolve_matcher_names(matchers, add_baseline)
    datasets = [load_pose_dataset(p) for p in data]
    for ds in datasets:
        check_depth_gt(Path(ds.root), ds)  # every set before any matching
    out = Path(out)
    cache_root = Path(cache) if cache else out / "cache"
    dnames = unique_names([Path(d.root).parent / d.name for d in datasets])
    results: dict[str, Any] = {"benchmark": "ceiling", "config": {**asdict(cfg), "pos_th": pos_th},
                               "datasets": {}, "matchers": {n: {"datasets": {}} for n in names}, "keypoints": {}}
    per_pair: dict[str, Any] = {}
    t0 = time.perf_counter()
    cleared: set[Path] = set()
    with PeakMemory() as pm:
        built = {n: build_matcher(n, device, cfg.max_keypoints) for n in names}
        for ds, dname in zip(datasets, dnames):
            results["datasets"][dname] = {"path": str(ds.root), "pairs_total": len(ds.pairs)}
            msum, ksum, pp = evaluate_set(ds, dname, built, cache_root, cfg, pos_th, overwrite, cleared)
            for n, s in msum.items():
                results["matchers"][n]["datasets"][dname] = s
                per_pair.setdefault(n, {})[dname] = pp[n]
                logger.info("%s / %s: AUC@5 %.2f, precision %.3f, correct-only AUC@5 %.2f", n, dname, s["auc@5"],
                            s["precision"], s["auc5_correct_only"])
            for n, s in ksum.items():
                results["keypoints"].setdefault(n, {})[dname] = s
    for n, e in results["matchers"].items():
        d = e["datasets"].values()
        e["features"] = next(iter(d))["features"] if d else None
        e["mean"] = {k: round(float(np.mean([x[k] for x in d])), 4) for k in ("auc@5", "auc5_correct_only", "precision")}
    for n, e in results["keypoints"].items():
        results["keypoints"][n] = {"datasets": e, "mean": {k: round(float(np.mean([x[k] for x in e.values()])), 4)
                                                           for k in ("auc5_all_gt", "auc5_nn_gt")}}
    results["wall_sec"] = round(time.perf_counter() - t0, 2)
    results["peak_mb"] = round(pm.peak, 1)
    write_ceiling_report(out, results, per_pair)
    return results


def write_ceiling_report(out: Path, results: dict[str, Any], per_pair: dict[str, Any]) -> None:
    """results.json / results.md (per set, keypoint ceilings, summary) and per_pair.json under `out`."""
    header = ["matcher", "dataset", "pairs", "matches", "precision", "correct", "AUC@5", "AUC@5 correct only"]
    rows = []
    for n, e in results["matchers"].items():
        for d, s in e["datasets"].items():
            rows.append([n, d, s["pairs"], s["matches"], f"{s['precision']:.3f}", s["correct"], s["auc@5"],
                         s["auc5_correct_only"]])
        rows.append([n, "**mean**", "", "", f"{e['mean']['precision']:.3f}", "", e["mean"]["auc@5"],
                     e["mean"]["auc5_correct_only"]])
    kheader = ["keypoints", "dataset", "GT per pair (median)", "pairs < 8 GT", "AUC@5 all GT", "AUC@5 GT ∩ NN"]
    krows = []
    for n, e in results["keypoints"].items():
        for d, s in e["datasets"].items():
            krows.append([n, d, s["gt"], s["pairs_lt8"], s["auc5_all_gt"], s["auc5_nn_gt"]])
        krows.append([n, "**mean**", "", "", e["mean"]["auc5_all_gt"], e["mean"]["auc5_nn_gt"]])
    sheader = ["matcher", "mean AUC@5", "correct only", "all GT (ceiling)", "share of ceiling", "precision"]
    srows = []
    for n, e in results["matchers"].items():
        k = results["keypoints"].get(e["features"]) if e.get("features") else None
        ceil = k["mean"]["auc5_all_gt"] if k else None
        srows.append([n, e["mean"]["auc@5"], e["mean"]["auc5_correct_only"], ceil if ceil is not None else "-",
                      f"{100 * e['mean']['auc@5'] / ceil:.0f} %" if ceil else "-", f"{e['mean']['precision']:.3f}"])
    cfg = results["config"]
    note = (f"Matches are correct within {cfg['pos_th']} px of the depth + GT-pose projection. Estimator "
            f"{cfg['estimator']}, {cfg['thresh_px']} px, {cfg['max_iters']} iterations, seed {cfg['seed']} (as "
            f"`bench zeb`); keypoints per image: {(str(cfg['max_keypoints']) + ' for every sparse matcher') if cfg['max_keypoints'] else 'each matcher default'}. 'correct only': "
            "the matcher's correct matches alone (a perfect outlier filter); 'all GT': every GT correspondence "
            "of its keypoints (the ceiling of any matcher on them); 'GT ∩ NN': the GT correspondences that are "
            "descriptor nearest neighbours. "
            f"Wall {results['wall_sec']:.1f} s, peak memory {results['peak_mb']:.0f} MB.\n")
    extra = ("## Keypoint ceilings\n\n" + markdown_table(kheader, krows) + "\n## Summary\n\n"
             + markdown_table(sheader, srows) + "\n" + note)
    out.mkdir(parents=True, exist_ok=True)
    write_report(out, results, "Matcher precision and pose ceilings (depth GT)", header, rows, extra_md=extra)
    print_table("ceiling: summary", sheader, srows)
    (out / "per_pair.json").write_text(json.dumps(per_pair, indent=1, default=float))
    logger.info("ceiling: wall %.1f s, peak memory %.0f MB; results in %s", results["wall_sec"],
                results["peak_mb"], out / "results.json")
