"""hloc-compatible HDF5 features/matches and pair lists.

features.h5: one group per image name (slashes nest groups) with `keypoints` (N, 2) in OpenCV pixel
coordinates, `descriptors` (D, N) (transposed, as hloc), `scores` (N,), `image_size` (W, H), plus
`scales`/`oris` for SIFT. matches.h5: one group per pair `names_to_pair(a, b)` with `matches0` (N0,)
int (-1 = unmatched) and `matching_scores0` (N0,).
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np

from ..errors import InputError, RunLockedError, write_failure
from .fault import point


def names_to_pair(name0: str, name1: str, separator: str = "/") -> str:
    return separator.join((name0.replace("/", "-"), name1.replace("/", "-")))


def open_h5(path: Path, mode: str = "r") -> h5py.File:
    """Open an HDF5 file; a file left broken by an interrupted run raises InputError with a hint.

    A file another process holds open (HDF5's own lock) or a write that fails (disk full, read-only) is
    no broken file: those raise RunLockedError / OutputWriteError, so nobody is told to delete good work.
    """
    try:
        return h5py.File(str(path), mode, libver="latest")
    except OSError as exc:
        if "unable to lock file" in str(exc):
            raise RunLockedError(f"another process has {path} open (HDF5 file lock); wait for it to finish "
                                 "or stop it, or use another output folder") from None
        if (failed := write_failure(exc, path)) is not None:
            raise failed from None
        raise InputError(f"{path} is not a readable HDF5 file ({str(exc).splitlines()[0][:80]}); "
                         "it may be left from an interrupted run: use --overwrite") from None


@contextmanager
def _writing(path: Path, group: str) -> Iterator[h5py.File]:
    """open_h5(path, "a") to write `group`, a failed write (disk full, file-size limit) reported against this
    file; the half-written group is removed, else a rerun would take it for a finished one."""
    try:
        with open_h5(path, "a") as f:
            try:
                yield f
            except BaseException:
                try:
                    if group in f:
                        del f[group]
                except Exception:  # noqa: BLE001 - the original error is the one to report
                    pass
                raise
    except (OSError, RuntimeError) as exc:
        if (failed := write_failure(exc, path)) is not None:
            raise failed from None
        raise


def list_h5_names(path: Path) -> set[str]:
    """Names of all groups that hold a dataset (image names or pair names)."""
    names: set[str] = set()
    if not Path(path).exists():
        return names
    with open_h5(path) as f:
        f.visititems(lambda name, obj: names.add(name.rsplit("/", 1)[0]) if isinstance(obj, h5py.Dataset) else None)
    return names


def write_features(path: Path, name: str, feats: dict[str, np.ndarray], attrs: dict | None = None) -> None:
    with _writing(path, name) as f:
        if name in f:
            del f[name]
        grp = f.create_group(name)
        for key, value in feats.items():
            value = np.asarray(value)
            if key == "descriptors":
                value = value.T  # hloc stores (D, N)
                value = value.astype(np.float16) if value.dtype == np.float64 else value
            grp.create_dataset(key, data=value)
            point("features.write")  # killed with the file open, half a group written
        for k, v in (attrs or {}).items():
            f.attrs[k] = v


def read_features(path: Path, name: str) -> dict[str, np.ndarray]:
    with open_h5(path) as f:
        if name not in f:
            raise InputError(f"no features for image '{name}' in {path}")
        grp = f[name]
        feats = {k: grp[k][()] for k in grp.keys()}
    if "descriptors" in feats:
        feats["descriptors"] = feats["descriptors"].T.astype(np.float32)
    return feats


def write_matches(path: Path, name0: str, name1: str, matches0: np.ndarray, scores0: np.ndarray,
                  attrs: dict | None = None) -> None:
    pair = names_to_pair(name0, name1)
    with _writing(path, pair) as f:
        if pair in f:
            del f[pair]
        grp = f.create_group(pair)
        grp.create_dataset("matches0", data=matches0.astype(np.int32))
        point("matches.write")
        grp.create_dataset("matching_scores0", data=scores0.astype(np.float16))
        grp.attrs.update(attrs or {})


def _find_pair(f: h5py.File, path: Path, name0: str, name1: str) -> tuple[str, bool]:
    """(group name, stored as (name1, name0)) of a pair in a matches file."""
    for pair, reverse in ((names_to_pair(name0, name1), False), (names_to_pair(name1, name0), True)):
        if pair in f:
            return pair, reverse
    raise InputError(f"no matches for pair ({name0}, {name1}) in {path}")


def read_matches(path: Path, name0: str, name1: str) -> tuple[np.ndarray, np.ndarray]:
    """(M, 2) index pairs and (M,) scores, whichever order the pair was stored in."""
    with open_h5(path) as f:
        pair, reverse = _find_pair(f, path, name0, name1)
        m0 = f[pair]["matches0"][()]
        s0 = f[pair]["matching_scores0"][()].astype(np.float32)
    idx = np.where(m0 != -1)[0]
    matches = np.stack([idx, m0[idx]], -1).astype(np.int64)
    if reverse:
        matches = matches[:, ::-1].copy()
    return matches, s0[idx]


def write_pairs(path: Path, pairs: list[tuple[str, str]]) -> Path:
    path = Path(path)
    path.write_text("".join(f"{a} {b}\n" for a, b in pairs))
    return path


def read_pairs(path: Path) -> list[tuple[str, str]]:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"pairs file not found: {path}")
    pairs = []
    for i, line in enumerate(path.read_text().splitlines()):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) < 2:
            raise InputError(f"{path}:{i + 1}: expected 'name0 name1'")
        pairs.append((parts[0], parts[1]))
    return pairs


def write_dense_matches(path: Path, name0: str, name1: str, kpts0: np.ndarray, kpts1: np.ndarray,
                        scores: np.ndarray) -> None:
    """Correspondences of a dense matcher for one pair: group `names_to_pair` with `kpts0`, `kpts1` (M, 2)
    float32 pixels and `scores` (M,) float32."""
    pair = names_to_pair(name0, name1)
    with open_h5(path, "a") as f:
        if pair in f:
            del f[pair]
        grp = f.create_group(pair)
        grp.create_dataset("kpts0", data=np.asarray(kpts0, np.float32).reshape(-1, 2))
        grp.create_dataset("kpts1", data=np.asarray(kpts1, np.float32).reshape(-1, 2))
        grp.create_dataset("scores", data=np.asarray(scores, np.float32).reshape(-1))


def read_dense_matches(path: Path, name0: str, name1: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(kpts0, kpts1, scores) of a pair written by write_dense_matches, in the order asked for."""
    with open_h5(path) as f:
        pair, reverse = _find_pair(f, path, name0, name1)
        k0, k1, s = (f[pair][k][()] for k in ("kpts0", "kpts1", "scores"))
    return (k1, k0, s) if reverse else (k0, k1, s)
