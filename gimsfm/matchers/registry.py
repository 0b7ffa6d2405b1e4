"""The one registry of matchers: every pipeline and benchmark resolves `--matcher NAME` here."""
from __future__ import annotations

import importlib
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
    sfm_keypoints: int = 8192  # keypoints per image for reconstruct/localize when none are given
    weights_status: Callable[[], str] | None = None  # the weights file found, or where it was looked for


REGISTRY: dict[str, MatcherEntry] = {}


def register(name: str, description: str, conf: dict[str, Any] | None = None,
             available: Callable[[], bool] | None = None, sfm_keypoints: int = 8192,
             weights_status: Callable[[], str] | None = None) -> Callable[[type], type]:
    """Class decorator (or call with a factory) that adds a matcher under `name`."""

    def deco(factory):
        REGISTRY[name] = MatcherEntry(name, factory, description, dict(conf or {}), available or (lambda: True),
                                      sfm_keypoints, weights_status)
        return factory

    return deco


def _parse_options(spec: str, base: str, text: str) -> dict[str, Any]:
    """`KEY=VALUE,KEY.SUB=VALUE` -> nested dict; values are YAML scalars; keys are checked against the
    matcher's defaults (and the SIFT extractor's for `features.*`)."""
    import yaml

    defaults = dict(getattr(REGISTRY[base].factory, "default_conf", {}))
    opts: dict[str, Any] = {}
    for item in filter(None, text.split(",")):
        key, eq, raw = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise InputError(f"matcher '{spec}': option '{item}' is not KEY=VALUE")
        if key == "weights" or key == "weights_sha1":
            raise InputError(f"matcher '{spec}': give other weights as NAME:WEIGHTS, not as an option")
        path = key.split(".")
        if key == "views":  # view synthesis: any sparse matcher (matchers/views.py), checked here
            from .views import parse_views

            if parse_views(raw, spec)[0] != "off" and not getattr(REGISTRY[base].factory, "sparse", True):
                raise InputError(f"matcher '{spec}': views need a sparse matcher; '{base}' is detector-free")
            opts["views"] = raw.strip()
            continue
        if path[0] not in defaults:
            raise InputError(f"matcher '{spec}': no option '{path[0]}'; options: "
                             f"{', '.join(sorted([*defaults, 'views']))}")
        if len(path) > 1:
            sub = _sub_defaults(path[0], defaults[path[0]], REGISTRY[base].factory)
            if len(path) != 2 or path[1] not in sub:
                raise InputError(f"matcher '{spec}': no option '{key}'; {path[0]}.* options: "
                                 f"{', '.join(sorted(sub)) or 'none'}")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            raise InputError(f"matcher '{spec}': cannot read the value of '{key}': {raw!r}") from None
        node = opts
        for k in path[:-1]:
            node = node.setdefault(k, {})
        node[path[-1]] = value
    return opts


def _sub_defaults(key: str, value: Any, factory: Any = None) -> dict[str, Any]:
    if key == "features" and getattr(factory, "feature_defaults", None):  # a matcher with its own detector
        return dict(factory.feature_defaults)
    if key == "features":  # SIFT matchers: overrides of the shared extractor's settings
        from ..features.sift import SiftExtractor

        return dict(SiftExtractor.default_conf)
    return dict(value) if isinstance(value, dict) else {}


def _spec_parts(spec: str) -> tuple[str, str, str]:
    """`NAME[:WEIGHTS][@OPTIONS]` -> (NAME, WEIGHTS, OPTIONS), split only, nothing checked."""
    head, _, options = spec.partition("@")
    base, _, weights = head.partition(":")
    return base, weights, options


def parse_matcher_spec(spec: str) -> tuple[str, str, dict[str, Any]]:
    """`NAME[:WEIGHTS][@KEY=VALUE,...]` -> (registered NAME, WEIGHTS or "", options), checked: unknown names,
    missing weights files and unknown options are input errors, found before any work starts.

    e.g. `sift-lightglue-gim@depth_confidence=-1,filter_threshold=0.05` or `sift-nn@features.max_keypoints=4096`.
    """
    _load_builtin()
    base, weights, options = _spec_parts(spec)
    if base not in REGISTRY:
        raise InputError(f"unknown matcher '{base}'; available: {', '.join(sorted(REGISTRY))}")
    if weights:
        if "weights" not in getattr(REGISTRY[base].factory, "default_conf", {}):
            raise InputError(f"matcher '{base}' has no weights to replace ('{spec}')")
        if not Path(weights).is_file():
            raise InputError(f"matcher '{spec}': weights file not found: {weights}")
    return base, weights, _parse_options(spec, base, options)


def split_matcher_name(name: str) -> tuple[str, str]:
    """`NAME[:WEIGHTS][@OPTIONS]` -> (registered NAME, WEIGHTS or ""), checked as parse_matcher_spec."""
    base, weights, _ = parse_matcher_spec(name)
    return base, weights


def _deep_merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def get_matcher(name: str, conf: dict[str, Any] | None = None, device: str = "auto") -> Matcher:
    """Instantiate a registered matcher; `conf` overrides the entry's defaults, and options in the name
    override both.

    `NAME:WEIGHTS` (e.g. `sift-lightglue-gim:runs/candidate.pt`, a file from `gimsfm train --export`) is the
    registered learned matcher NAME with other weights: candidates are benchmarked before they are shipped.
    `NAME@KEY=VALUE,...` sets inference options (e.g. `sift-lightglue-gim@filter_threshold=0.2`), so one
    benchmark run can compare settings side by side. `views=auto|asift|T1+T2` (any sparse matcher) adds
    synthesised views (matchers/views.py).
    """
    base, weights, options = parse_matcher_spec(name)
    views = options.pop("views", "off")
    entry = REGISTRY[base]
    extra: dict[str, Any] = {}
    if weights:
        extra["weights"] = weights
    elif not entry.available():
        hint = entry.weights_status() if entry.weights_status else "missing weights?"
        raise InputError(f"matcher '{name}' is registered but not available ({hint})")
    full = _deep_merge(_deep_merge({**entry.conf, **(conf or {})}, options), extra)
    matcher = entry.factory(full, device=device)
    if views != "off":
        from .views import wrap_views

        matcher = wrap_views(matcher, views, name)
    matcher.registry_name = name
    return matcher


def sfm_keypoints(name: str) -> int:
    """Keypoints per image a reconstruction uses with matcher NAME (spec allowed) unless told otherwise:
    many for nearest-neighbour SIFT, fewer for attention matchers whose cost grows with the square."""
    _load_builtin()
    entry = REGISTRY.get(_spec_parts(name)[0])
    return entry.sfm_keypoints if entry else MatcherEntry.sfm_keypoints


def list_matchers() -> list[MatcherEntry]:
    _load_builtin()
    return [REGISTRY[k] for k in REGISTRY]


def _load_builtin() -> None:
    # Importing the modules runs their @register decorators.
    from . import sift_nn  # noqa: F401
    try:
        from . import dog_desc, lightglue  # noqa: F401
    except ImportError:
        pass
    for module in ("gim_lightglue", "gim_loftr", "gim_dkm"):  # the GIM release models (weights brought by users)
        try:
            importlib.import_module(f"{__package__}.{module}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__package__}.{module}":
                raise
