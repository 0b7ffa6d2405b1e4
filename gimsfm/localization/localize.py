"""Pose query images against a map made by `gimsfm reconstruct` (hloc-style, on pycolmap).

For each query: VLAD retrieval of the K most similar map images, matching query-to-map with the map's
matcher, 2D-3D correspondences through the map's tracks, covisibility clustering of the retrieved images,
and pycolmap `estimate_and_refine_absolute_pose` per cluster (the cluster with most inliers wins).
Queries that cannot be posed are reported as failures, never given a pose.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pycolmap
from ..utils.progress import tqdm

from .. import logger
from ..errors import InputError
from ..matchers import get_matcher
from ..sfm.extract import extract_features
from ..matchers.base import SiftMatcher
from ..matchers.registry import parse_matcher_spec
from ..matchers.views import as_plain_view
from ..sfm.dense import DEFAULT_CELL, keypoints_in_cells, one_to_one, quantise_points
from ..sfm.match import FeatureCache
from ..sfm.retrieval import extract_global, load_global, top_k
from ..utils.cameras import read_intrinsics
from ..utils.h5io import read_features, write_features
from ..utils.io import exif_focal_px, list_images, read_image
from ..utils.runlock import RunLock

# views=auto: a query the plain matches cannot pose is matched with synthesised views against this many of its
# best-retrieved map images (the others keep their plain matches).
ESCALATE_TOP = 3

def _without_views(spec: str) -> tuple:
    """A matcher spec minus its `views` option: views=auto keeps the plain features, so it may localize against
    a map built without views (and the reverse)."""
    name, weights, options = parse_matcher_spec(spec)
    return name, weights, sorted((k, repr(v)) for k, v in options.items() if k != "views")


@dataclass
class QueryResult:
    name: str
    success: bool
    cam_from_world: pycolmap.Rigid3d | None = None
    num_inliers: int = 0
    num_correspondences: int = 0
    retrieved: list[str] = field(default_factory=list)
    camera: str = ""
    reason: str = ""
    intrinsics: str = ""  # the query camera used for the pose: `MODEL W H params...`
    inlier_matches: dict[str, Any] = field(default_factory=dict)  # best db image -> (kq, kdb) inlier pixels


def load_map(map_dir: Path) -> tuple[pycolmap.Reconstruction, dict[str, Any]]:
    """The model and run settings of a `gimsfm reconstruct` output folder."""
    map_dir = Path(map_dir)
    sparse = map_dir / "sparse"
    if not (sparse / "images.bin").exists() and not (sparse / "images.txt").exists():
        raise InputError(f"{map_dir} is not a gimsfm map (no sparse/ model); build one with `gimsfm reconstruct`")
    if not (map_dir / "features.h5").exists():
        raise InputError(f"{map_dir} has no features.h5; rebuild the map with `gimsfm reconstruct`")
    try:
        rec = pycolmap.Reconstruction(str(sparse))
    except Exception as exc:  # pycolmap raises plain RuntimeError/ValueError on corrupt models
        raise InputError(f"cannot read the model in {sparse}: {str(exc).splitlines()[0][:100]}") from None
    run = json.loads((map_dir / "run.json").read_text()) if (map_dir / "run.json").exists() else {}
    return rec, run




def resolve_queries(queries: Path) -> tuple[Path, list[str]]:
    """A folder of images, or a text file listing image paths (relative to the file) or hloc intrinsics."""
    queries = Path(queries)
    if queries.is_dir():
        names = list_images(queries)
        if not names:
            raise InputError(f"no query images in {queries}")
        return queries, names
    if queries.is_file():
        root = queries.parent
        names = [ln.split()[0] for ln in queries.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
        missing = [n for n in names if not (root / n).is_file()]
        if missing:
            logger.warning("%d listed queries not found (e.g. %s)", len(missing), missing[0])
        names = [n for n in names if n not in missing]
        if not names:
            raise InputError(f"no existing query images listed in {queries}")
        return root, names
    raise InputError(f"queries not found: {queries}")


def query_camera(name: str, image_dir: Path, intrinsics: dict[str, pycolmap.Camera],
                 size: tuple[int, int]) -> tuple[pycolmap.Camera, bool, str]:
    """(camera, focal_known, source): from the intrinsics file, EXIF, or a guess to be estimated."""
    if name in intrinsics:
        return intrinsics[name], True, "file"
    w, h = size
    focal = exif_focal_px(image_dir / name, w, h)
    cam = pycolmap.Camera.create_from_model_name(0, "SIMPLE_PINHOLE", focal or 1.2 * max(w, h), w, h)
    return cam, focal is not None, "exif" if focal else "estimated"


def covisibility_clusters(rec: pycolmap.Reconstruction, image_ids: list[int]) -> list[list[int]]:
    """Group retrieved map images that share 3D points (connected components), best-ranked first."""
    points = {i: {p.point3D_id for p in rec.image(i).points2D if p.has_point3D()} for i in image_ids}
    clusters: list[list[int]] = []
    unassigned = list(image_ids)
    while unassigned:
        stack, comp = [unassigned.pop(0)], []
        while stack:
            i = stack.pop()
            comp.append(i)
            linked = [j for j in unassigned if points[i] & points[j]]
            for j in linked:
                unassigned.remove(j)
            stack += linked
        clusters.append(sorted(comp, key=image_ids.index))
    return clusters


def _pose_from_cluster(cluster: list[int], rec: pycolmap.Reconstruction, qfeat: dict,
                       matches_to: Callable[[str], np.ndarray], camera: pycolmap.Camera, focal_known: bool,
                       max_error: float):
    """`matches_to(db_name)`: for each query keypoint the index of the matched db keypoint, or -1."""
    p2d, p3d, origin = [], [], []
    for image_id in cluster:
        image = rec.image(image_id)
        m0 = matches_to(image.name)
        for qi in np.where(m0 > -1)[0]:
            pt = image.point2D(int(m0[qi]))
            if pt.has_point3D():
                p2d.append(qfeat["keypoints"][qi] + 0.5)  # COLMAP pixel centres
                p3d.append(rec.point3D(pt.point3D_id).xyz)
                origin.append((image.name, qi, int(m0[qi])))
    if len(p2d) < 6:
        return None, len(p2d), origin
    est = pycolmap.AbsolutePoseEstimationOptions()
    est.ransac.max_error = max_error
    est.ransac.random_seed = 0
    est.estimate_focal_length = not focal_known
    ref = pycolmap.AbsolutePoseRefinementOptions()
    ref.refine_focal_length = not focal_known
    cam = pycolmap.Camera(camera.todict())
    ret = pycolmap.estimate_and_refine_absolute_pose(np.array(p2d, np.float64), np.array(p3d, np.float64), cam,
                                                     est, ref)
    if ret is not None:
        ret["camera"] = cam
    return ret, len(p2d), origin


class DenseQueries:
    """Query-to-map matching for a map built with a dense matcher: the query is matched against each retrieved
    map image, the map-side points are looked up among that image's keypoints by quantisation cell (as the
    map quantised them), and the query points are quantised into query keypoints."""

    def __init__(self, matcher, rec: pycolmap.Reconstruction, map_features: Path, map_images: Path, cell: float):
        if not map_images.is_dir():
            raise InputError(f"the map's images are not at {map_images}: dense matchers match the query against "
                             "them (move them back or rebuild the map)")
        self.matcher, self.rec, self.cell, self.map_images = matcher, rec, cell, map_images
        self.db = FeatureCache(map_features)

    def match(self, query: Path, retrieved: list[str]) -> tuple[dict[str, np.ndarray], Callable[[str], np.ndarray]]:
        image = read_image(query)
        pts, scores, db_idx, owner = [], [], [], []
        for db_name in retrieved:
            pm = self.matcher.match_images(image, read_image(self.map_images / db_name))
            idx = keypoints_in_cells(self.db[db_name]["keypoints"], pm.kpts1, self.cell)
            ok = idx >= 0
            pts.append(pm.kpts0[ok])
            scores.append(pm.scores[ok])
            db_idx.append(idx[ok])
            owner.append(db_name)
        kpts, kscores, q_idx = quantise_points(np.concatenate(pts), np.concatenate(scores), self.cell)
        bounds = np.cumsum([0] + [len(p) for p in pts])
        m0s = {}
        for i, db_name in enumerate(owner):
            qi, di, s = q_idx[bounds[i]:bounds[i + 1]], db_idx[i], scores[i]
            keep = one_to_one(qi, di, s)
            m0 = np.full(len(kpts), -1, np.int64)
            m0[qi[keep]] = di[keep]
            m0s[db_name] = m0
        h, w = image.shape[:2]
        feats = {"keypoints": kpts, "scores": kscores, "image_size": np.array([w, h], np.int32)}
        return feats, m0s.__getitem__


def localize(map_dir: Path, queries: Path, out_poses: Path, matcher_name: str | None = None,
             intrinsics_path: Path | None = None, num_db: int = 10, min_inliers: int = 12,
             max_error: float = 12.0, device: str = "auto") -> tuple[Path, list[QueryResult]]:
    """Localize every query; writes hloc poses (`name qw qx qy qz tx ty tz`) and a JSON log beside them.

    The map folder is held as a reader (no `reconstruct` may rewrite it meanwhile) and the poses' work
    folder as a writer (a second `localize` to the same poses stops at once)."""
    out_poses = Path(out_poses)
    with RunLock(Path(map_dir), "localize", shared=True), \
            RunLock(out_poses.with_name(out_poses.stem + "_work"), "localize"):
        return _localize(map_dir, queries, out_poses, matcher_name, intrinsics_path, num_db, min_inliers,
                         max_error, device)


def _localize(map_dir: Path, queries: Path, out_poses: Path, matcher_name: str | None,
              intrinsics_path: Path | None, num_db: int, min_inliers: int, max_error: float,
              device: str) -> tuple[Path, list[QueryResult]]:
    rec, run = load_map(map_dir)
    map_dir = Path(map_dir)
    config = run.get("config", {})
    matcher_name = matcher_name or config.get("matcher", "sift-nn")
    conf = {"features": {"max_keypoints": config.get("max_keypoints", 8192),
                         "resize_max": config.get("resize_max", 1600)}}
    matcher = get_matcher(matcher_name, conf, device=device)
    image_dir, names = resolve_queries(queries)
    intrinsics = read_intrinsics(intrinsics_path) if intrinsics_path else {}
    out_poses = Path(out_poses)
    work = out_poses.with_name(out_poses.stem + "_work")
    work.mkdir(parents=True, exist_ok=True)
    map_features = map_dir / "features.h5"
    # Query features with the map's matcher; map features are re-extracted only if the matcher differs.
    if _without_views(matcher_name) != _without_views(config.get("matcher", "sift-nn")):
        raise InputError(f"the map was built with '{config.get('matcher')}'; localize with the same matcher "
                         "or rebuild the map")
    db_names = [rec.image(i).name for i in rec.reg_image_ids()]
    if matcher.sparse:
        qfeats_path, failed = extract_features(image_dir, names, work / "query_features.h5", matcher)
        qretrieval, map_retrieval = qfeats_path, map_features
    else:  # dense: RootSIFT only for retrieval; query keypoints come from the matches (sfm.dense)
        qretrieval, failed = extract_features(image_dir, names, work / "query_retrieval_features.h5",
                                              SiftMatcher())
        map_retrieval = map_dir / "retrieval_features.h5"
        extract_features(Path(run.get("image_dir", "")), db_names, map_retrieval, SiftMatcher())
        qfeats_path = work / "query_features.h5"
        qfeats_path.unlink(missing_ok=True)
        dense_loc = DenseQueries(matcher, rec, map_features, Path(run.get("image_dir", "")),
                                 float(config.get("dense_cell", DEFAULT_CELL)))
    global_path = map_dir / "global.h5"
    extract_global(map_retrieval, db_names, global_path)
    from ..sfm.retrieval import load_vocabulary
    vocab = load_vocabulary(global_path)
    good = [n for n in names if n not in failed]
    qglobal = work / "query_global.h5"
    extract_global(qretrieval, good, qglobal, vocab=vocab)
    db_desc = load_global(global_path, db_names)
    name_to_id = {rec.image(i).name: i for i in rec.reg_image_ids()}
    db_cache = FeatureCache(map_features)
    results: list[QueryResult] = [QueryResult(n, False, reason="unreadable image") for n in failed]
    escalating = bool(getattr(matcher, "escalates", False))
    for name in tqdm(good, desc="localize", unit="query"):
        idx = top_k(load_global(qglobal, [name]), db_desc, num_db)[0]
        retrieved = [db_names[i] for i in idx]
        if matcher.sparse:
            qfeat = read_features(qfeats_path, name)

            def matches_to(db_name: str, qfeat: dict = qfeat, name: str = name) -> np.ndarray:
                if escalating:  # views=auto: plain first; views only in the second pass, for the top images
                    def query_level(level: int) -> dict | None:
                        return matcher.extract_level(read_image(image_dir / name), level)

                    top = None if db_name in escalate_to else 0
                    m0, _, grown, _, _ = matcher.escalate(qfeat, as_plain_view(db_cache[db_name]), query_level,
                                                          None, max_level=top)
                    qfeat.update(grown)  # map features cannot grow: their keypoints are the model's
                    return m0
                return matcher.match(qfeat, db_cache[db_name])[0]
        else:
            qfeat, matches_to = dense_loc.match(image_dir / name, retrieved)
            write_features(qfeats_path, name, qfeat)
        w, h = (int(v) for v in qfeat["image_size"])
        camera, focal_known, source = query_camera(name, image_dir, intrinsics, (w, h))
        best, best_n, best_origin = None, 0, []
        n_kpts = len(qfeat["keypoints"])
        escalate_to: set[str] = set()
        for attempt in range(2 if escalating else 1):
            if attempt == 1:
                if best is not None and best["num_inliers"] >= min_inliers:
                    break
                # views=auto: the plain matches gave no pose; synthesise views of the query against its
                # best-retrieved map images only (each escalated pair costs seconds).
                escalate_to = set(retrieved[:ESCALATE_TOP])
            for cluster in covisibility_clusters(rec, [name_to_id[n] for n in retrieved]):
                ret, n_corr, origin = _pose_from_cluster(cluster, rec, qfeat, matches_to, camera, focal_known,
                                                         max_error)
                if ret is not None and (best is None or ret["num_inliers"] > best["num_inliers"]):
                    best, best_n, best_origin = ret, n_corr, origin
        if len(qfeat["keypoints"]) != n_kpts:  # views=auto added query views: keep the indices drawn below valid
            write_features(qfeats_path, name, qfeat)
        r = QueryResult(name, False, retrieved=retrieved, camera=source, num_correspondences=best_n)
        if best is None or best["num_inliers"] < min_inliers:
            r.num_inliers = 0 if best is None else int(best["num_inliers"])
            r.reason = f"too few 2D-3D inliers ({r.num_inliers} < {min_inliers})"
        else:
            r.success, r.cam_from_world, r.num_inliers = True, best["cam_from_world"], int(best["num_inliers"])
            mask = np.asarray(best["inlier_mask"], bool)
            r.inlier_matches = {"origin": [o for o, keep in zip(best_origin, mask) if keep]}
            if not focal_known:
                r.camera = f"estimated f={best['camera'].mean_focal_length():.1f}"
            cam = best["camera"]
            r.intrinsics = f"{cam.model_name} {cam.width} {cam.height} {' '.join(map(repr, map(float, cam.params)))}"
        results.append(r)
    _write_outputs(out_poses, results, rec, image_dir, map_dir, qfeats_path)
    ok = sum(r.success for r in results)
    logger.info("localized %d/%d queries", ok, len(results))
    return out_poses, results


def _write_outputs(out_poses: Path, results: list[QueryResult], rec, image_dir: Path, map_dir: Path,
                   qfeats_path: Path) -> None:
    lines = []
    for r in results:
        if r.success:
            q = r.cam_from_world.rotation.quat  # x, y, z, w
            t = r.cam_from_world.translation
            lines.append(f"{r.name} {q[3]} {q[0]} {q[1]} {q[2]} {t[0]} {t[1]} {t[2]}\n")
    tmp = out_poses.with_suffix(".tmp")
    tmp.write_text("".join(lines))
    tmp.replace(out_poses)
    log = [{"name": r.name, "success": r.success, "num_inliers": r.num_inliers,
            "num_correspondences": r.num_correspondences, "retrieved": r.retrieved, "camera": r.camera,
            "intrinsics": r.intrinsics, "reason": r.reason} for r in results]
    out_poses.with_name(out_poses.stem + "_log.json").write_text(json.dumps(log, indent=2))
    from ..sfm.scene_view import load_summary
    from ..sfm.viewer import load_queries, view_model

    view_model(rec, out_poses.with_name(out_poses.stem + "_viewer.html"), load_summary(map_dir),
               queries=load_queries(out_poses), name=map_dir.resolve().name)
    viz = out_poses.with_name(out_poses.stem + "_viz")
    viz.mkdir(exist_ok=True)
    for r in results:
        if r.success:
            _draw_inliers(r, image_dir, map_dir, qfeats_path, viz / (Path(r.name.replace("/", "_")).stem + ".jpg"), rec)


def _draw_inliers(r: QueryResult, image_dir: Path, map_dir: Path, qfeats_path: Path, path: Path, rec) -> None:
    """Side by side: the query and the map image contributing most inliers, inlier matches in green."""
    import cv2

    origin = r.inlier_matches.get("origin", [])
    if not origin:
        return
    db_name = max({o[0] for o in origin}, key=lambda n: sum(o[0] == n for o in origin))
    map_images = Path(json.loads((map_dir / "run.json").read_text())["image_dir"]) if (map_dir / "run.json").exists() else None
    try:
        q = read_image(image_dir / r.name)
        d = read_image(map_images / db_name) if map_images else None
    except InputError:
        return
    if d is None:
        return
    kq = read_features(qfeats_path, r.name)["keypoints"]
    kd = read_features(map_dir / "features.h5", db_name)["keypoints"]
    scale = 640.0 / max(q.shape[0], d.shape[0])
    qs = cv2.resize(q, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    ds = cv2.resize(d, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    canvas = np.zeros((max(qs.shape[0], ds.shape[0]), qs.shape[1] + ds.shape[1], 3), np.uint8)
    canvas[: qs.shape[0], : qs.shape[1]] = qs
    canvas[: ds.shape[0], qs.shape[1]:] = ds
    for name, qi, di in origin:
        if name != db_name:
            continue
        p0 = tuple(int(v) for v in kq[qi] * scale)
        p1 = (int(kd[di][0] * scale) + qs.shape[1], int(kd[di][1] * scale))
        cv2.line(canvas, p0, p1, (0, 255, 0), 1, cv2.LINE_AA)
    cv2.putText(canvas, f"{r.name}: {r.num_inliers} inliers ({db_name})", (10, 25), cv2.FONT_HERSHEY_SIMPLEX, 0.7,
                (255, 255, 0), 2)
    cv2.imwrite(str(path), canvas[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 85])
