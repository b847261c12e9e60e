"""Batch samplers (§4.1): the paper's per-image sampler and the class-only supervision ablation.

Both return the same `Batch` of indices, so the training step does not care which one is used:
``image_rows[b]`` are the images whose embeddings are averaged into f(x_b) and
``(text_rows[b, t], text_slots[b, t])`` name the T captions averaged into t(x_b).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)


@dataclass
class Batch:
    image_rows: np.ndarray  # [B, M] dataset image indices (M = 1 per-image)
    text_rows: np.ndarray  # [B, T] image index each caption comes from
    text_slots: np.ndarray  # [B, T] caption number within that image
    labels: np.ndarray  # [B] class index


class PerImageSampler:
    """B distinct images drawn uniformly; T captions each, drawn with replacement from its own.

    Args:
        train_idx: image indices to draw from.  # [N_train]
        labels: class of every dataset image.  # [N]
        caption_counts: captions available per dataset image.  # [N]
    """

    def __init__(self, train_idx: np.ndarray, labels: np.ndarray, caption_counts: np.ndarray,
                 batch_size: int, texts_per_image: int, rng: np.random.Generator) -> None:
        self.train_idx = np.asarray(train_idx)
        self.labels = labels
        self.counts = caption_counts
        self.batch_size = min(batch_size, len(self.train_idx))
        self.t = texts_per_image
        self.rng = rng

    def sample(self) -> Batch:
        rows = self.rng.choice(self.train_idx, size=self.batch_size, replace=False)
        slots = (self.rng.random((len(rows), self.t)) * self.counts[rows][:, None]).astype(np.int64)
        return Batch(rows[:, None], np.repeat(rows[:, None], self.t, axis=1), slots, self.labels[rows])


class ClassOnlySampler:
    """Class-level pairs (the FEWSHOT scheme of §4.1).

    Draws B distinct classes; for each, ``images_per_class`` random images of the class (their
    embeddings are averaged) and T captions, each from an independently chosen image of the class.
    When the split has fewer than B classes the batch is smaller (a class may appear only once,
    otherwise two batch rows would be indistinguishable positives).
    """

    def __init__(self, train_idx: np.ndarray, labels: np.ndarray, caption_counts: np.ndarray,
                 batch_size: int, texts_per_image: int, images_per_class: int, rng: np.random.Generator) -> None:
        train_idx = np.asarray(train_idx)
        self.labels = labels
        self.counts = caption_counts
        self.classes = np.unique(labels[train_idx])
        self.members = [train_idx[labels[train_idx] == c] for c in self.classes]
        self.batch_size = min(batch_size, len(self.classes))
        if self.batch_size < batch_size:
            log.warning("class_only sampler: only %d training classes, batch size %d -> %d",
                        len(self.classes), batch_size, self.batch_size)
        self.m = images_per_class
        self.t = texts_per_image
        self.rng = rng

    def sample(self) -> Batch:
        picks = self.rng.choice(len(self.classes), size=self.batch_size, replace=False)
        image_rows = np.empty((len(picks), self.m), dtype=np.int64)
        text_rows = np.empty((len(picks), self.t), dtype=np.int64)
        for b, k in enumerate(picks):
            members = self.members[k]
            image_rows[b] = self.rng.choice(members, size=self.m, replace=len(members) < self.m)
            text_rows[b] = self.rng.choice(members, size=self.t, replace=True)
        slots = (self.rng.random(text_rows.shape) * self.counts[text_rows]).astype(np.int64)
        return Batch(image_rows, text_rows, slots, self.classes[picks])


def make_sampler(kind: str, train_idx: np.ndarray, labels: np.ndarray, caption_counts: np.ndarray, *,
                 batch_size: int, texts_per_image: int, images_per_class: int,
                 rng: np.random.Generator) -> PerImageSampler | ClassOnlySampler:
    """The sampler named by ``optim.sampler`` (``per_image`` or ``class_only``)."""
    if kind == "class_only":
        return ClassOnlySampler(train_idx, labels, caption_counts, batch_size, texts_per_image, images_per_class, rng)
    return PerImageSampler(train_idx, labels, caption_counts, batch_size, texts_per_image, rng)
