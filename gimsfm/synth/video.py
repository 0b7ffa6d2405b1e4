"""Internet-footage simulator: one procedural world, one footage-like camera, H.264 via PyAV.

``DIR/video.mp4`` is what the self-training stack sees. ``DIR/gt.h5`` holds the ground truth it must never
read (it exists to measure label quality):

  K (N, 3, 3)             per-frame intrinsics, OpenCV pixel centres (top-left pixel centre = (0, 0))
  dist (5,)               OpenCV distortion k1 k2 p1 p2 k3 of the video frames (all 0 = pinhole)
  cam_from_world (N, 4, 4) world-to-camera, OpenCV axes (x right, y down, z forward), metres
  timestamps (N,)         seconds
  depth_frames (M,)       frame indices that have depth / masks (every --depth-every frames)
  depth (M, H, W)         float32 z-depth of the distorted video pixel (0 = sky), lzf-compressed
  dynamic (M, H, W)       uint8 id of the moving object seen by each pixel (0 = static / sky)
  object_poses (N, O, 4, 4) world-from-object pose of each moving object per frame
  attrs: domain, seed, fps, width, height, trajectory, hfov_deg, motion_blur, shutter, crf, ...

Frames: exposure / white-balance drift, sensor noise, vignetting, optional rain, optional motion blur
(average of sub-frame renders over the shutter interval; GT is the mid-exposure instant) and optional radial
lens distortion (rendered on a larger pinhole canvas and remapped, so GT stays exact).
"""
from __future__ import annotations

import json
import time
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from .. import logger
from ..errors import InputError, OutputExistsError
from . import camera as cam
from .effects import NoiseBank, PhotometricDrift, rain
from .render import get_renderer
from .world import DOMAINS, build_world


class H264Writer:
    """Minimal PyAV H.264 writer (libx264, yuv420p)."""

    def __init__(self, path: Path, width: int, height: int, fps: float, crf: int = 23, preset: str = "veryfast"):
        import av

        self.container = av.open(str(path), mode="w")
        self.stream = self.container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        self.stream.width, self.stream.height = width, height
        self.stream.pix_fmt = "yuv420p"
        self.stream.options = {"crf": str(crf), "preset": preset}

    def write(self, rgb: np.ndarray) -> None:
        import av

        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        for pkt in self.stream.encode(frame):
            self.container.mux(pkt)

    def close(self) -> None:
        for pkt in self.stream.encode():
            self.container.mux(pkt)
        self.container.close()


def read_gt(path: Path) -> dict:
    """Load gt.h5 fully into numpy arrays (small videos / tests)."""
    import h5py

    with h5py.File(path, "r") as f:
        out = {k: f[k][()] for k in f.keys()}
        out["attrs"] = dict(f.attrs)
    return out


def generate_video(domain: str, seconds: float, fps: float, seed: int, out_dir: Path, *, width: int = 640,
                   height: int = 480, trajectory: str | None = None, fov: float | None = None,
                   distortion: bool | None = None, motion_blur: int = 0, crf: int = 23, depth_every: int = 10,
                   x264_preset: str = "superfast", overwrite: bool = False, progress: bool = True,
                   timings: dict | None = None) -> Path:
    """Render and encode one video with separate ground truth; returns out_dir."""
    import h5py

    if domain not in DOMAINS:
        raise InputError(f"unknown domain {domain!r}; choose from {', '.join(DOMAINS)}")
    if seconds <= 0 or fps <= 0:
        raise InputError("--seconds and --fps must be positive")
    if width < 32 or height < 32 or width % 2 or height % 2:
        raise InputError("width and height must be even and at least 32 (H.264 yuv420p)")
    if depth_every < 1 or motion_blur < 0:
        raise InputError("--depth-every must be >= 1 and --motion-blur >= 0 (0 = auto)")
    if x264_preset not in ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"):
        raise InputError(f"unknown x264 preset {x264_preset!r}")
    if fov is not None and not 10 <= fov <= 150:
        raise InputError("--fov must be within 10..150 degrees")
    out_dir = Path(out_dir)
    if (out_dir / "video.mp4").exists() and not overwrite:
        raise OutputExistsError(f"{out_dir}/video.mp4 exists (use --overwrite)")
    out_dir.mkdir(parents=True, exist_ok=True)
    world = build_world(domain, seed)
    rng = np.random.default_rng([seed, 2024, DOMAINS.index(domain)])
    kinds = set(world.trajectory_kinds) | set(world.pair_kinds)
    if trajectory is not None and trajectory not in kinds:
        raise InputError(f"trajectory {trajectory!r} not available for {domain}; choose from {', '.join(sorted(kinds))}")
    traj = world.trajectory(rng, trajectory)
    if fov is not None:
        hfov = float(fov)
    elif rng.random() < 0.15:  # action-camera / phone ultra-wide footage
        hfov = float(rng.uniform(100, 120))
    else:
        hfov = float(rng.uniform(*world.fov_range))
    K = cam.intrinsics(width, height, hfov)
    dist = np.zeros(5)
    if distortion is None:
        distortion = bool(rng.random() < 0.3)
    if distortion:
        k1 = -rng.uniform(0.05, 0.12) * (1 + hfov / 90)
        for _ in range(8):  # strong barrel distortion at wide FOV is not invertible: weaken until it is
            dist = np.array([k1, 0.3 * k1 * k1, 0, 0, 0])
            map_x, map_y, K_render, (rw, rh) = cam.distortion_maps(K, dist, width, height)
            if rw <= 2 * width and rh <= 2 * height and cam.distortion_roundtrip_error(map_x, map_y, K, K_render, dist) < 0.01:
                break
            k1 *= 0.6
    else:
        K_render, rw, rh = K, width, height
    if motion_blur == 0:  # auto: long exposures (night, some handheld daylight clips) get blurred
        motion_blur = 3 if (domain == "night" or rng.random() < 0.25) else 1
    n_sub = motion_blur if motion_blur % 2 == 1 else motion_blur + 1
    shutter = float(rng.uniform(0.3, 0.8)) / fps
    drift = PhotometricDrift(rng)
    vig = float(rng.uniform(0.0, 0.3))
    noise = world.post.get("noise", 0.01) * rng.uniform(0.7, 1.3)
    with_rain = bool(world.post.get("rain", False))
    noise_bank = NoiseBank(rng, height, width)
    n = int(round(seconds * fps))
    r = get_renderer()
    writer = H264Writer(out_dir / "video.mp4", width, height, fps, crf, x264_preset)
    tmp_gt = out_dir / "gt.h5.tmp"
    h5 = h5py.File(tmp_gt, "w")
    depth_idx = list(range(0, n, depth_every))
    d_depth = h5.create_dataset("depth", (len(depth_idx), height, width), np.float32, chunks=(1, height, width), compression="lzf")
    d_dyn = h5.create_dataset("dynamic", (len(depth_idx), height, width), np.uint8, chunks=(1, height, width), compression="lzf")
    poses = np.zeros((n, 4, 4))
    obj_poses = np.zeros((n, len(world.dynamic), 4, 4))
    tm = timings if timings is not None else {}
    t_start = time.perf_counter()
    last_log = t_start
    for i in range(n):
        t = i / fps
        t0 = time.perf_counter()
        acc = None
        centre = None
        for k in range(n_sub):
            ts = t + (shutter * (k / (n_sub - 1) - 0.5) if n_sub > 1 else 0.0)
            f = r.render(world, traj.pose(ts), K_render, rw, rh, t=ts, gain=drift.gain(ts))
            if n_sub > 1:
                acc = f.rgb.astype(np.uint16) if acc is None else acc + f.rgb
            if k == n_sub // 2:
                centre = f
        rgb = centre.rgb if n_sub == 1 else (acc // n_sub if n_sub in (2, 4) else (acc.astype(np.float32) / n_sub + 0.5)).astype(np.uint8)
        depth, dyn = centre.depth, centre.dynamic
        if distortion:
            rgb = cv2.remap(rgb, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
            if i % depth_every == 0:
                depth = cv2.remap(depth, map_x, map_y, cv2.INTER_NEAREST)
                dyn = cv2.remap(dyn, map_x, map_y, cv2.INTER_NEAREST)
        t1 = time.perf_counter()
        if with_rain:
            rgb = rain(rgb, rng)
        rgb = noise_bank.apply(rgb, noise, vig)
        t2 = time.perf_counter()
        writer.write(rgb)
        t3 = time.perf_counter()
        poses[i] = traj.pose(t)
        for o, obj in enumerate(world.dynamic):
            obj_poses[i, o] = obj.pose(t)
        if i % depth_every == 0:
            j = i // depth_every
            d_depth[j] = depth
            d_dyn[j] = dyn
        t4 = time.perf_counter()
        for key, dt in (("render", t1 - t0), ("effects", t2 - t1), ("encode", t3 - t2), ("gt", t4 - t3)):
            tm[key] = tm.get(key, 0.0) + dt
        if progress and time.perf_counter() - last_log > 10:
            last_log = time.perf_counter()
            logger.info("synth video: %d/%d frames (%.1f fps)", i + 1, n, (i + 1) / (last_log - t_start))
    writer.close()
    h5.create_dataset("K", data=np.repeat(K[None], n, 0))
    h5.create_dataset("dist", data=dist)
    h5.create_dataset("cam_from_world", data=poses)
    h5.create_dataset("timestamps", data=np.arange(n) / fps)
    h5.create_dataset("depth_frames", data=np.array(depth_idx, np.int64))
    h5.create_dataset("object_poses", data=obj_poses)
    attrs = {"domain": domain, "seed": seed, "fps": fps, "width": width, "height": height, "trajectory": traj.kind,
             "hfov_deg": hfov, "motion_blur": n_sub, "shutter_s": shutter, "crf": crf, "x264_preset": x264_preset, "n_frames": n,
             "depth_every": depth_every, "rain": with_rain, "noise_sigma": noise,
             "object_kinds": json.dumps([o.kind for o in world.dynamic]),
             "conventions": "OpenCV camera and pixel centres; cam_from_world maps world to camera; depth = camera z"}
    for k, v in attrs.items():
        h5.attrs[k] = v
    h5.close()
    tmp_gt.replace(out_dir / "gt.h5")
    tm["total"] = time.perf_counter() - t_start
    tm["frames"] = n
    if progress:
        logger.info("synth video: %s, %d frames in %.1f s (%.1f fps) -> %s", domain, n, tm["total"], n / tm["total"], out_dir)
    return out_dir


def benchmark_fps(domains=DOMAINS, frames: int = 90, width: int = 640, height: int = 480, motion_blur: int = 1,
                  seed: int = 0) -> dict:
    """Frames per second for render alone (incl. read-back) and for the full video path (render + effects +
    H.264 encode + GT), averaged over domains. Not a test: numbers depend on the machine's load."""
    import tempfile

    r = get_renderer()
    res = {"width": width, "height": height, "motion_blur": motion_blur, "frames_per_domain": frames, "per_domain": {}}
    tot_r = tot_v = 0.0
    for d in domains:
        world = build_world(d, seed)
        traj = world.trajectory(np.random.default_rng(seed))
        K = cam.intrinsics(width, height, 70)
        r.render(world, traj.pose(0.0), K, width, height)
        t0 = time.perf_counter()
        for i in range(frames):
            r.render(world, traj.pose(i / 30), K, width, height, t=i / 30)
        t_render = time.perf_counter() - t0
        with tempfile.TemporaryDirectory() as tmp:
            tm: dict = {}
            generate_video(d, frames / 30, 30, seed, Path(tmp), width=width, height=height, motion_blur=motion_blur,
                           distortion=False, progress=False, timings=tm)
        res["per_domain"][d] = {"render_fps": frames / t_render, "video_fps": frames / tm["total"],
                                **{f"{k}_ms": 1000 * tm[k] / frames for k in ("render", "effects", "encode", "gt")}}
        tot_r += t_render
        tot_v += tm["total"]
    n = frames * len(domains)
    res["render_fps"] = n / tot_r
    res["video_fps"] = n / tot_v
    res["hours_for_one_hour_30fps"] = 30.0 / res["video_fps"]
    return res
