"""`gimsfm bench indomain`: the ZEB pose metric on in-domain data.

- `--data DIR`: a ZEB-format folder holding a training domain's validation split (DIR/val is used when it
  exists, as written by `gimsfm synth pairs`).
- `--megadepth1500 ROOT`: LoFTR-style scene-info `.npz` files (default ROOT/scene_info/*.npz, image paths
  relative to ROOT).
- `--scannet1500 ROOT`: a SuperGlue-style pair list with GT (default ROOT/scannet_test_pairs_with_gt.txt,
  images relative to ROOT; K is rescaled when the stored images are smaller than the ones K describes).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from ..errors import InputError
from .common import resolve_matcher_names
from .datasets import (PoseDataset, load_megadepth_scene_info, load_pose_dataset, parse_pose_pairs,
                       scale_intrinsics_to_images)
from .zeb import PoseEvalConfig, run_pose_benchmark


def validation_split(path: Path) -> PoseDataset:
    """DIR/val when it is a ZEB-format folder, else DIR itself; named after DIR."""
    path = Path(path)
    val = path / "val"
    ds = load_pose_dataset(val if (val / "pairs.txt").is_file() else path)
    ds.name = f"{path.name}-val" if (val / "pairs.txt").is_file() else path.name
    return ds


def megadepth1500(root: Path, scene_info: Sequence[Path] = ()) -> PoseDataset:
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"MegaDepth-1500 root not found: {root}")
    files: list[Path] = []
    for p in (scene_info or [root / "scene_info"]):
        p = Path(p)
        files += sorted(p.glob("*.npz")) if p.is_dir() else ([p] if p.is_file() else [])
    if not files:
        looked = ", ".join(map(str, scene_info or [root / "scene_info"]))
        raise InputError(f"no LoFTR scene-info .npz files found (looked in {looked})")
    return load_megadepth_scene_info(files, root, "megadepth1500")


def scannet1500(root: Path, pairs_file: Path | None = None) -> PoseDataset:
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"ScanNet-1500 root not found: {root}")
    pairs_file = Path(pairs_file) if pairs_file else root / "scannet_test_pairs_with_gt.txt"
    ds = parse_pose_pairs(pairs_file, root, "scannet1500")
    missing = [n for n in ds.image_names if not (root / n).is_file()]
    if missing:
        raise InputError(f"scannet1500: {len(missing)} image(s) missing under {root}, e.g. {missing[0]}")
    return scale_intrinsics_to_images(ds)


def run_indomain(data: Sequence[Path], megadepth_root: Path | None, megadepth_scene_info: Sequence[Path],
                 scannet_root: Path | None, scannet_pairs: Path | None, matchers: Sequence[str] | None, out: Path,
                 cfg: PoseEvalConfig, add_baseline: bool = True, overwrite: bool = False,
                 cache: Path | None = None) -> dict[str, Any]:
    datasets = [validation_split(p) for p in data]
    if megadepth_root is not None:
        datasets.append(megadepth1500(megadepth_root, megadepth_scene_info))
    if scannet_root is not None:
        datasets.append(scannet1500(scannet_root, scannet_pairs))
    if not datasets:
        raise InputError("nothing to evaluate: give --data DIR, --megadepth1500 ROOT and/or --scannet1500 ROOT")
    names = resolve_matcher_names(matchers, add_baseline)
    return run_pose_benchmark(datasets, names, out, cfg, overwrite, title="In-domain relative pose",
                              benchmark="indomain", cache=cache)
