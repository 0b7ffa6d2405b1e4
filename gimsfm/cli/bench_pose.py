"""`gimsfm bench zeb | ceiling | homography | indomain | gate`: two-view benchmarks and the CI regression gate."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ..errors import InputError
from ..geometry import ESTIMATORS
from . import bench_app

MATCHER_HELP = (r"registered matcher, NAME[:WEIGHTS]\[@KEY=VALUE,...] (repeatable); sift-nn is added as the "
                "reference unless --no-baseline")
# Options shared by the pair benchmarks (one definition, same flags and help everywhere).
MATCHER_OPT = typer.Option(None, "--matcher", help=MATCHER_HELP)
ESTIMATOR_OPT = typer.Option("opencv-ransac", "--estimator", help=f"one of {', '.join(ESTIMATORS)}")
SEED_OPT = typer.Option(0, "--seed")
MAX_SIDE_OPT = typer.Option(1600, "--max-side", help="cap on the long side of images given to the matcher; 0 = none")
# One keypoint budget for every sparse matcher, sift-nn included, so a comparison is fair by default.
MAX_KEYPOINTS_OPT = typer.Option(2048, "--max-keypoints", help="keypoints per image for every sparse matcher, "
                                 "sift-nn included (0 = each matcher's own default)")
NO_BASELINE_OPT = typer.Option(False, "--no-baseline", help="do not add sift-nn for comparison")
MAX_PAIRS_OPT = typer.Option(0, "--max-pairs", help="evaluate at most this many pairs per data set (0 = all)")
OVERWRITE_OPT = typer.Option(False, "--overwrite", help="recompute features and matches (drop the cache)")
CACHE_OPT = typer.Option(None, "--cache", help="feature/match cache folder (default OUT/cache); share it between "
                         "runs that differ only in estimation settings")


def _check_estimator(name: str) -> str:
    if name not in ESTIMATORS:
        raise InputError(f"unknown estimator '{name}'; choose one of {', '.join(ESTIMATORS)}")
    return name


def _max_side(value: int) -> int | None:
    return value if value and value > 0 else None


@bench_app.command("zeb")
def zeb_cmd(
    data: Optional[List[Path]] = typer.Option(None, "--data",
                                              help="ZEB-format folder (pairs.txt + images); repeatable"),
    suite: Optional[str] = typer.Option(None, "--suite", help="named suite: zeb-lite-real, zeb-lite-synth, zeb-lite"),
    matcher: Optional[List[str]] = MATCHER_OPT,
    out: Path = typer.Option(..., "--out", help="output folder (results.json, results.md, pose_curves.png, cache/)"),
    threshold: float = typer.Option(0.5, "--threshold", help="RANSAC threshold in pixels (ZEB: 0.5)"),
    estimator: str = ESTIMATOR_OPT,
    confidence: float = typer.Option(0.99999, "--confidence"),
    max_iters: int = typer.Option(1000, "--max-iters", help="RANSAC iterations (ZEB: OpenCV default 1000)"),
    seed: int = SEED_OPT,
    ransac_runs: int = typer.Option(1, "--ransac-runs", min=1, help="estimate every pair this many times (seeds "
                                    "SEED, SEED+1, ...): run 0 is the protocol's score, the mean over runs its "
                                    "expectation over RANSAC's sampling (`bench compare --runs`)"),
    max_side: int = MAX_SIDE_OPT,
    max_keypoints: int = MAX_KEYPOINTS_OPT,
    max_pairs: int = MAX_PAIRS_OPT,
    no_baseline: bool = NO_BASELINE_OPT,
    cache: Optional[Path] = CACHE_OPT,
    overwrite: bool = OVERWRITE_OPT,
) -> None:
    """ZEB relative-pose protocol: AUC@5/10/20 of max(R, t) angular error, mean over data sets, mean rank."""
    from ..bench.suites import resolve_data
    from ..bench.zeb import PoseEvalConfig, run_zeb

    paths = resolve_data(data, suite, "pose", default_suite=None)
    cfg = PoseEvalConfig(threshold, _check_estimator(estimator), confidence, max_iters, seed, _max_side(max_side),
                         max_pairs or None, max_keypoints or None, ransac_runs)
    run_zeb(paths, matcher, out, cfg, add_baseline=not no_baseline, overwrite=overwrite, cache=cache)


@bench_app.command("ceiling")
def ceiling_cmd(
    data: Optional[List[Path]] = typer.Option(None, "--data", help="ZEB-format folder with depth/<stem>.npy "
                                              "(a `gimsfm synth pairs` output); repeatable"),
    suite: Optional[str] = typer.Option(None, "--suite", help="named suite with depth GT: zeb-lite-synth"),
    matcher: Optional[List[str]] = MATCHER_OPT,
    out: Path = typer.Option(..., "--out", help="output folder (results.json, results.md, per_pair.json)"),
    pos_th: float = typer.Option(3.0, "--pos-th", help="px: a match is correct within this distance of the GT "
                                 "projection"),
    threshold: float = typer.Option(0.5, "--threshold", help="RANSAC threshold in pixels (as bench zeb)"),
    estimator: str = ESTIMATOR_OPT,
    max_iters: int = typer.Option(1000, "--max-iters", help="RANSAC iterations (as bench zeb)"),
    seed: int = SEED_OPT,
    max_side: int = MAX_SIDE_OPT,
    max_keypoints: int = MAX_KEYPOINTS_OPT,
    max_pairs: int = MAX_PAIRS_OPT,
    no_baseline: bool = NO_BASELINE_OPT,
    cache: Optional[Path] = CACHE_OPT,
    overwrite: bool = OVERWRITE_OPT,
) -> None:
    """Match precision and pose ceilings on depth-GT pose sets: how far each matcher is from what its
    keypoints allow (every GT correspondence, or the GT ones that are descriptor nearest neighbours)."""
    from ..bench.ceiling import run_ceiling
    from ..bench.suites import resolve_data
    from ..bench.zeb import PoseEvalConfig

    if pos_th <= 0:
        raise InputError(f"--pos-th must be positive, not {pos_th}")
    paths = resolve_data(data, suite, "pose", default_suite=None)
    cfg = PoseEvalConfig(threshold, _check_estimator(estimator), 0.99999, max_iters, seed, _max_side(max_side),
                         max_pairs or None, max_keypoints or None)
    run_ceiling(paths, matcher, out, cfg, pos_th, add_baseline=not no_baseline, overwrite=overwrite, cache=cache)


@bench_app.command("homography")
def homography_cmd(
    data: Optional[List[Path]] = typer.Option(None, "--data", help="HPatches-layout sequence folder; repeatable "
                                              "(default: every set under shared/data/homography)"),
    suite: Optional[str] = typer.Option(None, "--suite", help="named suite: homography-lite"),
    matcher: Optional[List[str]] = MATCHER_OPT,
    out: Path = typer.Option(..., "--out", help="output folder"),
    threshold: float = typer.Option(3.0, "--threshold", help="RANSAC reprojection threshold in pixels"),
    estimator: str = ESTIMATOR_OPT,
    confidence: float = typer.Option(0.99999, "--confidence"),
    max_iters: int = typer.Option(10000, "--max-iters"),
    seed: int = SEED_OPT,
    max_side: int = MAX_SIDE_OPT,
    max_keypoints: int = MAX_KEYPOINTS_OPT,
    max_pairs: int = typer.Option(0, "--max-pairs", help="at most this many pairs per sequence (0 = all)"),
    no_baseline: bool = NO_BASELINE_OPT,
    cache: Optional[Path] = CACHE_OPT,
    overwrite: bool = typer.Option(False, "--overwrite", help="recompute features and matches (drop the cache)"),
) -> None:
    """Homography estimation: corner-error AUC@3/5/10 px and mean corner error, per sequence and mean."""
    from ..bench.homography import HomographyEvalConfig, run_homography
    from ..bench.suites import resolve_data

    paths = resolve_data(data, suite, "homography", default_suite="homography-lite")
    cfg = HomographyEvalConfig(threshold, _check_estimator(estimator), confidence, max_iters, seed,
                               _max_side(max_side), max_pairs or None, max_keypoints or None)
    run_homography(paths, matcher, out, cfg, add_baseline=not no_baseline, overwrite=overwrite, cache=cache)


@bench_app.command("patches")
def patches_cmd(
    data: Optional[List[Path]] = typer.Option(None, "--data", help="HPatches-layout sequence folder; repeatable"),
    suite: Optional[str] = typer.Option(None, "--suite", help="named suite: homography-lite (the default)"),
    matcher: Optional[List[str]] = MATCHER_OPT,
    out: Path = typer.Option(..., "--out", help="output folder"),
    max_keypoints: int = MAX_KEYPOINTS_OPT,
    pos_px: float = typer.Option(3.0, "--pos-px", help="GT: keypoints mutual nearest within this after H"),
    device: str = typer.Option("auto", "--device"),
    no_baseline: bool = NO_BASELINE_OPT,
) -> None:
    """Descriptors alone at the same DoG keypoints: HPatches-style matching mAP, MMA@3px, recall, ms/image."""
    from ..bench.patches import run_patch_benchmark
    from ..bench.suites import resolve_data

    paths = resolve_data(data, suite, "homography", default_suite="homography-lite")
    run_patch_benchmark(paths, matcher, out, max_keypoints or 2048, pos_px, device, add_baseline=not no_baseline)


@bench_app.command("indomain")
def indomain_cmd(
    data: Optional[List[Path]] = typer.Option(None, "--data", help="ZEB-format folder of a training domain's "
                                              "validation split (its val/ subfolder is used when present)"),
    megadepth1500: Optional[Path] = typer.Option(None, "--megadepth1500", help="MegaDepth-1500 image root "
                                                 "(image_paths of the scene-info files are relative to it)"),
    megadepth_scene_info: Optional[List[Path]] = typer.Option(None, "--megadepth-scene-info",
                                                              help="LoFTR scene-info .npz file or folder; repeatable "
                                                              "(default: ROOT/scene_info)"),
    scannet1500: Optional[Path] = typer.Option(None, "--scannet1500", help="ScanNet-1500 image root"),
    scannet_pairs: Optional[Path] = typer.Option(None, "--scannet-pairs", help="SuperGlue-style pair list with GT "
                                                 "(default: ROOT/scannet_test_pairs_with_gt.txt)"),
    matcher: Optional[List[str]] = MATCHER_OPT,
    out: Path = typer.Option(..., "--out", help="output folder"),
    threshold: float = typer.Option(0.5, "--threshold", help="RANSAC threshold in pixels"),
    estimator: str = ESTIMATOR_OPT,
    max_iters: int = typer.Option(1000, "--max-iters"),
    seed: int = SEED_OPT,
    max_side: int = MAX_SIDE_OPT,
    max_keypoints: int = MAX_KEYPOINTS_OPT,
    max_pairs: int = typer.Option(0, "--max-pairs", help="at most this many pairs per data set (0 = all)"),
    no_baseline: bool = NO_BASELINE_OPT,
    cache: Optional[Path] = CACHE_OPT,
    overwrite: bool = typer.Option(False, "--overwrite"),
) -> None:
    """ZEB-style pose AUC on in-domain data: a validation split, MegaDepth-1500, ScanNet-1500."""
    from ..bench.indomain import run_indomain
    from ..bench.zeb import PoseEvalConfig

    cfg = PoseEvalConfig(threshold, _check_estimator(estimator), 0.99999, max_iters, seed, _max_side(max_side),
                         max_pairs or None, max_keypoints or None)
    run_indomain(data or [], megadepth1500, megadepth_scene_info or [], scannet1500, scannet_pairs, matcher, out,
                 cfg, add_baseline=not no_baseline, overwrite=overwrite, cache=cache)


@bench_app.command("compare")
def compare_cmd(
    results: List[Path] = typer.Argument(..., help="output folder(s) of `bench zeb` / `bench indomain` (their "
                                         "per_pair.json); several folders are pooled as one set of data sets"),
    a: List[str] = typer.Option(..., "--a", help="matcher A, as named in the results; repeatable: one summary "
                                "row per matcher (e.g. an ablation table)"),
    b: str = typer.Option("sift-nn", "--b", help="matcher B, as named in the results"),
    n_boot: int = typer.Option(2000, "--n-boot", help="bootstrap replicates"),
    runs: bool = typer.Option(False, "--runs", help="compare the AUC averaged over each pair's repeated RANSAC "
                              "estimates (results of `bench zeb --ransac-runs K`)"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="also write the differences to this JSON file"),
) -> None:
    """Mean AUC of A minus B on the same pairs, with a 95 % paired bootstrap interval (is it more than luck?)."""
    import json

    from ..bench.compare import compare_many, compare_results

    res = (compare_results(results, a[0], b, n_boot, runs) if len(a) == 1
           else compare_many(results, a, b, n_boot, runs))
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(res, indent=1))


@bench_app.command("table")
def table_cmd(
    spec: Path = typer.Argument(..., help="table spec (YAML: rows = label + matcher, columns = result folders "
                                "and AUC thresholds or a 'minus' matcher), e.g. pipelines/tables/ablations.yaml"),
    out: Optional[Path] = typer.Option(None, "--out", help="also write the table as Markdown to this file"),
    n_boot: int = typer.Option(2000, "--n-boot", help="bootstrap replicates of the difference columns"),
) -> None:
    """A results table (e.g. the ablation table) rebuilt from stored bench zeb / indomain per-pair results."""
    from ..bench.table import build_table

    build_table(spec, out, n_boot=n_boot)


@bench_app.command("gate")
def gate_cmd(
    baseline: Optional[Path] = typer.Option(None, "--baseline", help="baseline JSON (default: the stored "
                                            "gimsfm/bench/baselines/gate.json)"),
    update: bool = typer.Option(False, "--update", help="rewrite the baseline with this run's scores"),
    tolerance: float = typer.Option(1.0, "--tolerance", help="allowed drop of a mean score (AUC points)"),
    dataset_tolerance: float = typer.Option(5.0, "--dataset-tolerance",
                                            help="allowed drop of a single data set's score (AUC points)"),
    matcher: Optional[List[str]] = typer.Option(None, "--matcher", help="gate only these matchers "
                                                "(default: every registered, available matcher)"),
    out: Optional[Path] = typer.Option(None, "--out", help="keep the run's outputs here (default: a temp folder)"),
    baselined_only: bool = typer.Option(False, "--baselined-only", help="skip available matchers without a "
                                        "baseline entry instead of running and reporting them (fast CI)"),
) -> None:
    """Regression gate: CI-sized pose + homography selection vs a stored baseline; exit 1 on a drop."""
    from ..bench.gate import DEFAULT_BASELINE, run_gate

    passed = run_gate(baseline or DEFAULT_BASELINE, matcher, out, tolerance, dataset_tolerance, update, baselined_only)
    if not passed:
        raise typer.Exit(1)
