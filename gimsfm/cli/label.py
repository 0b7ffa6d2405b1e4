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
    labels: Optional[Path] = typer.Option(None, "--labels", help="Label store to evaluate (e.g. the one training "
                                          "used); videos missing from it are labelled into it. Default: OUT/labels."),
) -> None:
    """Label quality vs hidden GT: the labels and their stored ablation variants (no propagation, each method
    alone) from one labelling run per video: precision@3px, density, reach."""
    from ..bench.report import write_report
    from ..errors import InputError
    from ..label.pipeline import LabelConfig
    from ..utils.runlock import RunLock

    conf = LabelConfig(step=step, min_propagate=min_propagate)
    if methods:
        conf.methods = [m.strip() for m in methods.split(",") if m.strip()]
    rows, results = [], {"config": {"methods": conf.methods, "min_propagate": min_propagate, "step": step},
                         "videos": {}}
    for vdir in videos:
        if not (vdir / "video.mp4").is_file() or not (vdir / "gt.h5").is_file():
            raise InputError(f"{vdir} is not a synthetic video folder (video.mp4 + gt.h5)")
    store = labels or out / "labels"
    with RunLock(store, "bench labels"):  # the label store, as `gimsfm label` locks it: one writer at a time
        _bench_label_videos(videos, store, conf, results, rows)
    summary = results["mean"] = _summarize_labels(results["videos"])
    for name, r in summary.items():
        rows.append([f"all {len(videos)} videos", name, r["pairs"], r["labels_per_pair"], r["precision@3px"],
                     r["median_error_px"], r["on_moving_or_sky_pct"], r["max_reach_frames"]])
    write_report(out, results, "Label quality vs hidden GT",
                 ["video", "labels", "pairs", "labels/pair", "precision@3px (%)", "median err (px)",
                  "on moving/sky (%)", "reach (frames)"], rows)


def _bench_label_videos(videos: list[Path], store: Path, conf, results: dict, rows: list) -> None:
    """Label each synthetic video into `store` (resumable) and score its labels and their variants."""
    import json
    import time

    import h5py

    from ..label.pipeline import label_video
    from ..label.quality import evaluate_labels, label_variants
    from ..utils.profiling import PeakMemory

    for vdir in videos:
        t0 = time.perf_counter()
        with PeakMemory() as mem:
            h5 = label_video(vdir / "video.mp4", store, conf) / "labels.h5"
        seconds = time.perf_counter() - t0
        res = results["videos"][vdir.name] = {}
        for variant in [None, *label_variants(h5)]:
            name = {None: "all methods, propagated", "direct": "all methods, direct only"}.get(
                variant, f"{variant} only, propagated")
            r = evaluate_labels(h5, vdir / "gt.h5", variant=variant)
            res[name] = r
            rows.append([vdir.name, name, r["pairs"], r["labels_per_pair"], r["precision@3px"],
                         r["median_error_px"], r["on_moving_or_sky_pct"], r["max_reach_frames"]])
        with h5py.File(h5, "r") as f:  # the store's own settings (--labels may hold an earlier run)
            store_conf = json.loads(f.attrs["config"])
        res["labelling"] = {"seconds": seconds, "peak_memory_mb": mem.peak, "config": store_conf}


def _summarize_labels(videos: dict) -> dict:
    """Totals per label variant over videos (precision weighted by evaluated labels, median of medians)."""
    import numpy as np

    out: dict = {}
    names = [n for res in videos.values() for n in res if n != "labelling"]
    for name in dict.fromkeys(names):
        rs = [res[name] for res in videos.values() if name in res]
        n_eval = np.array([r["evaluated_labels"] for r in rs], float)
        prec = np.array([r["precision@3px"] for r in rs], float)
        ok = n_eval > 0
        out[name] = {
            "pairs": int(sum(r["pairs"] for r in rs)),
            "labels_per_pair": float(sum(r["labels"] for r in rs) / max(1, sum(r["pairs"] for r in rs))),
            "precision@3px": float(np.average(prec[ok], weights=n_eval[ok])) if ok.any() else float("nan"),
            "median_error_px": float(np.nanmedian([r["median_error_px"] for r in rs])),
            "on_moving_or_sky_pct": float(np.mean([r["on_moving_or_sky_pct"] for r in rs])),
            "max_reach_frames": int(max(r["max_reach_frames"] for r in rs)),
            "evaluated_labels": int(n_eval.sum()),
        }
    return out
