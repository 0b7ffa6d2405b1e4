"""`gimsfm label`: videos (or frame folders) in, correspondence labels out, one folder per video.

Per video: sampled frames -> features per method (a rolling window, frames are never all in memory) ->
direct pairs at +1, +2, +4 sampling steps matched by every method -> per-method MAGSAC F (0.5 px) ->
watermark filter -> fusion -> propagation -> final MAGSAC F (1 px, >= 64). A video is written to
`<id>.partial/` and renamed to `<id>/` when complete, so interrupted or parallel runs never corrupt the store.

Besides the labels (`pairs/`), labels.h5 keeps ablation variants computed from the same matches at little
extra cost (`variants/<name>/pairs/`): `direct` (fusion, no propagation) and, with several methods, one
per method (that method alone, propagated). Training (`variant:` of a video source) and `gimsfm bench labels`
read them, so the GIM ablations need no second labelling run.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import h5py
import numpy as np

from .. import logger
from ..errors import InputError, write_failure
from ..utils.fault import point
from ..utils.progress import tqdm
from ..utils.runlock import RunLock
from .filtering import drop_static, fuse, magsac_fundamental_inliers
from .frames import is_video, iter_sampled_frames, probe_fps, sampling_step
from .methods import build_methods, default_methods
from .propagate import Labels, final_filter, propagate


@dataclass
class LabelConfig:
    methods: list[str] = field(default_factory=default_methods)
    step: int = 0  # sampling step in frames; 0 = GIM's rule (20, or 10 for <= 30 fps)
    offsets: tuple[int, ...] = (1, 2, 4)  # direct pairs, in sampling steps
    max_keypoints: int = 2048
    f_thresh_px: float = 0.5
    propagate: bool = True
    min_propagate: int = 1024  # paper: 1024, public release: 512
    final_thresh_px: float = 1.0
    min_labels: int = 64
    max_side: int = 960  # frames are stored (for training) at most this large
    device: str = "cpu"
    variants: bool = True  # also store the ablation variants (see module doc)


def video_id(source: Path) -> str:
    """Stable folder name: file stem plus a short hash of the absolute path (two clips may share a name)."""
    source = Path(source).resolve()
    stem = source.parent.name if source.stem == "video" else source.stem  # synth corpus: <name>/video.mp4
    return f"{stem}-{hashlib.sha1(str(source).encode()).hexdigest()[:8]}"


def _match_pair(methods, feats_a: dict, feats_b: dict, f_thresh: float, stats: dict
                ) -> tuple[tuple[np.ndarray, np.ndarray], dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Fused labels of one pair and each method's own (filtered) labels."""
    parts = []
    for m in methods:
        k0, k1 = m.match(feats_a[m.name], feats_b[m.name])
        raw = len(k0)
        if raw:
            keep = drop_static(k0, k1)
            k0, k1 = k0[keep], k1[keep]
            inl = magsac_fundamental_inliers(k0, k1, f_thresh)
            k0, k1 = k0[inl], k1[inl]
        s = stats["methods"].setdefault(m.name, {"raw": 0, "inliers": 0})
        s["raw"] += raw
        s["inliers"] += len(k0)
        parts.append((k0, k1))
    return fuse(parts), {m.name: part for m, part in zip(methods, parts)}


def _variants(direct: Labels, by_method: dict[str, Labels], config: LabelConfig) -> dict[str, Labels]:
    """Ablation label sets from the same matches (final filter included)."""
    out: dict[str, Labels] = {}
    if not config.variants:
        return out
    if config.propagate:
        out["direct"] = final_filter(direct, config.final_thresh_px, config.min_labels)
    if len(by_method) > 1:
        for name, d in by_method.items():
            lab = propagate(d, config.min_propagate) if config.propagate else d
            out[name] = final_filter(lab, config.final_thresh_px, config.min_labels)
    return out


def _write_pairs(grp: h5py.Group, labels: Labels, direct: Labels, frame_index: dict[int, int],
                 sizes: dict[int, tuple[int, int]]) -> None:
    for (a, b), (k0, k1) in sorted(labels.items()):
        g = grp.create_group(f"pairs/{frame_index[a]:06d}_{frame_index[b]:06d}")
        g.create_dataset("kpts0", data=k0.astype(np.float32), compression="gzip")
        g.create_dataset("kpts1", data=k1.astype(np.float32), compression="gzip")
        g.attrs.update(frame0=frame_index[a], frame1=frame_index[b], interval=frame_index[b] - frame_index[a],
                       direct=(a, b) in direct, size0=sizes[a], size1=sizes[b])


def label_video(source: Path, out_root: Path, config: LabelConfig, methods=None) -> Path:
    """Label one video into `out_root/<id>/`; returns that folder (skips a video already done)."""
    source = Path(source)
    vid = video_id(source)
    final_dir, work = Path(out_root) / vid, Path(out_root) / f"{vid}.partial"
    if (final_dir / "labels.h5").exists():
        logger.info("%s: already labelled", source.name)
        return final_dir
    if work.exists():
        shutil.rmtree(work)  # a run interrupted mid-video restarts that video
    (work / "frames").mkdir(parents=True)
    methods = methods or build_methods(config.methods, config.max_keypoints, config.device)
    fps = probe_fps(source)
    step = config.step or sampling_step(fps)
    t0 = time.perf_counter()
    stats: dict[str, Any] = {"source": str(source), "fps": fps, "step": step, "methods": {}}
    window: deque = deque(maxlen=max(config.offsets) + 1)  # (sample index, frame index, features)
    direct: Labels = {}
    by_method: dict[str, Labels] = {m.name: {} for m in methods}
    frame_index: dict[int, int] = {}
    sizes: dict[int, tuple[int, int]] = {}
    n = 0
    for n, (fidx, rgb) in enumerate(tqdm(iter_sampled_frames(source, step), desc=f"label {source.name}",
                                         unit="frame", leave=False)):
        s = min(1.0, config.max_side / max(rgb.shape[:2]))
        if s < 1:  # labels live in the stored frame's pixels
            rgb = cv2.resize(rgb, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(work / "frames" / f"{fidx:06d}.jpg"), rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 92])
        frame_index[n], sizes[n] = fidx, (rgb.shape[1], rgb.shape[0])
        feats = {m.name: m.extract(rgb) for m in methods}
        for prev_n, _, prev_feats in window:
            if n - prev_n in config.offsets:
                fused, parts = _match_pair(methods, prev_feats, feats, config.f_thresh_px, stats)
                direct[(prev_n, n)] = fused
                for name, part in parts.items():
                    by_method[name][(prev_n, n)] = part
        window.append((n, fidx, feats))
        point("label.frame")
    if not frame_index:
        raise InputError(f"{source}: no frames decoded")
    stats["sampled_frames"] = len(frame_index)
    stats["direct_pairs"] = len(direct)
    stats["direct_labels"] = int(sum(len(v[0]) for v in direct.values()))
    labels = propagate(direct, config.min_propagate) if config.propagate else dict(direct)
    final = final_filter(labels, config.final_thresh_px, config.min_labels)
    variants = _variants(direct, by_method, config)
    used = {i for lab in (final, *variants.values()) for key in lab for i in key}
    for n_, fidx in frame_index.items():  # keep only frames that some label uses
        if n_ not in used:
            (work / "frames" / f"{fidx:06d}.jpg").unlink()
    with h5py.File(work / "labels.h5", "w") as f:
        _write_pairs(f, final, direct, frame_index, sizes)
        for name, lab in variants.items():
            _write_pairs(f.require_group(f"variants/{name}"), lab, direct, frame_index, sizes)
        f.attrs.update(source=str(source), fps=fps, step=step, config=json.dumps(asdict(config)))
        point("label.write")  # killed with labels.h5 open
    intervals = [frame_index[b] - frame_index[a] for a, b in final]
    stats.update(
        propagated_pairs=int(sum((k not in direct) for k in final)), final_pairs=len(final),
        final_labels=int(sum(len(v[0]) for v in final.values())),
        mean_labels_per_pair=float(np.mean([len(v[0]) for v in final.values()])) if final else 0.0,
        max_reach_frames=int(max(intervals, default=0)), seconds=time.perf_counter() - t0,
        variants={k: {"pairs": len(v), "labels": int(sum(len(x[0]) for x in v.values()))} for k, v in variants.items()})
    (work / "stats.json").write_text(json.dumps(stats, indent=2))
    if final_dir.exists():
        shutil.rmtree(final_dir)
    os.replace(work, final_dir)
    point("label.video")
    logger.info("%s: %d pairs (%d propagated), %.0f labels/pair, reach %d frames, %.1f s", source.name,
                stats["final_pairs"], stats["propagated_pairs"], stats["mean_labels_per_pair"],
                stats["max_reach_frames"], stats["seconds"])
    return final_dir


def _label_one(args: tuple[str, str, dict]) -> str:
    import torch

    torch.set_num_threads(1)  # one video per process; processes share the cores
    source, out_root, conf = args
    return str(label_video(Path(source), Path(out_root), LabelConfig(**conf)))


def find_sources(inputs: list[Path]) -> list[Path]:
    """Video files and frame folders among the inputs (folders of videos are expanded)."""
    sources: list[Path] = []
    for p in map(Path, inputs):
        if not p.exists():
            raise InputError(f"not found: {p}")
        if is_video(p):
            sources.append(p)
        elif p.is_dir():
            videos = sorted(q for q in p.iterdir() if is_video(q))
            if videos:
                sources += videos
            elif (p / "frames").is_dir() or any(q.suffix.lower() in (".jpg", ".png") for q in p.iterdir()):
                sources.append(p)
            else:
                raise InputError(f"no videos or frames in {p}")
        else:
            raise InputError(f"not a video (mp4/mov/mkv/...) or frame folder: {p}")
    return sources


def _worker_init() -> None:
    """Label workers ignore Ctrl-C, which a terminal sends to the whole process group: the parent stops them
    (one message, no worker tracebacks)."""
    import os
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Stopped by the parent: leave without Python's cleanup (a half-written video store is what a kill leaves,
    # and a rerun resumes from it), so that no lock or queue of the pool is touched any more.
    signal.signal(signal.SIGTERM, lambda *_: os._exit(143))
    import threading

    from tqdm import tqdm as _tqdm

    _tqdm.set_lock(threading.RLock())  # not tqdm's default multiprocessing lock, which a stopped worker would leak


def label_videos(inputs: list[Path], out_root: Path, config: LabelConfig, workers: int = 1,
                 backend: str = "local") -> Path:
    """Label many videos: serially, in `workers` local processes, or as Ray tasks. Returns index.json.

    The store is locked for the run: a second `label` on it stops at once (RunLockedError)."""
    sources = find_sources(inputs)
    with RunLock(Path(out_root), "label"):
        return _label_videos(sources, Path(out_root), config, workers, backend)


def _label_videos(sources: list[Path], out_root: Path, config: LabelConfig, workers: int, backend: str) -> Path:
    jobs = [(str(s), str(out_root), asdict(config)) for s in sources]
    failures: dict[str, str] = {}
    if backend == "ray":
        try:
            import ray
        except ImportError:
            raise InputError("--backend ray needs Ray: pip install 'gimsfm[ray]'") from None
        ray.init(ignore_reinit_error=True)
        task = ray.remote(num_cpus=1)(_label_one)
        refs = {task.remote(j): j[0] for j in jobs}
        for ref, src in refs.items():
            try:
                ray.get(ref)
            except Exception as exc:  # noqa: BLE001 - one bad video must not stop the others
                failures[src] = str(exc).splitlines()[-1]
    elif workers > 1:
        from concurrent.futures import ProcessPoolExecutor
        import multiprocessing as mp

        pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_worker_init)
        try:
            futures = {pool.submit(_label_one, j): j[0] for j in jobs}
            for fut in tqdm(futures, desc="videos", unit="video"):
                try:
                    fut.result()
                except Exception as exc:  # noqa: BLE001
                    failures[futures[fut]] = str(exc).splitlines()[-1] if str(exc) else type(exc).__name__
        except BaseException:
            # Ctrl-C / SIGTERM / a full disk: stop the workers now (each video's store survives a kill, and a
            # rerun resumes), instead of waiting for their videos to finish after this run's lock is gone.
            procs = list(getattr(pool, "_processes", {}).values())
            for proc in procs:
                proc.terminate()  # workers exit at once between two Python steps (see _worker_init)
            for proc in procs:
                proc.join(5.0)
                if proc.is_alive():
                    proc.kill()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown()
    else:
        methods = build_methods(config.methods, config.max_keypoints, config.device)
        for j in tqdm(jobs, desc="videos", unit="video"):
            try:
                label_video(Path(j[0]), out_root, config, methods)
            except Exception as exc:  # noqa: BLE001 - one bad video must not stop the others
                if write_failure(exc, out_root) is not None:
                    raise  # but a full disk stops them all
                logger.debug("labelling %s failed", j[0], exc_info=True)
                failures[j[0]] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    for src, msg in failures.items():
        logger.warning("failed to label %s: %s", src, msg)
    return write_index(out_root, failures)


def write_index(out_root: Path, failures: dict[str, str] | None = None) -> Path:
    """index.json over all completed videos (rebuilt from their stats, so parallel runs never race on it)."""
    videos = {}
    for d in sorted(Path(out_root).iterdir()):
        if d.is_dir() and (d / "labels.h5").exists() and (d / "stats.json").exists():
            videos[d.name] = json.loads((d / "stats.json").read_text())
    total = {"videos": len(videos), "pairs": sum(v["final_pairs"] for v in videos.values()),
             "labels": sum(v["final_labels"] for v in videos.values())}
    path = Path(out_root) / "index.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"total": total, "videos": videos, "failures": failures or {}}, indent=2))
    os.replace(tmp, path)
    return path
