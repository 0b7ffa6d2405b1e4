"""Tiny triangle-mesh builder for the procedural worlds (numpy only).

Vertex layout (float32, 12 values): position xyz, normal xyz, uv, texture layer, tint rgb.
World frame: metres, z up. Normals are fixed per face (lighting is view independent, so colours agree
between views and the geometric ground truth can be checked photometrically).
"""
from __future__ import annotations

import numpy as np

VERTEX_FLOATS = 12


def rot_z(yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]], np.float64)


def variation_rng(rng: np.random.Generator, salt: int = 0) -> np.random.Generator:
    """A generator for per-instance appearance variation derived from `rng`'s current state without
    drawing from it (so the geometry drawn from `rng` is unchanged)."""
    st = rng.bit_generator.state["state"]["state"]
    return np.random.default_rng([int(st) % (1 << 63), int(st) >> 63, 0x7E4A, salt])


class MeshBuilder:
    """vary: a generator for per-instance appearance variation (None = textures exactly as given).
    With it every quad / box face / grid / cylinder / blob gets its own UV transform (random window or
    offset, scale, 90-degree rotation, flip) and a colour/brightness jitter of its tint, so that objects
    sharing a texture layer do not repeat pixel-identically (repeated structure folds SfM maps)."""

    def __init__(self, vary: np.random.Generator | None = None) -> None:
        self._chunks: list[np.ndarray] = []
        self.vary = vary
        self._depth = 0
        self._xf = None  # (A (2, 2), b (2,), tint jitter (3,)) of the current instance

    # -- per-instance variation --------------------------------------------------------------------------
    def _begin(self, stretch: bool = False) -> None:
        self._depth += 1
        if self._depth == 1 and self.vary is not None:
            r = self.vary
            jit = (r.uniform(0.8, 1.2) * r.uniform(0.92, 1.08, 3)).astype(np.float64)
            if stretch:  # a random window of the photo, upright, maybe mirrored
                s = r.uniform(0.55, 1.0)
                flip = r.random() < 0.5
                A = np.diag([-s if flip else s, s])
                b = np.array([r.uniform(0, 1 - s) + (s if flip else 0.0), r.uniform(0, 1 - s)])
            else:  # tiled: random scale, 90-degree rotation, flip and offset
                s = np.exp(r.uniform(np.log(0.7), np.log(1.4)))
                k = int(r.integers(4))
                R = np.array([[1, 0], [0, 1], [0, -1], [1, 0], [-1, 0], [0, -1], [0, 1], [-1, 0]], np.float64)[2 * k:2 * k + 2]
                F = np.diag([-1.0, 1.0]) if r.random() < 0.5 else np.eye(2)
                A = s * R @ F
                b = r.random(2)
            self._xf = (A, b, jit)

    def _end(self) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._xf = None

    def _apply(self, uv: np.ndarray, tint):
        if self._xf is None:
            return uv, tint
        A, b, jit = self._xf
        uv = np.asarray(uv, np.float64) @ A.T + b
        return uv, np.asarray(tint, np.float64) * jit

    # -- low level -------------------------------------------------------------------------------------
    def add_triangles(self, pos: np.ndarray, nrm: np.ndarray, uv: np.ndarray, layer: int, tint) -> None:
        """pos, nrm (3N, 3), uv (3N, 2): raw triangle soup."""
        self._begin()
        uv, tint = self._apply(uv, tint)
        self._end()
        n = len(pos)
        v = np.empty((n, VERTEX_FLOATS), np.float32)
        v[:, 0:3] = pos
        v[:, 3:6] = nrm
        v[:, 6:8] = uv
        v[:, 8] = layer
        v[:, 9:12] = np.broadcast_to(np.asarray(tint, np.float32).reshape(-1, 3), (n, 3)) if np.ndim(tint) == 2 else tint
        self._chunks.append(v)

    def add_quad(self, p0, p1, p2, p3, layer: int, uv_scale: float | tuple = 1.0, tint=(1, 1, 1),
                 uv_offset=(0.0, 0.0), stretch: bool = False) -> None:
        """Planar quad p0-p1-p2-p3 (counter-clockwise seen from the front). UVs in metres * uv_scale
        (texture repeats every 1/uv_scale metres) or, with stretch=True, the texture spans the quad once."""
        self._begin(stretch)
        p = np.array([p0, p1, p2, p3], np.float64)
        e1, e2 = p[1] - p[0], p[3] - p[0]
        n = np.cross(e1, e2)
        n /= np.linalg.norm(n) + 1e-12
        if stretch:
            uv = np.array([[0, 1], [1, 1], [1, 0], [0, 0]], np.float64)
        else:
            su, sv = (uv_scale, uv_scale) if np.isscalar(uv_scale) else uv_scale
            lu, lv = np.linalg.norm(e1), np.linalg.norm(e2)
            uv = np.array([[0, 0], [lu * su, 0], [lu * su, lv * sv], [0, lv * sv]], np.float64)
            uv[:, 1] = -uv[:, 1]
        uv = uv + np.asarray(uv_offset)
        idx = [0, 1, 2, 0, 2, 3]
        self.add_triangles(p[idx], np.repeat(n[None], 6, 0), uv[idx], layer, tint)
        self._end()

    def add_box(self, center, size, yaw: float = 0.0, layers=0, uv_scale: float = 1.0, tint=(1, 1, 1),
                faces: str = "xXyYzZ", inward: bool = False, stretch_sides: bool = False) -> None:
        """Axis box (rotated by yaw about z). layers: int or dict face->layer, faces among x,X,y,Y,z,Z
        (-x,+x,-y,+y,-z,+z). inward=True flips faces (rooms)."""
        c = np.asarray(center, np.float64)
        hx, hy, hz = np.asarray(size, np.float64) / 2
        R = rot_z(yaw)
        corners = {}
        for sx in (-1, 1):
            for sy in (-1, 1):
                for sz in (-1, 1):
                    corners[(sx, sy, sz)] = c + R @ np.array([sx * hx, sy * hy, sz * hz])
        C = corners
        quads = {
            "x": [C[(-1, 1, -1)], C[(-1, -1, -1)], C[(-1, -1, 1)], C[(-1, 1, 1)]],
            "X": [C[(1, -1, -1)], C[(1, 1, -1)], C[(1, 1, 1)], C[(1, -1, 1)]],
            "y": [C[(-1, -1, -1)], C[(1, -1, -1)], C[(1, -1, 1)], C[(-1, -1, 1)]],
            "Y": [C[(1, 1, -1)], C[(-1, 1, -1)], C[(-1, 1, 1)], C[(1, 1, 1)]],
            "z": [C[(-1, 1, -1)], C[(1, 1, -1)], C[(1, -1, -1)], C[(-1, -1, -1)]],
            "Z": [C[(-1, -1, 1)], C[(1, -1, 1)], C[(1, 1, 1)], C[(-1, 1, 1)]],
        }
        for f in faces:
            q = quads[f]
            if inward:
                q = q[::-1]
            layer = layers.get(f, layers.get("default", 0)) if isinstance(layers, dict) else layers
            self.add_quad(*q, layer=layer, uv_scale=uv_scale, tint=tint, stretch=stretch_sides and f not in "zZ")

    def add_grid(self, xs: np.ndarray, ys: np.ndarray, heights: np.ndarray, layers: np.ndarray | int,
                 uv_scale: float = 0.2, tint=(1, 1, 1)) -> None:
        """Height field z = heights[j, i] at (xs[i], ys[j]); per-cell layer array (ny-1, nx-1) or int."""
        self._begin()
        X, Y = np.meshgrid(xs, ys)
        P = np.stack([X, Y, heights], -1)
        a, b, c, d = P[:-1, :-1], P[:-1, 1:], P[1:, 1:], P[1:, :-1]
        if np.isscalar(layers):
            layers = np.full(a.shape[:2], layers)
        tint_arr = np.asarray(tint, np.float32)
        for tri in ((a, b, c), (a, c, d)):
            p = np.stack(tri, 2).reshape(-1, 3, 3)
            n = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
            n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-12
            uv, _ = self._apply(p[:, :, :2].reshape(-1, 2) * uv_scale, 1.0)
            uv = uv.reshape(-1, 3, 2)
            lay = layers.reshape(-1)
            tints = tint_arr.reshape(-1, 3) if tint_arr.ndim > 1 else np.broadcast_to(tint_arr, (len(p), 3))
            v = np.empty((len(p), 3, VERTEX_FLOATS), np.float32)
            v[..., 0:3] = p
            v[..., 3:6] = n[:, None]
            v[..., 6:8] = uv
            v[..., 8] = lay[:, None]
            v[..., 9:12] = tints[:, None] if tints.shape[0] == len(p) else tints[:1, None]
            if self._xf is not None:
                v[..., 9:12] *= self._xf[2].astype(np.float32)
            self._chunks.append(v.reshape(-1, VERTEX_FLOATS))
        self._end()

    def add_cylinder(self, base, radius: float, height: float, layer: int, segments: int = 10,
                     tint=(1, 1, 1), top_radius: float | None = None, uv_scale: float = 1.0, cap: bool = True) -> None:
        self._begin()
        base = np.asarray(base, np.float64)
        r1 = radius if top_radius is None else top_radius
        ang = np.linspace(0, 2 * np.pi, segments + 1)
        circ = np.stack([np.cos(ang), np.sin(ang), np.zeros_like(ang)], 1)
        for k in range(segments):
            p0 = base + radius * circ[k]
            p1 = base + radius * circ[k + 1]
            p2 = base + r1 * circ[k + 1] + [0, 0, height]
            p3 = base + r1 * circ[k] + [0, 0, height]
            if r1 > 1e-6:
                self.add_quad(p0, p1, p2, p3, layer, uv_scale=uv_scale, tint=tint,
                              uv_offset=(k * 2 * np.pi * radius / segments * uv_scale, 0))
            else:
                tri = np.array([p0, p1, p2])
                n = np.cross(p1 - p0, p2 - p0)
                n /= np.linalg.norm(n) + 1e-12
                self.add_triangles(tri, np.repeat(n[None], 3, 0), tri[:, :2] * uv_scale, layer, tint)
        if cap and r1 > 1e-6:
            top = base + [0, 0, height]
            tri = []
            for k in range(segments):
                tri += [top, top + r1 * circ[k], top + r1 * circ[k + 1]]
            tri = np.array(tri)
            self.add_triangles(tri, np.tile([0, 0, 1.0], (len(tri), 1)), tri[:, :2] * uv_scale, layer, tint)
        self._end()

    def add_blob(self, rng: np.random.Generator, center, radius, layer: int, tint=(1, 1, 1),
                 roughness: float = 0.25, subdiv: int = 1, squash: float = 1.0, uv_scale: float = 1.0) -> None:
        """Perturbed icosphere (rocks, bushes, tree crowns, heads, fish)."""
        self._begin()
        v, f = _icosphere(subdiv)
        r = np.asarray(radius, np.float64) * np.ones(3)
        bump = 1 + roughness * (rng.random(len(v)) - 0.5)
        p = v * bump[:, None] * r
        p[:, 2] *= squash
        p = p + np.asarray(center)
        tri = p[f].reshape(-1, 3, 3)
        n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-12
        n *= np.sign(np.einsum("ij,ij->i", n, tri.mean(1) - np.asarray(center)) + 1e-12)[:, None]
        # triplanar-ish uv: project on the dominant axis of the face normal
        uv = np.where(np.abs(n[:, 2:3, None]) > 0.6, tri[:, :, [0, 1]], np.where(
            np.abs(n[:, 0:1, None]) > np.abs(n[:, 1:2, None]), tri[:, :, [1, 2]], tri[:, :, [0, 2]])) * uv_scale
        self.add_triangles(tri.reshape(-1, 3), np.repeat(n, 3, 0), uv.reshape(-1, 2), layer, tint)
        self._end()

    # -- output ----------------------------------------------------------------------------------------
    def build(self) -> np.ndarray:
        if not self._chunks:
            return np.zeros((0, VERTEX_FLOATS), np.float32)
        return np.ascontiguousarray(np.concatenate(self._chunks, 0), dtype=np.float32)

    @property
    def n_triangles(self) -> int:
        return sum(len(c) for c in self._chunks) // 3


def _icosphere(subdiv: int):
    t = (1 + 5 ** 0.5) / 2
    v = [[-1, t, 0], [1, t, 0], [-1, -t, 0], [1, -t, 0], [0, -1, t], [0, 1, t], [0, -1, -t], [0, 1, -t],
         [t, 0, -1], [t, 0, 1], [-t, 0, -1], [-t, 0, 1]]
    f = [[0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11], [1, 5, 9], [5, 11, 4], [11, 10, 2],
         [10, 7, 6], [7, 1, 8], [3, 9, 4], [3, 4, 2], [3, 2, 6], [3, 6, 8], [3, 8, 9], [4, 9, 5], [2, 4, 11],
         [6, 2, 10], [8, 6, 7], [9, 8, 1]]
    v = np.array(v, np.float64)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    f = np.array(f)
    for _ in range(subdiv):
        cache: dict = {}
        verts = list(v)
        new_f = []

        def mid(a, b):
            key = (min(a, b), max(a, b))
            if key not in cache:
                m = (verts[a] + verts[b]) / 2
                verts.append(m / np.linalg.norm(m))
                cache[key] = len(verts) - 1
            return cache[key]

        for a, b, c in f:
            ab, bc, ca = mid(a, b), mid(b, c), mid(c, a)
            new_f += [[a, ab, ca], [b, bc, ab], [c, ca, bc], [ab, bc, ca]]
        v, f = np.array(verts), np.array(new_f)
    return v, f
