"""A small CNN patch descriptor (HardNet family, sized for a 2-core CPU), trained by gimsfm.train.

Input: (N, 1, PS, PS) grey patches in [0, 1] at DoG keypoints (gimsfm.features.patches); output: (N, dim)
L2-normalised descriptors, matched by mutual nearest neighbour. Each patch is standardised (zero mean, unit
std) first, which makes the descriptor invariant to affine brightness changes, as in HardNet / L2-Net.

Training (`loss`): HardNet's hardest-in-batch triplet margin loss on a batch of B corresponding patch pairs
(a_i, p_i): for each pair the closest non-matching descriptor among the other 2B - 2 patches is the negative;
`exclude` (B, B) marks pairs whose patches may show the same 3D point (neighbouring keypoints of one image pair),
never used as negatives.
"""
from __future__ import annotations

import warnings
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import register_model


@register_model("patch_descriptor")
class PatchDescriptor(nn.Module):
    default_conf: dict[str, Any] = {
        "patch_size": 32,
        "channels": [16, 32, 64, 64],  # 3x3 conv blocks (BN + ReLU)
        "strides": [1, 2, 2, 1],
        "dim": 128,
        "dropout": 0.1,
        "margin": 1.0,
        "mr_size": 3.0,  # patch half-extent / SIFT size (extraction setting, kept with the weights)
        "ratio": 0.9,  # Lowe ratio of the mutual-NN matcher (inference setting, kept with the weights)
    }
    input_kind = "patches"
    inference_keys = ("ratio",)  # settable at export (`--set model.conf.ratio=R`): no effect on training

    def __init__(self, conf: dict[str, Any] | None = None):
        super().__init__()
        self.conf = c = {**self.default_conf, **(conf or {})}
        layers: list[nn.Module] = []
        cin, size = 1, int(c["patch_size"])
        for cout, stride in zip(c["channels"], c["strides"]):
            layers += [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout, affine=False), nn.ReLU()]
            cin, size = cout, (size + 2 - 3) // stride + 1
        layers += [nn.Dropout(float(c["dropout"])), nn.Conv2d(cin, int(c["dim"]), size, bias=False),
                   nn.BatchNorm2d(int(c["dim"]), affine=False)]
        self.net = nn.Sequential(*layers)
        self._frozen = None  # CPU inference graph (optimize_for_cpu); kept out of the module tree

    @staticmethod
    def standardise(patches: torch.Tensor) -> torch.Tensor:
        flat = patches.flatten(1)
        mean = flat.mean(1).view(-1, 1, 1, 1)
        std = flat.std(1).view(-1, 1, 1, 1)
        return (patches - mean) / (std + 1e-6)

    def describe(self, patches: torch.Tensor) -> torch.Tensor:
        """(N, 1, PS, PS) -> (N, dim), unit L2 norm."""
        if self._frozen is not None and not self.training and patches.device.type == "cpu":
            return F.normalize(self._frozen(self.standardise(patches)).flatten(1), dim=1)
        x = self.standardise(patches).contiguous(memory_format=torch.channels_last)
        return F.normalize(self.net(x).flatten(1), dim=1)

    def train(self, mode: bool = True) -> PatchDescriptor:
        if mode:  # weights may change: the frozen copy would go stale
            object.__setattr__(self, "_frozen", None)
        return super().train(mode)

    def optimize_for_cpu(self) -> bool:
        """Inference on CPU through a frozen TorchScript graph with BatchNorm folded into the convolutions and
        oneDNN kernels (`torch.jit.optimize_for_inference`): about 2.5x faster on 2 cores, same descriptors up to
        1e-6. Dropped by `.train()`. False (eager kept) if this build cannot do it."""
        self.eval()
        try:
            with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript: deprecated, not removed
                ps = int(self.conf["patch_size"])
                traced = torch.jit.trace(self.net, torch.zeros(2, 1, ps, ps), check_trace=False)
                frozen = torch.jit.optimize_for_inference(torch.jit.freeze(traced))
                probe = torch.rand(3, 1, ps, ps)
                if not torch.allclose(frozen(probe), self.net(probe), atol=1e-4):
                    return False
        except Exception:  # noqa: BLE001 - an optimisation only: a build without oneDNN / TorchScript keeps eager
            return False
        object.__setattr__(self, "_frozen", frozen)  # not a submodule: state_dict and .to() stay the eager net's
        return True

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"desc0": self.describe(batch["patches0"]), "desc1": self.describe(batch["patches1"])}

    def loss(self, batch: dict[str, torch.Tensor], out: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
        return hardest_triplet_loss(out["desc0"], out["desc1"], batch.get("exclude"), float(self.conf["margin"]))

    @torch.no_grad()
    def predict(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.forward(batch)


def hardest_triplet_loss(d0: torch.Tensor, d1: torch.Tensor, exclude: torch.Tensor | None = None,
                         margin: float = 1.0) -> tuple[torch.Tensor, dict[str, float]]:
    """HardNet loss (Mishchuk et al. 2017) on matching rows of d0, d1 (B, D); returns (loss, metrics)."""
    dist = torch.cdist(d0, d1).clamp(min=1e-6)  # (B, B) anchor i vs positive j
    pos = dist.diagonal()
    big = 10.0
    mask = torch.eye(len(d0), dtype=torch.bool, device=d0.device)
    if exclude is not None:
        mask = mask | exclude.bool()
    masked = dist.masked_fill(mask, big)
    neg = torch.minimum(masked.min(1).values, masked.min(0).values)
    # Within-image negatives too (a_i vs a_k, p_i vs p_k): distractors of the same image are what matching meets.
    d00 = torch.cdist(d0, d0).clamp(min=1e-6).masked_fill(mask, big)
    d11 = torch.cdist(d1, d1).clamp(min=1e-6).masked_fill(mask, big)
    neg = torch.minimum(neg, torch.minimum(d00.min(1).values, d11.min(1).values))
    loss = F.relu(margin + pos - neg).mean()
    with torch.no_grad():
        nn_ok = (masked.min(1).values > pos).float().mean()  # the positive is the nearest of the other image
    return loss, {"loss": float(loss.detach()), "pos": float(pos.detach().mean()), "neg": float(neg.detach().mean()), "nn_acc": float(nn_ok)}
