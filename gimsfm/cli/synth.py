"""`gimsfm synth`: synthetic worlds -> videos with separate GT, ZEB-format pose pairs, COLMAP scenes."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from . import app

synth_app = typer.Typer(help="Procedural synthetic worlds: videos, pose pairs and scenes with exact ground truth.",
                        no_args_is_help=True)
app.add_typer(synth_app, name="synth")

_DOMAIN_HELP = "domain: indoor, street, terrain, aerial, object, underwater, night, fog (or 'all')"


@synth_app.command("pairs")
def pairs_cmd(
    out: Path = typer.Option(..., "--out", "-o", help="output folder (pairs.txt, images/, depth/, dynamic/)"),
    domain: List[str] = typer.Option(["indoor"], "--domain", "-d", help=_DOMAIN_HELP + "; repeat or comma-separate"),
    pairs: int = typer.Option(100, "--pairs", "-n", help="number of pairs (split evenly over domains)"),
    seed: int = typer.Option(0, "--seed"),
    mode: str = typer.Option("train", "--mode", help="train: overlap 5-90 %; eval: 10-50 % (ZEB-like)"),
    width: int = typer.Option(640, "--width"),
    height: int = typer.Option(480, "--height"),
    image_format: str = typer.Option("png", "--image-format", help="png (lossless) or jpg (q95)"),
    val_fraction: float = typer.Option(0.0, "--val-fraction", help="extra fraction of pairs from held-out worlds, in OUT/val/"),
    pairs_per_world: int = typer.Option(25, "--pairs-per-world", help="pairs taken from one procedural world (fewer = more diverse)"),
    preset: Optional[str] = typer.Option(None, "--preset", help="named preset (pipelines/synth_*.yaml): base-indoor, zeb-lite-synth"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing pose set"),
) -> None:
    """Pose pairs in the ZEB format with depth maps (pinhole, exact GT)."""
    if pairs_per_world < 1:
        from ..errors import InputError

        raise InputError("--pairs-per-world must be >= 1")
    from ..synth.pairs import generate_pairs
    from ..synth.suites import load_preset, run_pairs_preset

    if preset:
        cfg = load_preset(preset)
        for d in run_pairs_preset(cfg, out, overwrite=overwrite):
            typer.echo(str(d))
        return
    d = generate_pairs(domain, pairs, seed, out, width=width, height=height, mode=mode, image_ext=image_format,
                       val_fraction=val_fraction, pairs_per_world=pairs_per_world, overwrite=overwrite)
    typer.echo(str(d / "pairs.txt"))


@synth_app.command("video")
def video_cmd(
    out: Path = typer.Option(..., "--out", "-o", help="output folder (video.mp4, gt.h5)"),
    domain: str = typer.Option("street", "--domain", "-d", help=_DOMAIN_HELP.replace(" (or 'all')", "")),
    seconds: float = typer.Option(10.0, "--seconds", "-s"),
    fps: float = typer.Option(30.0, "--fps"),
    seed: int = typer.Option(0, "--seed"),
    width: int = typer.Option(640, "--width"),
    height: int = typer.Option(480, "--height"),
    trajectory: Optional[str] = typer.Option(None, "--trajectory", help="walk, drive, drone, oblique, orbit, pan (default: domain mix)"),
    fov: Optional[float] = typer.Option(None, "--fov", help="horizontal field of view in degrees (default: random in the domain's range)"),
    distortion: Optional[bool] = typer.Option(None, "--distortion/--no-distortion", help="radial lens distortion (default: random)"),
    motion_blur: int = typer.Option(0, "--motion-blur", help="sub-frames averaged per frame (1 = off, 0 = auto: 3 for night and ~25 % of clips)"),
    crf: int = typer.Option(23, "--crf", help="H.264 constant rate factor"),
    x264_preset: str = typer.Option("superfast", "--x264-preset", help="libx264 speed preset (ultrafast ... veryslow)"),
    depth_every: int = typer.Option(10, "--depth-every", help="store GT depth / masks every N frames (poses: every frame)"),
    preset: Optional[str] = typer.Option(None, "--preset", help="named preset: video-corpus (many videos under OUT/)"),
    overwrite: bool = typer.Option(False, "--overwrite"),
) -> None:
    """An H.264 video that behaves like internet footage, with ground truth in a separate gt.h5."""
    from ..synth.suites import load_preset, run_video_preset
    from ..synth.video import generate_video

    if preset:
        for d in run_video_preset(load_preset(preset), out, overwrite=overwrite):
            typer.echo(str(d))
        return
    d = generate_video(domain, seconds, fps, seed, out, width=width, height=height, trajectory=trajectory, fov=fov,
                       distortion=distortion, motion_blur=motion_blur, crf=crf, depth_every=depth_every,
                       x264_preset=x264_preset, overwrite=overwrite)
    typer.echo(str(d / "video.mp4"))


@synth_app.command("scene")
def scene_cmd(
    out: Path = typer.Option(..., "--out", "-o", help="output folder (images/, gt/, map.txt, query.txt)"),
    domain: str = typer.Option("object", "--domain", "-d", help=_DOMAIN_HELP.replace(" (or 'all')", "")),
    seed: int = typer.Option(0, "--seed"),
    images: int = typer.Option(40, "--images", help="number of mapping images"),
    queries: int = typer.Option(10, "--queries", help="number of query images (separate trajectory)"),
    width: int = typer.Option(640, "--width"),
    height: int = typer.Option(480, "--height"),
    query_condition: str = typer.Option("day", "--query-condition",
                                        help="appearance of the queries (map stays day): day, night, fog, rain, dusk"),
    trajectory: Optional[str] = typer.Option(None, "--trajectory", help="camera motion of map and queries (default: drive for street, walk indoor, ...)"),
    preset: Optional[str] = typer.Option(None, "--preset", help="named preset: localize (OUT/street_day, street_night, street_fog)"),
    overwrite: bool = typer.Option(False, "--overwrite"),
) -> None:
    """Images + GT COLMAP text model + map/query split, for the reconstruction and localization benchmarks."""
    from ..synth.scene import generate_scene
    from ..synth.suites import load_preset, run_scene_preset

    if preset:
        for d in run_scene_preset(load_preset(preset), out, overwrite=overwrite):
            typer.echo(str(d))
        return
    d = generate_scene(domain, out, seed=seed, n_images=images, n_queries=queries, width=width, height=height,
                       overwrite=overwrite, query_condition=query_condition, trajectory=trajectory)
    typer.echo(str(d))


@synth_app.command("bench")
def bench_cmd(
    frames: int = typer.Option(90, "--frames", help="frames per domain"),
    domain: List[str] = typer.Option(["all"], "--domain", "-d", help=_DOMAIN_HELP),
    width: int = typer.Option(640, "--width"),
    height: int = typer.Option(480, "--height"),
    motion_blur: int = typer.Option(1, "--motion-blur"),
) -> None:
    """Speed benchmark (not a test): render-only and render+effects+H.264 frames per second."""
    import json

    from ..synth.pairs import check_domains
    from ..synth.video import benchmark_fps

    res = benchmark_fps(check_domains(domain), frames, width, height, motion_blur)
    typer.echo(json.dumps(res, indent=1))
