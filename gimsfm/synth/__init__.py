"""Synthetic worlds and an internet-video simulator (issue 4): procedural domains rendered headless with
moderngl/EGL, footage-like cameras, H.264 video with separate ground truth, ZEB-format pose pairs with depth,
and COLMAP-format scenes. Entry points: ``pairs.generate_pairs``, ``video.generate_video``,
``scene.generate_scene``, ``suites.ensure_zeb_lite_synth``; CLI ``gimsfm synth``."""
from .world import DOMAINS, build_world  # noqa: F401
