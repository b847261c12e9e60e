"""Zero-shot classification of one image against free-text class descriptions.

The one implementation the Streamlit Classify page and the Gradio tab both call:

    clf = ZeroShotClassifier.from_run(run_dir)                       # a trained CLAREL run
    clf = ZeroShotClassifier.from_open_clip("ViT-B-32", "laion2b_s34b_b79k")   # or pretrained=None
    pred = clf.classify(image, ["a small red bird", "a large blue bird"])

CLAREL scores a class by the plain Euclidean distance between the image embedding and the
description embedding in the joint space (clarel-method.md §2.3): p(c | x) = softmax(-d_c).
open_clip scores by ``logit_scale.exp() * cos(img, txt)``. Description embeddings are cached
(LRU keyed by the text), so a repeated description list costs one image encoding.

Input checks (`parse_descriptions`, `vocabulary_notes`, `load_image`) live in
`clarel.zeroshot_inputs`, so that every front end gives the same message for the same bad input;
they raise `ZeroShotInputError`, a `ClarelError`, and are re-exported here.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image

from clarel.zeroshot_inputs import (
    MAX_DESCRIPTION_CHARS,
    MAX_DESCRIPTIONS,
    MAX_IMAGE_SIDE,
    MAX_NAME_CHARS,
    ClassDescription,
    ImageSource,
    ZeroShotInputError,
    load_image,
    parse_descriptions,
    vocabulary_notes,
)

__all__ = [
    "MAX_DESCRIPTIONS",
    "MAX_DESCRIPTION_CHARS",
    "MAX_IMAGE_SIDE",
    "MAX_NAME_CHARS",
    "TEXT_CACHE_SIZE",
    "ClassDescription",
    "ImageSource",
    "ZeroShotClassifier",
    "ZeroShotInputError",
    "ZeroShotPrediction",
    "clarel_scores",
    "clip_scores",
    "load_image",
    "parse_descriptions",
    "resolve_open_clip_weights",
    "vocabulary_notes",
]

TEXT_CACHE_SIZE = 4096  # description embeddings kept per classifier


# ---------------------------------------------------------------- predictions
@dataclass(frozen=True)
class ZeroShotPrediction:
    """Scores of one image against K class descriptions, in the order given."""

    labels: list[str]  # class names shown to the user [K]
    descriptions: list[str]  # the embedded texts [K]
    probabilities: np.ndarray  # [K] float64, sums to 1
    distances: np.ndarray | None  # [K] joint-space Euclidean distances (CLAREL) or None (open_clip)
    notes: list[str] = field(default_factory=list)  # what was changed or looks off in the input

    def top_k(self, k: int = 5) -> list[tuple[str, float]]:
        """The `k` most probable ``(label, probability)`` pairs, best first."""
        order = np.argsort(-self.probabilities, kind="stable")[:k]
        return [(self.labels[i], float(self.probabilities[i])) for i in order]

    @property
    def label(self) -> str:
        """The most probable class name."""
        return self.labels[int(np.argmax(self.probabilities))]


def clarel_scores(image_embedding: np.ndarray, text_embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CLAREL class scores: distances and ``softmax(-distance)``.

    Args:
        image_embedding: [D] joint-space image embedding.
        text_embeddings: [K, D] joint-space description embeddings.

    Returns:
        ``(probabilities [K], distances [K])``, float64.
    """
    diff = text_embeddings.astype(np.float64) - image_embedding.astype(np.float64)[None, :]  # [K, D]
    distances = np.sqrt(np.sum(diff * diff, axis=1))  # [K]
    return _softmax(-distances), distances


def clip_scores(image_embedding: np.ndarray, text_embeddings: np.ndarray, logit_scale: float) -> np.ndarray:
    """open_clip class probabilities: ``softmax(logit_scale * cos(img, txt))``.

    Args:
        image_embedding: [D] image features (normalised here).
        text_embeddings: [K, D] text features (normalised here).
        logit_scale: the model's ``logit_scale.exp()``.

    Returns:
        probabilities [K], float64.
    """
    img = image_embedding.astype(np.float64)
    txt = text_embeddings.astype(np.float64)
    img = img / max(np.linalg.norm(img), 1e-12)
    txt = txt / np.maximum(np.linalg.norm(txt, axis=1, keepdims=True), 1e-12)
    return _softmax(logit_scale * (txt @ img))


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - np.max(logits)
    e = np.exp(z)
    return e / e.sum()


# ---------------------------------------------------------------- classifier
@dataclass
class _Backend:
    """What a classifier needs from a model: two embedding functions and a scoring rule."""

    kind: str  # "clarel" | "open_clip"
    embed_texts: Callable[[list[str]], np.ndarray]  # texts -> [K, D]
    embed_images: Callable[[list[PIL.Image.Image]], np.ndarray]  # images -> [B, D]
    logit_scale: float | None = None  # open_clip only
    check_texts: Callable[[Sequence[ClassDescription]], list[str]] | None = None  # notes, or raise
    source: Any = None  # the LoadedRun or open_clip model, kept alive and inspectable


class ZeroShotClassifier:
    """Scores images against free-text class descriptions with a CLAREL run or an open_clip model.

    Thread-safe: a lock serialises model calls and cache updates (Gradio runs handlers in threads).
    """

    def __init__(self, backend: _Backend, name: str, cache_size: int = TEXT_CACHE_SIZE) -> None:
        self._backend = backend
        self.name = name  # shown in the UI, e.g. the run folder or "ViT-B-32 / laion2b_s34b_b79k"
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    @property
    def kind(self) -> str:
        """``"clarel"`` (distances available) or ``"open_clip"``."""
        return self._backend.kind

    @property
    def source(self) -> Any:
        """The underlying `LoadedRun` (CLAREL) or open_clip model."""
        return self._backend.source

    # ------------------------------------------------------------ constructors
    @classmethod
    def from_run(cls, run_dir: str | Path, device: str = "cpu") -> ZeroShotClassifier:
        """A classifier from a trained CLAREL run folder.

        Raises:
            ClarelError: the folder, its config or its checkpoint is missing or unreadable
                (from `clarel.run_io.load_run`), or the run has no image backbone
                (``image.kind="features"``).
        """
        from clarel.run_io import load_run

        run_dir = Path(run_dir)
        run = load_run(run_dir, device=device)
        config = getattr(run, "config", None)
        image_kind = getattr(getattr(config, "image", None), "kind", None)
        if image_kind == "features":
            raise ZeroShotInputError(
                f"run {run_dir.name!r} was trained on precomputed image features (image.kind='features'), "
                "so it cannot embed a new photo. Pick a run trained with image.kind='cnn' or 'clip'."
            )
        tokenizer = getattr(run, "tokenizer", None)
        check_texts = None
        if tokenizer is not None and hasattr(tokenizer, "word_index"):
            from clarel.text import split_words

            vocabulary = frozenset(tokenizer.word_index())
            max_len = getattr(tokenizer, "max_len", None)

            def check_texts(descs: Sequence[ClassDescription]) -> list[str]:
                return vocabulary_notes(descs, split_words, vocabulary, max_len)

        backend = _Backend(
            kind="clarel",
            embed_texts=lambda texts: np.asarray(run.embed_texts(texts), dtype=np.float32),
            embed_images=lambda images: np.asarray(run.embed_images(images), dtype=np.float32),
            check_texts=check_texts,
            source=run,
        )
        return cls(backend, name=run_dir.name)

    @classmethod
    def from_open_clip(
        cls, model_name: str, pretrained: str | None = None, device: str = "cpu"
    ) -> ZeroShotClassifier:
        """A classifier from an open_clip model (CLIP-style zero-shot scoring).

        Args:
            model_name: an open_clip architecture, e.g. ``"ViT-B-32"``.
            pretrained: an open_clip tag (e.g. ``"laion2b_s34b_b79k"``), a local weights file, or
                None for random weights (tests, plumbing checks; predictions are meaningless).
            device: torch device.

        Raises:
            WeightsUnavailableError: the weights are not on disk (never downloads; fails in well
                under a second and says what to download and where).
            ClarelError: unknown architecture or tag (lists valid ones).
        """
        import torch

        from clarel.clip_backbone import encode_images, encode_texts, load_clip

        model, preprocess, tokenizer = load_clip(model_name, pretrained, device)  # never downloads
        torch_device = torch.device(device)
        logit_scale = float(model.logit_scale.exp().item())

        def embed_texts(texts: list[str]) -> np.ndarray:
            return encode_texts(model, tokenizer, texts, torch_device).numpy()

        def embed_images(images: list[PIL.Image.Image]) -> np.ndarray:
            return encode_images(model, preprocess, images, torch_device).numpy()

        backend = _Backend(
            kind="open_clip",
            embed_texts=embed_texts,
            embed_images=embed_images,
            logit_scale=logit_scale,
            source=model,
        )
        tag = pretrained if pretrained is not None else "random init"
        return cls(backend, name=f"{model_name} / {tag}")

    # ------------------------------------------------------------ scoring
    def embed_descriptions(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings of description texts [K, D], computing only those not in the LRU cache."""
        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
            if missing:
                embedded = self._backend.embed_texts(missing)  # [M, D]
                for text, row in zip(missing, embedded):
                    self._cache[text] = row
            rows = []
            for text in texts:
                self._cache.move_to_end(text)
                rows.append(self._cache[text])
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return np.stack(rows)

    def classify(
        self, image: ImageSource, descriptions: str | Sequence[str | ClassDescription]
    ) -> ZeroShotPrediction:
        """Class probabilities of one image over the given descriptions.

        Args:
            image: a PIL image, a path, or image bytes (checked and downscaled by `load_image`).
            descriptions: at least two descriptions: a text block or a list of strings/
                `ClassDescription` (``"Name: description"`` lines show the name, embed the rest).

        Returns:
            A `ZeroShotPrediction` in the order of `descriptions`; probabilities sum to 1.

        Raises:
            ZeroShotInputError: bad image or descriptions (see `load_image`, `parse_descriptions`).
        """
        parsed = parse_descriptions(descriptions)
        text_notes = self._backend.check_texts(parsed) if self._backend.check_texts else []
        rgb, notes = load_image(image)
        notes = notes + text_notes
        texts = [d.text for d in parsed]
        text_emb = self.embed_descriptions(texts)  # [K, D]
        with self._lock:
            image_emb = self._backend.embed_images([rgb])[0]  # [D]
        if self._backend.kind == "clarel":
            probabilities, distances = clarel_scores(image_emb, text_emb)
        else:
            assert self._backend.logit_scale is not None
            probabilities, distances = clip_scores(image_emb, text_emb, self._backend.logit_scale), None
        return ZeroShotPrediction(
            labels=[d.name for d in parsed],
            descriptions=texts,
            probabilities=probabilities,
            distances=distances,
            notes=notes,
        )


# ---------------------------------------------------------------- open_clip weights
def resolve_open_clip_weights(model_name: str, pretrained: str | None) -> str | None:
    """The local weights file for an open_clip model, without touching the network.

    The app calls it to tell usable open_clip entries from those whose weights are missing.

    Args:
        model_name: open_clip architecture.
        pretrained: a tag, a file path, or None (random init; returns None).

    Returns:
        A path to a local weights file, or None for random init.

    Raises:
        WeightsUnavailableError: the file/tag is not on disk; the message gives the URL to
            download and where to put it.
        ClarelError: unknown architecture or tag (lists the valid ones).
    """
    from clarel.clip_backbone import resolve_pretrained

    return resolve_pretrained(model_name, pretrained)
