"""Cameras (OpenCV convention: x right, y down, z forward; top-left pixel centre at (0, 0)) and
trajectories that behave like real footage: walking with head bob, driving, drone flight, handheld orbit,
pure-rotation pans. A trajectory maps time (s) to a 4x4 cam_from_world matrix."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .mesh import rot_z  # noqa: F401  (re-exported)


def intrinsics(width: int, height: int, hfov_deg: float, cx: float | None = None, cy: float | None = None) -> np.ndarray:
    f = 0.5 * width / np.tan(np.radians(hfov_deg) / 2)
    cx = (width - 1) / 2 if cx is None else cx
    cy = (height - 1) / 2 if cy is None else cy
    return np.array([[f, 0, cx], [0, f, cy], [0, 0, 1]], np.float64)


def look_at(eye, target, up_hint=(0.0, 0.0, 1.0), roll: float = 0.0) -> np.ndarray:
    """cam_from_world (4x4) of a camera at `eye` looking at `target`, world z up, OpenCV axes."""
    eye = np.asarray(eye, np.float64)
    f = np.asarray(target, np.float64) - eye
    f /= np.linalg.norm(f)
    up = np.asarray(up_hint, np.float64)
    right = np.cross(f, up)
    if np.linalg.norm(right) < 1e-6:  # looking straight along the hint: pick any perpendicular
        right = np.cross(f, [1.0, 0.0, 0.0] if abs(f[0]) < 0.9 else [0.0, 1.0, 0.0])
    right /= np.linalg.norm(right)
    down = np.cross(f, right)
    if roll:
        c, s = np.cos(roll), np.sin(roll)
        right, down = c * right + s * down, -s * right + c * down
    R_c2w = np.stack([right, down, f], 1)
    T = np.eye(4)
    T[:3, :3] = R_c2w.T
    T[:3, 3] = -R_c2w.T @ eye
    return T


def look_dir(eye, yaw: float, pitch: float, roll: float = 0.0) -> np.ndarray:
    """Camera at eye with heading yaw (about z, 0 = +x) and pitch (positive = up)."""
    d = np.array([np.cos(pitch) * np.cos(yaw), np.cos(pitch) * np.sin(yaw), np.sin(pitch)])
    hint = (0.0, 0.0, 1.0) if abs(np.sin(pitch)) < 0.98 else (np.cos(yaw), np.sin(yaw), 0.0)
    return look_at(eye, np.asarray(eye) + d, hint, roll)


def camera_center(T: np.ndarray) -> np.ndarray:
    return -T[:3, :3].T @ T[:3, 3]


class Smooth1D:
    """Sum of random sinusoids: smooth, band-limited, seeded 1-D signal with unit-ish amplitude."""

    def __init__(self, rng: np.random.Generator, f_lo: float = 0.05, f_hi: float = 0.5, n: int = 4):
        self.f = rng.uniform(f_lo, f_hi, n)
        self.p = rng.uniform(0, 2 * np.pi, n)
        self.a = rng.uniform(0.5, 1.0, n)
        self.a /= self.a.sum()

    def __call__(self, t):
        t = np.asarray(t, np.float64)
        return np.sum(self.a * np.sin(2 * np.pi * self.f * t[..., None] + self.p), -1)


@dataclass
class Path2D:
    """A closed, smooth 2-D path through waypoints (Catmull-Rom), arc-length parameterised."""

    points: np.ndarray
    _cum: np.ndarray = field(init=False, repr=False)
    _dense: np.ndarray = field(init=False, repr=False)
    closed: bool = True

    def __post_init__(self) -> None:
        P = np.asarray(self.points, np.float64)
        if self.closed:
            P = np.concatenate([P[-1:], P, P[:2]], 0)
        else:
            P = np.concatenate([P[:1], P, P[-1:]], 0)
        dense = []
        for i in range(1, len(P) - 2):
            p0, p1, p2, p3 = P[i - 1], P[i], P[i + 1], P[i + 2]
            for s in np.linspace(0, 1, 40, endpoint=False):
                s2, s3 = s * s, s * s * s
                dense.append(0.5 * ((2 * p1) + (-p0 + p2) * s + (2 * p0 - 5 * p1 + 4 * p2 - p3) * s2
                                    + (-p0 + 3 * p1 - 3 * p2 + p3) * s3))
        dense.append(P[-2])
        self._dense = np.array(dense)
        seg = np.linalg.norm(np.diff(self._dense, axis=0), axis=1)
        self._cum = np.concatenate([[0], np.cumsum(seg)])

    @property
    def length(self) -> float:
        return float(self._cum[-1])

    def _xy(self, s):
        s = np.mod(s, self.length) if self.closed else np.clip(s, 0, self.length)
        return np.interp(s, self._cum, self._dense[:, 0]), np.interp(s, self._cum, self._dense[:, 1])

    def at(self, s, window: float = 1.0):
        """Position and unit tangent (averaged over +-window metres) at arc length s (wraps for closed
        paths, clamps otherwise)."""
        s = np.asarray(s, np.float64)
        x, y = self._xy(s)
        x1, y1 = self._xy(s - window)
        x2, y2 = self._xy(s + window)
        tan = np.stack([x2 - x1, y2 - y1], -1)
        tan /= np.linalg.norm(tan, axis=-1, keepdims=True) + 1e-12
        return np.stack([x, y], -1), tan


class Trajectory:
    """Base: pose(t) -> cam_from_world. Subclasses implement motion styles."""

    kind = "static"

    def pose(self, t: float) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError


class WalkTrajectory(Trajectory):
    """Walking along a path at ~1.2-1.6 m/s, eye height above ground(x, y), head bob at step frequency,
    slow look-around in yaw and pitch, handheld roll jitter."""

    kind = "walk"

    def __init__(self, rng, path: Path2D, ground=lambda x, y: 0.0, height: float = 1.6, speed: float = 1.4,
                 look_amp: float = 0.5, pitch0: float = -0.05, pitch_amp: float = 0.12, bob: float = 0.03):
        self.path, self.ground, self.height, self.speed = path, ground, height, speed
        self.s0 = rng.uniform(0, path.length)
        self.look = Smooth1D(rng, 0.03, 0.2)
        self.pitch = Smooth1D(rng, 0.03, 0.25)
        self.roll = Smooth1D(rng, 0.2, 1.0)
        self.look_amp, self.pitch0, self.pitch_amp, self.bob = look_amp, pitch0, pitch_amp, bob
        self.step_f = rng.uniform(1.7, 2.1)

    def pose(self, t):
        (x, y), tan = self.path.at(self.s0 + self.speed * t)
        z = self.ground(x, y) + self.height + self.bob * np.sin(2 * np.pi * self.step_f * t)
        sway = 0.02 * np.sin(np.pi * self.step_f * t)
        x, y = x - sway * tan[1], y + sway * tan[0]
        yaw = np.arctan2(tan[1], tan[0]) + self.look_amp * self.look(t)
        pitch = self.pitch0 + self.pitch_amp * self.pitch(t) + 0.01 * np.sin(2 * np.pi * self.step_f * t + 1)
        return look_dir([x, y, z], yaw, pitch, 0.03 * self.roll(t))


class DriveTrajectory(Trajectory):
    """Vehicle-mounted camera: along a path at 6-14 m/s, low pitch, small vibrations."""

    kind = "drive"

    def __init__(self, rng, path: Path2D, ground=lambda x, y: 0.0, height: float = 1.5, speed: float = 10.0):
        self.path, self.ground, self.height, self.speed = path, ground, height, speed
        self.s0 = rng.uniform(0, path.length)
        self.vib = Smooth1D(rng, 2.0, 6.0)
        self.yaw_off = rng.uniform(-0.15, 0.15)

    def pose(self, t):
        (x, y), tan = self.path.at(self.s0 + self.speed * t, window=6.0)
        z = self.ground(x, y) + self.height + 0.01 * self.vib(t)
        yaw = np.arctan2(tan[1], tan[0]) + self.yaw_off
        return look_dir([x, y, z], yaw, -0.03 + 0.004 * self.vib(t + 3), 0.004 * self.vib(t + 7))


class DroneTrajectory(Trajectory):
    """Drone flight: altitude above ground, slow translation, nadir or oblique gimbal, yaw drift."""

    kind = "drone"

    def __init__(self, rng, path: Path2D, ground=lambda x, y: 0.0, altitude: float = 60.0, speed: float = 6.0,
                 pitch: float = -np.pi / 2 + 0.05):
        self.path, self.ground, self.alt, self.speed, self.pitch = path, ground, altitude, speed, pitch
        self.s0 = rng.uniform(0, path.length)
        self.yaw = Smooth1D(rng, 0.01, 0.05)
        self.alt_n = Smooth1D(rng, 0.01, 0.05)
        self.wob = Smooth1D(rng, 0.5, 2.0)

    def pose(self, t):
        (x, y), tan = self.path.at(self.s0 + self.speed * t, window=20.0)
        z = self.ground(x, y) + self.alt * (1 + 0.15 * self.alt_n(t))
        yaw = np.arctan2(tan[1], tan[0]) + 0.6 * self.yaw(t)
        return look_dir([x, y, z], yaw, self.pitch + 0.01 * self.wob(t), 0.01 * self.wob(t + 5))


class OrbitTrajectory(Trajectory):
    """Handheld orbit around a target (object-centric footage)."""

    kind = "orbit"

    def __init__(self, rng, center, radius: float, elevation: float, omega: float = 0.25, radius_var: float = 0.15,
                 jitter: float = 0.02):
        self.c = np.asarray(center, np.float64)
        self.r, self.el, self.omega, self.rv, self.jit = radius, elevation, omega, radius_var, jitter
        self.a0 = rng.uniform(0, 2 * np.pi)
        self.dr = Smooth1D(rng, 0.02, 0.1)
        self.de = Smooth1D(rng, 0.02, 0.1)
        self.hand = Smooth1D(rng, 0.5, 2.0, 6)
        self.aim = Smooth1D(rng, 0.05, 0.2)
        self.dir = rng.choice([-1.0, 1.0])

    def pose(self, t):
        a = self.a0 + self.dir * self.omega * t
        r = self.r * (1 + self.rv * self.dr(t))
        el = self.el + 0.15 * self.de(t)
        eye = self.c + r * np.array([np.cos(a) * np.cos(el), np.sin(a) * np.cos(el), np.sin(el)])
        eye = eye + self.jit * np.array([self.hand(t), self.hand(t + 11), self.hand(t + 23)])
        target = self.c + 0.08 * self.r * np.array([self.aim(t), self.aim(t + 5), 0.5 * self.aim(t + 9)])
        return look_at(eye, target, roll=0.02 * self.hand(t + 31))


class PanTrajectory(Trajectory):
    """Pure-rotation pan from a fixed (tripod or handheld) position."""

    kind = "pan"

    def __init__(self, rng, eye, yaw0: float = 0.0, rate: float = 0.3, pitch: float = -0.05, handheld: bool = True):
        self.eye = np.asarray(eye, np.float64)
        self.yaw0, self.rate, self.pitch = yaw0, rate, pitch
        self.shake = Smooth1D(rng, 0.5, 3.0, 6) if handheld else None
        self.amp = rng.uniform(0.6, 1.6)

    def pose(self, t):
        yaw = self.yaw0 + self.amp * np.sin(self.rate * t / self.amp)
        pitch, roll = self.pitch, 0.0
        if self.shake is not None:
            pitch += 0.004 * self.shake(t)
            roll = 0.004 * self.shake(t + 13)
            yaw += 0.004 * self.shake(t + 29)
        return look_dir(self.eye, yaw, pitch, roll)


# ----------------------------------------------------------------------------------------------------------
def distortion_maps(K: np.ndarray, dist: np.ndarray, width: int, height: int, margin: float = 1.0):
    """Maps for cv2.remap that turn a pinhole render (with a larger canvas) into a distorted image.

    Returns (map_x, map_y, K_canvas, canvas_size): render with K_canvas at canvas_size, then
    ``cv2.remap(render, map_x, map_y, ...)`` gives the image seen through (K, dist).
    """
    import cv2

    u, v = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    pts = np.stack([u.ravel(), v.ravel()], -1)[:, None, :]
    crit = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 50, 1e-10)
    und = cv2.undistortPoints(pts, K, np.asarray(dist, np.float64), None, None, criteria=crit).reshape(-1, 2)
    x = und[:, 0] * K[0, 0] + K[0, 2]
    y = und[:, 1] * K[1, 1] + K[1, 2]
    pad_x = int(np.ceil(max(0.0, -x.min(), x.max() - (width - 1)))) + 2
    pad_y = int(np.ceil(max(0.0, -y.min(), y.max() - (height - 1)))) + 2
    Kc = K.copy()
    Kc[0, 2] += pad_x
    Kc[1, 2] += pad_y
    size = (width + 2 * pad_x, height + 2 * pad_y)
    map_x = (x + pad_x).reshape(height, width).astype(np.float32)
    map_y = (y + pad_y).reshape(height, width).astype(np.float32)
    return map_x, map_y, Kc, size


def distortion_roundtrip_error(map_x, map_y, K, K_canvas, dist, step: int = 16) -> float:
    """Max pixel error of distort(undistort(p)) over a grid of image pixels (0 when the maps are valid)."""
    import cv2

    h, w = map_x.shape
    v, u = np.mgrid[0:h:step, 0:w:step]
    v = np.concatenate([v.ravel(), [h - 1, h - 1, 0]])
    u = np.concatenate([u.ravel(), [0, w - 1, w - 1]])
    x = (map_x[v, u] - K_canvas[0, 2]) / K[0, 0]
    y = (map_y[v, u] - K_canvas[1, 2]) / K[1, 1]
    X = np.stack([x, y, np.ones_like(x)], -1).astype(np.float64)
    back, _ = cv2.projectPoints(X, np.zeros(3), np.zeros(3), K, np.asarray(dist, np.float64))
    return float(np.abs(back.reshape(-1, 2) - np.stack([u, v], -1)).max())
