"""Loaders for benchmark data: ZEB / SuperGlue pair lists, HPatches sequences, LoFTR scene-info npz."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import logger
from ..errors import InputError
from ..utils.io import IMAGE_EXTENSIONS, image_size


@dataclass
class PosePair:
    """One image pair with GT: paths relative to `root`, intrinsics of the stored images, X1 = T_0to1 X0."""

    name0: str
    name1: str
    K0: np.ndarray
    K1: np.ndarray
    T_0to1: np.ndarray


@dataclass
class PoseDataset:
    name: str
    root: Path  # image names are relative to this folder
    pairs: list[PosePair] = field(default_factory=list)

    @property
    def image_names(self) -> list[str]:
        return sorted({n for p in self.pairs for n in (p.name0, p.name1)})


@dataclass
class HomographyPair:
    name0: str
    name1: str
    H_0to1: np.ndarray  # x1 ~ H x0, pixels


@dataclass
class HomographyDataset:
    name: str
    root: Path
    pairs: list[HomographyPair] = field(default_factory=list)

    @property
    def image_names(self) -> list[str]:
        return sorted({n for p in self.pairs for n in (p.name0, p.name1)})


def parse_pose_pairs(pairs_file: Path, root: Path, name: str | None = None) -> PoseDataset:
    """A ZEB / SuperGlue pair list: `img0 img1 a b K0(9) K1(9) T_0to1(16)` per line (38 tokens).

    Columns 3-4 (covisibility in ZEB, EXIF rotation in SuperGlue) are ignored; non-zero SuperGlue rotations
    are refused because the images would have to be rotated for the intrinsics to hold.
    """
    pairs_file, root = Path(pairs_file), Path(root)
    if not pairs_file.is_file():
        raise InputError(f"pairs file not found: {pairs_file}")
    pairs = []
    for i, line in enumerate(pairs_file.read_text().splitlines()):
        tok = line.split()
        if not tok or tok[0].startswith("#"):
            continue
        if len(tok) != 38:
            raise InputError(f"{pairs_file}:{i + 1}: expected 38 columns "
                             f"(img0 img1 covis0 covis1 K0(9) K1(9) T_0to1(16)), got {len(tok)}")
        try:
            vals = np.array(tok[2:], np.float64)
        except ValueError:
            raise InputError(f"{pairs_file}:{i + 1}: non-numeric calibration or pose values") from None
        T = vals[20:].reshape(4, 4)
        if not np.isfinite(vals).all() or abs(np.linalg.det(T[:3, :3]) - 1) > 1e-2:
            raise InputError(f"{pairs_file}:{i + 1}: T_0to1 is not a rigid transform")
        pairs.append(PosePair(tok[0], tok[1], vals[2:11].reshape(3, 3), vals[11:20].reshape(3, 3), T))
    if not pairs:
        raise InputError(f"no pairs in {pairs_file}")
    return PoseDataset(name or root.name, root, pairs)


def load_pose_dataset(path: Path) -> PoseDataset:
    """A ZEB-format folder (pairs.txt + images), or a pairs file whose images are relative to its folder."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"pose data not found: {path}")
    if path.is_file():
        return parse_pose_pairs(path, path.parent, path.parent.name)
    pairs_file = path / "pairs.txt"
    if not pairs_file.is_file():
        raise InputError(f"{path} is not a ZEB-format folder: no pairs.txt")
    ds = parse_pose_pairs(pairs_file, path, path.name)
    missing = [n for n in ds.image_names if not (path / n).is_file()]
    if missing:
        raise InputError(f"{path}: {len(missing)} image(s) of pairs.txt missing, e.g. {missing[0]}")
    return ds


def scale_intrinsics_to_images(ds: PoseDataset) -> PoseDataset:
    """Rescale K where the stored image is a resized copy of the one K was written for.

    SuperGlue-style lists give K of the full-resolution image (ScanNet: 1296x968) while distributions such as
    scannet_test_1500 store 640x480 copies. The original size is inferred as (2 cx + 1, 2 cy + 1); K is only
    touched when that differs from the stored size by more than 20 %.
    """
    sizes: dict[str, tuple[int, int]] = {}
    warned = False
    for p in ds.pairs:
        for attr, name in (("K0", p.name0), ("K1", p.name1)):
            if name not in sizes:
                sizes[name] = image_size(ds.root / name)
            w, h = sizes[name]
            K = getattr(p, attr)
            w0, h0 = 2 * K[0, 2] + 1, 2 * K[1, 2] + 1
            sx, sy = w / w0, h / h0
            if abs(np.log(sx)) > np.log(1.2) and abs(np.log(sy)) > np.log(1.2):
                # Exact map for cv2.resize with OpenCV pixel centres, on the nominal original size.
                W0, H0 = round(w0), round(h0)
                sx, sy = w / W0, h / H0
                K = K.copy()
                K[0, 0] *= sx
                K[1, 1] *= sy
                K[0, 2] = sx * (K[0, 2] + 0.5) - 0.5
                K[1, 2] = sy * (K[1, 2] + 0.5) - 0.5
                setattr(p, attr, K)
                if not warned:
                    logger.warning("%s: intrinsics are for %dx%d images but the files are %dx%d: K rescaled",
                                   ds.name, W0, H0, w, h)
                    warned = True
    return ds


def load_megadepth_scene_info(npz_files: list[Path], image_root: Path, name: str = "megadepth1500") -> PoseDataset:
    """LoFTR-style scene-info `.npz` files (image_paths, intrinsics, poses (w2c), pair_infos) -> one dataset.

    `image_root` is the folder that `image_paths` are relative to (LoFTR: the megadepth_test_1500 root).
    """
    pairs: list[PosePair] = []
    for f in npz_files:
        try:
            info = np.load(f, allow_pickle=True)
            paths, Ks, poses, pair_infos = info["image_paths"], info["intrinsics"], info["poses"], info["pair_infos"]
        except (OSError, KeyError, ValueError) as exc:
            raise InputError(f"{f} is not a LoFTR scene-info npz ({str(exc).splitlines()[0][:80]})") from None
        for entry in pair_infos:
            (i, j) = entry[0]
            if paths[i] is None or paths[j] is None:
                continue
            T = np.asarray(poses[j], np.float64) @ np.linalg.inv(np.asarray(poses[i], np.float64))
            pairs.append(PosePair(str(paths[i]), str(paths[j]), np.asarray(Ks[i], np.float64),
                                  np.asarray(Ks[j], np.float64), T))
    if not pairs:
        raise InputError(f"no pairs in the scene-info files {', '.join(str(f) for f in npz_files)}")
    ds = PoseDataset(name, Path(image_root), pairs)
    missing = [n for n in ds.image_names if not (ds.root / n).is_file()]
    if missing:
        raise InputError(f"{name}: {len(missing)} image(s) missing under {image_root}, e.g. {missing[0]}")
    return ds


def load_homography_dataset(path: Path) -> HomographyDataset:
    """HPatches layout: `1.<ext>`, `2.<ext>`, ... and `H_1_k` (x_k ~ H_1_k x_1)."""
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"homography sequence not found: {path}")
    images = {p.stem: p.name for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS}
    if "1" not in images:
        raise InputError(f"{path} is not an HPatches-layout folder: no image named 1.<ext>")
    pairs = []
    for hfile in sorted(path.glob("H_1_*"), key=lambda p: (len(p.name), p.name)):
        k = hfile.name[4:]
        if k not in images:
            raise InputError(f"{path}: {hfile.name} has no image {k}.<ext>")
        try:
            H = np.loadtxt(hfile, dtype=np.float64).reshape(3, 3)
        except ValueError:
            raise InputError(f"{hfile} is not a 3x3 matrix") from None
        pairs.append(HomographyPair(images["1"], images[k], H / H[2, 2]))
    if not pairs:
        raise InputError(f"{path}: no H_1_k files")
    return HomographyDataset(path.name, path, pairs)


def select_evenly(items: list, max_items: int | None) -> list:
    """At most `max_items` items spread evenly over the list (deterministic), all if None."""
    if not max_items or len(items) <= max_items:
        return list(items)
    idx = np.unique(np.linspace(0, len(items) - 1, max_items).round().astype(int))
    return [items[i] for i in idx]
