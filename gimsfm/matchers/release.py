"""The GIM authors' released checkpoints: where gimsfm looks for them and how it loads them.

The files are not shipped with gimsfm: a user brings them (`--matcher gim-dkm:PATH`) or puts them under their
release names in the weights folder (`GIMSFM_WEIGHTS`, else `~/.cache/gimsfm/weights`). `release_keys.json`
holds each release file's key names, shapes and dtypes (no values), taken from the parity fixtures'
`keys.json`, so a file can be checked (and another model's file recognised) before any network is built.
"""
from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import torch

from ..errors import InputError
from ..utils.checkpoint import read_torch_file

RELEASE_FILES: dict[str, str] = {
    "gim-lightglue": "gim_lightglue_100h.ckpt",
    "gim-loftr": "gim_loftr_50h.ckpt",
    "gim-dkm": "gim_dkm_100h.ckpt",
}
RELEASE_URL = "https://github.com/xuelunshen/gim (checkpoints linked from its README)"
# Keys a release file may hold that no network here uses, matched after any `model.` prefix (DKM's ResNet
# classifier; every DKM version deletes it, but a loader meant to drop it exists upstream).
IGNORED_KEY_PREFIXES: dict[str, tuple[str, ...]] = {"gim-dkm": ("encoder.net.fc.",)}
# Prefixes some exports of the same networks carry instead of the training module's `model.`.
ALTERNATIVE_PREFIXES: dict[str, tuple[str, ...]] = {"gim-loftr": ("matcher.",)}


def weights_dir() -> Path:
    """The folder searched for release files by name: $GIMSFM_WEIGHTS, else the user's cache dir."""
    env = os.environ.get("GIMSFM_WEIGHTS")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache).expanduser() / "gimsfm" / "weights"


def find_release_weights(name: str) -> Path | None:
    """The release file of matcher `name` in weights_dir(), if it is there."""
    path = weights_dir() / RELEASE_FILES[name]
    return path if path.is_file() else None


def resolve_release_weights(name: str, path: str | Path | None = None) -> Path:
    """An explicit path (`--matcher NAME:PATH`), else the file found by name; InputError says where it looked."""
    if path:
        p = Path(path).expanduser()
        if not p.is_file():
            raise InputError(f"{name}: checkpoint not found: {p}")
        return p
    found = find_release_weights(name)
    if found is None:
        raise InputError(f"{name}: no checkpoint: {weights_status(name)}")
    return found


@lru_cache(maxsize=None)
def _signatures() -> dict[str, Any]:
    return json.loads((Path(__file__).with_name("release_keys.json")).read_text())


def release_signature(name: str) -> dict[str, tuple[int, ...]]:
    """Full release key -> shape of every entry of `name`'s release checkpoint, in file order."""
    return {k: tuple(shape) for k, shape, _ in _signatures()[name]["keys"]}


def _normalise(name: str, sd: dict[str, Any], expected: set[str]) -> dict[str, Any]:
    """Accepts the same weights under an unprefixed or alternative-prefix layout; drops ignorable keys."""
    out = {}
    for k, v in sd.items():
        key = k
        if key not in expected:
            for alt in ALTERNATIVE_PREFIXES.get(name, ()):
                if key.startswith(alt) and "model." + key[len(alt):] in expected:
                    key = "model." + key[len(alt):]
            if key not in expected and "model." + key in expected:
                key = "model." + key
        bare = key[len("model."):] if key.startswith("model.") else key
        if any(bare.startswith(p) for p in IGNORED_KEY_PREFIXES.get(name, ())):
            continue
        out[key] = v
    return out


def _looks_like(sd_keys: set[str], exclude: str) -> str | None:
    """The other release model whose key set the file matches best (if it holds most of that model's keys)."""
    best, best_frac = None, 0.5
    for other in RELEASE_FILES:
        if other == exclude:
            continue
        sig = set(release_signature(other))
        frac = len(sig & _normalise(other, dict.fromkeys(sd_keys), sig).keys()) / len(sig)
        if frac > best_frac:
            best, best_frac = other, frac
    return best


def _few(keys: Sequence[str], n: int = 3) -> str:
    keys = sorted(keys)
    return ", ".join(keys[:n]) + (", ..." if len(keys) > n else "")


def load_release_state_dict(path: str | Path, name: str,
                            expected_keys: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
    """The checked state dict of a release checkpoint: `ckpt["state_dict"]` (or a bare state dict), float
    entries as stored, keys as in the release file (`model.`/`superpoint.` prefixes).

    `expected_keys` defaults to the release file's full key list. Every problem is one InputError line naming
    the file and what is wrong: missing, truncated/corrupt, not a checkpoint, another model's checkpoint,
    missing or unexpected keys, wrong shapes.
    """
    path = Path(path)
    obj = read_torch_file(path, f"{name} checkpoint")
    sd = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(sd, dict) or not sd or not all(torch.is_tensor(v) for v in sd.values()):
        hint = ""
        if isinstance(obj, dict) and {"model_name", "conf", "state_dict"} <= set(obj):
            hint = f" (it is a gimsfm weights file of '{obj['model_name']}')"
        raise InputError(f"{name}: not a checkpoint with a state_dict of tensors{hint}: {path}")
    signature = release_signature(name)
    expected = list(expected_keys) if expected_keys is not None else list(signature)
    exp_set = set(expected)
    sd = _normalise(name, sd, exp_set)
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in exp_set]
    if missing or unexpected:
        other = _looks_like(set(sd), name) if missing else None
        parts = []
        if missing:
            parts.append(f"{len(missing)} keys missing" + ("" if other else f" ({_few(missing)})"))
        if unexpected and not other:
            parts.append(f"{len(unexpected)} unexpected ({_few(unexpected)})")
        if other:
            parts.append(f"looks like a {other} checkpoint")
        raise InputError(f"{name}: {', '.join(parts)}: {path}")
    for k in expected:  # a scalar saved as a 1-element vector (e.g. BatchNorm counters through numpy)
        if k in signature and sd[k].numel() == 1 and len(signature[k]) <= 1 and tuple(sd[k].shape) != signature[k]:
            sd[k] = sd[k].reshape(signature[k])
    wrong = [f"{k} {tuple(sd[k].shape)} instead of {signature[k]}" for k in expected
             if k in signature and tuple(sd[k].shape) != signature[k]]
    if wrong:
        raise InputError(f"{name}: {len(wrong)} tensors have the wrong shape ({'; '.join(wrong[:2])}): {path}")
    return {k: sd[k] for k in expected}


def strip_prefix(sd: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries under `prefix` (e.g. "superpoint."), with the prefix removed."""
    return {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}


def weights_status(name: str) -> str:
    """One line for `gimsfm matchers` and errors: the file found, or where it was looked for and where to get it."""
    found = find_release_weights(name)
    if found:
        return f"{found}"
    return (f"looked for {weights_dir() / RELEASE_FILES[name]} (set GIMSFM_WEIGHTS or pass {name}:PATH); "
            f"get it from {RELEASE_URL}")


def registration(name: str) -> dict[str, Any]:
    """`register(...)` keywords of a release matcher: available when its file is found by name."""
    return {"available": lambda: find_release_weights(name) is not None,
            "weights_status": lambda: weights_status(name)}
