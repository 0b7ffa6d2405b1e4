"""`gimsfm match IMG0 IMG1`: matches, a robust two-view model, its inliers, and pictures of both."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import List, Optional

import cv2
import numpy as np
import typer

from .. import logger
from ..errors import InputError
from ..geometry import ESTIMATORS, GEOMETRIES, TwoViewModel, estimate_two_view
from . import app


def parse_intrinsics(text: str) -> np.ndarray:
    """K from 'fx,fy,cx,cy', 'f,cx,cy', nine numbers (row-major 3x3), or a text file holding one of those."""
    src = text
    try:
        [float(v) for v in text.replace(",", " ").split()]
    except ValueError:  # not a list of numbers: a file
        p = Path(text)
        if not p.is_file():
            raise InputError(f"intrinsics file not found: {text}") from None
        src = p.read_text()
    try:
        vals = [float(v) for v in src.replace(",", " ").split()]
    except ValueError:
        raise InputError(f"cannot parse intrinsics '{text[:60]}': expected fx,fy,cx,cy or a 3x3 K file") from None
    if len(vals) == 9:
        K = np.array(vals, np.float64).reshape(3, 3)
    elif len(vals) == 4:
        K = np.array([[vals[0], 0, vals[2]], [0, vals[1], vals[3]], [0, 0, 1]], np.float64)
    elif len(vals) == 3:
        K = np.array([[vals[0], 0, vals[1]], [0, vals[0], vals[2]], [0, 0, 1]], np.float64)
    else:
        raise InputError(f"intrinsics need 3 (f,cx,cy), 4 (fx,fy,cx,cy) or 9 values, got {len(vals)}")
    if K[0, 0] <= 0 or K[1, 1] <= 0 or not np.isfinite(K).all():
        raise InputError(f"invalid intrinsics (focal lengths must be positive): {text[:60]}")
    return K


def _side_by_side(im0: np.ndarray, im1: np.ndarray) -> tuple[np.ndarray, float, float, int]:
    """Both images scaled to a common height (<= 720), side by side, BGR; returns canvas, scales, x offset."""
    h = min(720, max(im0.shape[0], im1.shape[0]))
    s0, s1 = h / im0.shape[0], h / im1.shape[0]
    a = cv2.resize(im0, (round(im0.shape[1] * s0), h), interpolation=cv2.INTER_AREA)
    b = cv2.resize(im1, (round(im1.shape[1] * s1), h), interpolation=cv2.INTER_AREA)
    canvas = np.concatenate([a, np.full((h, 10, 3), 255, np.uint8), b], 1)
    return cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR), s0, s1, a.shape[1] + 10


def draw_matches(path: Path, im0: np.ndarray, im1: np.ndarray, k0: np.ndarray, k1: np.ndarray,
                 inliers: np.ndarray, max_lines: int = 1500) -> None:
    """Matches as lines: inliers green, outliers red (a deterministic subset if there are very many)."""
    canvas, s0, s1, off = _side_by_side(im0, im1)
    idx = np.arange(len(k0))
    if len(idx) > max_lines:
        idx = idx[np.linspace(0, len(idx) - 1, max_lines).astype(int)]
    # Outliers first so inliers stay visible on top.
    for i in sorted(idx, key=lambda j: bool(inliers[j])):
        color = (0, 200, 0) if inliers[i] else (0, 0, 230)
        p0 = (int(round(k0[i, 0] * s0)), int(round(k0[i, 1] * s0)))
        p1 = (int(round(k1[i, 0] * s1)) + off, int(round(k1[i, 1] * s1)))
        cv2.line(canvas, p0, p1, color, 1, cv2.LINE_AA)
        cv2.circle(canvas, p0, 2, color, -1, cv2.LINE_AA)
        cv2.circle(canvas, p1, 2, color, -1, cv2.LINE_AA)
    text = f"{int(inliers.sum())} inliers / {len(k0)} matches"
    cv2.putText(canvas, text, (10, 25), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(canvas, text, (10, 25), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 1, cv2.LINE_AA)
    if not cv2.imwrite(str(path), canvas):
        raise InputError(f"cannot write {path}")


def draw_warp_overlay(path: Path, im0: np.ndarray, im1: np.ndarray, H: np.ndarray) -> None:
    """Image 0 warped by H into image 1's frame, blended 50/50 with image 1 (checks alignment by eye)."""
    h, w = im1.shape[:2]
    warped = cv2.warpPerspective(im0, H, (w, h), flags=cv2.INTER_LINEAR)
    valid = cv2.warpPerspective(np.ones(im0.shape[:2], np.uint8), H, (w, h)) > 0
    blend = im1.copy()
    blend[valid] = (0.5 * im1[valid] + 0.5 * warped[valid]).astype(np.uint8)
    if not cv2.imwrite(str(path), cv2.cvtColor(blend, cv2.COLOR_RGB2BGR)):
        raise InputError(f"cannot write {path}")


@app.command("match")
def match_cmd(
    image0: Path = typer.Argument(..., help="first image"),
    image1: Path = typer.Argument(..., help="second image"),
    out: Path = typer.Option(..., "--out", help="output folder (matches.json, matches.png, warp_overlay.png)"),
    matcher: str = typer.Option("sift-lightglue-gim", "--matcher",
                                help="registered matcher, NAME[:WEIGHTS]\\[@KEY=VALUE,...] (see gimsfm matchers)"),
    geometry: Optional[str] = typer.Option(None, "--geometry", help="essential | fundamental | homography "
                                           "(default: essential with --intrinsics, else fundamental)"),
    intrinsics: Optional[List[str]] = typer.Option(None, "--intrinsics", help="'fx,fy,cx,cy', 'f,cx,cy', 9 values or a "
                                                   "K.txt; once for both images or twice (image 0, image 1)"),
    estimator: str = typer.Option("opencv-magsac", "--estimator", help=f"one of {', '.join(ESTIMATORS)}"),
    threshold: Optional[float] = typer.Option(None, "--threshold", help="inlier threshold in pixels "
                                              "(default 0.5 essential, 1.0 fundamental, 3.0 homography)"),
    confidence: Optional[float] = typer.Option(None, "--confidence"),
    max_iters: int = typer.Option(10000, "--max-iters"),
    seed: int = typer.Option(0, "--seed"),
    max_side: int = typer.Option(1600, "--max-side", help="cap on the long side given to the matcher; 0 = none"),
) -> None:
    """Match two images and fit a robust two-view model; writes DIR/matches.json and pictures."""
    from ..bench.matching import load_capped, to_original
    from ..matchers import get_matcher
    from ..matchers.registry import parse_matcher_spec

    parse_matcher_spec(matcher)  # a bad --matcher (name, weights, options) fails before any image is read
    Ks = [parse_intrinsics(s) for s in (intrinsics or [])]
    if len(Ks) > 2:
        raise InputError("--intrinsics is given at most twice (image 0, image 1)")
    if len(Ks) == 1:
        Ks = Ks * 2
    geometry = geometry or ("essential" if Ks else "fundamental")
    if geometry not in GEOMETRIES:
        raise InputError(f"unknown geometry '{geometry}'; choose one of {', '.join(GEOMETRIES)}")
    if geometry == "essential" and not Ks:
        raise InputError("--geometry essential needs --intrinsics")
    if estimator not in ESTIMATORS:
        raise InputError(f"unknown estimator '{estimator}'; choose one of {', '.join(ESTIMATORS)}")
    if threshold is None:
        threshold = {"essential": 0.5, "fundamental": 1.0, "homography": 3.0}[geometry]
    cap = max_side if max_side > 0 else None
    im0, sc0, _ = load_capped(image0, cap)
    im1, sc1, _ = load_capped(image1, cap)
    m = get_matcher(matcher)
    t0 = time.perf_counter()
    pm = m.match_images(im0, im1)
    t_match = time.perf_counter() - t0
    k0, k1 = to_original(pm.kpts0, sc0).astype(np.float64), to_original(pm.kpts1, sc1).astype(np.float64)
    t0 = time.perf_counter()
    K0, K1 = (Ks[0], Ks[1]) if Ks else (None, None)
    model: TwoViewModel = estimate_two_view(geometry, k0, k1, K0, K1, threshold, estimator, confidence=confidence,
                                            max_iters=max_iters, seed=seed)
    t_est = time.perf_counter() - t0
    if not model.success:
        logger.warning("no %s model found (%d matches): %s", geometry, len(k0), model.info.get("reason", ""))

    out.mkdir(parents=True, exist_ok=True)
    from ..utils.io import read_image

    full0, full1 = read_image(image0), read_image(image1)
    draw_matches(out / "matches.png", full0, full1, k0, k1, model.inliers)
    pictures = ["matches.png"]
    if geometry == "homography" and model.success:
        draw_warp_overlay(out / "warp_overlay.png", full0, full1, model.matrix)
        pictures.append("warp_overlay.png")
    model_json = model.to_json()
    if Ks:
        model_json["K0"], model_json["K1"] = Ks[0].tolist(), Ks[1].tolist()
    result = {
        "image0": str(image0), "image1": str(image1), "matcher": matcher, "geometry": geometry,
        "estimator": estimator, "threshold_px": threshold, "seed": seed,
        "image_size0": [int(full0.shape[1]), int(full0.shape[0])],
        "image_size1": [int(full1.shape[1]), int(full1.shape[0])],
        "num_matches": int(len(k0)), "num_inliers": model.num_inliers,
        "seconds": {"match": round(t_match, 4), "estimate": round(t_est, 5)},
        "kpts0": np.round(k0, 3).tolist(), "kpts1": np.round(k1, 3).tolist(),
        "scores": np.round(np.asarray(pm.scores, np.float64), 5).tolist(),
        "inliers": model.inliers.astype(bool).tolist(),
        "model": model_json, "pictures": pictures,
    }
    (out / "matches.json").write_text(json.dumps(result))
    msg = f"{len(k0)} matches, {model.num_inliers} {geometry} inliers ({estimator})"
    if model.R is not None:
        from ..geometry import rotation_angle

        msg += f"; relative rotation {rotation_angle(model.R):.2f} deg, t = {np.round(model.t, 3).tolist()}"
    typer.echo(f"{msg}; wrote {out / 'matches.json'}")
