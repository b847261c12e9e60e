"""The CLAREL losses (§3): pure functions on tensors returning named terms."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pairwise_distances(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Plain (not squared) Euclidean distances.  [N, D], [M, D] -> [N, M]

    The clamp keeps the gradient finite where a distance is exactly 0.
    """
    dtype = torch.promote_types(torch.promote_types(a.dtype, b.dtype), torch.float32)  # fp32 or fp64
    a, b = a.to(dtype), b.to(dtype)
    sq = (a * a).sum(1, keepdim=True) + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return sq.clamp_min(eps).sqrt()


def retrieval_losses(image_emb: torch.Tensor, text_emb: torch.Tensor) -> dict[str, torch.Tensor]:
    """In-batch retrieval cross-entropies with logits = -distance (no temperature).

    Args:
        image_emb: f(x_i).  # [B, D]
        text_emb: t(x_j), row j paired with image j.  # [B, D]
    Returns:
        ``loss_it``: image queries classified among the B texts (L_IT);
        ``loss_ti``: text queries classified among the B images (L_TI).
    """
    logits = -pairwise_distances(image_emb, text_emb)  # [B, B], rows = images
    target = torch.arange(logits.shape[0], device=logits.device)
    return {"loss_it": F.cross_entropy(logits, target), "loss_ti": F.cross_entropy(logits.T, target)}


def class_loss(image_logits: torch.Tensor, text_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """L_cls = mean of the image-head and text-head cross-entropies.  [B, C], [B, C], [B]"""
    return 0.5 * (F.cross_entropy(image_logits.float(), labels) + F.cross_entropy(text_logits.float(), labels))


def clarel_loss(image_emb: torch.Tensor, text_emb: torch.Tensor, image_logits: torch.Tensor,
                text_logits: torch.Tensor, labels: torch.Tensor, kappa: float, lam: float) -> dict[str, torch.Tensor]:
    """Total ``(1-κ)[λ·L_IT + (1-λ)·L_TI] + κ·L_cls`` (weight decay lives in the optimiser).

    Returns:
        ``loss`` (the total to minimise), ``loss_it``, ``loss_ti``, ``loss_retrieval``, ``loss_cls``.
    """
    terms = retrieval_losses(image_emb, text_emb)
    terms["loss_retrieval"] = lam * terms["loss_it"] + (1.0 - lam) * terms["loss_ti"]
    terms["loss_cls"] = class_loss(image_logits, text_logits, labels)
    terms["loss"] = (1.0 - kappa) * terms["loss_retrieval"] + kappa * terms["loss_cls"]
    return terms
