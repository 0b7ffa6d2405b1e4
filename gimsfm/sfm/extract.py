"""Stage 1: local features for every image into an hloc-format features.h5 (resumable)."""
from __future__ import annotations

from pathlib import Path

from ..utils.progress import tqdm

from .. import logger
from ..errors import InputError
from ..matchers.base import Matcher
from ..utils.fault import point
from ..utils.h5io import list_h5_names, open_h5, write_features
from ..utils.io import read_image


def extract_features(image_dir: Path, names: list[str], features_path: Path, matcher: Matcher,
                     overwrite: bool = False) -> tuple[Path, list[str]]:
    """Extract features of `names` into `features_path`; returns (path, names that failed to read).

    Already extracted images are skipped unless `overwrite`; a file written with other feature settings
    is refused rather than mixed.
    """
    features_path = Path(features_path)
    if overwrite and features_path.exists():
        features_path.unlink()
    if features_path.exists():
        with open_h5(features_path) as f:
            key = f.attrs.get("feature_key")
        if key is not None and key != matcher.feature_key:
            raise InputError(f"{features_path} holds features '{key}', not '{matcher.feature_key}': "
                             "use --overwrite or another --out")
    done = list_h5_names(features_path)
    todo = [n for n in names if n not in done]
    failed: list[str] = []
    if not todo:
        logger.info("features: all %d images already extracted", len(names))
        return features_path, failed
    for name in tqdm(todo, desc="features", unit="img"):
        try:
            image = read_image(image_dir / name)
        except InputError as exc:
            logger.warning("skipping unreadable image: %s", exc)
            failed.append(name)
            continue
        feats = matcher.extract(image)
        write_features(features_path, name, feats, attrs={"feature_key": matcher.feature_key})
        point("features.image")
    logger.info("features: %d extracted, %d unreadable", len(todo) - len(failed), len(failed))
    return features_path, failed
