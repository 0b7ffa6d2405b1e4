"""`gim-dkm`: DKMv3 running the GIM authors' released checkpoint (`gim_dkm_100h.ckpt`, brought by the user:
`--matcher gim-dkm:PATH` or found in the weights folder).

Preprocessing as GIM's demo: RGB in [0, 1] without normalisation, centre-padded with black to 4:3
(landscape), then a coarse pass at 672x896 and a fine pass at 1152x1536 (`resize` = the fine pass's long side;
the coarse pass runs at 7/12 of it). Matches are drawn from the dense warp with DKM's balanced sampling
(`num_samples`, `sample_threshold`), reproducibly: the generator is re-seeded with `seed` for every pair.
Scores are DKM's certainty in [0, 1] (0 on dark padding and where the flow leaves the image).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError
from ..models.dkm import DKMv3, sample_matches
from .base import PairMatches
from .dense import DenseMatcher
from .gim_loftr import file_sha1
from .registry import register
from .release import load_release_state_dict, registration, resolve_release_weights, strip_prefix

NAME = "gim-dkm"
COARSE_FRACTION = 896 / 1536  # GIM: coarse pass 672x896, fine pass 1152x1536


def pad_to_4_3(x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
    """(1, 3, h, w) -> centre-padded with zeros to at least 4:3 (w:h), and the (left, top) padding, as GIM's
    demo: new_w = max(w, int(h * 4 / 3)), new_h = max(h, int(w * 3 / 4))."""
    h, w = x.shape[-2:]
    nw, nh = max(w, int(h * 4 / 3)), max(h, int(w * 3 / 4))
    left, top = (nw - w) // 2, (nh - h) // 2
    return F.pad(x, (left, nw - w - left, top, nh - h - top)), (left, top)


def size_4_3(long_side: int, multiple: int = 32) -> tuple[int, int]:
    """(H, W) of a 4:3 image with long side W, both rounded to `multiple` (at least one)."""
    w = max(multiple, int(round(long_side / multiple)) * multiple)
    h = max(multiple, int(round(long_side * 3 / 4 / multiple)) * multiple)
    return h, w


@register(NAME, "DKMv3 (dense) with GIM's released weights gim_dkm_100h.ckpt (user-supplied file)",
          **registration(NAME))
class GimDKMMatcher(DenseMatcher):
    default_conf: dict[str, Any] = {
        **DenseMatcher.default_conf,
        # Long side of the fine pass (GIM: 1536, coarse pass at 7/12 of it). 768 = bounded-memory mode.
        "resize": 1536,
        "upsample": True,  # the fine pass; False = the coarse pass only (at resize * 7/12)
        "num_samples": 5000,  # matches drawn from the dense warp per pair (GIM's demo: 5000)
        "sample_threshold": 0.05,  # certainty counted as 1 by the balanced sampling
        "seed": 0,  # sampling seed (re-applied for every pair)
        # True: the image-1 -> image-0 direction reuses image 0's stride-16 GP inverse, as the reference does
        # (gimsfm.models.dkm.GaussianProcess); False: each direction is solved with its own kernel.
        "reference_gp_quirk": True,
    }

    def __init__(self, conf: dict[str, Any] | None = None, device: str = "auto"):
        super().__init__(conf, device)
        if int(self.conf["num_samples"] or 0) <= 0:
            raise InputError(f"{NAME}: num_samples must be > 0 (matches are drawn from a dense warp of "
                             f"millions of cells)")
        if int(self.conf["resize"] or 0) < 64:
            raise InputError(f"{NAME}: resize must be >= 64 (long side of the fine pass), got {self.conf['resize']}")
        path = resolve_release_weights(NAME, self.conf["weights"])
        state = strip_prefix(load_release_state_dict(path, NAME), "model.")
        # The checkpoint's content is part of the configuration (benchmark caches are keyed by it).
        self.conf["weights"], self.conf["weights_sha1"] = str(path), file_sha1(path)
        fine = size_4_3(int(self.conf["resize"]))
        coarse = size_4_3(int(round(int(self.conf["resize"]) * COARSE_FRACTION)))
        self.model = DKMv3({"coarse_size": coarse, "upsample_size": fine if self.conf["upsample"] else None,
                            "reference_gp_quirk": bool(self.conf["reference_gp_quirk"])})
        self.model.load_state_dict(state, strict=True)
        self.model.eval().to(self.torch_device)

    def dense_warp(self, image0: np.ndarray, image1: np.ndarray, record: dict[str, torch.Tensor] | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor, list[tuple[int, int]], list[tuple[int, int]]]:
        """The model's dense output for two uint8 images: warp (H, 2W, 4) and certainty (H, 2W) over the padded
        images (see DKMv3.warp), with each image's (left, top) padding and padded (h, w)."""
        padded, pads = zip(*(pad_to_4_3(self.to_tensor(im)[0]) for im in (image0, image1)))
        warp, certainty = self.model.warp(padded[0], padded[1], record=record)
        return warp, certainty, list(pads), [tuple(p.shape[-2:]) for p in padded]

    def match_pair(self, image0: np.ndarray, image1: np.ndarray) -> PairMatches:
        warp, certainty, pads, sizes = self.dense_warp(image0, image1)
        gen = torch.Generator(device=warp.device).manual_seed(int(self.conf["seed"]))
        matches, scores = sample_matches(warp, certainty, int(self.conf["num_samples"]),
                                         float(self.conf["sample_threshold"]), generator=gen)
        matches = matches.double().cpu().numpy()
        kpts, inside = [], np.ones(len(matches), bool)
        for i, (image, (left, top), (hp, wp)) in enumerate(zip((image0, image1), pads, sizes)):
            uv = matches[:, 2 * i:2 * i + 2]
            # normalised [-1, 1] over the padded image -> OpenCV pixel centres of the original image
            xy = np.stack((wp * (uv[:, 0] + 1) / 2 - 0.5 - left, hp * (uv[:, 1] + 1) / 2 - 0.5 - top), axis=1)
            h, w = image.shape[:2]
            inside &= (xy[:, 0] >= -0.5) & (xy[:, 0] < w - 0.5) & (xy[:, 1] >= -0.5) & (xy[:, 1] < h - 0.5)
            kpts.append(xy.astype(np.float32))
        return PairMatches(kpts[0][inside], kpts[1][inside], scores.float().cpu().numpy()[inside])
