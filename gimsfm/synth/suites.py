"""Named presets (pipelines/synth_*.yaml) and the zeb-lite-synth evaluation suite.

The built-in definitions below are the source of truth; the YAML files in ``pipelines/`` mirror them (a test
checks that they agree) and may be copied and edited for new presets (``--preset path/to/file.yaml``).
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from .. import logger
from ..errors import InputError
from ..utils.config import PRESETS_DIR
from .world import DOMAINS

SUITE_VERSION = 6

ZEB_LITE_SYNTH = {
    "name": "zeb-lite-synth",
    "kind": "pairs",
    "description": "Simulated half of a lite ZEB: one pose set per domain, ~100 pairs, overlap 10-50 %, fixed seeds.",
    "sets": [{"name": f"synth_{d}", "domains": [d], "pairs": 100, "seed": 9000 + i, "mode": "eval", "image_format": "jpg"}
             for i, d in enumerate(DOMAINS)],
}

BASE_INDOOR = {
    "name": "base-indoor",
    "kind": "pairs",
    "description": "Standard, domain-specific (indoor only) labelled pairs with depth for training base models.",
    # 10 chunks of 2000 pairs (each resumable on its own) + a validation set from separate worlds
    "sets": [{"name": f"base_indoor_{k:02d}", "domains": ["indoor"], "pairs": 2000, "seed": 1000 + k, "mode": "train",
              "image_format": "jpg"} for k in range(10)]
    + [{"name": "base_indoor_val", "domains": ["indoor"], "pairs": 400, "seed": 1999, "mode": "train", "image_format": "jpg"}],
}

VIDEO_CORPUS = {
    "name": "video-corpus",
    "kind": "video",
    "description": "Unlabelled internet-like videos from all domains (GT kept apart in gt.h5, never read by self-training).",
    "domains": list(DOMAINS),
    "videos_per_domain": 8,
    "seconds": 60.0,
    "fps": 30.0,
    "seed": 5000,
    "width": 640,
    "height": 480,
    "depth_every": 10,
}

LOCALIZE = {
    "name": "localize",
    "kind": "scene",
    "description": "Day-night / weather localization (like Aachen Day-Night): the same daytime map images per world, "
                   "queries by day, at dusk / at night / in fog (only their appearance differs).",
    # indoor first: its maps build reliably with SIFT. street walk (seed 7100: queries along the map): the map
    # registers but the straight, texture-repeating street can fold it, so its position errors are unreliable.
    "scenes": [{"name": f"indoor_{c}", "domain": "indoor", "seed": 0, "images": 30, "queries": 10,
                "width": 640, "height": 480, "query_condition": c} for c in ("day", "dusk", "night")]
    + [{"name": f"street_{c}", "domain": "street", "seed": 7100, "trajectory": "walk", "images": 30, "queries": 10,
        "width": 640, "height": 480, "query_condition": c} for c in ("day", "night", "fog")],
}

BUILTIN = {"zeb-lite-synth": ZEB_LITE_SYNTH, "base-indoor": BASE_INDOOR, "video-corpus": VIDEO_CORPUS, "localize": LOCALIZE}
PRESET_FILES = {"zeb-lite-synth": "synth_zeb_lite.yaml", "base-indoor": "synth_base_indoor.yaml",
                "video-corpus": "synth_video_corpus.yaml", "localize": "synth_localize.yaml"}


def pipelines_dir() -> Path:
    return PRESETS_DIR


def load_preset(name_or_path: str) -> dict:
    """A preset dict from a YAML path, a name with a YAML in pipelines/, or the built-in definition."""
    import yaml

    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml"):
        if not p.is_file():
            raise InputError(f"preset file not found: {p}")
        cfg = yaml.safe_load(p.read_text())
    else:
        key = name_or_path.replace("_", "-")
        if key not in BUILTIN:
            raise InputError(f"unknown preset {name_or_path!r}; choose from {', '.join(BUILTIN)} or a .yaml path")
        f = pipelines_dir() / PRESET_FILES[key]
        cfg = yaml.safe_load(f.read_text()) if f.is_file() else BUILTIN[key]
    if not isinstance(cfg, dict) or cfg.get("kind") not in ("pairs", "video", "scene"):
        raise InputError(f"malformed preset {name_or_path}: needs kind: pairs|video|scene")
    return cfg


def _stamp(spec: dict) -> dict:
    """What a finished set records: the generator version, its spec and the texture catalogue it used
    (a clone without ../shared/data/textures renders different, equally valid worlds)."""
    from .textures import get_catalog

    return {"suite_version": SUITE_VERSION, "spec": spec, "textures": get_catalog().fingerprint()}


def _set_complete(d: Path, spec: dict) -> bool:
    f = d / "suite.json"
    if not (d / "pairs.txt").is_file() or not f.is_file():
        return False
    try:
        return json.loads(f.read_text()) == _stamp(spec)
    except (OSError, ValueError):
        return False


def run_pairs_preset(cfg: dict, out: Path, overwrite: bool = False) -> list[Path]:
    """Generate every set of a pairs preset under out/<set name>; complete sets are kept (resumable)."""
    from .pairs import generate_pairs

    if cfg.get("kind") != "pairs":
        raise InputError(f"preset {cfg.get('name')} is not a pairs preset")
    out = Path(out)
    dirs = []
    for spec in cfg["sets"]:
        d = out / spec["name"]
        if not overwrite and _set_complete(d, spec):
            dirs.append(d)
            continue
        if d.exists():
            shutil.rmtree(d)
        logger.info("synth: generating %s (%d pairs, %s)", spec["name"], spec["pairs"], ",".join(spec["domains"]))
        generate_pairs(spec["domains"], int(spec["pairs"]), int(spec["seed"]), d, mode=spec.get("mode", "train"),
                       image_ext=spec.get("image_format", "png"), val_fraction=float(spec.get("val_fraction", 0.0)),
                       width=int(spec.get("width", 640)), height=int(spec.get("height", 480)), overwrite=True)
        (d / "suite.json").write_text(json.dumps(_stamp(spec)))
        dirs.append(d)
    return dirs


def run_video_preset(cfg: dict, out: Path, overwrite: bool = False) -> list[Path]:
    from .video import generate_video

    if cfg.get("kind") != "video":
        raise InputError(f"preset {cfg.get('name')} is not a video preset")
    out = Path(out)
    dirs = []
    for di, domain in enumerate(cfg["domains"]):
        for k in range(int(cfg["videos_per_domain"])):
            d = out / f"{domain}_{k:03d}"
            if (d / "gt.h5").is_file() and (d / "video.mp4").is_file() and not overwrite:
                dirs.append(d)
                continue
            generate_video(domain, float(cfg["seconds"]), float(cfg["fps"]), int(cfg["seed"]) + 1000 * di + k, d,
                           width=int(cfg.get("width", 640)), height=int(cfg.get("height", 480)),
                           depth_every=int(cfg.get("depth_every", 10)), overwrite=True)
            dirs.append(d)
    return dirs


def run_scene_preset(cfg: dict, out: Path, overwrite: bool = False) -> list[Path]:
    """Generate every scene of a scene preset under out/<scene name>; complete scenes are kept (resumable)."""
    from .scene import generate_scene

    if cfg.get("kind") != "scene":
        raise InputError(f"preset {cfg.get('name')} is not a scene preset (use the command for kind: {cfg.get('kind')})")
    out = Path(out)
    dirs = []
    for spec in cfg["scenes"]:
        d = out / spec["name"]
        f = d / "suite.json"
        if not overwrite and (d / "gt" / "images.txt").is_file() and f.is_file():
            try:
                if json.loads(f.read_text()) == _stamp(spec):
                    dirs.append(d)
                    continue
            except (OSError, ValueError):
                pass
        logger.info("synth: generating scene %s (%s, %s queries)", spec["name"], spec["domain"],
                    spec.get("query_condition", "day"))
        generate_scene(spec["domain"], d, seed=int(spec.get("seed", 0)), n_images=int(spec.get("images", 40)),
                       n_queries=int(spec.get("queries", 10)), width=int(spec.get("width", 640)),
                       height=int(spec.get("height", 480)), image_ext=spec.get("image_format", "png"),
                       query_condition=spec.get("query_condition", "day"), trajectory=spec.get("trajectory"),
                       overwrite=True)
        f.write_text(json.dumps(_stamp(spec)))
        dirs.append(d)
    return dirs


def default_cache_dir() -> Path:
    env = os.environ.get("GIMSFM_CACHE")
    if env:
        return Path(env) / "zeb-lite-synth"
    return Path.home() / ".cache" / "gimsfm" / "zeb-lite-synth"


def ensure_zeb_lite_synth(cache_dir: Path | None = None) -> list[Path]:
    """The zeb-lite-synth pose sets (one folder per domain, ~100 pairs each, fixed seeds), generating any
    that are missing or stale. Returns the dataset folders in DOMAINS order."""
    import fcntl

    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(cache_dir / ".lock", "w") as lock:  # concurrent callers wait instead of writing the same sets
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return run_pairs_preset(ZEB_LITE_SYNTH, cache_dir)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
