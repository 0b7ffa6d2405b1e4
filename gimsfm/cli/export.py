"""`gimsfm export`: a model in the next tool's format (COLMAP text, nerfstudio, PLY), optionally undistorted."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import app


@app.command("export")
def export_cmd(
    model: Path = typer.Argument(..., help="A `gimsfm reconstruct` output or a COLMAP model folder."),
    fmt: str = typer.Option(..., "--format", "-f", help="colmap-text | nerfstudio | ply."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder to create (must be new or empty)."),
    undistort: bool = typer.Option(False, "--undistort", help="Undistorted images and PINHOLE cameras (pycolmap), "
                                   "as 3D Gaussian splatting tools expect."),
    images: Optional[Path] = typer.Option(None, help="Image folder (default: the one the reconstruction used)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an earlier export in --out (never other "
                                   "files)."),
) -> None:
    """Write the model for the next tool: 3DGS / COLMAP, nerfstudio, or a point cloud."""
    from ..sfm.export_formats import check_request, export
    from ..sfm.model_folder import load_model

    check_request(fmt, undistort)
    entries = export(load_model(model), fmt, out, undistort, images, overwrite)
    typer.echo(f"{fmt}{' (undistorted)' if undistort else ''} written to {out}: {', '.join(entries)}")
