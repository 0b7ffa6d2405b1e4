"""LightGlue on SIFT keypoints: kornia's network, trained with deep supervision.

kornia's `LightGlue(features=None, **conf)` builds the architecture without downloading anything, but its
forward returns only the last layer's assignment. Training needs every layer's assignment (deep supervision)
and the token-confidence logits (early stopping), with padding masks for batches, so `forward` below walks
the same submodules (input_proj, posenc, transformers[i], log_assignment[i], token_confidence[i]); at
inference `predict` calls kornia's own forward, which adds adaptive depth (early stopping) and width (point
pruning). Both paths give the same last-layer assignment when nothing is pruned (tested).

SIFT geometry enters the positional encoding as (x, y) normalised to [-1, 1], log(scale) and orientation
(radians).
"""
from __future__ import annotations

import types
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from kornia.feature.lightglue import CrossBlock, LightGlue, filter_matches, normalize_keypoints, sigmoid_log_double_softmax

from .losses import assignment_nll, confidence_bce
from . import register_model

_KorniaCrossForward = CrossBlock.forward


def _batch_inputs(batch: dict[str, torch.Tensor], side: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(keypoints in pixels clamped into the image, position features (B, N, 4))."""
    size = batch[f"image_size{side}"].float()
    kp = batch[f"keypoints{side}"].float()
    kp = torch.minimum(kp.clamp(min=0), (size - 1)[:, None, :])
    kn = normalize_keypoints(kp, size)
    logs = torch.log(batch[f"scales{side}"].float().clamp(min=1e-2))
    return kp, torch.cat([kn, logs[..., None], batch[f"oris{side}"].float()[..., None]], -1)


def _fused_cross_forward(self, x0: torch.Tensor, x1: torch.Tensor, mask: torch.Tensor | None = None):
    """kornia CrossBlock.forward with PyTorch's fused attention kernel on every device.

    kornia computes the bidirectional cross-attention with einsum + two softmaxes over the full (B, H, M, N)
    matrix on CPU; both directions are plain scaled dot-product attention with the shared query/key
    projection (scale (d ** -0.5) applied once, exactly as kornia's sqrt-scale on both sides), so two fused
    calls give the same result (to float rounding) about 3x faster, forward and backward.
    """
    if mask is not None:
        return _KorniaCrossForward(self, x0, x1, mask)
    qk0, qk1 = self.to_qk(x0), self.to_qk(x1)
    v0, v1 = self.to_v(x0), self.to_v(x1)
    qk0, qk1, v0, v1 = (t.unflatten(-1, (self.heads, -1)).transpose(1, 2) for t in (qk0, qk1, v0, v1))
    m0 = F.scaled_dot_product_attention(qk0, qk1, v1)
    m1 = F.scaled_dot_product_attention(qk1, qk0, v0)
    m0, m1 = (self.to_out(t.transpose(1, 2).flatten(start_dim=-2)) for t in (m0, m1))
    return x0 + self.ffn(torch.cat([x0, m0], -1)), x1 + self.ffn(torch.cat([x1, m1], -1))


def _masked_layer(layer, d0, d1, e0, e1, mask0, mask1):
    """One transformer layer with padded keypoints masked as *keys* only.

    kornia's masked_forward masks queries too, which leaves the rows of padded points fully masked: their
    attention is NaN, and although the forward replaces it by 0, the backward of the fused attention kernel
    returns NaN gradients. Masking keys only gives every row at least one valid key; the outputs at padded
    points are garbage but never read (masked in the assignment and the loss).
    """
    k0, k1 = mask0[:, None, None, :], mask1[:, None, None, :]  # (B, 1, 1, N): broadcast over heads, queries
    d0 = layer.self_attn(d0, e0, k0)
    d1 = layer.self_attn(d1, e1, k1)
    cross = layer.cross_attn
    qk0, qk1 = cross.to_qk(d0), cross.to_qk(d1)
    v0, v1 = cross.to_v(d0), cross.to_v(d1)
    qk0, qk1, v0, v1 = (t.unflatten(-1, (cross.heads, -1)).transpose(1, 2) for t in (qk0, qk1, v0, v1))
    qk0, qk1 = qk0 * cross.scale**0.5, qk1 * cross.scale**0.5
    sim = torch.einsum("bhid, bhjd -> bhij", qk0, qk1)
    attn01 = torch.softmax(sim.masked_fill(~k1, -float("inf")), dim=-1)
    attn10 = torch.softmax(sim.transpose(-2, -1).masked_fill(~k0, -float("inf")), dim=-1)
    m0 = torch.einsum("bhij, bhjd -> bhid", attn01, v1)
    m1 = torch.einsum("bhji, bhid -> bhjd", attn10, v0)
    m0, m1 = (cross.to_out(t.transpose(1, 2).flatten(start_dim=-2)) for t in (m0, m1))
    return d0 + cross.ffn(torch.cat([d0, m0], -1)), d1 + cross.ffn(torch.cat([d1, m1], -1))


@register_model("lightglue")
class LightGlueModel(nn.Module):
    input_kind = "sparse"
    default_conf: dict[str, Any] = {
        "input_dim": 128,
        "descriptor_dim": 128,
        "n_layers": 5,
        "num_heads": 4,
        "add_scale_ori": True,
        # kornia's Attention(flash=False) calls torch.backends.cuda.enable_flash_sdp(False), a process-wide switch
        # that also disables PyTorch's fused CPU attention kernel (math fallback, about 3x slower here);
        # flash=True keeps the fused kernel on CPU and uses FlashAttention (fp16) on CUDA.
        "flash": True,
        # inference only (training never prunes):
        "depth_confidence": 0.95,
        "width_confidence": 0.99,
        "filter_threshold": 0.1,
        # loss
        "loss_gamma": 1.0,  # layer i weighted gamma ** (L - 1 - i); 1.0 = plain mean over layers
        "loss_balance": 0.5,  # positives vs negatives
        "confidence_weight": 1.0,
    }

    def __init__(self, conf: dict[str, Any] | None = None):
        super().__init__()
        self.conf = {**self.default_conf, **(conf or {})}
        c = self.conf
        self.net = LightGlue(
            features=None, input_dim=c["input_dim"], descriptor_dim=c["descriptor_dim"], n_layers=c["n_layers"],
            num_heads=c["num_heads"], add_scale_ori=c["add_scale_ori"], flash=c["flash"], mp=False,
            depth_confidence=c["depth_confidence"], width_confidence=c["width_confidence"],
            filter_threshold=c["filter_threshold"],
        )
        if c.get("fused_cross_attention", True):
            for layer in self.net.transformers:
                layer.cross_attn.forward = types.MethodType(_fused_cross_forward, layer.cross_attn)
        self.net.train()

    # ------------------------------------------------------------------ training
    def _assign(self, i: int, d0, d1, pairmask):
        la = self.net.log_assignment[i]
        m0, m1 = la.final_proj(d0), la.final_proj(d1)
        d = m0.shape[-1]
        sim = torch.einsum("bmd,bnd->bmn", m0 / d**0.25, m1 / d**0.25)
        if pairmask is not None:
            sim = sim.masked_fill(~pairmask, -1e4)
        return sigmoid_log_double_softmax(sim, la.matchability(d0), la.matchability(d1))

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        """All layers, no pruning. Returns log_assignment (list of L tensors (B, M+1, N+1)) and
        confidence logits (lists of L-1 tensors (B, M) / (B, N))."""
        _, pos0 = _batch_inputs(batch, "0")
        _, pos1 = _batch_inputs(batch, "1")
        net = self.net
        d0 = net.input_proj(batch["descriptors0"].float())
        d1 = net.input_proj(batch["descriptors1"].float())
        e0, e1 = net.posenc(pos0), net.posenc(pos1)
        mask0, mask1 = batch.get("mask0"), batch.get("mask1")
        padded = mask0 is not None and not (bool(mask0.all()) and bool(mask1.all()))
        pairmask = (mask0[:, :, None] & mask1[:, None, :]) if padded else None
        las, conf0, conf1 = [], [], []
        L = net.conf.n_layers
        for i in range(L):
            if padded:
                d0, d1 = _masked_layer(net.transformers[i], d0, d1, e0, e1, mask0, mask1)
            else:
                d0, d1 = net.transformers[i](d0, d1, e0, e1)
            las.append(self._assign(i, d0, d1, pairmask))
            if i < L - 1:
                lin = net.token_confidence[i].token[0]
                conf0.append(lin(d0.detach()).squeeze(-1))
                conf1.append(lin(d1.detach()).squeeze(-1))
        return {"log_assignment": las, "conf_logits0": conf0, "conf_logits1": conf1}

    def loss(self, batch: dict[str, torch.Tensor], out: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        c = self.conf
        gt0, gt1 = batch["gt_matches0"], batch["gt_matches1"]
        las = out["log_assignment"]
        L = len(las)
        total, wsum, metrics = 0.0, 0.0, {}
        for i, la in enumerate(las):
            nll, parts = assignment_nll(la, gt0, gt1, c["loss_balance"])
            w = c["loss_gamma"] ** (L - 1 - i)
            total = total + w * nll.mean()
            wsum += w
            if i == L - 1:
                metrics["nll_last"] = float(nll.detach().mean())
                metrics["nll_pos"] = float(parts["nll_pos"].mean())
                metrics["nll_neg"] = float(parts["nll_neg"].mean())
                metrics["num_pos"] = float(parts["num_pos"].mean())
        total = total / wsum
        metrics["nll_deep"] = float(total.detach())
        mask0 = batch.get("mask0", torch.ones_like(gt0, dtype=torch.bool)).float()
        mask1 = batch.get("mask1", torch.ones_like(gt1, dtype=torch.bool)).float()
        if out["conf_logits0"] and c["confidence_weight"] > 0:
            closs = sum(confidence_bce(out["conf_logits0"][i], out["conf_logits1"][i], las[i], las[-1], mask0, mask1)
                        .mean() for i in range(L - 1)) / (L - 1)
            metrics["conf_loss"] = float(closs.detach())
            total = total + c["confidence_weight"] * closs
        with torch.no_grad():
            m0, _, _, _ = filter_matches(las[-1], c["filter_threshold"])
            metrics.update(match_metrics(m0, gt0))
        metrics["loss"] = float(total.detach())
        return total, metrics

    # ------------------------------------------------------------------ inference
    @torch.inference_mode()
    def predict(self, batch: dict[str, torch.Tensor], prune: bool = True) -> dict[str, torch.Tensor]:
        """matches0 (B, M) int64 (-1 = unmatched), scores0 (B, M); `stop` = layers run. With prune=True and one
        unpadded pair this is kornia's forward with early stopping + point pruning."""
        mask0, mask1 = batch.get("mask0"), batch.get("mask1")
        padded = mask0 is not None and not (bool(mask0.all()) and bool(mask1.all()))
        if prune and not padded:
            net = self.net
            data = {}
            for side in "01":
                kp, pos = _batch_inputs(batch, side)
                data[f"image{side}"] = {"keypoints": kp, "descriptors": batch[f"descriptors{side}"].float(),
                                        "image_size": batch[f"image_size{side}"].float(),
                                        "scales": pos[..., 2], "oris": pos[..., 3]}
            out = net(data)
            return {"matches0": out["matches0"], "scores0": out["matching_scores0"], "stop": int(out["stop"])}
        la = self.forward(batch)["log_assignment"][-1]
        m0, _, s0, _ = filter_matches(la, self.conf["filter_threshold"])
        if padded:
            m0 = torch.where(mask0, m0, -1)
        return {"matches0": m0, "scores0": s0, "stop": len(self.net.transformers)}

    def set_inference(self, depth_confidence: float | None = None, width_confidence: float | None = None,
                      filter_threshold: float | None = None) -> None:
        for k, v in (("depth_confidence", depth_confidence), ("width_confidence", width_confidence),
                     ("filter_threshold", filter_threshold)):
            if v is not None:
                setattr(self.net.conf, k, v)
                self.conf[k] = v


def match_metrics(m0: torch.Tensor, gt0: torch.Tensor) -> dict[str, float]:
    """Precision over predictions whose GT is known (not ignored), recall over GT positives."""
    pred = m0 > -1
    known = gt0 >= -1
    correct = pred & (m0 == gt0)
    n_pred = (pred & known).sum().item()
    n_pos = (gt0 >= 0).sum().item()
    return {"precision": correct.sum().item() / max(n_pred, 1), "recall": correct.sum().item() / max(n_pos, 1)}
