"""Weight averaging ("model soup", Wortsman et al. 2022) of matchers fine-tuned from one start point.

Runs fine-tuned from the same weights with a small learning rate stay in one loss basin, where the uniform
average of their weights often generalises better than any of them, at no training or inference cost.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Sequence

import torch

from .. import logger
from ..errors import InputError
from ..models import read_exported
from .trainer import atomic_torch_save


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _load(path: Path) -> dict[str, Any]:
    return read_exported(Path(path))


def _ingredient(path: Path, obj: dict[str, Any]) -> dict[str, Any]:
    info = obj.get("info", {})
    preset = info.get("preset") or {}
    return {"path": str(path), "sha256": _sha256(path), "name": preset.get("name"),
            "preset": preset.get("_source"), "overrides": preset.get("_overrides", []),
            "init_from": (preset.get("train") or {}).get("init_from"),
            "iteration": info.get("iteration"), "elapsed_s": info.get("elapsed_s")}


def average_weights(paths: Sequence[Path], out: Path, weights: Sequence[float] | None = None,
                    half: bool = True, overwrite: bool = False) -> Path:
    """Average exported weights files (same architecture and config) into `out`, an exported weights file
    with the ingredients (path, sha256, preset, iterations, training time) recorded in its info."""
    paths = [Path(p) for p in paths]
    out = Path(out)
    if len(paths) < 2:
        raise InputError("averaging needs at least two weights files")
    if len(set(p.resolve() for p in paths)) != len(paths):
        raise InputError("the same weights file is listed twice")
    if out.exists() and not overwrite:
        raise InputError(f"{out} exists (pass --overwrite to replace it)")
    if out.resolve() in {p.resolve() for p in paths}:
        raise InputError(f"the output {out} is one of the inputs")
    w = [1.0] * len(paths) if weights is None else [float(x) for x in weights]
    if len(w) != len(paths) or min(w) < 0 or sum(w) <= 0:
        raise InputError("need one non-negative weight per file, not all zero")
    w = [x / sum(w) for x in w]
    first = None
    acc: dict[str, torch.Tensor] = {}
    ingredients = []
    for p, wi in zip(paths, w):
        obj = _load(p)
        if first is None:
            first = obj
        elif (obj["model_name"], obj["conf"]) != (first["model_name"], first["conf"]):
            raise InputError(f"{p} is a different model than {paths[0]} (model_name/conf differ)")
        sd = obj["state_dict"]
        if set(sd) != set(first["state_dict"]):
            raise InputError(f"{p} has other parameters than {paths[0]}")
        for k, v in sd.items():
            if v.is_floating_point():
                acc[k] = acc.get(k, 0) + wi * v.double()
            elif k not in acc:
                acc[k] = v
            elif not torch.equal(acc[k], v):  # integer buffers cannot be averaged
                raise InputError(f"{p}: integer buffer {k} differs from {paths[0]}")
        ingredients.append({**_ingredient(p, obj), "weight": wi})
    starts = {i["init_from"] for i in ingredients}
    if len(starts) > 1:  # averaging only makes sense within one basin
        logger.warning("the ingredients start from different weights: %s", sorted(map(str, starts)))
    dtype = torch.float16 if half else torch.float32
    sd = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in acc.items()}
    info = {"soup": ingredients, "iteration": sum(i["iteration"] or 0 for i in ingredients),
            "elapsed_s": sum(i["elapsed_s"] or 0.0 for i in ingredients),
            "preset": (first.get("info") or {}).get("preset")}
    atomic_torch_save({"model_name": first["model_name"], "conf": first["conf"], "state_dict": sd, "info": info},
                      out)
    logger.info("averaged %d weights files into %s", len(paths), out)
    return out


def write_soup_card(weights_path: Path, card_path: Path | None = None, title: str | None = None,
                    notes: str = "") -> Path:
    """Model card of an averaged weights file: its ingredients and how each was trained."""
    weights_path = Path(weights_path)
    obj = _load(weights_path)
    ing = obj.get("info", {}).get("soup")
    if not ing:
        raise InputError(f"{weights_path} is not an averaged weights file")
    n_params = sum(v.numel() for k, v in obj["state_dict"].items() if "confidence_thresholds" not in k)
    lines = [f"# {title or 'Model card: ' + weights_path.stem}", "",
             "Trained by gimsfm's own code (no pretrained weights): the uniform weight average (model soup) of "
             f"{len(ing)} matchers fine-tuned by `gimsfm train`, made with "
             f"`gimsfm average {' '.join(i['path'] for i in ing)} --out {weights_path}`.", "",
             "## Model", "", f"- architecture: `{obj['model_name']}` {json.dumps(obj['conf'])}",
             f"- parameters: {n_params:,}; shipped as an fp16 state dict + config", "",
             "## Ingredients", "",
             "| weights | weight | run | preset (+ overrides) | initialised from | iterations | train time (h) | sha256 |",
             "|---|---|---|---|---|---|---|---|"]
    for i in ing:
        pre = f"`{i['preset']}`" + "".join(f" `--set {o}`" for o in i.get("overrides") or [])
        lines.append(f"| `{i['path']}` | {i['weight']:.3f} | {i['name']} | {pre} | `{i['init_from']}` | "
                     f"{i['iteration']} | {(i['elapsed_s'] or 0) / 3600:.2f} | `{i['sha256'][:12]}` |")
    info = obj["info"]
    lines += ["", f"Total training: {info['iteration']} iterations, {info['elapsed_s'] / 3600:.2f} h on CPU "
              "(the ingredients' own cards give their data and validation)."]
    if notes:
        lines += ["", "## Notes", "", notes]
    card_path = Path(card_path) if card_path else weights_path.with_suffix(".md")
    card_path.write_text("\n".join(lines) + "\n")
    return card_path
