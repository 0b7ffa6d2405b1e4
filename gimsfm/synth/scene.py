"""Synthetic scenes for the reconstruction and localization benchmarks.

Layout written by ``generate_scene``::

    DIR/images/map/NNNNNN.png, DIR/images/query/NNNNNN.png
    DIR/gt/{cameras,images,points3D}.txt   COLMAP text model of ALL images (PINHOLE, cx/cy = OpenCV + 0.5,
                                           world-to-camera QW QX QY QZ TX TY TZ), empty points3D.txt
    DIR/map.txt, DIR/query.txt             image names (relative to images/) of the two splits
    DIR/queries_with_intrinsics.txt        hloc format: name PINHOLE w h fx fy cx cy (COLMAP convention)
    DIR/depth/<split>/NNNNNN.npy           float32 z-depth (0 = sky), for dense-GT checks
    DIR/meta.json

Mapping images follow one footage-like trajectory of the domain; queries come from a second, independent
trajectory in the same world (other positions, other field of view, other time: moving objects and
illumination differ). ``query_condition`` (day, night, fog, rain, dusk; see ``conditions.py``) renders the
queries of the same world under another illumination / weather while the map stays the daytime one:
the map images, all poses, intrinsics and depth are identical for every condition of a seed (the condition
draws from its own random stream).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np

from ..errors import InputError, OutputExistsError
from . import camera as cam
from .conditions import CONDITIONS, check_condition, condition_world, post_process
from .effects import sensor_noise
from .render import get_renderer
from .world import DOMAINS, build_world

_SPACING = {"walk": 0.8, "drive": 0.35, "drone": 1.5, "oblique": 1.5, "pan": 0.5}


def _quat_wxyz(R: np.ndarray) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    x, y, z, w = Rotation.from_matrix(R).as_quat()
    q = np.array([w, x, y, z])
    return q if q[0] >= 0 else -q


def write_colmap_text(gt_dir: Path, cameras: list[tuple[int, int, np.ndarray]], images: list[tuple[str, int, np.ndarray]]) -> None:
    """cameras: [(width, height, K_opencv)], images: [(name, camera_index, cam_from_world 4x4)]."""
    gt_dir.mkdir(parents=True, exist_ok=True)
    lines = ["# Camera list with one line of data per camera:", "#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]",
             f"# Number of cameras: {len(cameras)}"]
    for i, (w, h, K) in enumerate(cameras):
        lines.append(f"{i + 1} PINHOLE {w} {h} {K[0, 0]:.10g} {K[1, 1]:.10g} {K[0, 2] + 0.5:.10g} {K[1, 2] + 0.5:.10g}")
    (gt_dir / "cameras.txt").write_text("\n".join(lines) + "\n")
    lines = ["# Image list with two lines of data per image:", "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME",
             "#   POINTS2D[] as (X, Y, POINT3D_ID)", f"# Number of images: {len(images)}, mean observations per image: 0"]
    for i, (name, ci, T) in enumerate(images):
        q = _quat_wxyz(T[:3, :3])
        t = T[:3, 3]
        lines.append(f"{i + 1} {q[0]:.12g} {q[1]:.12g} {q[2]:.12g} {q[3]:.12g} {t[0]:.12g} {t[1]:.12g} {t[2]:.12g} {ci + 1} {name}")
        lines.append("")
    (gt_dir / "images.txt").write_text("\n".join(lines) + "\n")
    (gt_dir / "points3D.txt").write_text("# 3D point list with one line of data per point:\n"
                                         "#   POINT3D_ID, X, Y, Z, R, G, B, ERROR, TRACK[] as (IMAGE_ID, POINT2D_IDX)\n"
                                         "# Number of points: 0, mean track length: 0\n")


def _times(world, traj, n: int, rng) -> np.ndarray:
    if isinstance(traj, cam.OrbitTrajectory):
        span = 2 * np.pi * rng.uniform(0.6, 1.0) / traj.omega  # most of a full circle
        return np.linspace(0, span, n, endpoint=False) + rng.uniform(0, 5)
    dt = _SPACING.get(traj.kind, 0.8)
    return rng.uniform(0, 20) + dt * np.arange(n)


def generate_scene(domain: str, out_dir: Path, *, seed: int = 0, n_images: int = 40, n_queries: int = 10, width: int = 640,
                   height: int = 480, image_ext: str = "png", overwrite: bool = False, query_condition: str = "day",
                   trajectory: str | None = None) -> Path:
    """A scene of `domain` (see the module docstring). trajectory: camera motion of both splits (default: the
    domain's first pair kind, e.g. drive for street)."""
    if domain not in DOMAINS:
        raise InputError(f"unknown domain {domain!r}; choose from {', '.join(DOMAINS)}")
    check_condition(domain, query_condition)
    if n_images < 2 or n_queries < 0:
        raise InputError("--images must be >= 2 and --queries >= 0")
    out_dir = Path(out_dir)
    if (out_dir / "gt" / "images.txt").exists() and not overwrite:
        raise OutputExistsError(f"{out_dir} already holds a scene (use --overwrite)")
    world = build_world(domain, seed)
    kind = trajectory or world.pair_kinds[0]
    if kind not in world.trajectory_kinds:
        raise InputError(f"domain {domain!r} has no trajectory {kind!r}; choose from {', '.join(world.trajectory_kinds)}")
    for sub in ("images", "gt", "depth"):
        shutil.rmtree(out_dir / sub, ignore_errors=True)
    rng = np.random.default_rng([seed, 31337, DOMAINS.index(domain)])
    # the condition's own random stream: `rng` draws exactly as for day queries, so poses and map images match
    cond_rng = np.random.default_rng([seed, 4242, DOMAINS.index(domain), CONDITIONS.index(query_condition)])
    query_world = condition_world(world, query_condition, cond_rng)
    r = get_renderer()
    cams, imgs, splits = [], [], {"map": [], "query": []}
    for split, n in (("map", n_images), ("query", n_queries)):
        if n == 0:
            continue
        traj = world.trajectory(rng, kind)
        K = cam.intrinsics(width, height, float(rng.uniform(*world.fov_range)))
        cams.append((width, height, K))
        (out_dir / "images" / split).mkdir(parents=True, exist_ok=True)
        (out_dir / "depth" / split).mkdir(parents=True, exist_ok=True)
        w_split = query_world if split == "query" else world
        for k, t in enumerate(_times(world, traj, n, rng)):
            T = traj.pose(float(t))
            f = r.render(w_split, T, K, width, height, t=float(t), gain=rng.uniform(0.9, 1.1) * np.ones(3))
            if w_split is world:
                rgb = sensor_noise(f.rgb, world.post.get("noise", 0.0) * 0.5, rng, shot=True)
            else:
                rgb = post_process(f.rgb, w_split.post, cond_rng)
                # same draws from `rng` as a day query whenever the day query draws noise
                noise_rng = rng if world.post.get("noise", 0.0) > 0 else cond_rng
                rgb = sensor_noise(rgb, w_split.post.get("noise", 0.0) * 0.5, noise_rng, shot=True)
            name = f"{split}/{k + 1:06d}.{image_ext}"
            ok = cv2.imwrite(str(out_dir / "images" / name), rgb[..., ::-1])
            if not ok:
                raise OSError(f"cannot write {out_dir / 'images' / name}")
            np.save(out_dir / "depth" / split / f"{k + 1:06d}.npy", f.depth)
            imgs.append((name, len(cams) - 1, T))
            splits[split].append(name)
    write_colmap_text(out_dir / "gt", cams, imgs)
    (out_dir / "map.txt").write_text("\n".join(splits["map"]) + "\n")
    (out_dir / "query.txt").write_text("\n".join(splits["query"]) + ("\n" if splits["query"] else ""))
    lines = []
    if splits["query"]:
        w, h, K = cams[-1]
        for name in splits["query"]:
            lines.append(f"{name} PINHOLE {w} {h} {K[0, 0]:.10g} {K[1, 1]:.10g} {K[0, 2] + 0.5:.10g} {K[1, 2] + 0.5:.10g}")
    (out_dir / "queries_with_intrinsics.txt").write_text("\n".join(lines) + ("\n" if lines else ""))
    (out_dir / "meta.json").write_text(json.dumps({"generator": "gimsfm.synth.scene", "domain": domain, "seed": seed,
                                                   "n_images": n_images, "n_queries": n_queries, "trajectory": kind,
                                                   "width": width, "height": height, "units": "metres",
                                                   "map_condition": "day", "query_condition": query_condition}, indent=1))
    return out_dir
