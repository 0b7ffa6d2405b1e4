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
