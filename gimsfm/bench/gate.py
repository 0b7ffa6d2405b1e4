"""The CI regression gate: a small, fixed selection of the pose and homography suites, run for every
registered and available matcher, compared with a stored baseline.

A score that falls more than the tolerance below its baseline fails the gate (exit 1, with the table of what
dropped). Matchers without a baseline entry (newly registered) and baseline matchers that are not available
here are reported, not failed. `--update` rewrites the baseline deliberately (other matchers' entries kept).
"""
from __future__ import annotations

import json
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

from .. import logger
from ..errors import InputError
from .common import available_matcher_names, resolve_matcher_names
from .datasets import load_homography_dataset, load_pose_dataset
from .homography import HomographyEvalConfig, run_homography_benchmark
from .report import environment, markdown_table, print_table
from .suites import data_root
from .zeb import PoseEvalConfig, run_pose_benchmark

DEFAULT_BASELINE = Path(__file__).parent / "baselines" / "gate.json"
GATE_VERSION = 1
# CI-sized: ~40 pose pairs of three domains (driving, indoor handheld, object turntable) + 12 homography pairs.
SELECTION: dict[str, Any] = {
    "pose": {"sets": ["kitti00", "tum_fr2_desk", "middlebury_temple"], "max_pairs": 14},
    "homography": {"sets": ["hpatches_v_churchill", "oxford_graf", "homogr_boat", "homogr_adam"],
                   "max_pairs": 5},
}
POSE_KEYS = ("auc@5", "auc@10", "auc@20")
HOMOGRAPHY_KEYS = ("auc@3", "auc@5", "auc@10")


def _configs() -> tuple[PoseEvalConfig, HomographyEvalConfig]:
    return (PoseEvalConfig(max_pairs=SELECTION["pose"]["max_pairs"]),
            HomographyEvalConfig(max_pairs=SELECTION["homography"]["max_pairs"]))


def gate_spec() -> dict[str, Any]:
    """What the scores depend on besides the matcher; a baseline made with another spec is not comparable."""
    pose_cfg, homog_cfg = _configs()
    return {"version": GATE_VERSION, "selection": SELECTION, "pose_config": asdict(pose_cfg),
            "homography_config": asdict(homog_cfg)}


def _gate_data() -> tuple[list[Path], list[Path]]:
    root = data_root()
    pose = [root / "pose" / n for n in SELECTION["pose"]["sets"]]
    homog = [root / "homography" / n for n in SELECTION["homography"]["sets"]]
    missing = [p for p in pose + homog if not p.is_dir()]
    if missing:
        raise InputError(f"the gate needs the shared data ({missing[0]} not found; set GIMSFM_DATA)")
    return pose, homog


def run_gate_scores(matchers: Sequence[str], out: Path) -> dict[str, Any]:
    """Scores of the gate selection: {matcher: {"pose": {ds|mean: {auc..}}, "homography": {...}}}."""
    pose_dirs, homog_dirs = _gate_data()
    pose_cfg, homog_cfg = _configs()
    pose = run_pose_benchmark([load_pose_dataset(p) for p in pose_dirs], matchers, out / "pose", pose_cfg,
                              title="Gate: relative pose", benchmark="gate-pose")
    homog = run_homography_benchmark([load_homography_dataset(p) for p in homog_dirs], matchers, out / "homography",
                                     homog_cfg)
    scores: dict[str, Any] = {}
    for m in matchers:
        pe, he = pose["matchers"][m], homog["matchers"][m]
        scores[m] = {
            "pose": {**{d: {k: s[k] for k in POSE_KEYS} for d, s in pe["datasets"].items()},
                     "mean": {k: pe["mean"][k] for k in POSE_KEYS}},
            "homography": {**{d: {k: s[k] for k in HOMOGRAPHY_KEYS} for d, s in he["datasets"].items()},
                           "mean": {k: he["mean"][k] for k in HOMOGRAPHY_KEYS}},
            "sec_per_pair": {"pose": pe["sec_per_pair"], "homography": he["sec_per_pair"]},
        }
    return scores


def compare(baseline: dict[str, Any], scores: dict[str, Any], tolerance: float, dataset_tolerance: float
            ) -> tuple[bool, list[list[Any]], list[str]]:
    """(passed, rows of every score that dropped beyond its tolerance, notes)."""
    drops: list[list[Any]] = []
    notes: list[str] = []
    base_m = baseline.get("matchers", {})
    for m, sc in scores.items():
        if m not in base_m:
            notes.append(f"{m}: no baseline entry (new matcher): not gated; add it with --update")
            continue
        for bench in ("pose", "homography"):
            for ds, vals in sc[bench].items():
                ref = base_m[m].get(bench, {}).get(ds)
                if ref is None:
                    notes.append(f"{m}/{bench}/{ds}: no baseline value")
                    continue
                tol = tolerance if ds == "mean" else dataset_tolerance
                for k, v in vals.items():
                    if k in ref and ref[k] - v > tol:
                        drops.append([m, bench, ds, k, ref[k], v, round(v - ref[k], 2), tol])
    for m in base_m:
        if m not in scores:
            notes.append(f"{m}: in the baseline but not run here (not registered or not available)")
    return not drops, drops, notes


def run_gate(baseline_path: Path, matchers: Sequence[str] | None = None, out: Path | None = None,
             tolerance: float = 1.0, dataset_tolerance: float = 5.0, update: bool = False,
             baselined_only: bool = False) -> bool:
    """Run the gate; returns True when nothing dropped (or after --update).

    `baselined_only` skips available matchers that have no baseline entry (they could only be reported, and
    a learned matcher costs seconds per pair on CPU): CI uses it to stay fast.
    """
    baseline_path = Path(baseline_path)
    baseline: dict[str, Any] = {}
    if baseline_path.exists():
        try:
            baseline = json.loads(baseline_path.read_text())
        except json.JSONDecodeError:
            raise InputError(f"baseline {baseline_path} is not valid JSON") from None
    elif not update:
        raise InputError(f"no baseline at {baseline_path}; create it with `gimsfm bench gate --update`")
    names = resolve_matcher_names(matchers, add_baseline=False) if matchers else available_matcher_names()
    if baselined_only and not update:
        skipped = [n for n in names if n not in baseline.get("matchers", {})]
        for n in skipped:
            logger.warning("gate: %s has no baseline entry: skipped (add it with --update)", n)
        names = [n for n in names if n not in skipped]
    if not names:
        raise InputError("no registered matcher is available" + (" with a baseline entry" if baselined_only else ""))
    spec = gate_spec()
    if baseline and not update and baseline.get("spec") != json.loads(json.dumps(spec)):
        raise InputError(f"baseline {baseline_path} was made with another gate selection or configuration; "
                         "re-create it with --update")

    t0 = time.perf_counter()
    tmp = None
    if out is None:
        tmp = tempfile.TemporaryDirectory(prefix="gimsfm-gate-")
        out = Path(tmp.name)
    try:
        scores = run_gate_scores(names, Path(out))
    finally:
        if tmp is not None:
            tmp.cleanup()
    wall = time.perf_counter() - t0

    if update:
        kept = baseline.get("matchers", {}) if baseline.get("spec") == json.loads(json.dumps(spec)) else {}
        new = {"spec": spec, "created": environment(), "gate_wall_sec": round(wall, 1),
               "matchers": {**kept, **scores}}
        baseline_path.parent.mkdir(parents=True, exist_ok=True)
        baseline_path.write_text(json.dumps(new, indent=1) + "\n")
        logger.info("gate baseline written to %s (%s) in %.1f s", baseline_path, ", ".join(scores), wall)
        return True

    passed, drops, notes = compare(baseline, scores, tolerance, dataset_tolerance)
    for n in notes:
        logger.warning("gate: %s", n)
    header = ["matcher", "benchmark", "dataset", "metric", "baseline", "now", "change", "tolerance"]
    if tmp is None:  # the user asked to keep the outputs
        (Path(out) / "gate.json").write_text(json.dumps({"passed": passed, "wall_sec": round(wall, 1), "drops": drops,
                                                         "notes": notes, "scores": scores}, indent=1))
        (Path(out) / "gate.md").write_text(f"# Gate {'passed' if passed else 'FAILED'}\n\n"
                                           + (markdown_table(header, drops) if drops else "No score dropped.\n")
                                           + "".join(f"\n- {n}" for n in notes) + "\n")
    if drops:
        print_table("Gate FAILED: scores below the baseline", header, drops)
    else:
        base_m = baseline.get("matchers", {})
        rows = [[m, b, "mean", k, base_m[m][b]["mean"][k], v, round(v - base_m[m][b]["mean"][k], 2), tolerance]
                for m in scores if m in base_m for b in ("pose", "homography")
                for k, v in scores[m][b]["mean"].items() if k in base_m[m][b].get("mean", {})]
        print_table("Gate passed", header, rows)
    logger.info("gate %s in %.1f s (%s)", "passed" if passed else "FAILED", wall, ", ".join(names))
    return passed
