"""ZSL / GZSL evaluation (§5-§7): prototypes, distances, u/s/H, metric rescaling, AUSUC, stacking."""

from __future__ import annotations

import logging

import numpy as np
import torch

from clarel import metrics as M
from clarel.config import RunConfig
from clarel.data.dataset import ZSLDataset
from clarel.inputs import ModelInputs, prepare_inputs
from clarel.losses import pairwise_distances
from clarel.model import ClarelModel
from clarel.results import EvalResult

log = logging.getLogger(__name__)


def _device_of(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.inference_mode()
def embed_image_rows(model: ClarelModel, inputs: ModelInputs, rows: np.ndarray, chunk: int = 512) -> torch.Tensor:
    """Joint-space embeddings of dataset images ``rows`` (model must be in eval mode).  -> [n, D]"""
    device = _device_of(model)
    idx = torch.as_tensor(rows, device=inputs.images.device)
    out = [model.embed_images(inputs.images[idx[i : i + chunk]].to(device)).float() for i in range(0, len(idx), chunk)]
    return torch.cat(out) if out else torch.zeros(0, model.embed_dim, device=device)


@torch.inference_mode()
def embed_text_rows(model: ClarelModel, inputs: ModelInputs, rows: np.ndarray, chunk: int = 2048) -> torch.Tensor:
    """Per-image text embeddings: the mean over *all* captions of each image (§5).  -> [n, D]"""
    device = _device_of(model)
    rows = np.asarray(rows, dtype=np.int64)
    counts = inputs.caption_counts[rows]
    owner = np.repeat(np.arange(len(rows)), counts)  # position in `rows` of each caption
    slot = np.concatenate([np.arange(c) for c in counts]) if len(rows) else np.zeros(0, dtype=np.int64)
    img = torch.as_tensor(rows[owner], device=inputs.captions.device)
    sl = torch.as_tensor(slot, device=inputs.captions.device)
    total = torch.zeros(len(rows), model.embed_dim, device=device)
    for i in range(0, len(owner), chunk):
        caps = inputs.captions[img[i : i + chunk], sl[i : i + chunk]].to(device)
        lens = None if inputs.lengths is None else inputs.lengths[img[i : i + chunk], sl[i : i + chunk]].to(device)
        emb = model.embed_captions(caps, lens).float()
        total.index_add_(0, torch.as_tensor(owner[i : i + chunk], device=device), emb)
    return total / torch.as_tensor(np.maximum(counts, 1), device=device, dtype=torch.float32)[:, None]


def build_prototypes(text_emb: torch.Tensor, text_labels: np.ndarray, class_mask: np.ndarray, k: int,
                     rng: np.random.Generator) -> torch.Tensor:
    """Class prototypes: the mean of up to ``k`` random per-image text embeddings of each class.

    Returns ``[C, D]`` with NaN rows for classes outside ``class_mask`` or without support images.
    """
    protos = torch.full((len(class_mask), text_emb.shape[1]), float("nan"), device=text_emb.device)
    for c in np.flatnonzero(class_mask):
        members = np.flatnonzero(text_labels == c)
        if len(members) == 0:
            continue
        if len(members) > k:
            members = np.sort(rng.choice(members, size=k, replace=False))
        protos[c] = text_emb[torch.as_tensor(members, device=text_emb.device)].mean(0)
    return protos


def score_distances(distances: np.ndarray, labels: np.ndarray, seen_mask: np.ndarray, class_mask: np.ndarray,
                    alpha: float, gamma: float, alpha_grid, curve_points: int = 101):
    """Every metric of an `EvalResult` from a distance matrix (pure numpy; no model).

    Returns:
        ``(metrics, alpha_curve, sweep_curve, stacking_curve)``, see `EvalResult`.
    """
    alpha_curve = M.alpha_sweep(distances, labels, seen_mask, alpha_grid, "multiplicative", class_mask)
    sweep_values = M.dense_values(distances, seen_mask, curve_points, "multiplicative", class_mask)
    sweep_curve = M.alpha_sweep(distances, labels, seen_mask, sweep_values, "multiplicative", class_mask)
    stack_values = M.dense_values(distances, seen_mask, curve_points, "stacking", class_mask)
    stacking_curve = M.alpha_sweep(distances, labels, seen_mask, stack_values, "stacking", class_mask)
    at = M.gzsl_metrics(distances, labels, seen_mask, alpha, class_mask)
    at0 = M.gzsl_metrics(distances, labels, seen_mask, 0.0, class_mask)
    st = M.alpha_sweep(distances, labels, seen_mask, [gamma], "stacking", class_mask)
    metrics = {
        "zsl_top1": M.zsl_top1(distances, labels, class_mask & ~seen_mask),
        "u": at["u"], "s": at["s"], "H": at["H"], "alpha": float(alpha),
        "u_alpha0": at0["u"], "s_alpha0": at0["s"], "H_alpha0": at0["H"],
        "alpha_best": M.best_value(alpha_curve), "H_alpha_best": float(alpha_curve.h.max()),
        "ausuc": M.ausuc(sweep_curve), "ausuc_stacking": M.ausuc(stacking_curve),
        "gamma": float(gamma), "H_stacking": float(st.h[0]), "u_stacking": float(st.u[0]), "s_stacking": float(st.s[0]),
        "gamma_best": M.best_value(stacking_curve), "H_gamma_best": float(stacking_curve.h.max()),
    }
    return {k: float(v) for k, v in metrics.items()}, alpha_curve, sweep_curve, stacking_curve


def evaluate(model: ClarelModel, dataset: ZSLDataset, config: RunConfig, protocol: str = "test",
             alpha: float | None = None, *, gamma: float | None = None,
             inputs: ModelInputs | None = None) -> EvalResult:
    """ZSL top-1 and GZSL u/s/H of a model on one protocol, with the arrays the app re-scores.

    Args:
        model: a `ClarelModel` (put in eval mode here; the caller's mode is restored).
        protocol: ``"test"`` (trainval / test_seen / test_unseen) or ``"val"``.
        alpha: rescaling factor for the reported u/s/H; None = ``config.eval.alpha`` or 0.
            ``metrics["alpha_best"]`` is the argmax-H alpha of ``config.eval.alpha_grid`` on *this*
            protocol (the selection rule on ``val``; an optimistic oracle on ``test``).
        gamma: calibrated-stacking offset for ``H_stacking``; None = ``config.eval.gamma`` or 0.
            ``metrics["gamma_best"]`` is its argmax-H value on this protocol.
        inputs: prepared inputs (built from the dataset when omitted; needs ``model.tokenizer``).
    Returns:
        `EvalResult`; ``distances`` rows are the seen then the unseen evaluation images.
    """
    if inputs is None:
        inputs = prepare_inputs(dataset, config, tokenizer=getattr(model, "tokenizer", None))
    proto = dataset.protocol(protocol)
    was_training = model.training
    model.eval()
    try:
        eval_rows = np.concatenate([proto.seen, proto.unseen])
        support = proto.support
        img = embed_image_rows(model, inputs, eval_rows)
        txt = embed_text_rows(model, inputs, support)
        rng = np.random.default_rng(config.eval.seed)
        protos = build_prototypes(txt, dataset.labels[support], proto.class_mask, config.eval.prototype_k, rng)
        valid = ~torch.isnan(protos).any(1)
        dist = torch.full((len(eval_rows), len(protos)), float("inf"), device=img.device)
        # float64: no cancellation error in |a|^2 + |b|^2 - 2ab when distances are small (MPS has no
        # float64, so the distances are computed on the CPU there)
        where = torch.device("cpu") if img.device.type == "mps" else img.device
        d64 = pairwise_distances(img.to(where).double(), protos[valid].to(where).double(), eps=0.0)
        dist[:, valid] = d64.float().to(dist.device)
    finally:
        model.train(was_training)
    distances = dist.cpu().numpy().astype(np.float32)
    labels = dataset.labels[eval_rows].astype(np.int64)
    seen_mask, class_mask = proto.seen_mask.copy(), proto.class_mask & valid.cpu().numpy()
    ec = config.eval
    alpha = alpha if alpha is not None else (ec.alpha if ec.alpha is not None else 0.0)
    gamma = gamma if gamma is not None else (ec.gamma if ec.gamma is not None else 0.0)
    metrics, alpha_curve, sweep_curve, stacking_curve = score_distances(
        distances, labels, seen_mask, class_mask, alpha, gamma, ec.alpha_grid, ec.curve_points)
    return EvalResult(
        metrics=metrics,
        protocol=protocol,
        distances=distances,
        labels=labels,
        image_index=eval_rows.astype(np.int64),
        seen_mask=seen_mask,
        class_mask=class_mask,
        class_names=list(dataset.class_names),
        alpha_curve=alpha_curve,
        sweep_curve=sweep_curve,
        stacking_curve=stacking_curve,
        image_embeddings=img.cpu().numpy().astype(np.float32),
        text_embeddings=txt.cpu().numpy().astype(np.float32),
        text_index=support.astype(np.int64),
        prototypes=protos.cpu().numpy().astype(np.float32),
    )
