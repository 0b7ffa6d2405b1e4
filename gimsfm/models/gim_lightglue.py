"""GIM's released LightGlue (9 layers, 4 heads, dim 256, on SuperPoint descriptors) on kornia's modules.

The release checkpoint's `model.*` entries, prefix stripped, are exactly the state dict of
`kornia.feature.LightGlue(features=None)` with this configuration, except the buffer `confidence_thresholds`,
which kornia derives from the layer count (taken from the module itself). The forward below walks kornia's
submodules (positional encoding, transformer layers, last assignment head) rather than calling kornia's
forward, for two reasons: GIM runs every layer on every point (no early stopping or pruning), and its matcher
centres keypoints with the image size swapped, (H, W) for (W, H), which puts normalised coordinates outside
[-1, 1], a range kornia's forward refuses. The swap only moves all keypoints of an image by the same offset,
and the rotary encoding sees only differences of positions, so it changes nothing after the encoding (to
rounding); it is kept so the encoding itself matches the reference.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
from kornia.feature.lightglue import LightGlue, filter_matches


class GimLightGlueNet(nn.Module):
    default_conf: dict[str, Any] = {
        "descriptor_dim": 256,
        "n_layers": 9,
        "num_heads": 4,
        "filter_threshold": 0.1,
    }

    def __init__(self, conf: dict[str, Any] | None = None):
        super().__init__()
        self.conf = c = {**self.default_conf, **(conf or {})}
        # flash=True keeps PyTorch's fused CPU attention enabled (kornia's flash=False switches it off process
        # wide); the half-precision FlashAttention path on CUDA is turned off below, so CPU and GPU compute the
        # same float32 attention.
        self.net = LightGlue(features=None, input_dim=c["descriptor_dim"], descriptor_dim=c["descriptor_dim"],
                             n_layers=c["n_layers"], num_heads=c["num_heads"], flash=True, mp=False,
                             depth_confidence=-1, width_confidence=-1, filter_threshold=c["filter_threshold"])
        for layer in self.net.transformers:
            layer.self_attn.inner_attn.allow_flash = False
            layer.cross_attn.flash = None
        self.net.eval()

    def load_release(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Loads the release's `model.*` entries (prefix stripped), strictly except the derived buffer."""
        sd = dict(state_dict)
        sd["confidence_thresholds"] = self.net.confidence_thresholds
        self.net.load_state_dict(sd, strict=True)

    @staticmethod
    def normalise(kpts: torch.Tensor, size_wh: torch.Tensor) -> torch.Tensor:
        """GIM's keypoint normalisation: centred by (H/2, W/2) (sic, swapped), scaled by max(W, H)/2."""
        swapped = size_wh.flip(-1).to(kpts)
        return (kpts - swapped / 2) / (size_wh.max().to(kpts) / 2)

    def forward(self, kpts0: torch.Tensor, desc0: torch.Tensor, size0: torch.Tensor, kpts1: torch.Tensor,
                desc1: torch.Tensor, size1: torch.Tensor, taps: dict[str, Any] | None = None
                ) -> dict[str, torch.Tensor]:
        """kpts (B, N, 2) pixels (x, y), desc (B, N, 256), size (2,) = (W, H) of each image -> log_assignment
        (B, M+1, N+1), matches0/1 (-1 = none) and matching_scores0/1."""
        net = self.net
        enc0 = net.posenc(self.normalise(kpts0, size0))
        enc1 = net.posenc(self.normalise(kpts1, size1))
        if taps is not None:
            taps["posenc0"], taps["posenc1"] = enc0, enc1
        d0, d1 = desc0.contiguous(), desc1.contiguous()
        for i, layer in enumerate(net.transformers):
            d0, d1 = layer(d0, d1, enc0, enc1)
            if taps is not None:
                taps[f"layer{i}"] = (d0, d1)
        scores, _ = net.log_assignment[-1](d0, d1)
        m0, m1, s0, s1 = filter_matches(scores, self.conf["filter_threshold"])
        return {"log_assignment": scores, "matches0": m0, "matches1": m1, "matching_scores0": s0,
                "matching_scores1": s1}
