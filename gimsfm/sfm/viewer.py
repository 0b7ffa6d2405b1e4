"""viewer.html: one self-contained page (plotly.js embedded, works offline) to turn a model around:
coloured points, camera frustums named on hover, localized queries in another colour, and beside the plot
the registered images and the reason each left-out image is missing."""
from __future__ import annotations

import base64
import html
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pycolmap

from .. import logger
from .scene_view import (FRUSTUM_PATH, DrawnCamera, describe, drawn_camera, focus_points, frustum_size,
                         frustum_vertices, inlier_points, model_cameras, oblique_view, points_and_colors, read_poses,
                         scene_up, subsample)

# Above this many points the viewer draws a fixed random subset: 200k keeps a 500-camera model near 10 MB
# and interactive in a software-rendered browser (README: measured size and load time).
MAX_POINTS = 200_000
MAP_COLOR = "#ff5a36"
QUERY_COLOR = "#36d6ff"
HIGHLIGHT_COLOR = "#ffe14d"


@dataclass
class Queries:
    """Localized queries (drawn in QUERY_COLOR) and the ones that failed, with the reason."""
    cams: list[DrawnCamera] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def _frustum_lines(cams: list[DrawnCamera], size: float) -> tuple[np.ndarray, list[str]]:
    rows, text = [], []
    for cam in cams:
        v = frustum_vertices(cam, size)
        for k in FRUSTUM_PATH:
            rows.append(v[k] if k is not None else np.full(3, np.nan))
            text.append(cam.name)
    return (np.array(rows, np.float32) if rows else np.zeros((0, 3), np.float32)), text


def _camera_traces(cams: list[DrawnCamera], size: float, color: str, label: str) -> list[dict]:
    lines, text = _frustum_lines(cams, size)
    centers = np.array([c.center for c in cams], np.float32).reshape(-1, 3)
    return [
        dict(type="scatter3d", mode="lines", name=label, legendgroup=label, x=lines[:, 0], y=lines[:, 1],
             z=lines[:, 2], text=text, hovertemplate="%{text}<extra></extra>", line=dict(color=color, width=2),
             connectgaps=False),
        dict(type="scatter3d", mode="markers", name=label, legendgroup=label, showlegend=False, x=centers[:, 0],
             y=centers[:, 1], z=centers[:, 2], text=[f"<b>{html.escape(c.name)}</b><br>{c.info}" for c in cams],
             hovertemplate="%{text}<extra></extra>", marker=dict(color=color, size=3)),
    ]


def build_figure(rec: pycolmap.Reconstruction, queries: Queries | None = None,
                 max_points: int = MAX_POINTS) -> tuple[dict, dict]:
    """The plotly figure (as a dict) and what the page says about it: drawn counts and each camera's frustum."""
    xyz, rgb = points_and_colors(rec)
    keep = subsample(len(xyz), max_points)
    pts, cols = xyz[keep].astype(np.float32), rgb[keep]
    cams = model_cameras(rec)
    qcams = queries.cams if queries else []
    up = scene_up(cams, xyz)
    size = frustum_size(cams + qcams, xyz)
    hexcols = np.array([f"#{r:02x}{g:02x}{b:02x}" for r, g, b in cols.tolist()])
    marker_size = float(np.clip(7 - np.log10(max(len(pts), 1)), 2, 5))
    traces = [dict(type="scatter3d", mode="markers", name=f"points ({len(pts):,})", x=pts[:, 0], y=pts[:, 1],
                   z=pts[:, 2], marker=dict(color=hexcols, size=marker_size, line=dict(width=0)), hoverinfo="skip")]
    traces += _camera_traces(cams, size, MAP_COLOR, f"images ({len(cams)})")
    if qcams:
        traces += _camera_traces(qcams, size, QUERY_COLOR, f"queries ({len(qcams)})")
    traces.append(dict(type="scatter3d", mode="lines", name="selected", x=[], y=[], z=[], showlegend=False,
                       hoverinfo="skip", line=dict(color=HIGHLIGHT_COLOR, width=7)))

    # Axis ranges hold every camera and the inner 95 % of the points (plotly clips what lies outside), on
    # equal scales; the first view turns about and fits the focus set (points and the nearby cameras).
    centers = np.array([c.center for c in cams + qcams]).reshape(-1, 3)
    frame = np.vstack([xyz[inlier_points(xyz)], centers])
    lo, hi = frame.min(0), frame.max(0)
    mid, half = (lo + hi) / 2, np.maximum((hi - lo) / 2 * 1.05, 1e-6)
    half = np.maximum(half, half.max() * 0.05)
    aspect = half / half.max()
    focus, near = focus_points(xyz, cams + qcams)
    focus = np.vstack([focus, centers[near]])
    f_mid = (focus.min(0) + focus.max(0)) / 2
    f_radius = float(np.linalg.norm(focus.max(0) - focus.min(0))) / 2
    center = (f_mid - mid) / (2 * half.max())  # plotly's scene box spans `aspect` around the origin
    eye = center - oblique_view(cams + qcams, xyz, up) * 1.9 * f_radius / (2 * half.max())
    axis = dict(visible=False, showspikes=False)
    layout = dict(
        template="none", paper_bgcolor="#15171c", plot_bgcolor="#15171c", margin=dict(l=0, r=0, t=0, b=0),
        showlegend=True, legend=dict(x=0.01, y=0.99, font=dict(color="#e8e8e8"), bgcolor="rgba(0,0,0,0.3)"),
        hoverlabel=dict(namelength=-1), uirevision="keep",
        scene=dict(xaxis=dict(axis, range=[mid[0] - half[0], mid[0] + half[0]]),
                   yaxis=dict(axis, range=[mid[1] - half[1], mid[1] + half[1]]),
                   zaxis=dict(axis, range=[mid[2] - half[2], mid[2] + half[2]]),
                   aspectmode="manual", aspectratio=dict(x=aspect[0], y=aspect[1], z=aspect[2]),
                   dragmode="turntable", bgcolor="#15171c",
                   camera=dict(eye=dict(x=eye[0], y=eye[1], z=eye[2]), up=dict(x=up[0], y=up[1], z=up[2]),
                               center=dict(x=center[0], y=center[1], z=center[2]))))
    fig = {"data": [_typed_arrays(t) for t in traces], "layout": layout}
    frustums = {c.name: np.round(frustum_vertices(c, size)[[0, 1, 2, 0, 3, 4, 0, 1, 4, 3, 2]], 5).tolist()
                for c in cams + qcams}
    info = {"points_total": len(xyz), "points_drawn": len(pts), "cameras": len(cams), "queries": len(qcams),
            "frustums": frustums, "highlight_trace": len(traces) - 1, "registered": [c.name for c in cams]}
    return fig, info


def _typed_arrays(trace: dict) -> dict:
    """Coordinates as plotly.js typed arrays (base64 float32): a third of the size of JSON numbers, and no
    validation pass over every value in Python."""
    out = {}
    for key, value in trace.items():
        if isinstance(value, np.ndarray) and value.dtype.kind == "f":
            data = np.ascontiguousarray(value, np.float32)
            value = {"dtype": "f4", "bdata": base64.b64encode(data.tobytes()).decode("ascii")}
        elif isinstance(value, np.ndarray):
            value = value.tolist()
        out[key] = value
    return out


def _list_items(names: list[str], reasons: dict[str, str] | None = None, clickable: bool = True) -> str:
    items = []
    for name in names:
        label = html.escape(name)
        reason = f'<span class="why">{html.escape(reasons[name])}</span>' if reasons else ""
        attr = f' data-name="{label}" class="cam"' if clickable else ""
        items.append(f"<li{attr}>{label}{reason}</li>")
    return "\n".join(items)


def _plain(value):
    """numpy scalars and arrays for json.dumps."""
    return value.tolist() if isinstance(value, (np.ndarray, np.generic)) else str(value)


def _legend(with_queries: bool) -> str:
    entries = [(MAP_COLOR, "map images")] + ([(QUERY_COLOR, "queries")] if with_queries else [])
    return "".join(f'<span class="swatch" style="background:{c}"></span>{t}' for c, t in entries)


def write_viewer(rec: pycolmap.Reconstruction, path: Path, title: str, stats: list[str],
                 left_out: dict[str, str] | None = None, queries: Queries | None = None,
                 max_points: int = MAX_POINTS) -> dict:
    """Write the page atomically; returns the drawn counts, file size and seconds taken."""
    from plotly.offline import get_plotlyjs

    t0 = time.perf_counter()
    fig, info = build_figure(rec, queries, max_points)
    frustums = info.pop("frustums")
    left_out = left_out or {}
    if info["points_drawn"] < info["points_total"]:
        stats = stats + [f"showing {info['points_drawn']:,} of {info['points_total']:,} points (random subset, "
                         f"cap {max_points:,})"]
    registered = info.pop("registered")
    sections = [f"<h3>Registered images ({len(registered)})</h3><ul>{_list_items(registered)}</ul>"]
    sections.append(f"<h3>Left out ({len(left_out)})</h3>" +
                    (f"<ul>{_list_items(sorted(left_out), left_out, False)}</ul>" if left_out else
                     '<p class="none">none</p>'))
    if queries:
        qnames = sorted(q.name for q in queries.cams)
        sections.append(f"<h3>Localized queries ({len(qnames)})</h3><ul>{_list_items(qnames)}</ul>")
        sections.append(f"<h3>Queries not localized ({len(queries.failed)})</h3>" +
                        (f"<ul>{_list_items(sorted(queries.failed), queries.failed, False)}</ul>"
                         if queries.failed else '<p class="none">none</p>'))

    def script_json(obj) -> str:  # safe inside <script>: no "</" can close the tag
        return json.dumps(obj, separators=(",", ":"), default=_plain).replace("</", "<\\/")

    page = PAGE.format(
        title=html.escape(title), stats=" &middot; ".join(html.escape(s) for s in stats),
        sidebar="\n".join(sections), plotlyjs=get_plotlyjs(), figure=script_json(fig),
        frustums=script_json(frustums), highlight=info["highlight_trace"], legend=_legend(bool(queries)),
        generator=GENERATOR_TAG)
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
    info.update(bytes=path.stat().st_size, seconds=round(time.perf_counter() - t0, 3))
    logger.info("viewer written to %s (%.1f MB, %d of %d points, %.2f s)", path, info["bytes"] / 1e6,
                info["points_drawn"], info["points_total"], info["seconds"])
    return info


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
{generator}
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
html, body {{ margin: 0; height: 100%; background: #15171c; color: #e8e8e8; font: 14px system-ui, sans-serif; }}
body {{ display: flex; flex-direction: column; }}
header {{ padding: 8px 14px; border-bottom: 1px solid #2c3038; }}
header h1 {{ font-size: 17px; margin: 0 0 3px 0; }}
header .stats {{ color: #b8bcc6; }}
main {{ flex: 1; display: flex; min-height: 0; }}
#plot {{ flex: 1; min-width: 0; }}
aside {{ width: 300px; overflow-y: auto; border-left: 1px solid #2c3038; padding: 0 12px 12px; }}
aside h3 {{ font-size: 14px; margin: 14px 0 6px; }}
aside ul {{ list-style: none; margin: 0; padding: 0; }}
aside li {{ padding: 2px 4px; border-radius: 3px; word-break: break-all; }}
aside li.cam {{ cursor: pointer; }}
aside li.cam:hover, aside li.active {{ background: #343a46; }}
aside .why {{ display: block; color: #f0a35e; font-size: 12px; }}
aside .none {{ color: #80858f; margin: 0; }}
footer {{ padding: 4px 14px; color: #80858f; font-size: 12px; border-top: 1px solid #2c3038; }}
.swatch {{ display: inline-block; width: 10px; height: 10px; margin: 0 3px 0 8px; }}
</style></head>
<body>
<header><h1>{title}</h1><div class="stats">{stats}</div></header>
<main><div id="plot"></div><aside>{sidebar}</aside></main>
<footer>drag: turn &middot; scroll: zoom &middot; right-drag: pan &middot; double-click: reset view &middot;
click a name to highlight its camera
{legend}</footer>
<script type="text/javascript">{plotlyjs}</script>
<script type="text/javascript">
const fig = {figure};
const frustums = {frustums};
const plot = document.getElementById("plot");
Plotly.newPlot(plot, fig.data, fig.layout, {{responsive: true, displaylogo: false}}).then(() => {{
  document.body.dataset.ready = "1";
}});
document.querySelectorAll("li.cam").forEach((li) => li.addEventListener("click", () => {{
  document.querySelectorAll("li.active").forEach((x) => x.classList.remove("active"));
  li.classList.add("active");
  const v = frustums[li.dataset.name];
  Plotly.restyle(plot, {{x: [v.map((p) => p[0])], y: [v.map((p) => p[1])], z: [v.map((p) => p[2])]}},
                 [{highlight}]);
}}));
</script>
</body></html>
"""


GENERATOR_TAG = '<meta name="generator" content="gimsfm viewer">'


def is_viewer(path: Path) -> bool:
    """True for a page this module wrote (safe to replace)."""
    try:
        with open(path, encoding="utf-8", errors="ignore") as f:
            return GENERATOR_TAG in f.read(4096)
    except OSError:
        return False


def load_queries(poses_path: Path) -> Queries:
    """Queries from an hloc poses file; intrinsics and failures from the `gimsfm localize` log beside it
    (a query without known intrinsics is drawn with a 4:3 frustum)."""
    poses = read_poses(poses_path)
    log_path = Path(poses_path).with_name(Path(poses_path).stem + "_log.json")
    log = {}
    if log_path.exists():
        try:
            log = {e["name"]: e for e in json.loads(log_path.read_text())}
        except (json.JSONDecodeError, KeyError, TypeError):
            logger.warning("%s is not a localize log; drawing the poses without it", log_path)
    queries = Queries(failed={n: e.get("reason") or "failed" for n, e in log.items() if not e.get("success")})
    for name, pose in poses.items():
        entry = log.get(name, {})
        camera = None
        if entry.get("intrinsics"):
            model, w, h, *params = entry["intrinsics"].split()
            camera = pycolmap.Camera.create_from_model_name(0, model, 1.0, int(w), int(h))
            camera.params = np.array(params, np.float64)
        camera = camera or pycolmap.Camera.create_from_model_name(0, "SIMPLE_PINHOLE", 1.2 * 640, 640, 480)
        info = f"query, {entry['num_inliers']} inliers" if "num_inliers" in entry else "query"
        queries.cams.append(drawn_camera(name, pose, camera, info))
    return queries


def view_model(rec: pycolmap.Reconstruction, path: Path, summary: dict | None = None,
               left_out: dict[str, str] | None = None, queries: Queries | None = None,
               name: str = "model", max_points: int = MAX_POINTS) -> dict:
    """viewer.html with the title, facts and left-out list taken from a run's summary."""
    title, stats = describe(rec, summary, name)
    if queries:
        n = len(queries.cams)
        title += f" + {n} localized {'query' if n == 1 else 'queries'}"
    return write_viewer(rec, path, title, stats, left_out, queries, max_points)
