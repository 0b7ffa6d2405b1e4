"""Pose-pair sets in the ZEB format, rendered from the procedural worlds with exact depth.

Output folder layout (what ``generate_pairs`` writes)::

    DIR/pairs.txt            img0 img1 covis0 covis1 K0(9) K1(9) T_0to1(16), row-major, X_cam1 = T_0to1 @ X_cam0
    DIR/images/NNNNNN.png    (or .jpg) pinhole images, OpenCV pixel centres, no lens distortion
    DIR/depth/NNNNNN.npy     float32 metric z-depth along the optical axis, 0 = sky / invalid
    DIR/dynamic/NNNNNN.png   uint8 mask (255 = moving-object pixel), only for images that show one
    DIR/meta.json            generator parameters and, per pair, its domain and world seed
    DIR/val/...              same layout, from separate worlds, when val_fraction > 0

covis0 = fraction of image 0's valid-depth pixels (8-px grid) that project inside image 1 and agree with
depth 1 within 2 % (not occluded); covis1 likewise. Pairs are stratified over min(covis0, covis1):
``mode="eval"`` bins 10-20-30-40-50 % (like ZEB), ``mode="train"`` bins 5-15-30-50-70-90 %.
Moving objects are frozen at one instant per world, so the depth/pose GT holds at every pixel; the
dynamic masks still mark them. Illumination, exposure and white balance differ between views.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import cv2
import numpy as np

from .. import logger
from ..errors import InputError, OutputExistsError
from . import camera as cam
from .effects import sensor_noise
from .gt import covisibility, relative_pose
from .render import get_renderer
from .world import DOMAINS, build_world

EVAL_BINS = (0.10, 0.20, 0.30, 0.40, 0.50)
TRAIN_BINS = (0.05, 0.15, 0.30, 0.50, 0.70, 0.90)


@dataclass
class View:
    rgb: np.ndarray
    depth: np.ndarray
    dynamic: np.ndarray
    K: np.ndarray
    T: np.ndarray  # cam_from_world


def _fmt(values: Iterable[float]) -> str:
    return " ".join(f"{float(v):.10g}" for v in values)


def check_domains(domains: Sequence[str]) -> list[str]:
    out = []
    for d in domains:
        for part in str(d).split(","):
            part = part.strip()
            if not part:
                continue
            if part == "all":
                out.extend(DOMAINS)
                continue
            if part not in DOMAINS:
                raise InputError(f"unknown domain {part!r}; choose from {', '.join(DOMAINS)} or 'all'")
            out.append(part)
    if not out:
        raise InputError("no domain given")
    return list(dict.fromkeys(out))


def render_world_views(world, rng: np.random.Generator, n_views: int, width: int, height: int,
                       n_traj: int = 4, photometric: bool = True) -> list[View]:
    """Views along a few footage-like trajectories of `world` (pinhole, one FOV per trajectory)."""
    r = get_renderer()
    views: list[View] = []
    per = int(np.ceil(n_views / n_traj))
    for k in range(n_traj):
        kind = world.pair_kinds[k % len(world.pair_kinds)]
        traj = world.trajectory(rng, kind)
        fov = float(rng.uniform(*world.fov_range))
        K = cam.intrinsics(width, height, fov)
        t = float(rng.uniform(0, 30))
        for _ in range(per):
            if len(views) >= n_views:
                break
            T = traj.pose(t)
            gain = (rng.uniform(0.85, 1.15) * rng.uniform(0.96, 1.04, 3)) if photometric else np.ones(3)
            f = r.render(world, T, K, width, height, t=t, gain=gain, dynamic_time=0.0)
            rgb = f.rgb
            if photometric:
                rgb = sensor_noise(rgb, world.post.get("noise", 0.0) * 0.7, rng, shot=True)
            views.append(View(rgb, f.depth, f.dynamic, K, T))
            t += float(rng.uniform(0.3, 3.0)) * (0.5 if kind == "drive" else 1.0)
    return views


def covis_matrix(views: list[View], stride: int = 8) -> np.ndarray:
    n = len(views)
    C = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            if i != j:
                C[i, j] = covisibility(views[i].depth, views[i].K, views[j].depth, views[j].K,
                                       relative_pose(views[i].T, views[j].T), stride)
    return C


def select_pairs(views: list[View], C: np.ndarray, bins: Sequence[float], n: int, rng: np.random.Generator,
                 min_baseline: float = 0.02, max_use: int = 3) -> list[tuple[int, int]]:
    """Up to n pairs (i, j), spread evenly over the overlap bins of min(C[i,j], C[j,i])."""
    nb = len(bins) - 1
    buckets: list[list[tuple[int, int]]] = [[] for _ in range(nb)]
    for i in range(len(views)):
        for j in range(i + 1, len(views)):
            ov = min(C[i, j], C[j, i])
            if not bins[0] <= ov < bins[-1]:
                continue
            c0, c1 = cam.camera_center(views[i].T), cam.camera_center(views[j].T)
            d = views[i].depth
            med = float(np.median(d[d > 0])) if np.any(d > 0) else 1.0
            if np.linalg.norm(c0 - c1) < min_baseline * med:
                continue  # (near) pure rotation: translation direction undefined
            b = int(np.searchsorted(bins, ov, side="right") - 1)
            buckets[min(b, nb - 1)].append((i, j) if rng.random() < 0.5 else (j, i))
    for b in buckets:
        rng.shuffle(b)
    quota = [n // nb + (1 if k < n % nb else 0) for k in range(nb)]
    chosen: list[tuple[int, int]] = []
    use = np.zeros(len(views), int)

    def take_from(k: int) -> bool:
        while buckets[k]:
            i, j = buckets[k].pop()
            if use[i] < max_use and use[j] < max_use:
                use[i] += 1
                use[j] += 1
                chosen.append((i, j))
                return True
        return False

    spare = 0
    for k in range(nb):
        for _ in range(quota[k]):
            if not take_from(k):
                spare += 1
    # fill shortfalls from the remaining candidates, round-robin over bins
    while spare > 0 and any(buckets):
        for k in range(nb):
            if spare > 0 and take_from(k):
                spare -= 1
    return chosen


def _world_seed(seed: int, domain: str, k: int, stream: int) -> int:
    ss = np.random.SeedSequence([seed, DOMAINS.index(domain), k, stream])
    return int(ss.generate_state(1)[0] % (2 ** 31))


def _write_image(path: Path, rgb: np.ndarray) -> None:
    if path.suffix.lower() in (".jpg", ".jpeg"):
        ok = cv2.imwrite(str(path), rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
    else:
        ok = cv2.imwrite(str(path), rgb[..., ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:
        raise OSError(f"cannot write {path}")


def _generate_into(domains: list[str], n_pairs: int, seed: int, out_dir: Path, *, width: int, height: int, mode: str,
                   image_ext: str, pairs_per_world: int, views_per_world: int, stream: int, progress: bool) -> dict:
    bins = EVAL_BINS if mode == "eval" else TRAIN_BINS
    for sub in ("images", "depth"):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)
    lines, info = [], []
    counter = 0
    per_domain = [n_pairs // len(domains) + (1 if k < n_pairs % len(domains) else 0) for k in range(len(domains))]
    for domain, quota in zip(domains, per_domain):
        got, k = 0, 0
        max_worlds = 4 * int(np.ceil(quota / pairs_per_world)) + 4
        while got < quota and k < max_worlds:
            wseed = _world_seed(seed, domain, k, stream)
            k += 1
            world = build_world(domain, wseed)
            rng = np.random.default_rng([wseed, 1])
            views = render_world_views(world, rng, views_per_world, width, height)
            C = covis_matrix(views)
            want = min(pairs_per_world, quota - got)
            sel = select_pairs(views, C, bins, want, rng)
            names: dict[int, str] = {}
            for i, j in sel:
                for v in (i, j):
                    if v in names:
                        continue
                    counter += 1
                    stem = f"{counter:06d}"
                    names[v] = stem
                    _write_image(out_dir / "images" / f"{stem}.{image_ext}", views[v].rgb)
                    np.save(out_dir / "depth" / f"{stem}.npy", views[v].depth.astype(np.float32))
                    if views[v].dynamic.any():
                        (out_dir / "dynamic").mkdir(exist_ok=True)
                        cv2.imwrite(str(out_dir / "dynamic" / f"{stem}.png"), ((views[v].dynamic > 0) * 255).astype(np.uint8))
                T01 = relative_pose(views[i].T, views[j].T)
                lines.append(f"images/{names[i]}.{image_ext} images/{names[j]}.{image_ext} {C[i, j]:.4f} {C[j, i]:.4f} "
                             f"{_fmt(views[i].K.ravel())} {_fmt(views[j].K.ravel())} {_fmt(T01.ravel())}")
                info.append({"domain": domain, "world_seed": wseed})
            got += len(sel)
            if progress:
                logger.info("synth pairs: %s world %d (seed %d): %d pairs (%d/%d)", domain, k, wseed, len(sel), got, quota)
        if got < quota:
            logger.warning("synth pairs: %s gave only %d of %d pairs", domain, got, quota)
    tmp = out_dir / "pairs.txt.tmp"
    tmp.write_text("\n".join(lines) + ("\n" if lines else ""))
    os.replace(tmp, out_dir / "pairs.txt")
    meta = {"generator": "gimsfm.synth.pairs", "domains": domains, "n_pairs": len(lines), "seed": seed, "mode": mode,
            "overlap_bins": list(bins), "width": width, "height": height, "stream": stream,
            "covis": "fraction of valid-depth pixels of image 0 (8 px grid) visible and unoccluded in image 1",
            "pairs": info}
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=1))
    return meta


def generate_pairs(domains: Sequence[str], n_pairs: int, seed: int, out_dir: Path, *, width: int = 640, height: int = 480,
                   mode: str = "train", image_ext: str = "png", val_fraction: float = 0.0, pairs_per_world: int = 25,
                   views_per_world: int = 36, overwrite: bool = False, progress: bool = True) -> Path:
    """Render a ZEB-format pose set (see the module docstring) and return its folder.

    domains: names from DOMAINS (or "all"); n_pairs: total over domains (split evenly); mode "train" (5-90 %
    overlap) or "eval" (10-50 %, ZEB-like); val_fraction: extra pairs from separate worlds in DIR/val.
    Deterministic: the same arguments give identical pairs.txt, images and depth maps.
    """
    domains = check_domains(domains)
    if n_pairs < 1:
        raise InputError("--pairs must be >= 1")
    if mode not in ("train", "eval"):
        raise InputError(f"mode must be 'train' or 'eval', not {mode!r}")
    if image_ext not in ("png", "jpg"):
        raise InputError(f"image format must be png or jpg, not {image_ext!r}")
    if not (0.0 <= val_fraction < 1.0):
        raise InputError("--val-fraction must be in [0, 1)")
    if width < 32 or height < 32:
        raise InputError("image size must be at least 32x32")
    out_dir = Path(out_dir)
    if (out_dir / "pairs.txt").exists() and not overwrite:
        raise OutputExistsError(f"{out_dir}/pairs.txt exists (use --overwrite)")
    if out_dir.exists():  # overwrite, or leftovers of an interrupted run (no pairs.txt): start clean
        import shutil

        for sub in ("images", "depth", "dynamic", "val"):
            shutil.rmtree(out_dir / sub, ignore_errors=True)
        for f in ("pairs.txt", "meta.json"):
            (out_dir / f).unlink(missing_ok=True)
    kw = dict(width=width, height=height, mode=mode, image_ext=image_ext, pairs_per_world=pairs_per_world,
              views_per_world=views_per_world, progress=progress)
    n_val = int(round(n_pairs * val_fraction))
    _generate_into(domains, n_pairs - n_val, seed, out_dir, stream=0, **kw)
    if n_val > 0:
        _generate_into(domains, n_val, seed, out_dir / "val", stream=1, **kw)
    return out_dir


def read_pairs(path: Path) -> list[dict]:
    """Parse a ZEB pairs.txt into dicts with name0, name1, covis0, covis1, K0, K1, T_0to1."""
    out = []
    for line in Path(path).read_text().splitlines():
        p = line.split()
        if len(p) < 38:
            continue
        vals = np.array([float(x) for x in p[2:38]])
        out.append({"name0": p[0], "name1": p[1], "covis0": vals[0], "covis1": vals[1], "K0": vals[2:11].reshape(3, 3),
                    "K1": vals[11:20].reshape(3, 3), "T_0to1": vals[20:36].reshape(4, 4)})
    return out
