"""The Dockerfile, .dockerignore, install.sh and the package data agree (static checks; building the image is
scripts/docker-smoke.sh, minutes and gigabytes)."""
from __future__ import annotations

import re
import tomllib
from fnmatch import fnmatchcase
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = (REPO / "Dockerfile").read_text()
INSTALL = (REPO / "install.sh").read_text()
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def _arg_default(name: str) -> str:
    m = re.search(rf"^ARG {name}=(\S*)$", DOCKERFILE, re.M)
    assert m, f"Dockerfile has no `ARG {name}=...`"
    return m.group(1)


def _ignore_patterns() -> list[str]:
    lines = [ln.strip() for ln in (REPO / ".dockerignore").read_text().splitlines()]
    pats = [ln.rstrip("/") for ln in lines if ln and not ln.startswith("#")]
    assert not any(p.startswith("!") for p in pats), "re-include rules are not modelled by this test"
    return pats


def _parts_match(parts: list[str], pattern: str) -> bool:
    pat = pattern.split("/")
    return len(parts) == len(pat) and all(fnmatchcase(a, b) for a, b in zip(parts, pat))


def dockerignored(rel: str, patterns: list[str]) -> bool:
    """Docker's rule: a path is left out when it or a folder above it matches a pattern (`**/` any depth)."""
    parts = rel.split("/")
    for i in range(1, len(parts) + 1):
        for p in patterns:
            if p.startswith("**/"):
                if any(_parts_match(parts[j:i], p[3:]) for j in range(i)):
                    return True
            elif _parts_match(parts[:i], p):
                return True
    return False


def test_dockerfile_torch_and_base_match_install_sh():
    pin = re.search(r"TORCH_VERSION:-([0-9][0-9.]*)", INSTALL).group(1)
    assert _arg_default("TORCH_SPEC") == f"torch=={pin}"
    assert _arg_default("TORCH_INDEX_URL") == "" and _arg_default("PIP_FIND_LINKS") == ""  # GPU (PyPI) default
    # the pin satisfies the package's own torch range, or pip would replace the chosen build
    torch_req = next(d for d in PYPROJECT["project"]["dependencies"] if d.startswith("torch"))
    lo, hi = re.fullmatch(r"torch>=([\d.]+),<=([\d.]+)", torch_req).groups()
    version = tuple(int(x) for x in pin.split("."))
    assert tuple(int(x) for x in lo.split(".")) <= version <= tuple(int(x) for x in hi.split("."))
    assert _arg_default("BASE_IMAGE") == "python:3.11-slim-bookworm"
    froms = re.findall(r"^FROM (\S+)", DOCKERFILE, re.M)
    assert froms[0] == "${BASE_IMAGE}" and set(froms[1:]) <= set(re.findall(r" AS (\w+)$", DOCKERFILE, re.M)), froms
    assert PYPROJECT["project"]["requires-python"] == ">=3.10"  # the base's 3.11 (tomllib in the deps stage)


def test_dockerfile_system_packages_match_install_sh():
    debs = set(re.search(r'^DEBS="([^"]*)"', INSTALL, re.M).group(1).split())
    apt = re.search(r"apt-get install -y --no-install-recommends((?:\s|\\)+[^&]*)&&", DOCKERFILE).group(1)
    assert set(apt.replace("\\", " ").split()) == debs


def test_dockerignore_keeps_what_the_build_copies_and_drops_local_state():
    pats = _ignore_patterns()
    for local in (".venv/bin/python", "outputs/demo/points.ply", "runs/x/log.csv", ".git/HEAD",
                  "gimsfm/__pycache__/cli.cpython-311.pyc", "gimsfm/sfm/__pycache__/x.pyc", "gimsfm.egg-info/PKG-INFO",
                  "gimsfm/weights/checkpoints/sift_lightglue_gim.ckpt"):
        assert dockerignored(local, pats), local
    copied = re.findall(r"^COPY (?!--from)(.+) \S+$", DOCKERFILE, re.M)
    sources = [s for line in copied for s in line.split()]
    assert {"pyproject.toml", "README.md", "LICENSE", "gimsfm", "pipelines", "scenes"} <= set(sources)
    for src in sources:
        assert (REPO / src).exists() and not dockerignored(src, pats), src
    needed = [*(REPO / "gimsfm/weights").glob("*.pt"), *(REPO / "pipelines").rglob("*.yaml"),
              *(REPO / "scenes/sacre_coeur/images").iterdir()]
    assert len(needed) > 20
    for f in needed:
        assert not dockerignored(str(f.relative_to(REPO)), pats), f


def test_presets_and_weights_are_package_data():
    """A non-editable install (the image) finds named presets and weights inside the package."""
    from gimsfm.sfm.reconstruct import ReconstructConfig
    from gimsfm.utils.config import PRESETS_DIR

    assert PRESETS_DIR.resolve() == REPO / "pipelines"  # gimsfm/presets links to pipelines/ in a checkout
    globs = PYPROJECT["tool"]["setuptools"]["package-data"]["gimsfm"]
    pkg = REPO / "gimsfm"
    files = [*(PRESETS_DIR.rglob("*.yaml")), *(pkg / "weights").glob("*.pt"), *(pkg / "bench/baselines").glob("*.json")]
    for f in files:
        rel = f.relative_to(pkg).as_posix().split("/")
        assert any(_parts_match(rel, g) for g in globs), f"{f} is not package data"
    assert ReconstructConfig.from_preset("reconstruct_sift").matcher == "sift-nn"
