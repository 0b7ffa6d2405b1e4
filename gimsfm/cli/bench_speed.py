"""`gimsfm bench speed`: matching time per pair (ms) at several keypoint counts, for each matcher."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import numpy as np
import typer

from . import bench_app


def _speed_pair(image0: Optional[Path], image1: Optional[Path]) -> tuple[np.ndarray, np.ndarray, str]:
    """The benchmark pair: two given images, or a fixed homography pair (1024x768) of a texture photo."""
    from ..utils.io import read_image

    if image0 is not None and image1 is not None:
        return read_image(image0), read_image(image1), f"{image0.name} / {image1.name}"
    from ..train.datasets import data_root, make_homography_pair, package_texture_photos, _rng

    photo = data_root() / "textures" / "magsac_unihouseA.jpg"
    if photo.is_file():
        grey, name = read_image(photo, grayscale=True), f"textures/{photo.name}"
    else:  # a clone without the data: a bundled scikit-image photo
        grey, name = package_texture_photos()["skimage_astronaut"], "scikit-image's astronaut photo"
    i0, i1, _ = make_homography_pair(grey, _rng(0, "speed"), {"canvas": (1024, 768), "max_rotation": 20,
                                                              "p_full_rotation": 0.0})
    return i0, i1, f"homography pair of {name} at 1024x768"


@bench_app.command("speed")
def bench_speed(
    matchers: list[str] = typer.Option(["sift-lightglue-base,sift-nn"], "--matchers", "--matcher", "-m",
                                       help="registered matcher, NAME[:WEIGHTS]\\[@KEY=VALUE,...] (repeat); "
                                            "a value without @ may list several names, comma-separated"),
    kpts: str = typer.Option("512,1024,2048", "--kpts", help="Keypoints per image, comma-separated."),
    out: Path = typer.Option(Path("outputs/bench_speed"), "--out", "-o", help="Output folder."),
    repeats: int = typer.Option(10, "--repeats", help="Timed runs per setting (after one warm-up)."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda"),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch threads (default: torch's default)."),
    image0: Optional[Path] = typer.Option(None, "--image0", help="First image (default: built-in pair)."),
    image1: Optional[Path] = typer.Option(None, "--image1", help="Second image."),
) -> None:
    """Milliseconds per pair (matching only, features precomputed) and peak memory, per matcher and size."""
    import torch

    from ..bench.report import write_report
    from ..errors import InputError
    from ..matchers.registry import get_matcher
    from ..utils.profiling import PeakMemory

    if threads:
        torch.set_num_threads(threads)
    from ..bench.common import resolve_matcher_names

    # options hold commas themselves, so only option-free values are split
    names = [n.strip() for m in matchers for n in ([m] if "@" in m else m.split(",")) if n.strip()]
    if names:
        names = resolve_matcher_names(names, add_baseline=False)  # unknown names fail before any work
    try:
        sizes = [int(k) for k in kpts.split(",") if k.strip()]
    except ValueError:
        raise InputError(f"--kpts must be integers, got '{kpts}'") from None
    if not names or not sizes or repeats < 1:
        raise InputError("need at least one matcher, one keypoint count and --repeats >= 1")
    img0, img1, pair_desc = _speed_pair(image0, image1)
    rows, results = [], {"pair": pair_desc, "repeats": repeats, "device": device, "runs": []}
    for name in names:
        for n in sizes:
            matcher = get_matcher(name, {"features": {"max_keypoints": n}}, device=device)
            t0 = time.perf_counter()
            f0 = matcher.extract(img0)
            t_ext = (time.perf_counter() - t0) * 1000
            f1 = matcher.extract(img1)
            m0, _ = matcher.match(f0, f1)  # warm-up
            times, cpu = [], []
            with PeakMemory() as mem:
                for _ in range(repeats):
                    t0, c0 = time.perf_counter(), time.process_time()
                    m0, _ = matcher.match(f0, f1)
                    if torch.cuda.is_available():
                        torch.cuda.synchronize()
                    times.append((time.perf_counter() - t0) * 1000)
                    cpu.append((time.process_time() - c0) * 1000)
            run = {"matcher": name, "kpts": n, "kpts0": len(f0["keypoints"]), "kpts1": len(f1["keypoints"]),
                   "ms_median": float(np.median(times)), "ms_mean": float(np.mean(times)),
                   "ms_min": float(np.min(times)), "cpu_ms_median": float(np.median(cpu)), "extract_ms": t_ext, "matches": int((m0 > -1).sum()),
                   "peak_rss_mb": mem.peak}
            results["runs"].append(run)
            rows.append([name, n, f"{run['kpts0']}/{run['kpts1']}", run["ms_median"], run["ms_min"],
                         run["cpu_ms_median"], run["matches"], run["peak_rss_mb"], run["extract_ms"]])
    header = ["matcher", "kpts", "kpts found", "ms/pair (median)", "ms/pair (min)", "CPU ms/pair", "matches",
              "peak RSS MB", "extraction ms/image"]
    import os

    load = os.getloadavg()[0]
    extra = (f"Pair: {pair_desc}. Matching time only (features precomputed), {repeats} runs after a warm-up, "
             f"torch threads {torch.get_num_threads()}, device {device}. CPU ms = process CPU time (all threads); "
             f"load average at the end {load:.1f} on {os.cpu_count()} cores (wall times are inflated when the "
             f"machine is shared).\n")
    results["loadavg_end"] = load
    write_report(out, results, "Matching speed", header, rows, extra_md=extra)
