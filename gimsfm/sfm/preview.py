"""preview.png: the model as a person would photograph it: coloured points from an oblique viewpoint behind
the cameras, in perspective and depth order, framed to fill the picture, frustums drawn, and a caption."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pycolmap

from .. import logger
from .scene_view import (DrawnCamera, focus_points, frustum_size, frustum_vertices, model_cameras, oblique_view,
                         points_and_colors, scene_up, subsample)

MAX_POINTS = 150_000  # a random subset above this: the picture looks the same and stays a second or two
BACKGROUND = "#15171c"
CAMERA_COLOR = "#ff5a36"
# Cameras framed: those within this many cloud radii, the first that leaves the points' box at least
# MIN_POINTS_AREA of the picture (photographers standing far away rather leave the frame).
REACHES = (np.inf, 2.5, 1.6, 1.0, 0.0)
MIN_POINTS_AREA = 0.15
# (elevation, azimuth) candidates; None: the default elevation (steeper for forward-moving sequences).
VIEWPOINTS = [(None, 25.0), (None, -25.0), (None, 50.0), (None, -50.0), (20.0, 40.0), (50.0, 25.0)]
FRUSTUM_EDGES = [(0, 1), (0, 2), (0, 3), (0, 4), (1, 2), (2, 3), (3, 4), (4, 1)]


class _View:
    """A pinhole looking along `forward`, placed and zoomed so `focus` fills a width x height picture."""

    def __init__(self, forward: np.ndarray, up: np.ndarray, points: np.ndarray, cameras: np.ndarray, width: int,
                 height: int, margin: float = 0.04, distance: float = 2.6):
        """`points`: frame their central 99 %; `cameras` (frustum vertices): frame all of them."""
        right = np.cross(forward, up)
        right /= np.linalg.norm(right)
        self.R = np.stack([right, np.cross(forward, right), forward])  # rows: x right, y down, z forward
        focus = np.vstack([points, cameras])
        mid = (focus.min(0) + focus.max(0)) / 2
        radius = float(np.linalg.norm(focus.max(0) - focus.min(0))) / 2 or 1.0
        self.eye = mid - distance * radius * forward
        self.near = 0.1 * radius
        boxes = []
        for xyz, q in ((points, 0.005), (cameras, 0.0)):
            uv, z = self._normalized(xyz)
            uv = uv[z > self.near]
            if len(uv):
                boxes += [np.quantile(uv, q, 0), np.quantile(uv, 1 - q, 0)]
        lo, hi = (np.min(boxes, 0), np.max(boxes, 0)) if boxes else (-np.ones(2), np.ones(2))
        span = np.maximum(hi - lo, 1e-9)
        self.f = min(width * (1 - 2 * margin) / span[0], height * (1 - 2 * margin) / span[1])
        self.c = np.array([width, height]) / 2 - self.f * (lo + hi) / 2

    def _normalized(self, xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cam = (xyz - self.eye) @ self.R.T
        z = cam[:, 2]
        return cam[:, :2] / np.maximum(z, 1e-9)[:, None], z

    def project(self, xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixel coordinates and depth (points at or behind `near` get depth <= near)."""
        uv, z = self._normalized(xyz)
        return uv * self.f + self.c, z


def _draw_cameras(ax, view: _View, cams: list[DrawnCamera], size: float, color: str) -> None:
    from matplotlib.collections import LineCollection

    segments = []
    for cam in cams:
        px, z = view.project(frustum_vertices(cam, size))
        if (z > view.near).all():
            segments += [(px[a], px[b]) for a, b in FRUSTUM_EDGES]
    ax.add_collection(LineCollection(segments, colors=color, linewidths=1.3, alpha=0.95, zorder=3))


def _coverage(view: _View, xyz: np.ndarray, width: int, height: int, cells: int = 24) -> tuple[float, float]:
    """(fraction of a grid over the picture holding points, fraction of the picture in the points' box)."""
    uv, z = view.project(xyz)
    uv = uv[(z > view.near) & (uv[:, 0] >= 0) & (uv[:, 0] < width) & (uv[:, 1] >= 0) & (uv[:, 1] < height)]
    if len(uv) < 2:
        return 0.0, 0.0
    grid = np.zeros((cells, cells), bool)
    grid[(uv[:, 1] * cells / height).astype(int), (uv[:, 0] * cells / width).astype(int)] = True
    return float(grid.mean()), float(np.prod(np.ptp(uv, 0)) / (width * height))


def _frame(xyz: np.ndarray, cams: list[DrawnCamera], up: np.ndarray, size: float, width: int,
           height: int) -> _View:
    """The candidate viewpoint whose picture the points fill best, framing as many cameras as allows the
    points' box to keep MIN_POINTS_AREA of the picture."""
    best = None
    for reach in REACHES:
        focus, near = focus_points(xyz, cams, reach)
        frusta = [frustum_vertices(c, size) for c, keep in zip(cams, near) if keep]
        frusta = np.vstack(frusta) if frusta else np.zeros((0, 3))
        scored = []
        for elevation, azimuth in VIEWPOINTS:
            view = _View(oblique_view(cams, xyz, up, elevation, azimuth), up, focus, frusta, width, height)
            scored.append((*_coverage(view, focus, width, height), view))
        fill, area, view = max(scored, key=lambda s: s[0])
        best = best or view
        if area >= MIN_POINTS_AREA:
            return view
    return best


def render_preview(rec: pycolmap.Reconstruction, path: Path, title: str, caption: str,
                   width: int = 1600, height: int = 1000, max_points: int = MAX_POINTS) -> dict:
    """Write the picture; returns the points drawn and seconds taken."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t0 = time.perf_counter()
    xyz, rgb = points_and_colors(rec)
    keep = subsample(len(xyz), max_points)
    xyz, rgb = xyz[keep], rgb[keep]
    cams = model_cameras(rec)
    up = scene_up(cams, xyz)
    band = 76  # caption band, pixels
    plot_h = height - band
    size = frustum_size(cams, xyz)
    view = _frame(xyz, cams, up, size, width, plot_h)
    px, z = view.project(xyz)
    inside = (z > view.near) & (px[:, 0] > -20) & (px[:, 0] < width + 20) & (px[:, 1] > -20) & (px[:, 1] < plot_h + 20)
    px, z, col = px[inside], z[inside], rgb[inside] / 255.0
    order = np.argsort(-z)  # far first: near points paint over far ones
    px, z, col = px[order], z[order], col[order]
    # Disc radius from the density over the area the points cover (sparse clouds get larger discs), scaled by
    # perspective.
    n = max(len(px), 1)
    area = float(np.prod(np.ptp(np.quantile(px, [0.02, 0.98], 0), 0))) if len(px) > 1 else width * plot_h
    r0 = float(np.clip(np.sqrt(0.25 * area / (n * np.pi)), 0.9, 5.0))
    radius = r0 * np.clip(np.median(z) / np.maximum(z, 1e-9), 0.5, 2.0) if len(z) else np.zeros(0)

    dpi = 100
    fig = plt.figure(figsize=(width / dpi, height / dpi), dpi=dpi, facecolor=BACKGROUND)
    ax = fig.add_axes((0, band / height, 1, plot_h / height))
    ax.set_facecolor(BACKGROUND)
    ax.set_xlim(0, width)
    ax.set_ylim(plot_h, 0)
    ax.axis("off")
    ax.scatter(px[:, 0], px[:, 1], s=(2 * radius * 72 / dpi) ** 2, c=col, linewidths=0, zorder=2)
    _draw_cameras(ax, view, cams, size, CAMERA_COLOR)
    fig.text(0.012, 0.68 * band / height, title, color="#f2f2f2", fontsize=15, fontweight="bold",
             va="center")
    fig.text(0.012, 0.3 * band / height, caption, color="#c9ccd4", fontsize=12.5, va="center")
    fig.text(0.988, 0.3 * band / height, "\u2014 cameras", color=CAMERA_COLOR, fontsize=12.5, va="center",
             ha="right")
    fig.add_artist(plt.Line2D([0, 1], [band / height] * 2, color="#2c3038", linewidth=1))
    path = Path(path)
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=dpi, facecolor=BACKGROUND)
    plt.close(fig)
    tmp.replace(path)
    info = {"points_drawn": int(len(px)), "seconds": round(time.perf_counter() - t0, 3)}
    logger.info("preview written to %s (%d points, %.2f s)", path, info["points_drawn"], info["seconds"])
    return info
