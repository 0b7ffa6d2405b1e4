"""`gimsfm view`: viewer.html for a reconstruction, a COLMAP model folder, or a map with localized queries."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import app


@app.command()
def view(
    model: Path = typer.Argument(..., help="A `gimsfm reconstruct` output, a COLMAP model folder (cameras/images/"
                                 "points3D .bin or .txt) or a COLMAP workspace with sparse/0."),
    poses: Optional[Path] = typer.Option(None, help="Query poses from `gimsfm localize` (hloc format), drawn in "
                                         "another colour; failures come from the *_log.json beside it."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Page to write (default: viewer.html in the model "
                                       "folder, or POSES_viewer.html beside --poses)."),
    max_points: int = typer.Option(200_000, help="Draw a fixed random subset above this many points."),
) -> None:
    """Write a self-contained 3D viewer page (opens offline in any browser)."""
    from ..errors import InputError, OutputExistsError
    from ..sfm.model_folder import load_model
    from ..sfm.scene_view import left_out_images
    from ..sfm.viewer import is_viewer, load_queries, view_model

    if max_points < 1:
        raise InputError("--max-points must be at least 1")
    m = load_model(model)
    queries = None
    if poses is not None:
        if not poses.is_file():
            raise InputError(f"poses file not found: {poses}")
        queries = load_queries(poses)
    if out is None:
        out = poses.with_name(poses.stem + "_viewer.html") if poses else (m.out_dir or model) / "viewer.html"
    if out.exists() and not is_viewer(out):
        raise OutputExistsError(f"{out} exists and is not a gimsfm viewer; choose another --out")
    if out.suffix.lower() not in (".html", ".htm"):
        raise InputError(f"--out {out} must end in .html")
    out.parent.mkdir(parents=True, exist_ok=True)
    left_out = left_out_images(m.out_dir, m.rec, m.summary) if m.out_dir else {}
    name = model.resolve().name
    info = view_model(m.rec, out, m.summary, left_out, queries, name, max_points)
    n = info["queries"]
    extra = f", {n} quer{'y' if n == 1 else 'ies'}" if queries else ""
    typer.echo(f"{out} ({info['bytes'] / 1e6:.1f} MB: {info['points_drawn']:,} of {info['points_total']:,} points, "
               f"{info['cameras']} images{extra})")
