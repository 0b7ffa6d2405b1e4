"""Query conditions: the same world geometry under another illumination / weather (day map vs. night or
fog queries, as in Aachen Day-Night).

``condition_world(world, condition, rng)`` returns a copy of ``world`` that shares its geometry, moving
objects and trajectories but has another ``Environment`` and post-processing (``post``):

* ``day``   the domain's normal look (no change);
* ``night`` dark sky, low ambient light, street lamps (indoor: one or two ceiling lights) as point lights,
  lower exposure, strong sensor noise (lighting as in the ``night`` domain);
* ``fog``   dense distance fog / haze, flat light, desaturation (as in the ``fog`` domain);
* ``rain``  overcast, light haze, wet darker colours and rain streaks;
* ``dusk``  low warm sun, orange horizon, dim ambient light, lamps on at low power.

Only appearance changes: poses, intrinsics, depth and the positions of moving objects stay exact.
"""
from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from ..errors import InputError
from .effects import rain as rain_streaks
from .world import Environment, World

CONDITIONS = ("day", "night", "fog", "rain", "dusk")

# conditions each domain supports ("day" = the domain's own look). Night needs light sources in the world
# (street lamps, ceiling lights); fog / rain need an outdoor world.
SUPPORTED = {
    "street": CONDITIONS,
    "indoor": ("day", "night", "dusk"),
    "terrain": ("day", "fog", "rain", "dusk"),
    "aerial": ("day", "fog", "dusk"),
    "object": ("day",),
    "underwater": ("day",),
    "night": ("day",),
    "fog": ("day",),
}


def check_condition(domain: str, condition: str) -> None:
    if condition not in CONDITIONS:
        raise InputError(f"unknown query condition {condition!r}; choose from {', '.join(CONDITIONS)}")
    ok = SUPPORTED.get(domain, ("day",))
    if condition not in ok:
        raise InputError(f"domain {domain!r} does not support query condition {condition!r}; supported: {', '.join(ok)}")


def _arr(*v) -> np.ndarray:
    return np.array(v, np.float64)


def _lamp_lights(world: World, rng: np.random.Generator, lo: float, hi: float) -> list:
    return [(np.asarray(p, np.float64), _arr(1.0, 0.8, 0.5) * rng.uniform(lo, hi)) for p in world.lamps]


def _env(base: Environment, **kw) -> Environment:
    """A copy of `base` with some fields replaced (re-runs __post_init__: same slow-variation seed)."""
    return dataclasses.replace(base, **kw)


def _night(world: World, rng: np.random.Generator) -> tuple[Environment, dict]:
    base = world.env
    dark = {"sun_dir": _arr(0.2, 0.1, 1.0), "sun_col": _arr(0.02, 0.025, 0.04), "sun_var": 0.0, "clouds": 0.0,
            "sky_top": _arr(0.0, 0.01, 0.04), "sky_horizon": _arr(0.05, 0.05, 0.09), "ground_col": _arr(0.02, 0.02, 0.02),
            "fog_col": _arr(0.02, 0.02, 0.035)}
    if world.domain == "indoor":
        # daylight through the windows gone, most ceiling lights off: one or two lamps stay on
        keep = base.lights[: max(1, min(2, len(base.lights) // 2))]
        lights = [(p, np.asarray(c) * rng.uniform(0.7, 1.0) * _arr(1.0, 0.9, 0.7)) for p, c in keep]
        env = _env(base, **dark, ambient=_arr(0.025, 0.025, 0.035), lights=lights, gain=rng.uniform(0.85, 1.05), flicker=0.0)
    else:
        env = _env(base, **dark, ambient=_arr(0.03, 0.035, 0.06), lights=_lamp_lights(world, rng, 1.0, 2.0),
                   fog_density=0.002, gain=rng.uniform(0.7, 0.9), flicker=0.03)
    return env, {"noise": 0.06}


def _fog(world: World, rng: np.random.Generator) -> tuple[Environment, dict]:
    fog_col = np.full(3, rng.uniform(0.62, 0.78)) * rng.uniform(0.97, 1.03, 3)
    scale = 0.1 if world.domain == "aerial" else 1.0  # aerial: distances are ~10x larger
    env = _env(world.env, sun_col=np.full(3, rng.uniform(0.1, 0.2)), ambient=np.full(3, rng.uniform(0.6, 0.75)),
               sky_top=fog_col, sky_horizon=fog_col, ground_col=fog_col * 0.8, fog_col=fog_col,
               fog_density=rng.uniform(0.03, 0.045) * scale, clouds=0.0, sun_var=0.05, lights=[])
    return env, {"noise": 0.02, "desaturate": 0.6}


def _rain(world: World, rng: np.random.Generator) -> tuple[Environment, dict]:
    grey = np.full(3, rng.uniform(0.45, 0.55)) * _arr(0.96, 0.98, 1.04)
    scale = 0.1 if world.domain == "aerial" else 1.0
    env = _env(world.env, sun_col=np.full(3, 0.08), ambient=rng.uniform(0.4, 0.5) * _arr(0.92, 0.96, 1.05),
               sky_top=grey * 0.85, sky_horizon=grey, ground_col=grey * 0.6, fog_col=grey,
               fog_density=rng.uniform(0.01, 0.018) * scale, clouds=0.0, sun_var=0.05, lights=[], gain=0.85)
    return env, {"noise": 0.025, "desaturate": 0.3, "rain": True}


def _dusk(world: World, rng: np.random.Generator) -> tuple[Environment, dict]:
    base = world.env
    if world.domain == "indoor":
        env = _env(base, sun_col=np.asarray(base.sun_col) * 0.3 * _arr(1.0, 0.7, 0.45),
                   ambient=np.asarray(base.ambient) * 0.45 * _arr(1.0, 0.85, 0.7), sun_var=0.0)
        return env, {"noise": 0.035}
    az = float(np.arctan2(base.sun_dir[1], base.sun_dir[0]))
    el = rng.uniform(0.03, 0.1)
    env = _env(base, sun_dir=_arr(np.cos(az) * np.cos(el), np.sin(az) * np.cos(el), np.sin(el)),
               sun_col=_arr(1.0, 0.55, 0.28) * rng.uniform(0.5, 0.7), ambient=_arr(0.17, 0.15, 0.2),
               sky_top=_arr(0.1, 0.13, 0.32), sky_horizon=_arr(0.85, 0.5, 0.3), ground_col=_arr(0.12, 0.1, 0.1),
               fog_col=_arr(0.45, 0.33, 0.3), clouds=float(base.clouds) * 0.5, sun_var=0.0,
               lights=_lamp_lights(world, rng, 0.6, 1.2), flicker=0.0)
    return env, {"noise": 0.035}


_MAKERS = {"night": _night, "fog": _fog, "rain": _rain, "dusk": _dusk}


def condition_world(world: World, condition: str, rng: np.random.Generator) -> World:
    """`world` under `condition` (same geometry, other environment / post-processing)."""
    check_condition(world.domain, condition)
    if condition == "day":
        return world
    env, post = _MAKERS[condition](world, rng)
    return dataclasses.replace(world, env=env, post={**post, "condition": condition})


def post_process(rgb: np.ndarray, post: dict, rng: np.random.Generator) -> np.ndarray:
    """Condition effects applied before sensor noise: desaturation (haze), rain streaks."""
    d = float(post.get("desaturate", 0.0))
    if d > 0:
        x = rgb.astype(np.float32)
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)[..., None]
        rgb = np.clip(x * (1 - d) + grey * d + 0.5, 0, 255).astype(np.uint8)
    if post.get("rain"):
        rgb = rain_streaks(rgb, rng, density=0.002, length=22, brightness=0.2)
    return rgb
