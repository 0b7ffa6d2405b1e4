"""DKMv3 (Edstedt et al., "DKM: Dense Kernelized Feature Matching", CVPR 2023) as GIM configured it.

Written for gimsfm from the paper and the architecture facts of the GIM reference fixtures; the module and
parameter names follow the released `gim_dkm_100h.ckpt` (prefix `model.` stripped), so that file loads
strictly. Pipeline of one image pair (both directions at once, "symmetric"):

1. ResNet-50 features at strides 1 (the image), 2, 4, 8, 16 and 32;
2. at strides 32 and 16 a Gaussian process (cosine kernel) regresses, for every query cell, an embedding
   of where it lands in the other image, and a small decoder (`CoordinateDecoder`) turns it into an absolute
   flow plus a certainty logit;
3. depthwise-convolution refiners at strides 16, 8, 4, 2, 1 add displacements and certainty updates, fed
   with both images' features, the displacement so far and a local correlation around the flow target;
4. a second pass at a higher resolution (`upsample_size`) reruns the refiners 8..1 from the first pass's
   flow.

The output is a dense warp: for every pixel of either image its normalised coordinate in the other
image, and a certainty in [0, 1]. `sample_matches` draws a spatially balanced set of correspondences.
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from .resnet import Bottleneck

Pyramid = dict[int, torch.Tensor]


# ----------------------------------------------------------------------------------------------- encoder
class ResNet50(nn.Module):
    """ResNet-50 trunk (no classifier), with the parameter names of torchvision's model."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = 64
        for i, (width, blocks, stride) in enumerate([(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)]):
            layer = [Bottleneck(cin, width, stride)] + [Bottleneck(4 * width, width) for _ in range(blocks - 1)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*layer))
            cin = 4 * width


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = ResNet50()

    def forward(self, x: torch.Tensor, max_stride: int = 32) -> Pyramid:
        """Features by stride: 1 (the input), 2 (stem, before max-pool), 4, 8, 16, 32 (up to max_stride)."""
        net = self.net
        feats = {1: x}
        x = net.relu(net.bn1(net.conv1(x)))
        feats[2] = x
        x = net.maxpool(x)
        for stride, layer in ((4, net.layer1), (8, net.layer2), (16, net.layer3), (32, net.layer4)):
            if stride > max_stride:
                break
            x = layer(x)
            feats[stride] = x
        return feats


# ------------------------------------------------------------------------------------ coarse: GP + decoder
def cell_centres(b: int, h: int, w: int, device: torch.device) -> torch.Tensor:
    """(b, 2, h, w) normalised (x, y) of the cell centres of an h x w grid: -1 + (2i + 1) / n."""
    ys = torch.linspace(-1 + 1 / h, 1 - 1 / h, h, device=device)
    xs = torch.linspace(-1 + 1 / w, 1 - 1 / w, w, device=device)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack((gx, gy))[None].expand(b, 2, h, w)


class GaussianProcess(nn.Module):
    """GP regression of a Fourier embedding of the support grid's coordinates onto the query cells, with a
    cosine kernel exp((cos - 1) / T) and observation noise `noise` (posterior mean only, no covariance)."""

    def __init__(self, dim: int = 256, temperature: float = 0.2, noise: float = 0.1):
        super().__init__()
        self.pos_conv = nn.Conv2d(2, dim, 1, 1)
        self.temperature = temperature
        self.noise = noise
        # The reference (DKM, as GIM runs it) inverts kernels of more than 2000 cells one batch item at a time
        # but slices its (1, N, N) noise term with the item index: items >= 1 get an empty matrix, so every
        # item is solved with item 0's inverse. In symmetric matching at 672x896 this hits the stride-16 GP of
        # the image-1 -> image-0 direction. True reproduces it (what GIM's published results ran), False
        # solves each item with its own kernel.
        self.reference_quirk = True

    def kernel(self, x: torch.Tensor, y: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
        cos = torch.einsum("bnd,bmd->bnm", x, y) / (x.norm(dim=-1)[..., None] * y.norm(dim=-1)[:, None] + eps)
        return ((cos - 1.0) / self.temperature).exp()

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        b, _, h1, w1 = x.shape
        _, _, h2, w2 = y.shape
        f = torch.cos(8 * math.pi * self.pos_conv(cell_centres(b, h2, w2, y.device)))
        x, y, f = (t.flatten(2).transpose(1, 2) for t in (x, y, f))
        k_yy = self.kernel(y, y) + self.noise * torch.eye(h2 * w2, device=x.device)[None]
        # One matrix at a time: a batched CPU inverse of these ill-conditioned kernels can hang in oneMKL
        # (see ENVIRONMENT.md); the explicit inverse keeps the reference's arithmetic for parity.
        n_inv = 1 if self.reference_quirk and h2 * w2 > 2000 else b
        k_inv = torch.cat([torch.linalg.inv(k_yy[i:i + 1]) for i in range(n_inv)])
        mu = self.kernel(x, y).matmul(k_inv.matmul(f))
        return mu.transpose(1, 2).reshape(b, -1, h1, w1)


class RRB(nn.Module):
    """Refinement residual block: 1x1 projection, then x + conv3(relu(bn(conv2(x)))), ReLU."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 1)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1)
        self.bn = nn.BatchNorm2d(cout)
        self.conv3 = nn.Conv2d(cout, cout, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        return F.relu(x + self.conv3(F.relu(self.bn(self.conv2(x)))))


class CAB(nn.Module):
    """Channel attention block: the new features, gated by a global descriptor of [old, new], added to old."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 1)
        self.conv2 = nn.Conv2d(cout, cout, 1)

    def forward(self, old: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
        g = torch.cat([old, new], dim=1).mean(dim=(2, 3), keepdim=True)
        g = torch.sigmoid(self.conv2(F.relu(self.conv1(g))))
        return old + g * new


class CoordinateDecoder(nn.Module):
    """DKM's "DFN": GP embedding + query features -> absolute flow (2) and certainty logit (1) per cell,
    carrying a context map from the coarser scale."""

    def __init__(self, scales: tuple[str, ...] = ("32", "16"), feat_dim: int = 256, gp_dim: int = 256,
                 internal_dim: int = 384):
        super().__init__()
        self.internal_dim = internal_dim
        self.feat_input_modules = nn.ModuleDict({s: nn.Conv2d(512, feat_dim, 1, 1) for s in scales})
        self.rrb_d = nn.ModuleDict({s: RRB(gp_dim + feat_dim, internal_dim) for s in scales})
        self.cab = nn.ModuleDict({s: CAB(2 * internal_dim, internal_dim) for s in scales})
        self.rrb_u = nn.ModuleDict({s: RRB(internal_dim, internal_dim) for s in scales})
        self.terminal_module = nn.ModuleDict({s: nn.Conv2d(internal_dim, 3, 1, 1, 0) for s in scales})

    def forward(self, gp_emb: torch.Tensor, feats: torch.Tensor, context: torch.Tensor, scale: str
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = torch.cat([self.feat_input_modules[scale](feats), gp_emb], dim=1)
        context = self.rrb_u[scale](self.cab[scale](context, self.rrb_d[scale](x)))
        out = self.terminal_module[scale](context)
        return out[:, -2:], out[:, :-2], context


# ---------------------------------------------------------------------------------------------- refiners
def local_correlation(x: torch.Tensor, y: torch.Tensor, flow: torch.Tensor, radius: int) -> torch.Tensor:
    """(b, (2r+1)^2, h, w): x . y sampled at the flow target plus each offset of a (2r+1)^2 window of
    one-cell steps, / sqrt(c). Offsets are ordered row-major (dy outer, dx inner).

    One offset at a time: sampling all windows at once needs c*h*w*(2r+1)^2 floats (5.6 GB at stride 4 of
    the 1152x1536 pass)."""
    b, c, h, w = x.shape
    target = flow.permute(0, 2, 3, 1)
    dys = torch.linspace(-2 * radius / h, 2 * radius / h, 2 * radius + 1, device=x.device)
    dxs = torch.linspace(-2 * radius / w, 2 * radius / w, 2 * radius + 1, device=x.device)
    out = x.new_empty(b, len(dys) * len(dxs), h, w)
    k = 0
    for dy in dys:
        for dx in dxs:
            offset = torch.stack((dx, dy))
            sampled = F.grid_sample(y, target + offset, padding_mode="zeros", align_corners=False)
            out[:, k] = (x * sampled).sum(dim=1)
            k += 1
    return out / c ** 0.5


class ConvRefiner(nn.Module):
    """Predicts a displacement (in units of 1/4 of the scale's cell) and a certainty update from
    [query features, warped support features, embedded displacement so far, local correlation]."""

    def __init__(self, in_dim: int, hidden_dim: int, disp_dim: int, corr_radius: int = 0,
                 hidden_blocks: int = 8, kernel_size: int = 5):
        super().__init__()
        self.block1 = self._block(in_dim, hidden_dim, kernel_size)
        self.hidden_blocks = nn.Sequential(*[self._block(hidden_dim, hidden_dim, kernel_size)
                                             for _ in range(hidden_blocks)])
        self.out_conv = nn.Conv2d(hidden_dim, 3, 1, 1, 0)
        self.disp_emb = nn.Conv2d(2, disp_dim, 1, 1, 0)
        self.corr_radius = corr_radius

    @staticmethod
    def _block(cin: int, cout: int, kernel_size: int) -> nn.Sequential:
        # depthwise k x k (groups = cin, cout a multiple of cin), BN, ReLU, pointwise 1x1
        return nn.Sequential(nn.Conv2d(cin, cout, kernel_size, 1, kernel_size // 2, groups=cin),
                             nn.BatchNorm2d(cout), nn.ReLU(inplace=True), nn.Conv2d(cout, cout, 1, 1, 0))

    def forward(self, x: torch.Tensor, y: torch.Tensor, flow: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        b, _, h, w = x.shape
        warped = F.grid_sample(y, flow.permute(0, 2, 3, 1), align_corners=False)
        parts = [x, warped, self.disp_emb(flow - cell_centres(b, h, w, x.device))]
        if self.corr_radius:
            parts.append(local_correlation(x, y, flow, self.corr_radius))
        d = self.out_conv(self.hidden_blocks(self.block1(torch.cat(parts, dim=1))))
        return d[:, :-2], d[:, -2:]


class Decoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.embedding_decoder = CoordinateDecoder()
        self.gps = nn.ModuleDict({"32": GaussianProcess(), "16": GaussianProcess()})
        self.proj = nn.ModuleDict({"16": nn.Conv2d(1024, 512, 1, 1), "32": nn.Conv2d(2048, 512, 1, 1)})
        # in_dim = query + support features + displacement embedding + local correlation window
        self.conv_refiner = nn.ModuleDict({
            "16": ConvRefiner(2 * 512 + 128 + 15 ** 2, 2 * 512 + 128 + 15 ** 2, 128, corr_radius=7),
            "8": ConvRefiner(2 * 512 + 64 + 7 ** 2, 2 * 512 + 64 + 7 ** 2, 64, corr_radius=3),
            "4": ConvRefiner(2 * 256 + 32 + 5 ** 2, 2 * 256 + 32 + 5 ** 2, 32, corr_radius=2),
            "2": ConvRefiner(2 * 64 + 16, 128 + 16, 16),
            "1": ConvRefiner(2 * 3 + 6, 24, 6),
        })
        self.coarse_scales = (32, 16)

    def forward(self, fq: Pyramid, fs: Pyramid, scales: tuple[int, ...],
                flow: torch.Tensor | None = None, certainty: torch.Tensor | None = None,
                record: dict[str, torch.Tensor] | None = None, tag: str = "") -> dict[int, dict[str, torch.Tensor]]:
        """Runs the scales (coarse to fine) and returns {scale: {"flow", "certainty"}}. Without `flow` it
        starts from the identity at the coarsest scale; with it (a previous pass), from that flow resized."""
        h, w = fq[1].shape[-2:]
        b, device = fq[1].shape[0], fq[1].device
        first = fq[scales[0]].shape[-2:]
        if flow is None:
            flow, certainty = cell_centres(b, *first, device), torch.zeros((), device=device)
        else:
            flow = F.interpolate(flow, size=first, mode="bilinear", align_corners=False)
            certainty = F.interpolate(certainty, size=first, mode="bilinear", align_corners=False)
        context = torch.zeros(b, self.embedding_decoder.internal_dim, *first, device=device)
        out: dict[int, dict[str, torch.Tensor]] = {}
        for i, s in enumerate(scales):
            key = str(s)
            f1, f2 = fq[s], fs[s]
            if key in self.proj:
                f1, f2 = self.proj[key](f1), self.proj[key](f2)
            if s in self.coarse_scales:  # the GP + decoder predict a new absolute flow
                context = F.interpolate(context, size=f1.shape[-2:], mode="bilinear", align_corners=False)
                flow, certainty, context = self.embedding_decoder(self.gps[key](f1, f2), f1, context, key)
            if key in self.conv_refiner:
                dc, disp = self.conv_refiner[key](f1, f2, flow)
                flow = torch.stack((flow[:, 0] + s * disp[:, 0] / (4 * w),
                                    flow[:, 1] + s * disp[:, 1] / (4 * h)), dim=1)
                certainty = certainty + dc
            out[s] = {"flow": flow, "certainty": certainty}
            if record is not None:
                record[f"{tag}s{s}_flow"], record[f"{tag}s{s}_certainty"] = flow, certainty
            if i + 1 < len(scales):
                size = fq[scales[i + 1]].shape[-2:]
                flow = F.interpolate(flow, size=size, mode="bilinear", align_corners=False)
                certainty = F.interpolate(certainty, size=size, mode="bilinear", align_corners=False)
        return out


# ----------------------------------------------------------------------------------------------- matcher
class DKMv3(nn.Module):
    """DKMv3 with GIM's inference settings; `warp` gives the dense, symmetric output for a padded pair."""

    default_conf: dict[str, Any] = {
        "coarse_size": (672, 896),  # (H, W) of the first pass
        "upsample_size": (1152, 1536),  # (H, W) of the second pass; None: single pass
        "dark_threshold": 1 / 32,  # pixels darker than this in all channels get certainty 0
        "reference_gp_quirk": True,  # reproduce the reference's stride-16 GP inverse (GaussianProcess)
    }

    def __init__(self, conf: dict[str, Any] | None = None):
        super().__init__()
        self.conf = {**self.default_conf, **(conf or {})}
        self.encoder = Encoder()
        self.decoder = Decoder()
        for gp in self.decoder.gps.values():
            gp.reference_quirk = bool(self.conf["reference_gp_quirk"])

    def dense_pass(self, query: torch.Tensor, support: torch.Tensor, scales: tuple[int, ...],
                   start: dict[str, torch.Tensor] | None = None, record: dict[str, torch.Tensor] | None = None,
                   tag: str = "") -> dict[int, dict[str, torch.Tensor]]:
        """One symmetric pass: batch [query, support] against [support, query]."""
        feats = self.encoder(torch.cat((query, support)), max_stride=32 if record is not None else max(scales))
        if record is not None:
            for s in (2, 4, 8, 16, 32):
                record[f"{tag}enc_s{s}"] = feats[s]
        swapped = {s: torch.cat(f.chunk(2)[::-1]) for s, f in feats.items()}
        start = start or {}
        return self.decoder(feats, swapped, scales, start.get("flow"), start.get("certainty"), record, tag)

    @torch.no_grad()
    def warp(self, image0: torch.Tensor, image1: torch.Tensor, record: dict[str, torch.Tensor] | None = None
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """image0, image1: (1, 3, H, W) RGB in [0, 1], already padded to the same aspect ratio.

        Returns warp (Hs, 2 Ws, 4) and certainty (Hs, 2 Ws) at the output size (Hs, Ws) (`upsample_size`, or
        `coarse_size` for a single pass). The left half is indexed by image-0 cells, the right half by
        image-1 cells; each entry is (x0, y0, x1, y1) in normalised [-1, 1] coordinates of the two images.
        """
        size0 = tuple(self.conf["coarse_size"])
        size1 = tuple(self.conf["upsample_size"]) if self.conf["upsample_size"] else None

        def resized(size):
            return [F.interpolate(im, size=size, mode="bilinear", align_corners=False) for im in (image0, image1)]

        out = self.dense_pass(*resized(size0), (32, 16, 8, 4, 2, 1), record=record, tag="pass0_")
        hs, ws = size1 or size0
        # Where the coarse stride-16 certainty is negative, keep half of it as a penalty on the final logits.
        low = F.interpolate(out[16]["certainty"], size=(hs, ws), mode="bilinear", align_corners=False)
        low = 0.5 * low * (low < 0)
        if size1:
            out = self.dense_pass(*resized(size1), (8, 4, 2, 1), start=out[1], record=record, tag="pass1_")
        flow = out[1]["flow"].permute(0, 2, 3, 1)  # (2, hs, ws, 2)
        certainty = (out[1]["certainty"] - low).sigmoid()[:, 0]  # (2, hs, ws)
        certainty = certainty.masked_fill((flow.abs() > 1).any(dim=-1), 0)
        for i, im in enumerate((image0, image1)):
            dark = (im[0] < self.conf["dark_threshold"]).all(dim=0)
            dark = F.interpolate(dark[None, None].float(), size=(hs, ws), mode="nearest")[0, 0].bool()
            certainty[i] = certainty[i].masked_fill(dark, 0)
        flow = flow.clamp(-1, 1)
        grid = cell_centres(1, hs, ws, flow.device)[0].permute(1, 2, 0)
        warp = torch.cat((torch.cat((grid, flow[0]), dim=-1), torch.cat((flow[1], grid), dim=-1)), dim=1)
        return warp, torch.cat((certainty[0], certainty[1]), dim=1)


def kde(points: torch.Tensor, std: float = 0.1, chunk: int = 4096) -> torch.Tensor:
    """Gaussian kernel density of each point among all: sum_j exp(-|p_i - p_j|^2 / (2 std^2)), by row chunks
    (the full N x N distance matrix of 20000 points would take 1.6 GB)."""
    return torch.cat([(-torch.cdist(points[i:i + chunk], points) ** 2 / (2 * std ** 2)).exp().sum(dim=-1)
                      for i in range(0, len(points), chunk)])


def sample_matches(warp: torch.Tensor, certainty: torch.Tensor, num: int, threshold: float = 0.05,
                   generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """DKM's "threshold_balanced" sampling: draw 4*num cells with probability ~ certainty, where any
    certainty above `threshold` counts as 1, then keep `num` of them with probability ~ 1 / (1 + density)
    (density = KDE of the 4-D matches; nearly isolated matches, density < 10, are almost never kept).
    Returns matches (n, 4) and their (unthresholded) certainty (n,). `generator` makes it reproducible."""
    matches, cert = warp.reshape(-1, 4), certainty.reshape(-1)
    weight = torch.where(cert > threshold, torch.ones_like(cert), cert)
    # Sampling without replacement cannot draw more cells than have a positive weight.
    n_good = min(4 * num, int((weight > 0).sum()))
    if n_good == 0:
        return matches[:0], cert[:0]
    good = torch.multinomial(weight, n_good, replacement=False, generator=generator)
    matches, cert = matches[good], cert[good]
    density = kde(matches, std=0.1)
    p = 1 / (density + 1)
    p[density < 10] = 1e-7
    keep = torch.multinomial(p, min(num, len(p)), replacement=False, generator=generator)
    return matches[keep], cert[keep]
