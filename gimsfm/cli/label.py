"""`gimsfm label`: GIM self-training labels from videos."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import app


@app.command()
def label(
    inputs: list[Path] = typer.Argument(..., help="Video files (mp4/mov/mkv/...), frame folders, or folders of videos."),
    out: Path = typer.Option(..., "--out", "-o", help="Label store (one folder per video + index.json)."),
    methods: Optional[str] = typer.Option(None, help="Comma-separated methods (default: sift-lightglue-base if "
                                          "trained, sift-nn, akaze; also orb-beblid and any registry matcher)."),
    workers: int = typer.Option(1, help="Videos labelled in parallel on this machine."),
    backend: str = typer.Option("local", help="local | ray (Ray tasks, one video each)."),
    step: int = typer.Option(0, help="Sampling step in frames (0 = every 20, or 10 for <= 30 fps)."),
    min_propagate: int = typer.Option(1024, help="Propagation continues while this many labels survive."),
    no_propagation: bool = typer.Option(False, "--no-propagation", help="Direct labels only (ablation)."),
    max_keypoints: int = typer.Option(2048, help="Keypoints per frame for SIFT-based methods."),
    device: str = typer.Option("cpu", help="auto | cpu | cuda for learned methods."),
) -> None:
    """Sample frames, match with several methods, MAGSAC-filter, fuse and propagate labels."""
    import json

    from ..label.pipeline import LabelConfig, label_videos

    conf = LabelConfig(step=step, min_propagate=min_propagate, propagate=not no_propagation,
                       max_keypoints=max_keypoints, device=device)
    if methods:
        conf.methods = [m.strip() for m in methods.split(",") if m.strip()]
    if backend not in ("local", "ray"):
        raise typer.BadParameter("backend must be local or ray")
    index = label_videos(inputs, out, conf, workers, backend)
    total = json.loads(index.read_text())["total"]
    typer.echo(f"{total['videos']} videos, {total['pairs']} labelled pairs, {total['labels']} labels -> {index}")


from . import bench_app  # noqa: E402


@bench_app.command("labels")
def bench_labels(
    videos: list[Path] = typer.Argument(..., help="Synthetic video folders (video.mp4 + gt.h5 from `gimsfm synth video`)."),
    out: Path = typer.Option(..., "--out", "-o"),
    methods: Optional[str] = typer.Option(None, help="Comma-separated labelling methods (default as `gimsfm label`)."),
    min_propagate: int = typer.Option(1024, help="Propagation threshold."),
    step: int = typer.Option(0, help="Sampling step in frames (0 = GIM's rule)."),
) -> None:
    """Label quality vs hidden GT, before and after propagation: precision@3px, density, reach."""
    import time

    from ..bench.report import write_report
    from ..errors import InputError
    from ..label.pipeline import LabelConfig, label_video, video_id
    from ..label.quality import evaluate_labels
    from ..utils.profiling import PeakMemory

    rows, results = [], {"videos": {}}
    for vdir in videos:
        if not (vdir / "video.mp4").is_file() or not (vdir / "gt.h5").is_file():
            raise InputError(f"{vdir} is not a synthetic video folder (video.mp4 + gt.h5)")
        results["videos"][vdir.name] = {}
        for variant, prop in (("direct", False), ("propagated", True)):
            conf = LabelConfig(step=step, min_propagate=min_propagate, propagate=prop)
            if methods:
                conf.methods = [m.strip() for m in methods.split(",") if m.strip()]
            t0 = time.perf_counter()
            with PeakMemory() as mem:
                label_video(vdir / "video.mp4", out / variant, conf)
            r = evaluate_labels(out / variant / video_id(vdir / "video.mp4") / "labels.h5", vdir / "gt.h5")
            r.update(seconds=time.perf_counter() - t0, peak_memory_mb=mem.peak)
            results["videos"][vdir.name][variant] = r
            rows.append([vdir.name, variant, r["pairs"], r["labels_per_pair"], r["precision@3px"],
                         r["median_error_px"], r["on_moving_or_sky_pct"], r["max_reach_frames"], r["seconds"]])
    write_report(out, results, "Label quality vs hidden GT",
                 ["video", "labels", "pairs", "labels/pair", "precision@3px (%)", "median err (px)",
                  "on moving/sky (%)", "reach (frames)", "time (s)"], rows)
