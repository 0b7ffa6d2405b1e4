"""`gimsfm bench localize`: map/query split of GT scenes, % of queries within (m, deg) thresholds."""
from __future__ import annotations

from pathlib import Path

import typer

from . import bench_app


@bench_app.command("localize")
def bench_localize(
    data: list[Path] = typer.Option(None, "--data", help="Scene folder(s) with images/ and gt/, or a parent; "
                                    "default: shared data sfm/."),
    matcher: list[str] = typer.Option(["sift-nn"], "--matcher", help="Matcher(s) to compare (repeat)."),
    out: Path = typer.Option(..., "--out", "-o"),
    baseline: bool = typer.Option(True, "--baseline/--no-baseline", help="Add sift-nn to the run."),
    query_every: int = typer.Option(2, help="Every N-th image is a query (unless the scene has query.txt)."),
    max_keypoints: int = typer.Option(8192, help="Keypoints per image."),
) -> None:
    """Build a map from the map images, localize the queries, align to GT and report accuracy."""
    from ..bench.common import matcher_dirname, resolve_matcher_names
    from ..bench.localize import THRESHOLDS, bench_scene
    from ..bench.report import write_report
    from ..bench.sfm import find_scenes
    from ..bench.suites import data_root

    scenes = find_scenes(list(data) if data else [data_root() / "sfm"])
    matchers = resolve_matcher_names(matcher, add_baseline=baseline)  # unknown names fail before any work
    results: dict = {"matchers": {}, "thresholds": THRESHOLDS}
    rows = []
    for m in matchers:
        per_scene = {}
        for scene in scenes:
            r = bench_scene(scene, m, out / scene.name / matcher_dirname(m), query_every,
                            {"max_keypoints": max_keypoints})
            per_scene[scene.name] = r
            rows.append([m, scene.name, f"{r['num_localized']}/{r['num_queries']}",
                         *[r[f"within_{a}m_{b}deg"] for a, b in THRESHOLDS], r["median_position_error"],
                         r["median_rotation_error_deg"], r["sec_per_query"], r["peak_memory_mb"]])
        results["matchers"][m] = {"scenes": per_scene}
    write_report(out, results, "Localization benchmark",
                 ["matcher", "scene", "localized", *[f"% ({a} m, {b} deg)" for a, b in THRESHOLDS],
                  "med. pos err", "med. rot err (deg)", "s/query", "peak mem (MB)"], rows)
