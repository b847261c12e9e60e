"""The CLAREL model: an image encoder, a text encoder and two training-only class heads."""

from __future__ import annotations

import torch
from torch import nn

from clarel.config import RunConfig
from clarel.encoders import build_encoders


class ClarelModel(nn.Module):
    """Image and caption encoders into one joint space (+ the linear class heads of §3).

    Inputs are rows of the in-memory stores built by `clarel.train`: images are uint8 pixels
    (``cnn``) or feature rows (``features``/``clip``); captions are token ids + lengths
    (``paper``) or feature rows (``clip``).
    """

    def __init__(self, image_encoder: nn.Module, text_encoder: nn.Module, embed_dim: int, num_classes: int) -> None:
        super().__init__()
        self.image_encoder = image_encoder
        self.text_encoder = text_encoder
        self.image_classifier = nn.Linear(embed_dim, num_classes)
        self.text_classifier = nn.Linear(embed_dim, num_classes)
        self.embed_dim = embed_dim
        self.num_classes = num_classes

    def embed_images(self, images: torch.Tensor) -> torch.Tensor:
        """Joint-space image embeddings.  [B, ...] -> [B, D]"""
        return self.image_encoder(images)

    def embed_captions(self, captions: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Joint-space embedding of each caption.  [M, L] ids (+ [M] lengths) or [M, F] -> [M, D]"""
        return self.text_encoder(captions, lengths)

    def embed_caption_bundles(self, captions: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Per-image text embeddings: the mean of T projected caption embeddings (§2.2 step 7).

        Args:
            captions: ``[B, T, L]`` token ids or ``[B, T, F]`` caption features.
            lengths: ``[B, T]`` (token inputs only).
        Returns:
            ``[B, D]``
        """
        b, t = captions.shape[:2]
        flat = self.embed_captions(captions.flatten(0, 1), None if lengths is None else lengths.flatten())
        return flat.view(b, t, -1).mean(1)


def create_model(config: RunConfig, num_classes: int, **encoder_kwargs) -> ClarelModel:
    """Build the model named by ``config`` (see `clarel.encoders.build_encoders` for the kwargs)."""
    image, text = build_encoders(config, **encoder_kwargs)
    return ClarelModel(image, text, config.embed_dim, num_classes)


def weight_decay_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """SGD parameter groups: decay only on conv kernels and BN parameters (§3), none elsewhere."""
    decay, no_decay, seen = [], [], set()
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad or id(p) in seen:
                continue
            seen.add(id(p))
            is_conv = isinstance(module, nn.Conv1d | nn.Conv2d) and name == "weight"
            is_bn = isinstance(module, nn.modules.batchnorm._BatchNorm)
            (decay if is_conv or is_bn else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
