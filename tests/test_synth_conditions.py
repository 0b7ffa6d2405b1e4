"""Query conditions of synthetic scenes (day map vs. night / fog / ... queries): same map images and GT,
other query appearance; presets; CLI errors."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from gimsfm.errors import InputError
from gimsfm.synth.scene import generate_scene

W, H = 192, 144


@pytest.fixture(scope="module")
def street_scenes(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cond")
    return {c: generate_scene("street", root / c, seed=7, n_images=3, n_queries=3, width=W, height=H, query_condition=c)
            for c in ("day", "night", "fog", "rain", "dusk")}


def _files(d: Path, sub: str) -> list[Path]:
    return sorted((d / sub).rglob("*.*"))


def _grey(p: Path) -> np.ndarray:
    return cv2.imread(str(p), cv2.IMREAD_GRAYSCALE).astype(np.float32)


def test_map_and_gt_identical_across_conditions(street_scenes):
    day = street_scenes["day"]
    for c, d in street_scenes.items():
        assert json.loads((d / "meta.json").read_text())["query_condition"] == c
        for name in ("gt/images.txt", "gt/cameras.txt", "map.txt", "query.txt", "queries_with_intrinsics.txt"):
            assert (d / name).read_bytes() == (day / name).read_bytes(), (c, name)
        maps = _files(d, "images/map")
        assert len(maps) == 3
        assert [p.read_bytes() for p in maps] == [p.read_bytes() for p in _files(day, "images/map")], c
        for a, b in zip(_files(d, "depth"), _files(day, "depth")):  # map and query depth: geometry unchanged
            assert np.array_equal(np.load(a), np.load(b)), (c, a.name)


def test_query_appearance_changes(street_scenes):
    q = {c: [_grey(p) for p in _files(d, "images/query")] for c, d in street_scenes.items()}
    mean = {c: np.mean([g.mean() for g in v]) for c, v in q.items()}
    std = {c: np.mean([g.std() for g in v]) for c, v in q.items()}
    for c in ("night", "fog", "rain", "dusk"):
        assert any(np.abs(a - b).mean() > 5 for a, b in zip(q[c], q["day"])), c
    assert mean["night"] < 0.5 * mean["day"], mean
    contrast = {c: std[c] / mean[c] for c in q}  # RMS contrast: haze lifts the blacks and flattens the image
    assert contrast["fog"] < 0.8 * contrast["day"], contrast

    def saturation(d):
        return np.mean([cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2HSV)[..., 1].mean() for p in _files(d, "images/query")])
    assert saturation(street_scenes["fog"]) < 0.7 * saturation(street_scenes["day"])
    assert mean["dusk"] < mean["day"], mean


def test_indoor_night_and_unsupported_condition(tmp_path):
    day = generate_scene("indoor", tmp_path / "d", seed=2, n_images=2, n_queries=2, width=W, height=H)
    night = generate_scene("indoor", tmp_path / "n", seed=2, n_images=2, n_queries=2, width=W, height=H, query_condition="night")
    assert [p.read_bytes() for p in _files(day, "images/map")] == [p.read_bytes() for p in _files(night, "images/map")]
    assert (day / "gt/images.txt").read_text() == (night / "gt/images.txt").read_text()
    dm = np.mean([_grey(p).mean() for p in _files(day, "images/query")])
    nm = np.mean([_grey(p).mean() for p in _files(night, "images/query")])
    assert nm < 0.5 * dm
    with pytest.raises(InputError, match="supported: day, night, dusk"):
        generate_scene("indoor", tmp_path / "f", seed=2, n_images=2, n_queries=1, width=W, height=H, query_condition="fog")


def test_localize_preset(tmp_path, monkeypatch):
    import yaml

    from gimsfm.synth import suites

    cfg = suites.load_preset("localize")
    assert cfg == yaml.safe_load((suites.pipelines_dir() / "synth_localize.yaml").read_text())
    names = [s["name"] for s in cfg["scenes"]]
    assert names == ["indoor_day", "indoor_dusk", "indoor_night", "street_day", "street_night", "street_fog"]
    assert all(s["images"] == 30 and s["queries"] == 10 for s in cfg["scenes"])
    for world in ("indoor", "street"):  # one map per world: same seed across its conditions
        assert len({s["seed"] for s in cfg["scenes"] if s["domain"] == world}) == 1
    street = [s for s in cfg["scenes"] if s["domain"] == "street"]
    tiny = {**cfg, "scenes": [{**s, "images": 2, "queries": 1, "width": 96, "height": 72} for s in street]}
    dirs = suites.run_scene_preset(tiny, tmp_path)
    assert [d.name for d in dirs] == ["street_day", "street_night", "street_fog"]
    stamp = (dirs[0] / "gt" / "images.txt").stat().st_mtime_ns
    assert suites.run_scene_preset(tiny, tmp_path) == dirs  # complete scenes are kept
    assert (dirs[0] / "gt" / "images.txt").stat().st_mtime_ns == stamp


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "gimsfm", "synth", *args], check=False, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("domain,cond,msg", [("street", "snow", "unknown query condition"),
                                             ("object", "night", "does not support")])
def test_cli_bad_condition_is_one_line_error(tmp_path, domain, cond, msg):
    r = _cli("scene", "--domain", domain, "--query-condition", cond, "--images", "2", "--queries", "1",
             "--width", "96", "--height", "72", "--out", str(tmp_path / "s"))
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and msg in lines[0], r.stderr
    assert not (tmp_path / "s" / "gt").exists()


def test_unknown_trajectory(tmp_path):
    with pytest.raises(InputError, match="no trajectory 'orbit'"):
        generate_scene("street", tmp_path / "s", n_images=2, n_queries=1, width=96, height=72, trajectory="orbit")
