"""LoFTR with GIM's ResNet-50 FPN backbone (the network of the released `gim_loftr_50h.ckpt`), inference only.

Written from the architecture description (LoFTR paper, GIM's configuration); parameter names follow the
release checkpoint with its `model.` prefix stripped, so the file loads strictly:

- `backbone.encode.*`: a ResNet-50 trunk without max-pool, layer4 and fc (torchvision's names: `conv1`, `bn1`,
  `layerK.B.{conv1..3,bn1..3,downsample.0/1}`); strides 2 (stem), 1, 2, 2 -> layer1 at 1/2, layer2 1/4,
  layer3 1/8.
- `backbone.layer{1,2,3}_outconv`, `backbone.layer{1,2}_outconv2.{0,1,3}`: the FPN (1x1 lateral convs, 3x3
  conv + BN + LeakyReLU + 3x3 conv after adding the 2x bilinearly upsampled coarser level).
- `loftr_coarse.layers.N.*` / `loftr_fine.layers.N.*`: kornia's `LocalFeatureTransformer` (linear attention,
  alternating self/cross layers), whose parameter names are exactly LoFTR's.

The parameter-free stages (sine positional encoding in LoFTR's original variant, dual-softmax coarse matching
with mutual-max and border filtering, 5x5 fine windows, expectation-based fine matching) are implemented here.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from kornia.feature.loftr.loftr_module.transformer import LocalFeatureTransformer

from .resnet import Bottleneck

DEFAULT_CONF: dict[str, Any] = {
    "coarse": {"d_model": 256, "nhead": 8, "layers": 4},  # 4 x (self, cross)
    "fine": {"d_model": 128, "nhead": 8, "layers": 1},
    "thr": 0.2,  # coarse confidence threshold
    "border_rm": 2,  # cells ignored at every border
    "temperature": 0.1,  # dual-softmax
    "fine_window": 5,
}


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=1e-5)


class ResNet50Trunk(nn.Module):
    """Stem (7x7/2) + layer1..3 of ResNet-50, no max-pool: outputs at 1/2, 1/4, 1/8."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = _bn(64)
        cin = 64
        for i, (width, blocks, stride) in enumerate([(64, 3, 1), (128, 4, 2), (256, 6, 2)], start=1):
            layers = []
            for b in range(blocks):
                layers.append(Bottleneck(cin, width, stride if b == 0 else 1))
                cin = 4 * width
            setattr(self, f"layer{i}", nn.Sequential(*layers))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = F.relu(self.bn1(self.conv1(x)))
        x1 = self.layer1(x)
        x2 = self.layer2(x1)
        return x1, x2, self.layer3(x2)


def _refine(cin: int, cout: int) -> nn.Sequential:
    # indices 0, 1, 3 carry the checkpoint's parameters (2 is the activation)
    return nn.Sequential(nn.Conv2d(cin, cin, 3, 1, 1, bias=False), _bn(cin), nn.LeakyReLU(0.01),
                         nn.Conv2d(cin, cout, 3, 1, 1, bias=False))


class ResNetFPN82(nn.Module):
    """ResNet-50 trunk + FPN: coarse 256-d features at 1/8 and fine 128-d features at 1/2."""

    def __init__(self):
        super().__init__()
        self.encode = ResNet50Trunk()
        self.layer3_outconv = nn.Conv2d(1024, 256, 1, bias=False)
        self.layer2_outconv = nn.Conv2d(512, 256, 1, bias=False)
        self.layer2_outconv2 = _refine(256, 196)
        self.layer1_outconv = nn.Conv2d(256, 196, 1, bias=False)
        self.layer1_outconv2 = _refine(196, 128)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x1, x2, x3 = self.encode(x)
        c = self.layer3_outconv(x3)
        up = F.interpolate(c, scale_factor=2.0, mode="bilinear", align_corners=True)
        m = self.layer2_outconv2(self.layer2_outconv(x2) + up)
        up = F.interpolate(m, scale_factor=2.0, mode="bilinear", align_corners=True)
        f = self.layer1_outconv2(self.layer1_outconv(x1) + up)
        return {"layer1": x1, "layer2": x2, "layer3": x3, "coarse": c, "fine": f}


def sine_position_encoding(d_model: int, h: int, w: int, device: torch.device) -> torch.Tensor:
    """(1, d_model, h, w) LoFTR's original ("temp bug") variant: frequency exp(-2k), k = 0..d/4-1, because the
    reference computes the exponent factor as (-ln(1e4) / d) // 2 = -1. Channels 4k..4k+3 hold sin(x f_k),
    cos(x f_k), sin(y f_k), cos(y f_k) with x, y the 1-based cell indices."""
    k2 = torch.arange(0, d_model // 2, 2, device=device).float()
    freq = torch.exp(k2 * -1.0)[:, None, None]
    y = torch.ones(h, w, device=device).cumsum(0)[None]
    x = torch.ones(h, w, device=device).cumsum(1)[None]
    pe = torch.zeros(d_model, h, w, device=device)
    pe[0::4], pe[1::4] = torch.sin(x * freq), torch.cos(x * freq)
    pe[2::4], pe[3::4] = torch.sin(y * freq), torch.cos(y * freq)
    return pe[None]


def dual_softmax_confidence(f0: torch.Tensor, f1: torch.Tensor, temperature: float) -> torch.Tensor:
    """(L, S) softmax over rows x softmax over columns of the scaled similarity of (L, C) and (S, C) tokens."""
    scale = f0.shape[-1] ** -0.5
    sim = (f0 * scale) @ (f1 * scale).t() / temperature
    conf = F.softmax(sim, 0)
    conf.mul_(F.softmax(sim, 1))
    return conf


def _inner_cells(h: int, w: int, border: int, device: torch.device) -> torch.Tensor:
    r = torch.arange(h, device=device)[:, None]
    c = torch.arange(w, device=device)[None]
    return ((r >= border) & (r < h - border) & (c >= border) & (c < w - border)).reshape(-1)


def coarse_matches(conf: torch.Tensor, hw0: tuple[int, int], hw1: tuple[int, int], thr: float,
                   border: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mutual maxima of `conf` above `thr` with both cells at least `border` cells inside their grids;
    returns (i_ids, j_ids, mconf)."""
    rowmax, j_all = conf.max(1)
    colmax = conf.max(0).values
    ok = (rowmax > thr) & (colmax[j_all] == rowmax) & _inner_cells(*hw0, border, conf.device)
    ok &= _inner_cells(*hw1, border, conf.device)[j_all]
    i_ids = torch.nonzero(ok).squeeze(1)
    return i_ids, j_all[i_ids], rowmax[i_ids]


def fine_windows(feat: torch.Tensor, cells: torch.Tensor, w_c: int, stride: int, win: int) -> torch.Tensor:
    """(M, win*win, C) windows of the (1, C, H, W) fine map centred on coarse cells (`stride` fine pixels
    per cell, zero padding), row-major inside the window: what LoFTR's unfold with stride and padding win//2
    gives at those cells."""
    p = win // 2
    fp = F.pad(feat[0], (p, p, p, p))
    r = (cells // w_c) * stride
    c = (cells % w_c) * stride
    off = torch.arange(win, device=feat.device)
    rows = (r[:, None] + off[None])[:, :, None]
    cols = (c[:, None] + off[None])[:, None, :]
    return fp[:, rows, cols].permute(1, 2, 3, 0).reshape(len(cells), win * win, feat.shape[1])


def fine_expectation(w0: torch.Tensor, w1: torch.Tensor) -> torch.Tensor:
    """(M, 3): expected (x, y) in [-1, 1] of the window-0 centre in window 1, and the summed std."""
    m, ww, c = w1.shape
    win = int(round(ww ** 0.5))
    sim = torch.einsum("mc,mrc->mr", w0[:, ww // 2], w1)
    heat = F.softmax(sim * c ** -0.5, dim=1)
    g = torch.linspace(-1, 1, win, device=w1.device, dtype=w1.dtype)
    gx, gy = g[None].expand(win, win).reshape(-1), g[:, None].expand(win, win).reshape(-1)
    ex, ey = heat @ gx, heat @ gy
    var = torch.stack([heat @ gx ** 2 - ex ** 2, heat @ gy ** 2 - ey ** 2], -1)
    std = var.clamp(min=1e-10).sqrt().sum(-1)
    return torch.stack([ex, ey, std], -1)


class GimLoFTR(nn.Module):
    """LoFTR (coarse 1/8, fine 1/2) with the ResNet-50 FPN backbone. Inputs: RGB in [0, 1], (1, 3, H, W)
    with H, W multiples of 8, one image per call of the backbone (sizes may differ)."""

    def __init__(self, conf: dict[str, Any] | None = None):
        super().__init__()
        self.conf = {**DEFAULT_CONF, **(conf or {})}
        self.backbone = ResNetFPN82()
        for name in ("coarse", "fine"):
            c = self.conf[name]
            setattr(self, f"loftr_{name}", LocalFeatureTransformer(
                {"d_model": c["d_model"], "nhead": c["nhead"], "layer_names": ["self", "cross"] * c["layers"],
                 "attention": "linear"}))

    def coarse(self, feat0: torch.Tensor, feat1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(1, C, h, w) backbone coarse maps -> ((h0 w0, C), (h1 w1, C)) transformer tokens."""
        d = feat0.shape[1]
        t = [(f + sine_position_encoding(d, *f.shape[-2:], f.device)).flatten(2).transpose(1, 2)
             for f in (feat0, feat1)]
        t0, t1 = self.loftr_coarse(t[0], t[1])
        return t0[0], t1[0]

    @torch.inference_mode()
    def forward(self, image0: torch.Tensor, image1: torch.Tensor, thr: float | None = None,
                keep: bool = False) -> dict[str, torch.Tensor]:
        """Matches in pixels of the inputs: mkpts0_f, mkpts1_f (M, 2), mconf (M,). `keep` adds the
        intermediate tensors (backbone levels, tokens, conf matrix, coarse matches, fine windows)."""
        thr = self.conf["thr"] if thr is None else thr
        b0, b1 = self.backbone(image0), self.backbone(image1)
        hw0, hw1 = tuple(b0["coarse"].shape[-2:]), tuple(b1["coarse"].shape[-2:])
        t0, t1 = self.coarse(b0["coarse"], b1["coarse"])
        conf = dual_softmax_confidence(t0, t1, self.conf["temperature"])
        i_ids, j_ids, mconf = coarse_matches(conf, hw0, hw1, thr, self.conf["border_rm"])
        out: dict[str, Any] = {}
        if keep:
            out.update({f"{k}{s}": v for s, b in (("0", b0), ("1", b1)) for k, v in b.items()})
            out.update(tokens0=t0, tokens1=t1, conf=conf)
        del conf
        # the coarse-to-pixel factor of image 0 serves both images (as in LoFTR)
        scale_c = image0.shape[-2] / hw0[0]
        mk0 = torch.stack([i_ids % hw0[1], i_ids // hw0[1]], 1).float() * scale_c
        mk1 = torch.stack([j_ids % hw1[1], j_ids // hw1[1]], 1).float() * scale_c
        win = self.conf["fine_window"]
        f0, f1 = b0["fine"], b1["fine"]
        stride_f = f0.shape[-2] // hw0[0]
        w0 = fine_windows(f0, i_ids, hw0[1], stride_f, win)
        w1 = fine_windows(f1, j_ids, hw1[1], stride_f, win)
        if len(i_ids):
            w0, w1 = self.loftr_fine(w0, w1)
        expec = fine_expectation(w0, w1) if len(i_ids) else mk0.new_zeros((0, 3))
        scale_f = image0.shape[-2] / f0.shape[-2]
        out.update(i_ids=i_ids, j_ids=j_ids, mkpts0_c=mk0, mkpts1_c=mk1, mconf=mconf, expec_f=expec,
                   mkpts0_f=mk0, mkpts1_f=mk1 + expec[:, :2] * (win // 2) * scale_f)
        if keep:
            out.update(fine_win0=w0, fine_win1=w1)
        return out
