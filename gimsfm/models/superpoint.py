"""SuperPoint (DeTone et al., 2018) as GIM's LightGlue release configures it: keypoints, scores and descriptors
of a grey image.

Written from the architecture description of the parity fixtures (no third-party code): a VGG-style encoder at
1/8 resolution, a detector head whose 65-way softmax (64 pixel positions of an 8x8 cell + "no keypoint") is
rearranged into a full-resolution score map, non-maximum suppression, border removal and top-k, and a
descriptor head sampled bilinearly at the keypoints. Module names equal the release checkpoint's
`superpoint.*` keys without the prefix (conv1a ... convDb), so its state dict loads strictly.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F


def simple_nms(scores: torch.Tensor, radius: int) -> torch.Tensor:
    """Keeps the scores of local maxima within a (2r+1)^2 window (clipped at the image edge), 0 elsewhere.

    Two extra rounds recover maxima that were suppressed only by a pixel which is itself suppressed.
    scores: (B, H, W).
    """
    def window_max(x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(x, kernel_size=2 * radius + 1, stride=1, padding=radius)

    zeros = torch.zeros_like(scores)
    is_max = scores == window_max(scores)
    for _ in range(2):
        suppressed = window_max(is_max.float()) > 0
        rest = torch.where(suppressed, zeros, scores)
        is_max = is_max | ((rest == window_max(rest)) & ~suppressed)
    return torch.where(is_max, scores, zeros)


def sample_descriptors_legacy(keypoints: torch.Tensor, descriptors: torch.Tensor, stride: int = 8) -> torch.Tensor:
    """Bilinear descriptors at integer pixel keypoints (N, 2) = (x, y) of a (C, h, w) map at 1/stride, with the
    original SuperPoint's coordinate mapping (GIM's `legacy_sampling`); returns (N, C), L2-normalised."""
    c, h, w = descriptors.shape
    size = keypoints.new_tensor([w * stride - stride / 2 - 0.5, h * stride - stride / 2 - 0.5])
    grid = 2 * (keypoints - stride / 2 + 0.5) / size - 1
    out = F.grid_sample(descriptors[None], grid.view(1, 1, -1, 2).to(descriptors.dtype), mode="bilinear",
                        align_corners=True)
    return F.normalize(out.view(c, -1), p=2, dim=0).t()


class SuperPoint(nn.Module):
    default_conf: dict[str, Any] = {
        "descriptor_dim": 256,
        "nms_radius": 3,
        "max_keypoints": 2048,
        "detection_threshold": 0.0,  # candidates: score > this after NMS
        "remove_borders": 4,  # pixels
    }

    def __init__(self, conf: dict[str, Any] | None = None):
        super().__init__()
        self.conf = {**self.default_conf, **(conf or {})}
        widths = [(1, 64), (64, 64), (64, 64), (64, 64), (64, 128), (128, 128), (128, 128), (128, 128)]
        names = ["conv1a", "conv1b", "conv2a", "conv2b", "conv3a", "conv3b", "conv4a", "conv4b"]
        for name, (cin, cout) in zip(names, widths):
            setattr(self, name, nn.Conv2d(cin, cout, 3, padding=1))
        self.encoder_names = names
        self.convPa = nn.Conv2d(128, 256, 3, padding=1)
        self.convPb = nn.Conv2d(256, 65, 1)
        self.convDa = nn.Conv2d(128, 256, 3, padding=1)
        self.convDb = nn.Conv2d(256, self.conf["descriptor_dim"], 1)

    def dense(self, image: torch.Tensor, taps: dict[str, torch.Tensor] | None = None
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """image (B, 1, H, W) in [0, 1], H and W multiples of 8 -> (scores (B, H, W) before NMS, descriptors
        (B, D, H/8, W/8) L2-normalised). `taps`, if given, receives the pre-ReLU conv outputs by name."""
        x = image
        for i, name in enumerate(self.encoder_names):
            x = getattr(self, name)(x)
            if taps is not None:
                taps[name] = x
            x = F.relu(x)
            if i in (1, 3, 5):  # after conv1b, conv2b, conv3b
                x = F.max_pool2d(x, 2, 2)
        logits = self.convPb(F.relu(self.convPa(x)))
        desc = self.convDb(F.relu(self.convDa(x)))
        if taps is not None:
            taps["convPb"], taps["convDb"] = logits, desc
        prob = torch.softmax(logits, 1)[:, :-1]
        scores = F.pixel_shuffle(prob, 8)[:, 0]  # channel c of a cell -> pixel (c // 8, c % 8) in it
        return scores, F.normalize(desc, p=2, dim=1)

    def forward(self, image: torch.Tensor, taps: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """One image (1, 1, H, W) in [0, 1] -> keypoints (N, 2) integer pixel (x, y) as float, scores (N,),
        descriptors (N, D); the N <= max_keypoints best, by descending score."""
        c = self.conf
        scores, desc = self.dense(image, taps)
        nms = simple_nms(scores, c["nms_radius"])
        if taps is not None:
            taps["scores_dense"], taps["scores_nms"] = scores, nms
        b = c["remove_borders"]
        if b:
            nms = nms.clone()
            nms[:, :b], nms[:, -b:], nms[:, :, :b], nms[:, :, -b:] = -1, -1, -1, -1
        s = nms[0]
        ys, xs = torch.nonzero(s > c["detection_threshold"], as_tuple=True)
        cand = s[ys, xs]
        k = c["max_keypoints"]
        if k is not None and 0 <= k < len(cand):
            cand, order = torch.topk(cand, k)
        else:
            cand, order = torch.sort(cand, descending=True)
        kpts = torch.stack([xs[order], ys[order]], -1).to(image.dtype)
        return {"keypoints": kpts, "scores": cand, "descriptors": sample_descriptors_legacy(kpts, desc[0])}
