"""Data sources of a training preset by type: the one place that knows every source class (so the source
modules need not know each other)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import logger
from ..errors import InputError
from .datasets import VAL_TEXTURES, DepthPoseSource, HomographySource, PairSource, resolve_path
from .video_labels import VideoLabelSource


def build_source(spec: dict[str, Any], split: str, cache_dir: Path, seed: int, sift_conf: dict) -> PairSource | None:
    """One source of the preset (`type: homography | depth | video_labels`); None if an optional source is
    missing (or a video_labels split is empty, e.g. no held-out video in a one-video store)."""
    kind = spec.get("type")
    name = f"{spec.get('name', kind)}-{split}"
    n = int(spec.get(f"n_{split}", spec.get("n_pairs", 0)) or 0)
    if kind == "homography":
        return HomographySource(name, cache_dir, n, seed + (0 if split == "train" else 1000), sift_conf, split=split,
                                texture_dir=spec.get("texture_dir", "{data}/textures"),
                                val_textures=spec.get("val_textures", VAL_TEXTURES), warp=spec.get("warp"))
    if kind == "depth":
        root = spec.get(f"{split}_root") or spec.get("root")
        if not root or not (resolve_path(root) / "pairs.txt").is_file():
            if spec.get("optional", False):
                logger.warning("source %s (%s split) not available at %s: skipped", spec.get("name"), split, root)
                return None
            raise InputError(f"depth source {spec.get('name')}: no pairs.txt under {root}")
        return DepthPoseSource(name, cache_dir, n, seed, sift_conf, root, spec.get("rel_depth_th", 0.05))
    if kind == "video_labels":
        root = spec.get(f"{split}_root") or spec.get("root")  # `val_root`: a separate held-out store
        if not root or not resolve_path(root).is_dir():
            if spec.get("optional", False):
                logger.warning("source %s (%s split) not available at %s: skipped", spec.get("name"), split, root)
                return None
            raise InputError(f"video_labels source {spec.get('name')}: label store not found: {root}")
        src = VideoLabelSource(name, cache_dir, n, seed, sift_conf, root, split=split,
                               augment=spec.get("augment", True), n_aug=int(spec.get("n_aug", 8)),
                               label_radius=float(spec.get("label_radius", 2.5)),
                               val_fraction=float(spec.get("val_fraction", 0.1)), max_videos=spec.get("max_videos"),
                               variant=spec.get("variant"), min_gap=int(spec.get("min_gap", 0)),
                               all_videos=bool(spec.get(f"{split}_root")), cache=bool(spec.get("cache", True)))
        return src if len(src) else None
    raise InputError(f"unknown data source type '{kind}' (expected homography, depth or video_labels)")
