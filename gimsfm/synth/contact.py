"""Contact sheet of rendered frames from every domain (docs/synth_contact_sheet.png)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from . import camera as cam
from .effects import PhotometricDrift, rain, sensor_noise, vignette
from .render import get_renderer
from .world import DOMAINS, build_world


def domain_frames(domain: str, seed: int, n: int = 2, width: int = 640, height: int = 480) -> list[np.ndarray]:
    """n frames of one world of `domain` as a video would show them (effects on, no compression)."""
    world = build_world(domain, seed)
    rng = np.random.default_rng([seed, 99])
    traj = world.trajectory(rng)
    K = cam.intrinsics(width, height, float(rng.uniform(*world.fov_range)))
    drift = PhotometricDrift(rng)
    r = get_renderer()
    out = []
    for k in range(n):
        t = 2.0 + 4.0 * k
        f = r.render(world, traj.pose(t), K, width, height, t=t, gain=drift.gain(t))
        rgb = vignette(f.rgb, 0.15)
        if world.post.get("rain"):
            rgb = rain(rgb, rng)
        out.append(sensor_noise(rgb, world.post.get("noise", 0.01), rng, shot=True))
    return out


def contact_sheet(out_path: Path, seed: int = 1, per_domain: int = 2, tile: tuple[int, int] = (224, 168),
                  max_bytes: int = 1_000_000) -> Path:
    tiles = []
    for d in DOMAINS:
        for img in domain_frames(d, seed, per_domain):
            t = cv2.resize(img, tile, interpolation=cv2.INTER_AREA)
            cv2.putText(t, d, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 3, cv2.LINE_AA)
            cv2.putText(t, d, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1, cv2.LINE_AA)
            tiles.append(t)
    cols = 2 * per_domain
    rows = [np.hstack(tiles[i:i + cols]) for i in range(0, len(tiles), cols)]
    sheet = np.vstack(rows)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out_path), sheet[..., ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 9])
    if out_path.stat().st_size > max_bytes:  # palette PNG keeps it small
        from PIL import Image

        Image.fromarray(sheet).quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(out_path, optimize=True)
    return out_path
