"""The one registry of matchers: every pipeline and benchmark resolves `--matcher NAME` here."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..errors import InputError
from .base import Matcher


@dataclass
class MatcherEntry:
    name: str
    factory: Callable[..., Matcher]
    description: str
    conf: dict[str, Any] = field(default_factory=dict)
    available: Callable[[], bool] = lambda: True  # e.g. weights present


REGISTRY: dict[str, MatcherEntry] = {}


def register(name: str, description: str, conf: dict[str, Any] | None = None,
             available: Callable[[], bool] | None = None) -> Callable[[type], type]:
    """Class decorator (or call with a factory) that adds a matcher under `name`."""

    def deco(factory):
        REGISTRY[name] = MatcherEntry(name, factory, description, dict(conf or {}), available or (lambda: True))
        return factory

    return deco


def split_matcher_name(name: str) -> tuple[str, str]:
    """`NAME` or `NAME:WEIGHTS` -> (registered NAME, WEIGHTS or ""), checked: unknown names and missing
    weights files are input errors, found before any work starts."""
    _load_builtin()
    base, _, weights = name.partition(":")
    if base not in REGISTRY:
        raise InputError(f"unknown matcher '{base}'; available: {', '.join(sorted(REGISTRY))}")
    if weights:
        if "weights" not in getattr(REGISTRY[base].factory, "default_conf", {}):
            raise InputError(f"matcher '{base}' has no weights to replace ('{name}')")
        if not Path(weights).is_file():
            raise InputError(f"matcher '{name}': weights file not found: {weights}")
    return base, weights


def get_matcher(name: str, conf: dict[str, Any] | None = None, device: str = "auto") -> Matcher:
    """Instantiate a registered matcher; `conf` overrides the entry's defaults.

    `NAME:WEIGHTS` (e.g. `sift-lightglue-gim:runs/candidate.pt`, a file from `gimsfm train --export`) is the
    registered learned matcher NAME with other weights: candidates are benchmarked before they are shipped.
    """
    base, weights = split_matcher_name(name)
    entry = REGISTRY[base]
    extra: dict[str, Any] = {}
    if weights:
        extra["weights"] = weights
    elif not entry.available():
        raise InputError(f"matcher '{name}' is registered but not available (missing weights?)")
    matcher = entry.factory({**entry.conf, **(conf or {}), **extra}, device=device)
    matcher.registry_name = name
    return matcher


def list_matchers() -> list[MatcherEntry]:
    _load_builtin()
    return [REGISTRY[k] for k in REGISTRY]


def _load_builtin() -> None:
    # Importing the modules runs their @register decorators.
    from . import sift_nn  # noqa: F401
    try:
        from . import lightglue  # noqa: F401
    except ImportError:
        pass
