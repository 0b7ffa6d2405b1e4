"""`gimsfm bench sfm`: reconstruction quality against ground-truth cameras."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import bench_app


@bench_app.command("sfm")
def bench_sfm(
    data: list[Path] = typer.Option(None, "--data", help="Scene folder(s) with images/ and gt/ (COLMAP text), "
                                    "or a parent of several; default: shared data sfm/."),
    matcher: list[str] = typer.Option(["sift-lightglue-gim"], "--matcher",
                                      help="Matcher(s) to compare (repeat); default: reconstruct's default."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder for models and results."),
    baseline: bool = typer.Option(True, "--baseline/--no-baseline", help="Add sift-nn to the run."),
    mapper: str = typer.Option("incremental", help="incremental | global."),
    max_keypoints: Optional[int] = typer.Option(None, help="Keypoints per image."),
    known_intrinsics: bool = typer.Option(False, "--known-intrinsics",
                                          help="Give the GT cameras and keep them fixed: scores the matching "
                                               "without self-calibration."),
    seeds: int = typer.Option(1, "--seeds", min=1, help="Map each scene's matches with this many seeds and "
                              "report medians (the per-seed AUC@5 goes to results.json)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Recompute instead of resuming."),
) -> None:
    """Registration rate, aligned camera errors and relative-pose AUC@5/10/20 per scene and matcher."""
    from ..bench.report import write_report
    from ..bench.common import matcher_dirname, resolve_matcher_names
    from ..bench.sfm import bench_scene, find_scenes
    from ..bench.suites import data_root

    scenes = find_scenes(list(data) if data else [data_root() / "sfm"])
    matchers = resolve_matcher_names(matcher, add_baseline=baseline)  # unknown names fail before any work
    overrides = {"mapper": mapper}
    if max_keypoints:
        overrides["max_keypoints"] = max_keypoints
    results: dict = {"matchers": {}, "known_intrinsics": known_intrinsics, "seeds": seeds}
    rows = []
    for m in matchers:
        per_scene = {}
        for scene in scenes:
            r = bench_scene(scene, m, out / scene.name / matcher_dirname(m), overrides, overwrite,
                            known_intrinsics, seeds)
            per_scene[scene.name] = r
            rows.append([m, scene.name, f"{r['num_registered']}/{r['num_gt_images']}",
                         r["median_rotation_error_deg"], r["median_position_error"], r["auc@5"], r["auc@10"],
                         r["auc@20"], r["wall_s"], r["peak_memory_mb"]])
        results["matchers"][m] = {"scenes": per_scene}
    title = "SfM benchmark" + (" (known intrinsics)" if known_intrinsics else "")
    write_report(out, results, title + (f", median over {seeds} mapping seeds" if seeds > 1 else ""),
                 ["matcher", "scene", "registered", "med. rot err (deg)", "med. pos err", "AUC@5", "AUC@10",
                  "AUC@20", "time (s)", "peak mem (MB)"], rows)


@bench_app.command("sfm-compare")
def sfm_compare_cmd(
    results: list[Path] = typer.Argument(..., help="`bench sfm` output folders, pooled by scene (one protocol)"),
    a: str = typer.Option(..., "--a", help="matcher A, as named in the results"),
    b: str = typer.Option("sift-nn", "--b", help="matcher B, as named in the results"),
    metric: str = typer.Option("auc@5", "--metric", help="per-scene metric: auc@5|auc@10|auc@20|registration_rate"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="also write the comparison to this JSON file"),
) -> None:
    """Per-scene METRIC of A minus B over many scenes: median (robust to one bent model), mean, wins/losses."""
    import json

    from ..bench.report import print_table
    from ..bench.sfm import compare_scenes

    r = compare_scenes(results, a, b, metric)
    rows = [[s, x, y, x - y] for s, x, y in zip(r["scenes"], r["a_scores"], r["b_scores"])]
    print_table(f"{metric}: {a} vs {b}", ["scene", "A", "B", "A - B"], rows)
    typer.echo(f"{len(rows)} scenes: median A - B {r['median_diff']:+.2f}, mean {r['mean_diff']:+.2f}, "
               f"A better on {r['wins']}, worse on {r['losses']}"
               + (f"; only A: {', '.join(r['only_a'])}" if r["only_a"] else "")
               + (f"; only B: {', '.join(r['only_b'])}" if r["only_b"] else ""))
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(r, indent=1))
