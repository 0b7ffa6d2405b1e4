"""Losses of assignment-based matchers (LightGlue, SuperGlue style)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def assignment_nll(log_assignment: torch.Tensor, gt0: torch.Tensor, gt1: torch.Tensor,
                   balance: float = 0.5) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Negative log-likelihood of the GT partial assignment.

    log_assignment: (B, M+1, N+1), last row/column = "unmatched" (matchability). gt0 (B, M), gt1 (B, N):
    index of the match, -1 unmatched, -2 (or any value < -1) ignored, e.g. padding.
    Returns the per-pair loss (B,) = balance * mean positive NLL + (1 - balance) * mean negative NLL.
    """
    B, M1, N1 = log_assignment.shape
    M, N = M1 - 1, N1 - 1
    pos = gt0 >= 0  # (B, M)
    # Positives: log P(i <-> gt0[i]).
    idx = gt0.clamp(min=0)
    lp = log_assignment[:, :M, :N].gather(2, idx[..., None]).squeeze(-1)  # (B, M)
    n_pos = pos.sum(1)
    nll_pos = -(lp * pos).sum(1) / n_pos.clamp(min=1)
    # Negatives: log P(i unmatched) and log P(j unmatched).
    neg0, neg1 = gt0 == -1, gt1 == -1
    ln0 = log_assignment[:, :M, N]
    ln1 = log_assignment[:, M, :N]
    n_neg = neg0.sum(1) + neg1.sum(1)
    nll_neg = -((ln0 * neg0).sum(1) + (ln1 * neg1).sum(1)) / n_neg.clamp(min=1)
    nll = balance * nll_pos + (1 - balance) * nll_neg
    return nll, {"nll_pos": nll_pos.detach(), "nll_neg": nll_neg.detach(), "num_pos": n_pos.float(),
                 "num_neg": n_neg.float()}


def confidence_bce(logits0: torch.Tensor, logits1: torch.Tensor, la_now: torch.Tensor, la_final: torch.Tensor,
                   mask0: torch.Tensor, mask1: torch.Tensor) -> torch.Tensor:
    """Token-confidence loss of LightGlue's early stopping: predict whether a point's current best assignment
    (incl. 'unmatched') already equals the final layer's. Returns (B,)."""
    la_now, la_final = la_now.detach(), la_final.detach()
    c0 = (la_final[:, :-1, :].argmax(-1) == la_now[:, :-1, :].argmax(-1)).float()
    c1 = (la_final[:, :, :-1].argmax(-2) == la_now[:, :, :-1].argmax(-2)).float()
    l0 = F.binary_cross_entropy_with_logits(logits0, c0, reduction="none")
    l1 = F.binary_cross_entropy_with_logits(logits1, c1, reduction="none")
    l0 = (l0 * mask0).sum(1) / mask0.sum(1).clamp(min=1)
    l1 = (l1 * mask1).sum(1) / mask1.sum(1).clamp(min=1)
    return (l0 + l1) / 2
