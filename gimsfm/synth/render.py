"""Headless OpenGL renderer (moderngl on EGL / Mesa llvmpipe): colour, exact z-depth and dynamic masks.

Projection follows OpenCV exactly: the pixel (column i, row j) of the returned arrays is the pinhole
projection u = fx X/Z + cx = i, v = fy Y/Z + cy = j of its pixel centre, so depth + K + pose give exact
correspondences. Depth is the camera-frame Z interpolated perspective-correctly (exact for planar
triangles), 0 where nothing was hit (sky).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import GimsfmError
from .mesh import VERTEX_FLOATS
from .textures import TextureCatalog, get_catalog

MAX_LIGHTS = 8  # nearest point lights per frame (night streets have more lamps)

_VS = """
#version 330
uniform mat4 model;
uniform mat4 modelview;
uniform mat4 proj;
in vec3 in_pos; in vec3 in_nrm; in vec2 in_uv; in float in_layer; in vec3 in_tint;
out vec3 v_world; out vec3 v_nrm; out vec2 v_uv; flat out float v_layer; out vec3 v_tint; out vec3 v_view;
void main() {
    vec4 p = vec4(in_pos, 1.0);
    v_world = (model * p).xyz;
    v_nrm = mat3(model) * in_nrm;
    v_uv = in_uv; v_layer = in_layer; v_tint = in_tint;
    v_view = (modelview * p).xyz;
    gl_Position = proj * vec4(v_view, 1.0);
}
"""

# NL (number of point lights) is a compile-time constant: a loop with a uniform bound costs ~35 ms per
# 640x480 frame on llvmpipe even with zero iterations; one program per light count class is much cheaper.
_FS = """
#version 330
#define NL %d
uniform sampler2DArray tex;
uniform vec3 sun_dir; uniform vec3 sun_col; uniform vec3 ambient;
#if NL > 0
uniform vec3 light_pos[NL]; uniform vec3 light_col[NL];
#endif
uniform vec3 fog_col; uniform float fog_density; uniform vec3 gain; uniform float dyn_id;
uniform vec3 water_absorb;
in vec3 v_world; in vec3 v_nrm; in vec2 v_uv; flat in float v_layer; in vec3 v_tint; in vec3 v_view;
layout(location = 0) out vec4 f_color;
layout(location = 1) out vec2 f_depth;
void main() {
    // anti-tiling, one texture fetch: a smooth warp of the texture coordinates and a brightness / colour
    // modulation driven by low-frequency sines with incommensurate periods in texture space, so a tiled
    // surface never repeats with an exact period (appearance only: a fixed function of the surface point)
    float m1 = sin(v_uv.x * 1.913 + 1.7 * sin(v_uv.y * 1.371 + 0.4));
    float m2 = sin(v_uv.y * 2.287 + 1.9 * sin(v_uv.x * 0.931 + 1.3));
    vec2 uv = v_uv + 0.05 * vec2(m2, m1);
    vec3 albedo = texture(tex, vec3(uv, v_layer)).rgb * v_tint
                  * (vec3(1.0) + 0.16 * m1 * m2 + vec3(0.04, -0.03, 0.05) * (m1 - m2));
    vec3 n = normalize(v_nrm);
    vec3 light = ambient * (0.8 + 0.2 * n.z) + sun_col * max(dot(n, sun_dir), 0.0);
#if NL > 0
    for (int i = 0; i < NL; ++i) {
        vec3 L = light_pos[i] - v_world;
        float d2 = dot(L, L);
        light += light_col[i] * (0.25 + 0.75 * max(dot(n, L * inversesqrt(d2)), 0.0)) / (1.0 + 0.15 * d2);
    }
#endif
    vec3 c = albedo * light;
    float dist = length(v_view);
    c *= exp(-water_absorb * dist);
    float fog = 1.0 - exp(-fog_density * dist);
    c = mix(c, fog_col, fog);
    f_color = vec4(c * gain, 1.0);
    f_depth = vec2(v_view.z, dyn_id);
}
"""
LIGHT_CLASSES = (0, 2, 4, MAX_LIGHTS)

_SKY_VS = """
#version 330
in vec2 in_vert;
void main() { gl_Position = vec4(in_vert, 1.0, 1.0); }  // at the far plane: drawn only where nothing was hit
"""

_SKY_FS = """
#version 330
uniform mat3 ray_from_pix;   // world direction = ray_from_pix * (u, v, 1)
uniform vec3 sky_top; uniform vec3 sky_horizon; uniform vec3 ground_col; uniform vec3 sun_dir; uniform vec3 sun_col;
uniform vec3 gain; uniform float clouds; uniform float cloud_shift;
layout(location = 0) out vec4 f_color;
layout(location = 1) out vec2 f_depth;
float hash(vec3 p) { p = fract(p * 0.3183099 + 0.1); p *= 17.0; return fract(p.x * p.y * p.z * (p.x + p.y + p.z)); }
float noise(vec3 x) {
    vec3 i = floor(x); vec3 f = fract(x); f = f * f * (3.0 - 2.0 * f);
    return mix(mix(mix(hash(i), hash(i + vec3(1,0,0)), f.x), mix(hash(i + vec3(0,1,0)), hash(i + vec3(1,1,0)), f.x), f.y),
               mix(mix(hash(i + vec3(0,0,1)), hash(i + vec3(1,0,1)), f.x), mix(hash(i + vec3(0,1,1)), hash(i + vec3(1,1,1)), f.x), f.y), f.z);
}
void main() {
    vec2 uv = gl_FragCoord.xy - 0.5;
    vec3 d = normalize(ray_from_pix * vec3(uv, 1.0));
    float e = d.z;
    vec3 c = e > 0.0 ? mix(sky_horizon, sky_top, pow(e, 0.6)) : mix(sky_horizon, ground_col, min(1.0, -e * 6.0));
    if (e > 0.0 && clouds > 0.0) {
        vec3 q = d / max(e, 0.05) * 3.0 + vec3(cloud_shift, 0.0, 0.0);
        float n = 0.5 * noise(q) + 0.25 * noise(q * 2.03) + 0.125 * noise(q * 4.01) + 0.0625 * noise(q * 8.1);
        c = mix(c, vec3(0.92, 0.93, 0.95) * (0.6 + 0.4 * sun_col.r), clouds * smoothstep(0.45, 0.8, n) * min(1.0, e * 5.0));
    }
    c += sun_col * pow(max(dot(d, sun_dir), 0.0), 400.0);
    f_color = vec4(c * gain, 1.0);
    f_depth = vec2(0.0, 0.0);
}
"""

_CTX = None


def gl_context():
    """One standalone EGL context per process (falls back to the default backend)."""
    global _CTX
    if _CTX is None:
        import moderngl

        try:
            _CTX = moderngl.create_standalone_context(backend="egl")
        except Exception:
            try:
                _CTX = moderngl.create_standalone_context()
            except Exception as exc:
                raise GimsfmError(f"cannot create an OpenGL context for rendering (need EGL/Mesa): {exc}") from None
    return _CTX


def gl_projection(K: np.ndarray, width: int, height: int, near: float, far: float) -> np.ndarray:
    """OpenGL clip matrix for an OpenCV camera; image row j is the j-th row read back (no flip)."""
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    return np.array([
        [2 * fx / width, K[0, 1] * 2 / width, 2 * (cx + 0.5) / width - 1, 0],
        [0, 2 * fy / height, 2 * (cy + 0.5) / height - 1, 0],
        [0, 0, (far + near) / (far - near), -2 * far * near / (far - near)],
        [0, 0, 1, 0]], np.float64)


@dataclass
class Frame:
    rgb: np.ndarray     # uint8 (H, W, 3)
    depth: np.ndarray   # float32 (H, W), camera z, 0 = sky / nothing
    dynamic: np.ndarray  # uint8 (H, W), id of the moving object (0 = static or sky)


def _mat(m: np.ndarray) -> bytes:
    return np.ascontiguousarray(m.T, dtype=np.float32).tobytes()


class Renderer:
    """Renders a World (see world.py). One instance can render many worlds and image sizes."""

    def __init__(self, catalog: TextureCatalog | None = None):
        import moderngl

        self.ctx = gl_context()
        self.catalog = catalog or get_catalog()
        ctx = self.ctx
        self._progs = {nl: ctx.program(vertex_shader=_VS, fragment_shader=_FS % nl) for nl in LIGHT_CLASSES}
        self.sky = ctx.program(vertex_shader=_SKY_VS, fragment_shader=_SKY_FS)
        tri = np.array([-1, -1, 3, -1, -1, 3], np.float32)
        self._sky_vbo = ctx.buffer(tri.tobytes())
        self._sky_vao = ctx.vertex_array(self.sky, [(self._sky_vbo, "2f", "in_vert")])
        stack = self.catalog.stack()
        L, S = stack.shape[0], stack.shape[1]
        self.tex = ctx.texture_array((S, S, L), 3, stack.tobytes())
        self.tex.build_mipmaps()
        self.tex.filter = (moderngl.LINEAR_MIPMAP_LINEAR, moderngl.LINEAR)
        # anisotropic filtering costs ~40 % of the frame on llvmpipe: off
        self._fbos: dict = {}
        self._world = None
        self._static = None
        self._dyn: list = []

    # ------------------------------------------------------------------------------------------------
    def _fbo(self, width: int, height: int):
        key = (width, height)
        if key not in self._fbos:
            ctx = self.ctx
            col = ctx.renderbuffer((width, height), 4)
            dep = ctx.texture((width, height), 2, dtype="f4")
            zbuf = ctx.depth_renderbuffer((width, height))
            self._fbos = {key: (ctx.framebuffer([col, dep], zbuf), col, dep, zbuf)}  # keep one size alive
        return self._fbos[key][0]

    def _vao(self, verts: np.ndarray):
        """One vertex buffer, with a vertex array per shader program (one per light class)."""
        vbo = self.ctx.buffer(np.ascontiguousarray(verts, np.float32).tobytes())
        vaos = {nl: self.ctx.vertex_array(prog, [(vbo, "3f 3f 2f 1f 3f", "in_pos", "in_nrm", "in_uv", "in_layer", "in_tint")],
                                          skip_errors=True)
                for nl, prog in self._progs.items()}
        return vaos, vbo

    def set_world(self, world) -> None:
        if self._world is world:
            return
        self._release_world()
        self._world = world
        self._static = self._vao(world.static) if len(world.static) else None
        self._dyn = [self._vao(obj.vertices) for obj in world.dynamic]

    def _release_world(self) -> None:
        for vaos, vbo in ([self._static] if self._static else []) + self._dyn:
            for vao in vaos.values():
                vao.release()
            vbo.release()
        self._static, self._dyn, self._world = None, [], None

    def release(self) -> None:
        self._release_world()
        for fbo, *rest in self._fbos.values():
            fbo.release()
            for r in rest:
                r.release()
        self._fbos = {}
        self.tex.release()

    # ------------------------------------------------------------------------------------------------
    def render(self, world, cam_from_world: np.ndarray, K: np.ndarray, width: int, height: int,
               t: float = 0.0, gain=(1.0, 1.0, 1.0), dynamic_time: float | None = None) -> Frame:
        """Render `world` at time t (illumination) with dynamic objects at dynamic_time (default t)."""
        import moderngl

        self.set_world(world)
        ctx = self.ctx
        fbo = self._fbo(width, height)
        fbo.use()
        ctx.viewport = (0, 0, width, height)
        env = world.env.at(t)
        gain = np.asarray(gain, np.float64) * env["gain"]
        T = np.asarray(cam_from_world, np.float64)
        near, far = world.near, world.far
        P = gl_projection(K, width, height, near, far)
        ctx.enable(moderngl.DEPTH_TEST)
        ctx.disable(moderngl.CULL_FACE)
        ctx.depth_func = "<"
        fbo.clear(0.0, 0.0, 0.0, 1.0, depth=1.0)
        # geometry
        lights = env["lights"]
        if len(lights) > MAX_LIGHTS:  # the nearest lights to the camera
            c = -T[:3, :3].T @ T[:3, 3]
            order = np.argsort([np.sum((np.asarray(lp) - c) ** 2) for lp, _ in lights], kind="stable")
            lights = [lights[i] for i in order[:MAX_LIGHTS]]
        nl = next(k for k in LIGHT_CLASSES if k >= len(lights))
        p = self._progs[nl]
        self.tex.use(location=0)
        p["proj"].write(_mat(P))
        for name in ("sun_dir", "sun_col", "ambient", "fog_col", "water_absorb"):
            p[name].value = tuple(float(x) for x in env[name])
        p["fog_density"].value = float(env["fog_density"])
        p["gain"].value = tuple(float(x) for x in gain)
        if nl:
            pos = np.zeros((nl, 3), np.float32)
            col = np.zeros((nl, 3), np.float32)
            for i, (lp, lc) in enumerate(lights):
                pos[i], col[i] = lp, lc
            p["light_pos"].write(pos.tobytes())
            p["light_col"].write(col.tobytes())
        if self._static is not None:
            p["model"].write(_mat(np.eye(4)))
            p["modelview"].write(_mat(T))
            p["dyn_id"].value = 0.0
            self._static[0][nl].render(moderngl.TRIANGLES)
        td = t if dynamic_time is None else dynamic_time
        for k, (obj, (vaos, _)) in enumerate(zip(world.dynamic, self._dyn)):
            M = obj.pose(td)
            p["model"].write(_mat(M))
            p["modelview"].write(_mat(T @ M))
            p["dyn_id"].value = float(k + 1)
            vaos[nl].render(moderngl.TRIANGLES)
        # sky
        ctx.depth_func = "<="
        R_c2w = T[:3, :3].T
        ray = R_c2w @ np.linalg.inv(K)
        s = self.sky
        s["ray_from_pix"].write(np.ascontiguousarray(ray.T, np.float32).tobytes())
        for name in ("sky_top", "sky_horizon", "ground_col", "sun_dir", "sun_col"):
            s[name].value = tuple(float(x) for x in env[name])
        s["gain"].value = tuple(float(x) for x in gain)
        s["clouds"].value = float(env["clouds"])
        s["cloud_shift"].value = float(0.02 * t)
        self._sky_vao.render(moderngl.TRIANGLES)
        rgb = np.frombuffer(fbo.read(components=3, attachment=0), np.uint8).reshape(height, width, 3)
        dz = np.frombuffer(fbo.read(components=2, attachment=1, dtype="f4"), np.float32).reshape(height, width, 2)
        depth = np.ascontiguousarray(dz[..., 0])
        dyn = np.clip(np.rint(dz[..., 1]), 0, 255).astype(np.uint8)
        return Frame(rgb=rgb.copy(), depth=depth, dynamic=dyn)


_RENDERER: Renderer | None = None


def get_renderer() -> Renderer:
    global _RENDERER
    if _RENDERER is None:
        _RENDERER = Renderer()
    return _RENDERER


assert VERTEX_FLOATS == 12
