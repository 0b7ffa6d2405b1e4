"""Procedural, seeded worlds for 8 visually distinct domains.

``build_world(domain, seed)`` returns a ``World``: static triangle soup, moving objects (vehicles, people,
fish), an ``Environment`` (sun, sky, fog, water, point lights, slow illumination changes) and camera
factories (``world.trajectory(rng, kind)``) that produce footage-like motion for that domain.
Everything is a pure function of (domain, seed) and the fixed texture catalogue.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..errors import InputError
from . import camera as cam
from .mesh import MeshBuilder, variation_rng
from .textures import TextureCatalog, fbm, get_catalog

DOMAINS = ("indoor", "street", "terrain", "aerial", "object", "underwater", "night", "fog")


# ----------------------------------------------------------------------------------------------------------
@dataclass
class Environment:
    sun_dir: np.ndarray = field(default_factory=lambda: np.array([0.3, 0.2, 0.93]))
    sun_col: np.ndarray = field(default_factory=lambda: np.array([0.75, 0.72, 0.68]))
    ambient: np.ndarray = field(default_factory=lambda: np.array([0.45, 0.47, 0.5]))
    sky_top: np.ndarray = field(default_factory=lambda: np.array([0.25, 0.45, 0.8]))
    sky_horizon: np.ndarray = field(default_factory=lambda: np.array([0.75, 0.82, 0.9]))
    ground_col: np.ndarray = field(default_factory=lambda: np.array([0.35, 0.33, 0.3]))
    fog_col: np.ndarray = field(default_factory=lambda: np.array([0.7, 0.75, 0.8]))
    fog_density: float = 0.0
    water_absorb: np.ndarray = field(default_factory=lambda: np.zeros(3))
    clouds: float = 0.5
    lights: list = field(default_factory=list)  # [(pos(3), col(3))]
    gain: float = 1.0
    sun_var: float = 0.0      # relative amplitude of slow sun-intensity changes (passing clouds)
    flicker: float = 0.0      # relative amplitude of point-light flicker
    seed: int = 0

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed + 77)
        self._sun = cam.Smooth1D(rng, 0.01, 0.08)
        self._flick = cam.Smooth1D(rng, 1.0, 5.0, 6)
        self.sun_dir = np.asarray(self.sun_dir, np.float64) / np.linalg.norm(self.sun_dir)

    def at(self, t: float) -> dict:
        s = 1.0 + self.sun_var * self._sun(t)
        f = 1.0 + self.flicker * self._flick(t)
        return {
            "sun_dir": self.sun_dir, "sun_col": np.asarray(self.sun_col) * s, "ambient": np.asarray(self.ambient) * (0.5 + 0.5 * s),
            "sky_top": self.sky_top, "sky_horizon": self.sky_horizon, "ground_col": self.ground_col,
            "fog_col": self.fog_col, "fog_density": self.fog_density, "water_absorb": self.water_absorb,
            "clouds": self.clouds, "lights": [(p, np.asarray(c) * f) for p, c in self.lights], "gain": self.gain,
        }


@dataclass
class DynamicObject:
    """A rigid moving object: local-frame vertices and a ping-pong motion along a segment."""

    vertices: np.ndarray
    start: np.ndarray
    end: np.ndarray
    speed: float
    phase: float = 0.0
    ground: Callable = lambda x, y: 0.0
    bob: float = 0.0
    kind: str = "object"

    def pose(self, t: float) -> np.ndarray:
        d = self.end - self.start
        L = float(np.linalg.norm(d)) + 1e-9
        s = (self.phase * 2 * L + self.speed * t) % (2 * L)
        fwd = s <= L
        a = s / L if fwd else 2 - s / L
        p = self.start + a * d
        heading = d / L if fwd else -d / L
        yaw = np.arctan2(heading[1], heading[0])
        M = np.eye(4)
        M[:3, :3] = cam.rot_z(yaw)
        z = self.ground(p[0], p[1]) + p[2]
        M[:3, 3] = [p[0], p[1], z + self.bob * np.sin(3.0 * t + self.phase * 10)]
        return M


@dataclass
class World:
    domain: str
    seed: int
    static: np.ndarray
    dynamic: list
    env: Environment
    near: float
    far: float
    fov_range: tuple
    trajectory_kinds: dict          # kind -> weight for videos
    pair_kinds: tuple               # kinds used for pose pairs (never pure rotation)
    make_trajectory: Callable       # (rng, kind) -> Trajectory
    post: dict = field(default_factory=dict)  # domain post-processing defaults (noise, rain, ...)
    lamps: list = field(default_factory=list)  # street-lamp bulb positions (switched on by the night / dusk conditions)

    def trajectory(self, rng: np.random.Generator, kind: str | None = None) -> cam.Trajectory:
        if kind is None:
            kinds = list(self.trajectory_kinds)
            w = np.array([self.trajectory_kinds[k] for k in kinds], np.float64)
            kind = kinds[int(rng.choice(len(kinds), p=w / w.sum()))]
        return self.make_trajectory(rng, kind)

    @property
    def n_triangles(self) -> int:
        return len(self.static) // 3 + sum(len(o.vertices) for o in self.dynamic) // 3


def _heightfield(rng, n: int, amp: float, base: int = 3) -> np.ndarray:
    h = fbm(rng, size=n, octaves=4, base=base, persistence=0.5)
    return (h - h.mean()) * amp


def _bilinear(xs, ys, H):
    def ground(x, y):
        fx = np.clip((x - xs[0]) / (xs[1] - xs[0]), 0, len(xs) - 1.001)
        fy = np.clip((y - ys[0]) / (ys[1] - ys[0]), 0, len(ys) - 1.001)
        i, j = int(fx), int(fy)
        a, b = fx - i, fy - j
        return float((1 - a) * (1 - b) * H[j, i] + a * (1 - b) * H[j, i + 1] + (1 - a) * b * H[j + 1, i] + a * b * H[j + 1, i + 1])
    return ground


def _random_loop(rng, cx, cy, rx, ry, n=7, jitter=0.25) -> cam.Path2D:
    rng.uniform(0, 2 * np.pi, n)  # unused draw, kept so that existing seeds give the same worlds
    ang = np.linspace(0, 2 * np.pi, n, endpoint=False) + rng.uniform(-0.3, 0.3, n) + rng.uniform(0, 2 * np.pi)
    r = 1 + jitter * rng.uniform(-1, 1, n)
    pts = np.stack([cx + rx * r * np.cos(ang), cy + ry * r * np.sin(ang)], 1)
    return cam.Path2D(pts)


def _person(rng, mb_cat: TextureCatalog) -> np.ndarray:
    m = MeshBuilder(vary=variation_rng(rng))
    cloth = mb_cat.pick(rng, "fabric")
    h = rng.uniform(1.55, 1.9)
    m.add_box([0, 0, 0.45 * h / 1.75], [0.3, 0.22, 0.9 * h / 1.75], layers=mb_cat.pick(rng, "fabric"), tint=rng.uniform(0.3, 1.0, 3))
    m.add_box([0, 0, 1.2 * h / 1.75], [0.42, 0.26, 0.62 * h / 1.75], layers=cloth, tint=rng.uniform(0.3, 1.0, 3))
    m.add_blob(rng, [0, 0, 1.62 * h / 1.75], 0.12, mb_cat.pick(rng, "plaster"), tint=rng.uniform([0.5, 0.35, 0.25], [0.95, 0.8, 0.7]), roughness=0.05)
    return m.build()


def _vehicle(rng, cat: TextureCatalog) -> np.ndarray:
    m = MeshBuilder(vary=variation_rng(rng))
    L, W = rng.uniform(3.8, 5.0), rng.uniform(1.7, 2.0)
    paint = rng.uniform(0.15, 1.0, 3)
    m.add_box([0, 0, 0.65], [L, W, 0.7], layers=cat.pick(rng, "plaster"), tint=paint)
    m.add_box([-0.2, 0, 1.25], [L * 0.55, W * 0.92, 0.55], layers={"default": cat.pick(rng, "plaster"), "Z": cat.pick(rng, "plaster")},
              tint=paint * 0.5 + 0.1)
    for sx in (-1, 1):
        for sy in (-1, 1):
            m.add_cylinder([sx * L * 0.33, sy * W * 0.5, 0.0], 0.33, 0.3, cat.pick(rng, "asphalt"), segments=8, tint=(0.3, 0.3, 0.3))
    return m.build()


# ----------------------------------------------------------------------------------------------------------
# domain builders
def _indoor(rng, cat: TextureCatalog, seed: int) -> World:
    W, D, H = rng.uniform(6, 12), rng.uniform(5, 10), rng.uniform(2.6, 3.2)
    office = rng.random() < 0.5
    m = MeshBuilder(vary=variation_rng(rng))
    wall_layers = {}
    for f in "xXyY":
        if rng.random() < 0.45:
            wall_layers[f] = cat.pick(rng, "photo", "building", "brick")
        else:
            wall_layers[f] = cat.pick(rng, "plaster", "fabric", "tile")
    wall_layers["z"] = cat.pick(rng, "tile" if office else "wood")
    wall_layers["Z"] = cat.pick(rng, "plaster", "tile")
    for f, layer in wall_layers.items():
        photo = not cat.names[layer].startswith("proc")
        scale = 0.25 if f in "zZ" else 0.3
        # photos span their wall once (repeated photos make SIFT lock onto false, repetitive matches)
        m.add_box([0, 0, H / 2], [W, D, H], layers=layer, faces=f, inward=True, uv_scale=scale,
                  tint=rng.uniform(0.75, 1.05, 3), stretch_sides=photo and f not in "zZ")
    # posters, paintings, whiteboards on the walls
    for _ in range(int(rng.integers(4, 10))):
        f = "xXyY"[int(rng.integers(4))]
        w, h = rng.uniform(0.5, 1.6), rng.uniform(0.4, 1.1)
        z0 = rng.uniform(0.9, H - h - 0.2)
        layer = cat.pick(rng, "photo", "building")
        if f in "xX":
            s = -1 if f == "x" else 1
            x = s * (W / 2 - 0.01)
            y0 = rng.uniform(-D / 2 + 0.3, D / 2 - w - 0.3)
            q = [[x, y0 + w, z0], [x, y0, z0], [x, y0, z0 + h], [x, y0 + w, z0 + h]]
            if s > 0:
                q = [q[1], q[0], q[3], q[2]]
        else:
            s = -1 if f == "y" else 1
            y = s * (D / 2 - 0.01)
            x0 = rng.uniform(-W / 2 + 0.3, W / 2 - w - 0.3)
            q = [[x0, y, z0], [x0 + w, y, z0], [x0 + w, y, z0 + h], [x0, y, z0 + h]]
            if s > 0:
                q = [q[1], q[0], q[3], q[2]]
        m.add_quad(*q, layer=layer, stretch=True)
    # furniture
    occupied = []
    def free_spot(r):
        for _ in range(30):
            x, y = rng.uniform(-W / 2 + r + 0.1, W / 2 - r - 0.1), rng.uniform(-D / 2 + r + 0.1, D / 2 - r - 0.1)
            if all(np.hypot(x - a, y - b) > r + rb for a, b, rb in occupied):
                occupied.append((x, y, r))
                return x, y
        return None
    for _ in range(int(rng.integers(7, 15))):
        kind = rng.choice(["table", "shelf", "cabinet", "sofa", "box", "plant"] + (["desk", "desk", "partition"] if office else []))
        size = rng.uniform(0.6, 1.4)
        spot = free_spot(size)
        if spot is None:
            continue
        x, y = spot
        yaw = rng.choice([0, np.pi / 2]) + rng.uniform(-0.2, 0.2)
        wood = cat.pick(rng, "wood")
        if kind in ("table", "desk"):
            tw, td, th = rng.uniform(1.0, 1.8), rng.uniform(0.6, 1.0), rng.uniform(0.7, 0.78)
            m.add_box([x, y, th - 0.02], [tw, td, 0.04], yaw, layers=wood)
            for sx in (-1, 1):
                for sy in (-1, 1):
                    off = cam.rot_z(yaw) @ np.array([sx * (tw / 2 - 0.05), sy * (td / 2 - 0.05), 0])
                    m.add_box([x + off[0], y + off[1], (th - 0.04) / 2], [0.05, 0.05, th - 0.04], layers=wood, faces="xXyY")
            if kind == "desk":
                off = cam.rot_z(yaw) @ np.array([0, td / 4, 0])
                m.add_box([x + off[0], y + off[1], th + 0.25], [0.6, 0.04, 0.38], yaw, layers={"default": cat.pick(rng, "asphalt"), "y": cat.pick(rng, "photo")}, stretch_sides=True)
                for _ in range(int(rng.integers(1, 4))):
                    o = cam.rot_z(yaw) @ np.array([rng.uniform(-tw / 2 + 0.15, tw / 2 - 0.15), rng.uniform(-td / 3, 0), 0])
                    m.add_box([x + o[0], y + o[1], th + 0.03], [rng.uniform(0.1, 0.3), rng.uniform(0.15, 0.3), 0.05], yaw + rng.uniform(-0.5, 0.5),
                              layers=cat.pick(rng, "photo"), stretch_sides=True)
        elif kind == "shelf":
            sw, sd, sh = rng.uniform(0.8, 1.8), 0.4, rng.uniform(1.2, 2.2)
            m.add_box([x, y, sh / 2], [sw, sd, sh], yaw, layers={"default": wood, "y": cat.pick(rng, "photo", "fabric")}, stretch_sides=True)
        elif kind == "cabinet":
            m.add_box([x, y, 0.45], [rng.uniform(0.6, 1.4), 0.5, 0.9], yaw, layers=wood, uv_scale=0.8)
        elif kind == "sofa":
            fab = cat.pick(rng, "fabric")
            tint = rng.uniform(0.5, 1.0, 3)
            m.add_box([x, y, 0.22], [1.9, 0.85, 0.44], yaw, layers=fab, tint=tint)
            off = cam.rot_z(yaw) @ np.array([0, 0.35, 0])
            m.add_box([x + off[0], y + off[1], 0.6], [1.9, 0.18, 0.5], yaw, layers=fab, tint=tint)
        elif kind == "partition":
            m.add_box([x, y, 0.75], [rng.uniform(1.2, 2.4), 0.06, 1.5], yaw, layers=cat.pick(rng, "fabric", "plaster"))
        elif kind == "plant":
            m.add_cylinder([x, y, 0], 0.2, 0.4, cat.pick(rng, "tile"), segments=8, top_radius=0.25)
            m.add_blob(rng, [x, y, 0.8], [0.35, 0.35, 0.45], cat.pick(rng, "leaves"), roughness=0.5)
        else:
            for k in range(int(rng.integers(1, 4))):
                s = rng.uniform(0.25, 0.6)
                m.add_box([x + rng.uniform(-0.2, 0.2), y + rng.uniform(-0.2, 0.2), s / 2 + k * 0.0], [s, s * rng.uniform(0.7, 1.3), s],
                          yaw + rng.uniform(-0.5, 0.5), layers=cat.pick(rng, "photo", "wood"), stretch_sides=True)
    lights = []
    nl = int(rng.integers(2, 6))
    for _ in range(nl):
        p = np.array([rng.uniform(-W / 2 + 0.5, W / 2 - 0.5), rng.uniform(-D / 2 + 0.5, D / 2 - 0.5), H - 0.15])
        lights.append((p, rng.uniform(0.8, 1.4) * np.array([1.0, rng.uniform(0.85, 1.0), rng.uniform(0.7, 1.0)])))
        m.add_box(p + [0, 0, 0.1], [0.6, 0.6, 0.04], layers=cat.pick(rng, "plaster"), tint=(1.6, 1.6, 1.5), faces="z")
    dyn = []
    for _ in range(int(rng.integers(0, 3))):
        a = np.array([rng.uniform(-W / 2 + 0.6, W / 2 - 0.6), rng.uniform(-D / 2 + 0.6, D / 2 - 0.6), 0])
        b = np.array([rng.uniform(-W / 2 + 0.6, W / 2 - 0.6), rng.uniform(-D / 2 + 0.6, D / 2 - 0.6), 0])
        dyn.append(DynamicObject(_person(rng, cat), a, b, rng.uniform(0.6, 1.2), rng.random(), kind="person"))
    env = Environment(sun_dir=np.array([rng.uniform(-1, 1), rng.uniform(-1, 1), 1.5]), sun_col=np.full(3, rng.uniform(0.1, 0.3)),
                      ambient=np.full(3, rng.uniform(0.35, 0.55)) * rng.uniform(0.9, 1.1, 3), lights=lights, clouds=0.0,
                      sun_var=0.05, flicker=0.0, seed=seed, ground_col=np.array([0.3, 0.3, 0.3]))

    def make(rng, kind):
        if kind == "walk":
            path = _random_loop(rng, 0, 0, max(W / 2 - 1.2, 0.5), max(D / 2 - 1.2, 0.5), n=6, jitter=0.3)
            return cam.WalkTrajectory(rng, path, height=rng.uniform(1.2, 1.7), speed=rng.uniform(0.5, 1.1), look_amp=0.8,
                                      pitch0=rng.uniform(-0.35, -0.05), pitch_amp=0.15, bob=0.02)
        if kind == "orbit":
            c = [rng.uniform(-W / 4, W / 4), rng.uniform(-D / 4, D / 4), rng.uniform(0.4, 1.0)]
            r = min(W, D) / 2 - 0.8
            return cam.OrbitTrajectory(rng, c, radius=max(r, 1.2), elevation=rng.uniform(0.2, 0.5), omega=rng.uniform(0.1, 0.25))
        return cam.PanTrajectory(rng, [rng.uniform(-W / 4, W / 4), rng.uniform(-D / 4, D / 4), rng.uniform(1.3, 1.7)],
                                 rng.uniform(0, 2 * np.pi), rate=rng.uniform(0.2, 0.5), pitch=rng.uniform(-0.3, 0))

    return World("indoor", seed, m.build(), dyn, env, 0.05, 60.0, (50, 100), {"walk": 0.6, "orbit": 0.25, "pan": 0.15},
                 ("walk", "orbit"), make, post={"noise": 0.012})


def _street_geometry(rng, cat: TextureCatalog, night: bool = False):
    A, B = rng.uniform(70, 120), rng.uniform(50, 90)
    road_w, side_w = rng.uniform(7, 11), rng.uniform(2.5, 4.0)
    m = MeshBuilder(vary=variation_rng(rng))
    asphalt, pave = cat.pick(rng, "asphalt"), cat.pick(rng, "tile", "brick")
    R_out = road_w / 2
    # ground: big grass/pave plane under everything, then road ring and sidewalks on top
    m.add_quad([-A - 200, -B - 200, -0.02], [A + 200, -B - 200, -0.02], [A + 200, B + 200, -0.02], [-A - 200, B + 200, -0.02],
               cat.pick(rng, "grass", "gravel", "sand"), uv_scale=0.15)
    edges = [((-A, -B), (A, -B)), ((A, -B), (A, B)), ((A, B), (-A, B)), ((-A, B), (-A, -B))]
    lamp_pos, dyn = [], []
    for (p, q) in edges:
        p, q = np.array(p, float), np.array(q, float)
        d = (q - p) / np.linalg.norm(q - p)
        nrm = np.array([d[1], -d[0]])  # outward (block is on the left of a counter-clockwise loop)
        L = np.linalg.norm(q - p)
        yaw = np.arctan2(d[1], d[0])
        c = (p + q) / 2
        # road and sidewalks
        m.add_box([c[0], c[1], -0.01], [L + road_w, road_w, 0.02], yaw, layers=asphalt, faces="Z", uv_scale=0.12)
        for side in (-1, 1):
            o = c + side * nrm * (R_out + side_w / 2)
            m.add_box([o[0], o[1], 0.06], [L + road_w + 2 * side_w, side_w, 0.12], yaw, layers=pave, faces="ZxyXY", uv_scale=0.5)
            # buildings along this side of the edge
            s = -L / 2 + road_w / 2 + side_w + rng.uniform(0, 4)
            while s < L / 2 - road_w / 2 - side_w - 6:
                bw = rng.uniform(8, 20)
                bw = min(bw, L / 2 - road_w / 2 - side_w - s)
                if bw < 5:
                    break
                bd, bh = rng.uniform(8, 14), rng.uniform(6, 28)
                off = R_out + side_w + bd / 2 + rng.uniform(0, 1.5)
                cc = c + d * (s + bw / 2) + side * nrm * off
                face = "y" if side > 0 else "Y"
                layer = cat.pick(rng, "building", "facade", "brick") if rng.random() < 0.8 else cat.pick(rng, "photo")
                tint = rng.uniform(0.75, 1.1, 3)
                m.add_box([cc[0], cc[1], bh / 2], [bw, bd, bh], yaw, layers={"default": cat.pick(rng, "plaster", "brick"), face: layer, "Z": cat.pick(rng, "roof")},
                          uv_scale=1.0 / rng.uniform(6, 12), tint=tint)
                s += bw + rng.uniform(0.3, 6)
            # lamps, trees, parked cars, pedestrians
            for k in range(int(L // 22)):
                u = -L / 2 + 11 + 22 * k + rng.uniform(-2, 2)
                pos = c + d * u + side * nrm * (R_out + 0.5)
                m.add_cylinder([pos[0], pos[1], 0.1], 0.08, 5.0, cat.pick(rng, "asphalt"), segments=6, tint=(0.5, 0.5, 0.55))
                m.add_box([pos[0], pos[1], 5.05], [0.5, 0.3, 0.15], layers=cat.pick(rng, "plaster"), tint=(1.5, 1.4, 1.1) if night else (0.6, 0.6, 0.6))
                lamp_pos.append(np.array([pos[0], pos[1], 4.8]))
                if rng.random() < 0.5:
                    tp = c + d * (u + 11) + side * nrm * (R_out + side_w - 0.6)
                    m.add_cylinder([tp[0], tp[1], 0.1], 0.15, 2.5, cat.pick(rng, "bark"), segments=6)
                    m.add_blob(rng, [tp[0], tp[1], 3.6], [1.6, 1.6, 1.4], cat.pick(rng, "leaves"), roughness=0.45)
                if rng.random() < 0.35:
                    pc = c + d * (u + rng.uniform(3, 8)) + side * nrm * (R_out - 1.2)
                    v = _vehicle(rng, cat)
                    M = np.eye(4)
                    M[:3, :3] = cam.rot_z(yaw)
                    v = v.copy()
                    v[:, 0:3] = v[:, 0:3] @ M[:3, :3].T + [pc[0], pc[1], 0.0]
                    v[:, 3:6] = v[:, 3:6] @ M[:3, :3].T
                    m._chunks.append(v)
            if rng.random() < 0.8:
                a = np.r_[c + d * rng.uniform(-L / 2, 0) + side * nrm * (R_out + side_w / 2), 0.12]
                b = np.r_[c + d * rng.uniform(0, L / 2) + side * nrm * (R_out + side_w / 2), 0.12]
                dyn.append(DynamicObject(_person(rng, cat), a, b, rng.uniform(1.0, 1.6), rng.random(), kind="person"))
        for lane in (-1, 1):
            if rng.random() < 0.7:
                a = np.r_[c - d * L / 2 + lane * nrm * road_w / 4, 0.0]
                b = np.r_[c + d * L / 2 + lane * nrm * road_w / 4, 0.0]
                dyn.append(DynamicObject(_vehicle(rng, cat), a, b, rng.uniform(5, 12), rng.random(), kind="vehicle"))
    return m, dyn, lamp_pos, (A, B, road_w, side_w)


def _street_like(rng, cat, seed, domain: str) -> World:
    night = domain == "night"
    m, dyn, lamps, (A, B, road_w, side_w) = _street_geometry(rng, cat, night)
    sun_el = rng.uniform(0.3, 1.2)
    az = rng.uniform(0, 2 * np.pi)
    sun_dir = np.array([np.cos(az) * np.cos(sun_el), np.sin(az) * np.cos(sun_el), np.sin(sun_el)])
    post = {"noise": 0.01}
    if night:
        lights = [(p, np.array([1.0, 0.8, 0.5]) * rng.uniform(1.5, 3.0)) for p in lamps]
        env = Environment(sun_dir=np.array([0.2, 0.1, 1.0]), sun_col=np.array([0.02, 0.025, 0.04]), ambient=np.array([0.03, 0.035, 0.06]),
                          sky_top=np.array([0.0, 0.01, 0.04]), sky_horizon=np.array([0.05, 0.05, 0.09]), ground_col=np.array([0.02, 0.02, 0.02]),
                          clouds=0.0, lights=lights, gain=rng.uniform(1.2, 1.8), flicker=0.03, seed=seed)
        post = {"noise": 0.035, "gain_noise": True}
    elif domain == "fog":
        fog_col = np.full(3, rng.uniform(0.6, 0.8)) * rng.uniform(0.95, 1.05, 3)
        env = Environment(sun_dir=sun_dir, sun_col=np.full(3, rng.uniform(0.1, 0.25)), ambient=np.full(3, rng.uniform(0.6, 0.8)),
                          sky_top=fog_col, sky_horizon=fog_col, ground_col=fog_col * 0.8, fog_col=fog_col,
                          fog_density=rng.uniform(0.01, 0.035), clouds=0.0, seed=seed, sun_var=0.1)
        post = {"noise": 0.012, "rain": bool(rng.random() < 0.6)}
    else:
        env = Environment(sun_dir=sun_dir, sun_col=rng.uniform(0.6, 0.85) * np.array([1.0, 0.97, 0.9]),
                          ambient=rng.uniform(0.35, 0.5) * np.array([0.92, 0.96, 1.05]), clouds=rng.uniform(0.2, 0.8),
                          fog_density=0.002, sun_var=0.2, seed=seed)

    def loop(offset):
        a, b = A + offset, B + offset
        r = 14.0
        pts = []
        for cx, cy, a0 in ((a - r, -b + r, -np.pi / 2), (a - r, b - r, 0.0), (-a + r, b - r, np.pi / 2), (-a + r, -b + r, np.pi)):
            for da in np.linspace(0, np.pi / 2, 4):
                pts.append((cx + r * np.cos(a0 + da), cy + r * np.sin(a0 + da)))
        return cam.Path2D(np.array(pts, float))

    def make(rng, kind):
        if kind == "drive":
            return cam.DriveTrajectory(rng, loop(rng.choice([-1, 1]) * road_w / 4), height=rng.uniform(1.3, 1.8), speed=rng.uniform(6, 13))
        if kind == "walk":
            return cam.WalkTrajectory(rng, loop(rng.choice([-1, 1]) * (road_w / 2 + side_w / 2)), height=rng.uniform(1.5, 1.75),
                                      speed=rng.uniform(1.2, 1.6), look_amp=0.6, pitch0=rng.uniform(-0.05, 0.15))
        (x, y), _ = loop(0).at(rng.uniform(0, loop(0).length))
        return cam.PanTrajectory(rng, [x, y, rng.uniform(1.4, 1.8)], rng.uniform(0, 2 * np.pi), rate=rng.uniform(0.2, 0.5),
                                 pitch=rng.uniform(-0.05, 0.15))

    return World(domain, seed, m.build(), dyn, env, 0.1, 600.0, (45, 110), {"drive": 0.4, "walk": 0.45, "pan": 0.15},
                 ("drive", "walk"), make, post=post, lamps=[np.asarray(p, np.float64) for p in lamps])


def _terrain_like(rng, cat, seed, domain: str) -> World:
    under = domain == "underwater"
    half = 60.0 if under else 90.0
    n = 44
    xs = np.linspace(-half, half, n)
    ys = np.linspace(-half, half, n)
    H = _heightfield(rng, n, rng.uniform(2, 5) if under else rng.uniform(6, 16))
    ground = _bilinear(xs, ys, H)
    slope = np.hypot(*np.gradient(H, xs[1] - xs[0]))
    cell_slope = slope[:-1, :-1]
    m = MeshBuilder(vary=variation_rng(rng))
    if under:
        l_flat, l_steep = [cat.pick(rng, "sand"), cat.pick(rng, "gravel", "rock")], [cat.pick(rng, "rock", "gravel")]
    else:
        l_flat, l_steep = [cat.pick(rng, "grass"), cat.pick(rng, "grass", "gravel")], [cat.pick(rng, "rock"), cat.pick(rng, "gravel", "rock")]
    sel = (fbm(rng, size=n - 1, octaves=3, base=2) > 0.5).astype(int)  # smooth patches, not a chequerboard
    layers = np.where(cell_slope > 0.35, np.array(l_steep * 2)[sel], np.array(l_flat * 2)[sel])
    m.add_grid(xs, ys, H, layers, uv_scale=0.15)
    # far backdrop: ring of mountains / dunes
    for k in range(18):
        a = 2 * np.pi * k / 18 + rng.uniform(-0.1, 0.1)
        r = half + rng.uniform(20, 60)
        m.add_cylinder([r * np.cos(a), r * np.sin(a), -5], rng.uniform(25, 45), rng.uniform(15, 50) * (0.3 if under else 1),
                       cat.pick(rng, "rock", "sand" if under else "grass"), segments=7, top_radius=0.0, uv_scale=0.05)
    for _ in range(int(rng.integers(25, 45)) * (3 if under else 1)):
        x, y = rng.uniform(-half + 3, half - 3, 2)
        r = rng.uniform(0.3, 2.5)
        m.add_blob(rng, [x, y, ground(x, y) + 0.2 * r], [r, r * rng.uniform(0.6, 1.4), r], cat.pick(rng, "rock", "gravel"),
                   roughness=0.5, squash=rng.uniform(0.4, 0.9), uv_scale=0.7)
    for _ in range(int(rng.integers(20, 45)) * (4 if under else 1)):
        x, y = rng.uniform(-half + 3, half - 3, 2)
        z = ground(x, y)
        if under:  # coral and kelp
            if rng.random() < 0.6:
                m.add_blob(rng, [x, y, z + 0.3], rng.uniform(0.3, 1.0), cat.pick(rng, "coral"), tint=rng.uniform(0.5, 1.3, 3), roughness=0.8)
            else:
                h = rng.uniform(1.5, 4)
                m.add_cylinder([x, y, z], 0.06, h, cat.pick(rng, "leaves"), segments=5, tint=(0.7, 1.0, 0.6), top_radius=0.02)
        else:
            h = rng.uniform(2, 6)
            m.add_cylinder([x, y, z - 0.2], rng.uniform(0.12, 0.3), h, cat.pick(rng, "bark"), segments=6)
            m.add_blob(rng, [x, y, z + h + 0.5], [rng.uniform(1, 2.5)] * 2 + [rng.uniform(1.2, 3)], cat.pick(rng, "leaves"), roughness=0.5)
    dyn = []
    for _ in range(int(rng.integers(1, 4)) if not under else int(rng.integers(3, 8))):
        a = np.array([*rng.uniform(-half / 3, half / 3, 2), 0.0])
        b = np.array([*rng.uniform(-half / 3, half / 3, 2), 0.0])
        if under:
            fm = MeshBuilder(vary=variation_rng(rng))
            fm.add_blob(rng, [0, 0, 0], [0.35, 0.12, 0.18], cat.pick(rng, "coral", "fabric"), tint=rng.uniform(0.5, 1.4, 3), roughness=0.1)
            fm.add_cylinder([-0.35, 0, -0.1], 0.1, 0.2, cat.pick(rng, "coral"), segments=4, top_radius=0.0)
            a[2] = b[2] = rng.uniform(0.8, 2.5)
            dyn.append(DynamicObject(fm.build(), a, b, rng.uniform(0.4, 1.2), rng.random(), ground=ground, bob=0.1, kind="fish"))
        else:
            dyn.append(DynamicObject(_person(rng, cat), a, b, rng.uniform(0.8, 1.5), rng.random(), ground=ground, kind="person"))
    sun_el = rng.uniform(0.4, 1.2)
    az = rng.uniform(0, 2 * np.pi)
    sun_dir = np.array([np.cos(az) * np.cos(sun_el), np.sin(az) * np.cos(sun_el), np.sin(sun_el)])
    post = {"noise": 0.01}
    if under:
        water = np.array([0.05, rng.uniform(0.25, 0.4), rng.uniform(0.35, 0.5)])
        env = Environment(sun_dir=sun_dir, sun_col=np.array([0.35, 0.6, 0.65]) * rng.uniform(0.6, 1.0), ambient=np.array([0.3, 0.55, 0.6]),
                          sky_top=water * 1.4, sky_horizon=water, ground_col=water * 0.6, fog_col=water, fog_density=rng.uniform(0.015, 0.04),
                          water_absorb=np.array([0.08, 0.02, 0.015]), clouds=0.0, sun_var=0.25, seed=seed)
        post = {"noise": 0.02}
    elif domain == "fog":
        fog_col = np.full(3, rng.uniform(0.6, 0.8))
        env = Environment(sun_dir=sun_dir, sun_col=np.full(3, 0.15), ambient=np.full(3, rng.uniform(0.6, 0.8)), sky_top=fog_col,
                          sky_horizon=fog_col, ground_col=fog_col, fog_col=fog_col, fog_density=rng.uniform(0.01, 0.035), clouds=0.0, seed=seed)
        post = {"noise": 0.012, "rain": bool(rng.random() < 0.6)}
    else:
        env = Environment(sun_dir=sun_dir, sun_col=rng.uniform(0.6, 0.85) * np.array([1.0, 0.96, 0.88]), ambient=rng.uniform(0.35, 0.5) * np.array([0.9, 0.97, 1.08]),
                          clouds=rng.uniform(0.2, 0.9), fog_density=rng.uniform(0.001, 0.004), sun_var=0.25, seed=seed)

    def make(rng, kind):
        path = _random_loop(rng, *rng.uniform(-10, 10, 2), half * 0.45, half * 0.45, n=7)
        if kind == "walk":
            return cam.WalkTrajectory(rng, path, ground, height=rng.uniform(1.5, 3.0) if under else rng.uniform(1.5, 1.8),
                                      speed=rng.uniform(0.4, 0.8) if under else rng.uniform(1.0, 1.5), look_amp=0.7,
                                      pitch0=rng.uniform(-0.35, -0.1) if under else rng.uniform(-0.15, 0.05), bob=0.01 if under else 0.03)
        if kind == "drone":
            return cam.DroneTrajectory(rng, path, ground, altitude=rng.uniform(8, 25), speed=rng.uniform(3, 7), pitch=rng.uniform(-1.0, -0.4))
        if kind == "orbit":
            x, y = rng.uniform(-half / 3, half / 3, 2)
            return cam.OrbitTrajectory(rng, [x, y, ground(x, y) + 0.5], rng.uniform(4, 9), rng.uniform(0.2, 0.6), omega=rng.uniform(0.08, 0.2))
        x, y = rng.uniform(-half / 3, half / 3, 2)
        return cam.PanTrajectory(rng, [x, y, ground(x, y) + 1.7], rng.uniform(0, 2 * np.pi), rate=rng.uniform(0.2, 0.5))

    kinds = {"walk": 0.5, "orbit": 0.3, "pan": 0.2} if under else {"walk": 0.5, "drone": 0.3, "pan": 0.2}
    pk = ("walk", "orbit") if under else ("walk", "drone")
    return World(domain, seed, m.build(), dyn, env, 0.1, 800.0, (50, 110), kinds, pk, make, post=post)


def _aerial(rng, cat, seed) -> World:
    half = 400.0
    m = MeshBuilder(vary=variation_rng(rng))
    cell = 40.0
    n = int(2 * half / cell)
    ground_layers = ["grass", "sand", "gravel", "roof", "tile", "asphalt", "photo"]
    for i in range(n):
        for j in range(n):
            x0, y0 = -half + i * cell, -half + j * cell
            cat_name = ground_layers[int(rng.choice(len(ground_layers), p=[0.3, 0.12, 0.12, 0.06, 0.12, 0.08, 0.2]))]
            m.add_quad([x0, y0, 0], [x0 + cell, y0, 0], [x0 + cell, y0 + cell, 0], [x0, y0 + cell, 0], cat.pick(rng, cat_name),
                       uv_scale=1 / rng.uniform(10, 40), tint=rng.uniform(0.75, 1.15, 3))
    for k in range(-2, 3):  # roads
        c = k * 160.0 + 20
        m.add_quad([-half, c - 4, 0.05], [half, c - 4, 0.05], [half, c + 4, 0.05], [-half, c + 4, 0.05], cat.pick(rng, "asphalt"), uv_scale=0.1)
        m.add_quad([c - 4, -half, 0.06], [c + 4, -half, 0.06], [c + 4, half, 0.06], [c - 4, half, 0.06], cat.pick(rng, "asphalt"), uv_scale=0.1)
    for _ in range(int(rng.integers(120, 200))):
        x, y = rng.uniform(-half + 20, half - 20, 2)
        if min(abs((x - 20) % 160 - 0), abs((y - 20) % 160)) < 10:
            continue
        w, d, h = rng.uniform(8, 30), rng.uniform(8, 30), rng.uniform(4, 40)
        m.add_box([x, y, h / 2], [w, d, h], rng.uniform(0, np.pi),
                  layers={"default": cat.pick(rng, "facade", "building", "plaster"), "Z": cat.pick(rng, "roof", "tile", "gravel")},
                  uv_scale=1 / 10.0, tint=rng.uniform(0.75, 1.1, 3), faces="xXyYZ")
    for _ in range(int(rng.integers(100, 200))):
        x, y = rng.uniform(-half, half, 2)
        r = rng.uniform(2, 5)
        m.add_blob(rng, [x, y, r], [r, r, r * 1.2], cat.pick(rng, "leaves"), roughness=0.5, subdiv=0, uv_scale=0.5)
    dyn = []
    for k in range(int(rng.integers(4, 10))):
        c = int(rng.integers(-2, 3)) * 160.0 + 20
        a, b = (np.array([-half, c + 2, 0.05]), np.array([half, c + 2, 0.05])) if k % 2 else (np.array([c + 2, -half, 0.05]), np.array([c + 2, half, 0.05]))
        dyn.append(DynamicObject(_vehicle(rng, cat), a, b, rng.uniform(8, 15), rng.random(), kind="vehicle"))
    sun_el = rng.uniform(0.5, 1.3)
    az = rng.uniform(0, 2 * np.pi)
    env = Environment(sun_dir=np.array([np.cos(az) * np.cos(sun_el), np.sin(az) * np.cos(sun_el), np.sin(sun_el)]),
                      sun_col=rng.uniform(0.6, 0.85) * np.array([1, 0.97, 0.9]), ambient=rng.uniform(0.35, 0.5) * np.ones(3),
                      fog_col=np.array([0.75, 0.8, 0.88]), fog_density=rng.uniform(0.0005, 0.0015), clouds=0.5, sun_var=0.2, seed=seed)

    def make(rng, kind):
        path = _random_loop(rng, *rng.uniform(-100, 100, 2), 150, 150, n=6)
        if kind == "oblique":
            return cam.DroneTrajectory(rng, path, altitude=rng.uniform(50, 120), speed=rng.uniform(5, 10), pitch=rng.uniform(-1.2, -0.6))
        return cam.DroneTrajectory(rng, path, altitude=rng.uniform(60, 150), speed=rng.uniform(5, 12), pitch=-np.pi / 2 + rng.uniform(0.0, 0.15))

    return World("aerial", seed, m.build(), dyn, env, 1.0, 3000.0, (40, 90), {"drone": 0.6, "oblique": 0.4}, ("drone", "oblique"),
                 make, post={"noise": 0.008})


def _object(rng, cat, seed) -> World:
    m = MeshBuilder(vary=variation_rng(rng))
    indoor = rng.random() < 0.5
    floor = cat.pick(rng, "wood", "tile") if indoor else cat.pick(rng, "grass", "gravel", "sand", "tile")
    m.add_quad([-20, -20, 0], [20, -20, 0], [20, 20, 0], [-20, 20, 0], floor, uv_scale=rng.uniform(0.08, 0.15))
    if indoor:
        m.add_box([0, 0, 5], [40, 40, 10], layers=cat.pick(rng, "plaster", "photo", "building"), faces="xXyYZ", inward=True, uv_scale=0.1,
                  stretch_sides=True)
    # pedestal + composite centre-piece
    ped_h = rng.uniform(0.0, 0.8)
    if ped_h > 0.2:
        m.add_box([0, 0, ped_h / 2], [1.2, 1.2, ped_h], layers=cat.pick(rng, "rock", "wood", "tile"), uv_scale=1.0)
    z = ped_h
    for _ in range(int(rng.integers(3, 7))):
        kind = rng.choice(["box", "blob", "cyl"])
        s = rng.uniform(0.3, 0.8)
        off = rng.uniform(-0.3, 0.3, 2)
        layer = cat.pick(rng, "photo", "building", "coral", "rock", "fabric")
        tint = rng.uniform(0.7, 1.1, 3)
        if kind == "box":
            m.add_box([off[0], off[1], z + s / 2], [s, s * rng.uniform(0.6, 1.4), s], rng.uniform(0, np.pi), layers=layer, stretch_sides=True, tint=tint)
        elif kind == "blob":
            m.add_blob(rng, [off[0], off[1], z + s / 2], s / 2 * np.array([1, rng.uniform(0.6, 1.3), 1]), layer, roughness=0.3, subdiv=2, tint=tint, uv_scale=1.5)
        else:
            m.add_cylinder([off[0], off[1], z], s / 2, s, layer, segments=12, tint=tint, top_radius=s / 2 * rng.uniform(0.4, 1.0), uv_scale=1.5)
        z += s * 0.8
    for _ in range(int(rng.integers(5, 12))):  # clutter around
        a, r = rng.uniform(0, 2 * np.pi), rng.uniform(2.0, 8.0)
        s = rng.uniform(0.2, 0.9)
        m.add_box([r * np.cos(a), r * np.sin(a), s / 2], [s, s, s], rng.uniform(0, np.pi), layers=cat.pick(rng, "photo", "wood"), stretch_sides=True)
    env = Environment(sun_dir=np.array([rng.uniform(-1, 1), rng.uniform(-1, 1), rng.uniform(0.8, 1.5)]),
                      sun_col=rng.uniform(0.4, 0.8) * np.ones(3), ambient=rng.uniform(0.4, 0.55) * np.ones(3), clouds=rng.uniform(0, 0.7),
                      sun_var=0.1, seed=seed)
    top = z

    def make(rng, kind):
        c = [0, 0, top * rng.uniform(0.4, 0.6)]
        if kind == "orbit":
            return cam.OrbitTrajectory(rng, c, rng.uniform(2.5, 5.0), rng.uniform(0.15, 0.8), omega=rng.uniform(0.15, 0.35), jitter=0.03)
        return cam.PanTrajectory(rng, [rng.uniform(3, 5), 0, 1.6], np.pi, rate=0.3, pitch=-0.2)

    return World("object", seed, m.build(), [], env, 0.05, 200.0, (40, 75), {"orbit": 0.9, "pan": 0.1}, ("orbit",), make,
                 post={"noise": 0.008})


def build_world(domain: str, seed: int, catalog: TextureCatalog | None = None) -> World:
    """The procedural world of `domain` for `seed` (deterministic)."""
    if domain not in DOMAINS:
        raise InputError(f"unknown domain {domain!r}; choose from {', '.join(DOMAINS)}")
    cat = catalog or get_catalog()
    rng = np.random.default_rng([seed, DOMAINS.index(domain)])
    if domain == "indoor":
        return _indoor(rng, cat, seed)
    if domain in ("street", "night"):
        return _street_like(rng, cat, seed, domain)
    if domain in ("terrain", "underwater"):
        return _terrain_like(rng, cat, seed, domain)
    if domain == "fog":
        if rng.random() < 0.5:
            return _street_like(rng, cat, seed, "fog")
        return _terrain_like(rng, cat, seed, "fog")
    if domain == "aerial":
        return _aerial(rng, cat, seed)
    return _object(rng, cat, seed)
