"""`gimsfm localize`: pose query images against a map from `gimsfm reconstruct`."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from . import app


@app.command()
def localize(
    map_dir: Path = typer.Option(..., "--map", help="Output folder of `gimsfm reconstruct` (the map)."),
    queries: Path = typer.Option(..., "--queries", help="Folder of query images, or a text file listing them."),
    out: Path = typer.Option(..., "--out", "-o", help="Poses file to write (hloc format: name qw qx qy qz tx ty tz)."),
    intrinsics: Optional[Path] = typer.Option(None, help="hloc intrinsics file: `name MODEL W H params...`."),
    matcher: Optional[str] = typer.Option(None, help="Matcher (default: the one the map was built with)."),
    num_db: int = typer.Option(10, "--num-db", help="Map images retrieved per query."),
    min_inliers: int = typer.Option(12, help="Fewer 2D-3D inliers than this is reported as a failure."),
    device: str = typer.Option("auto", help="auto | cpu | cuda."),
) -> None:
    """Retrieval, matching, 2D-3D and absolute pose; failures are listed, never given a fake pose."""
    from ..localization.localize import localize as run

    poses, results = run(map_dir, queries, out, matcher, intrinsics, num_db, min_inliers, device=device)
    table = Table(title=f"localized {sum(r.success for r in results)}/{len(results)} queries")
    for col in ("query", "status", "inliers", "camera", "best retrieved"):
        table.add_column(col)
    for r in results:
        table.add_row(r.name, "ok" if r.success else f"failed: {r.reason}", str(r.num_inliers), r.camera,
                      r.retrieved[0] if r.retrieved else "")
    Console().print(table)
    Console().print(f"poses: {poses}  log: {poses.with_name(poses.stem + '_log.json')}  "
                    f"pictures: {poses.with_name(poses.stem + '_viz')}  "
                    f"3D view: {poses.with_name(poses.stem + '_viewer.html')}")
