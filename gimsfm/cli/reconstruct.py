"""`gimsfm reconstruct` and `gimsfm matchers`."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from . import app

console = Console()


@app.command()
def reconstruct(
    images: Path = typer.Argument(..., help="Folder of images (searched recursively)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (created; an earlier run there is resumed)."),
    preset: Optional[str] = typer.Option(None, help="YAML preset: a path or a name in pipelines/ (e.g. video)."),
    matcher: Optional[str] = typer.Option(None, help="Matcher name from `gimsfm matchers` (default sift-lightglue-gim; "
                                          "sift-nn is the classical, faster one)."),
    pairs: Optional[str] = typer.Option(None, help="auto | exhaustive | sequential | retrieval."),
    mapper: Optional[str] = typer.Option(None, help="incremental | global."),
    camera_mode: Optional[str] = typer.Option(None, help="auto | single | per-folder | per-image."),
    max_keypoints: Optional[int] = typer.Option(None, help="Keypoints per image (default: 2048 for the LightGlue "
                                               "matchers, 8192 for sift-nn)."),
    resize_max: Optional[int] = typer.Option(None, help="Long image side for feature extraction (default 1600)."),
    window: Optional[int] = typer.Option(None, help="Sequential pairs: neighbours per frame."),
    loop_closure: Optional[bool] = typer.Option(None, "--loop-closure/--no-loop-closure",
                                                help="Sequential pairs: add retrieval pairs for loops."),
    num_matched: Optional[int] = typer.Option(None, help="Retrieval pairs: most similar images per image."),
    intrinsics: Optional[Path] = typer.Option(None, help="Known cameras, hloc format `name MODEL W H params`; "
                                              "kept fixed when every image is listed."),
    dense_cell: Optional[float] = typer.Option(None, help="Dense matchers (gim-loftr, gim-dkm): matched points "
                                               "within one cell of this many pixels become one keypoint (default 2)."),
    device: str = typer.Option("auto", help="auto | cpu | cuda (learned matchers)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Redo every stage instead of resuming."),
) -> None:
    """Sparse 3D model (COLMAP binary), PLY point cloud, preview and summary from a folder of photos."""
    from ..sfm.reconstruct import ReconstructConfig
    from ..sfm.reconstruct import reconstruct as run

    config = ReconstructConfig.from_preset(
        preset, matcher=matcher, pairs=pairs, mapper=mapper, camera_mode=camera_mode, max_keypoints=max_keypoints,
        resize_max=resize_max, window=window, loop_closure=loop_closure, num_matched=num_matched,
        intrinsics=str(intrinsics.resolve()) if intrinsics else None, dense_cell=dense_cell)
    summary_path = run(images, out, config, overwrite=overwrite, device=device)
    s = json.loads(summary_path.read_text())
    table = Table(title=f"reconstruction in {out}")
    table.add_column("metric")
    table.add_column("value")
    for key in ("num_images", "num_registered", "num_points3D", "mean_track_length", "mean_reprojection_error",
                "matcher", "mapper", "peak_memory_mb"):
        v = s.get(key)
        table.add_row(key, f"{v:.3f}" if isinstance(v, float) else str(v))
    if "dense_keypoints" in s:  # dense matcher: how its matched points became keypoints
        d = s["dense_keypoints"]
        table.add_row("dense keypoints", f"{d['matched_points']} matched points -> {d['keypoints']} keypoints "
                      f"({d['keypoints_merged']} merged, cell {d['cell_px']} px)")
    table.add_row("time (s)", ", ".join(f"{k} {v:.1f}" for k, v in s["timings"].items()))
    console.print(table)
    console.print(f"model: {out / 'sparse'}  points: {out / 'points.ply'}  preview: {out / 'preview.png'}  "
                  f"3D viewer (open in a browser): {out / 'viewer.html'}")


@app.command("matchers")
def list_matchers_cmd() -> None:
    """List the registered matchers."""
    from rich.markup import escape

    from ..matchers import list_matchers

    table = Table(title=escape("registered matchers: NAME[:WEIGHTS][@KEY=VALUE,...]"))
    entries = list_matchers()
    # Names are what users type: never shortened, however narrow the terminal (or a container's 80 columns).
    table.add_column("name", no_wrap=True, min_width=max(len(e.name) for e in entries))
    for col in ("available", "description", "options (defaults)"):
        table.add_column(col)
    for entry in entries:
        defaults = {**getattr(entry.factory, "default_conf", {}), **entry.conf}
        options = ", ".join(f"{k}={v}" for k, v in defaults.items() if k != "weights" and not isinstance(v, dict))
        views = ", views=off|auto|asift|T1+T2" if getattr(entry.factory, "sparse", True) else ""
        available = "yes" if entry.available() else "no (weights missing)"
        table.add_row(entry.name, available, entry.description,
                      options + (", features.*" if "features" in defaults else "") + views)
    console.print(table)
    for entry in list_matchers():  # e.g. the GIM release models: the file found, or where it was looked for
        if entry.weights_status:
            console.print(f"{entry.name} weights: {escape(entry.weights_status())}", soft_wrap=True)
