"""Named benchmark suites, so users type `--suite zeb-lite` instead of paths, and the data root."""
from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from ..utils.data import data_root  # noqa: F401  (public here too: the data root of the suites)

POSE_SUITES = ("zeb-lite-real", "zeb-lite-synth", "zeb-lite")
HOMOGRAPHY_SUITES = ("homography-lite",)


def _subfolders(path: Path, what: str) -> list[Path]:
    if not path.is_dir():
        raise InputError(f"{what} data not found at {path} (set GIMSFM_DATA to the shared data folder)")
    found = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not found:
        raise InputError(f"no {what} data sets in {path}")
    return found


def pose_suite(name: str) -> list[Path]:
    """ZEB-format dataset folders of a named pose suite."""
    if name == "zeb-lite-real":
        return [p for p in _subfolders(data_root() / "pose", "pose") if (p / "pairs.txt").is_file()]
    if name == "zeb-lite-synth":
        try:
            from ..synth.suites import ensure_zeb_lite_synth
        except ImportError:
            raise InputError("zeb-lite-synth needs gimsfm.synth") from None
        return [Path(p) for p in ensure_zeb_lite_synth()]
    if name == "zeb-lite":
        return pose_suite("zeb-lite-real") + pose_suite("zeb-lite-synth")
    raise InputError(f"unknown pose suite '{name}'; choose one of {', '.join(POSE_SUITES)}")


def homography_suite(name: str) -> list[Path]:
    """HPatches-layout sequence folders of a named homography suite."""
    if name == "homography-lite":
        return _subfolders(data_root() / "homography", "homography")
    raise InputError(f"unknown homography suite '{name}'; choose one of {', '.join(HOMOGRAPHY_SUITES)}")


def resolve_data(data: list[Path] | None, suite: str | None, kind: str, default_suite: str | None) -> list[Path]:
    """--data paths and/or --suite -> folders; falls back to `default_suite` when neither is given."""
    resolver = pose_suite if kind == "pose" else homography_suite
    paths: list[Path] = [Path(p) for p in (data or [])]
    if suite:
        paths += resolver(suite)
    if not paths:
        if default_suite is None:
            raise InputError("give --data DIR or --suite NAME")
        paths = resolver(default_suite)
    missing = [p for p in paths if not p.exists()]
    if missing:
        raise InputError(f"data not found: {missing[0]}")
    # Keep order, drop duplicates (a suite plus an explicit path to one of its sets).
    seen, out = set(), []
    for p in paths:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out
