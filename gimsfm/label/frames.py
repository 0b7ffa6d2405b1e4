"""Sampled frames of a video file (streamed with PyAV, never loaded whole) or of a folder of frames."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import InputError
from ..utils.io import list_images, read_image

VIDEO_EXTENSIONS = {".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v"}


def sampling_step(fps: float) -> int:
    """GIM: a frame every 20 frames, every 10 when fps <= 30."""
    return 10 if fps <= 30 else 20


def is_video(path: Path) -> bool:
    return Path(path).is_file() and Path(path).suffix.lower() in VIDEO_EXTENSIONS


def probe_fps(source: Path) -> float:
    """Frames per second of a video, or of a frame folder (timestamps.txt if present, else 30)."""
    source = Path(source)
    if is_video(source):
        import av

        try:
            with av.open(str(source)) as container:
                stream = container.streams.video[0]
                rate = stream.average_rate or stream.guessed_rate or 30
                return float(rate)
        except (av.error.FFmpegError, IndexError) as exc:
            raise InputError(f"cannot open video {source.name}: {str(exc).splitlines()[0][:100]}") from None
    ts = source / "timestamps.txt"
    if ts.is_file():
        t = [float(ln.split()[1]) for ln in ts.read_text().splitlines() if len(ln.split()) >= 2 and not ln.startswith("#")]
        if len(t) > 1 and t[-1] > t[0]:
            return (len(t) - 1) / (t[-1] - t[0])
    return 30.0


def iter_sampled_frames(source: Path, step: int) -> Iterator[tuple[int, np.ndarray]]:
    """(frame index, RGB uint8) of every `step`-th frame, decoded as a stream."""
    source = Path(source)
    if is_video(source):
        import av

        try:
            container = av.open(str(source))
        except av.error.FFmpegError as exc:
            raise InputError(f"cannot open video {source.name}: {str(exc).splitlines()[0][:100]}") from None
        with container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            index = 0
            try:
                for frame in container.decode(stream):
                    if index % step == 0:
                        yield index, frame.to_ndarray(format="rgb24")
                    index += 1
            except av.error.FFmpegError as exc:  # truncated file: keep what decoded
                if index == 0:
                    raise InputError(f"cannot decode video {source.name}: {exc}") from None
        return
    if source.is_dir():
        frames_dir = source / "frames" if (source / "frames").is_dir() else source
        names = list_images(frames_dir, recursive=False)
        if not names:
            raise InputError(f"no frames in {source}")
        for index, name in enumerate(names):
            if index % step == 0:
                yield index, read_image(frames_dir / name)
        return
    raise InputError(f"not a video file or frame folder: {source}")
