"""Reading torch weight files safely, with one-line errors that name what is wrong.

Every weight file gimsfm opens (its own exported weights and training checkpoints, and the GIM release
checkpoints a user brings) goes through `read_torch_file`: a missing, truncated or corrupt file, or one that is
no torch file at all, becomes an InputError (exit 2) instead of a PytorchStreamReader traceback.
"""
from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from .. import logger
from ..errors import InputError


class _Opaque:
    """Stands in for a pickled Python object that weights-only loading does not know (e.g. the configuration
    objects PyTorch Lightning stores under `hyper_parameters`): it keeps whatever the pickle gives it, and
    executes nothing."""

    def __init__(self, *args: Any, **kwargs: Any):
        self.args, self.kwargs, self.items, self.state = args, kwargs, {}, None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __setitem__(self, key: Any, value: Any) -> None:
        self.items[key] = value

    def append(self, value: Any) -> None:
        self.items[len(self.items)] = value

    def extend(self, values: Any) -> None:
        for v in values:
            self.append(v)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    # torch's messages run on ("... This is an internal miniz error. If you are seeing this ..."): first sentence
    return f"{type(exc).__name__}: {text[0].split('. ')[0][:160]}" if text else type(exc).__name__


# Harmless types gimsfm's own files hold (torch.__version__ in the recorded hardware info is a str subclass).
SAFE_TYPES: list[Any] = [torch.torch_version.TorchVersion]


def _load(source: Path, stubs: list[str] | None = None) -> Any:
    opaque = [(type(name.rsplit(".", 1)[-1], (_Opaque,), {"__module__": name.rsplit(".", 1)[0]}), name)
              for name in stubs or []]
    with torch.serialization.safe_globals(SAFE_TYPES + opaque):
        return torch.load(source, map_location="cpu", weights_only=True)


def read_torch_file(path: str | Path, what: str = "weights") -> Any:
    """`torch.load` of `path` on the CPU, weights only (no code from the file runs).

    Objects weights-only loading refuses (pickled configuration classes) are read as inert placeholders, so a
    PyTorch Lightning checkpoint opens without trusting its pickle. Raises InputError, with `what` (e.g.
    "gim-dkm checkpoint") in the message, for a missing, empty, truncated, corrupt or non-torch file.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{what} not found: {path}")
    if not path.is_file():
        raise InputError(f"{what} is not a file: {path}")
    size = path.stat().st_size
    if size == 0:
        raise InputError(f"{what} is empty (0 bytes): {path}")
    _check_zip(path, what, size)
    stubs: list[str] = []
    for _ in range(2):  # second try: with placeholders for the globals the first one refused
        try:
            return _load(path, stubs)
        except pickle.UnpicklingError as exc:
            if stubs:
                return _unreadable(path, what, size, exc)
            try:
                known = {f"{t.__module__}.{t.__qualname__}" for t in SAFE_TYPES}
                stubs = [g for g in torch.serialization.get_unsafe_globals_in_checkpoint(path) if g not in known]
            except Exception as inner:  # noqa: BLE001 - a corrupt file raises anything here
                return _unreadable(path, what, size, inner)
            if not stubs:
                return _unreadable(path, what, size, exc)
            logger.debug("%s: reading %d pickled object type(s) as placeholders: %s", path, len(stubs),
                         ", ".join(stubs[:5]))
        except (RuntimeError, EOFError, OSError, ValueError, KeyError, IndexError, TypeError, AttributeError,
                zipfile.BadZipFile, UnicodeDecodeError, MemoryError) as exc:
            return _unreadable(path, what, size, exc)
    raise AssertionError("unreachable")


def _check_zip(path: Path, what: str, size: int) -> None:
    """torch does not verify the CRCs of a zip checkpoint's records, so flipped bytes in tensor data would load
    silently as other weights; the zip module checks them (about 1 s per GB)."""
    if not zipfile.is_zipfile(path):
        return
    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, RuntimeError) as exc:
        _unreadable(path, what, size, exc)
        return
    if bad is not None:
        raise InputError(f"{what} is corrupt ({size} bytes; record {bad} fails its checksum): {path}")


def _unreadable(path: Path, what: str, size: int, exc: BaseException) -> Any:
    head = path.open("rb").read(4)
    if head[:2] == b"PK" or head[:1] == b"\x80":  # a zip (torch >= 1.6) or legacy pickle file that breaks off
        raise InputError(f"{what} is truncated or corrupt ({size} bytes; {_describe(exc)}): {path}") from None
    raise InputError(f"not a {what} (no torch file; {size} bytes; {_describe(exc)}): {path}") from None
