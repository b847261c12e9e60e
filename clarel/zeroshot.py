"""Zero-shot classification of one image against free-text class descriptions.

The one implementation the Streamlit Classify page and the Gradio tab both call:

    clf = ZeroShotClassifier.from_run(run_dir)                       # a trained CLAREL run
    clf = ZeroShotClassifier.from_open_clip("ViT-B-32", "laion2b_s34b_b79k")   # or pretrained=None
    pred = clf.classify(image, ["a small red bird", "a large blue bird"])

CLAREL scores a class by the plain Euclidean distance between the image embedding and the
description embedding in the joint space (clarel-method.md §2.3): p(c | x) = softmax(-d_c).
open_clip scores by ``logit_scale.exp() * cos(img, txt)``. Description embeddings are cached
(LRU keyed by the text), so a repeated description list costs one image encoding.

Input checks live here too (`parse_descriptions`, `load_image`), so that every front end gives
the same message for the same bad input. They raise `ZeroShotInputError`, a `ClarelError`.
"""

from __future__ import annotations

import io
import logging
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import PIL.ImageOps

from clarel.errors import ClarelError

logger = logging.getLogger(__name__)

MAX_DESCRIPTIONS = 200  # more classes than this is not a demo any more; say so instead of hanging
MAX_DESCRIPTION_CHARS = 1000  # longer lines are pasted documents, not class descriptions
MAX_NAME_CHARS = 60  # a "Name: description" prefix longer than this is treated as description text
MAX_IMAGE_SIDE = 1024  # larger images are downscaled before the model (which resizes anyway)
TEXT_CACHE_SIZE = 4096  # description embeddings kept per classifier

# Formats a browser or a camera produces; listed in the "not an image" message.
_FORMATS_HINT = "PNG, JPEG, GIF, BMP, WebP or TIFF"


class ZeroShotInputError(ClarelError):
    """An image or a description list that cannot be classified (message says what to fix)."""


# ---------------------------------------------------------------- descriptions
@dataclass(frozen=True)
class ClassDescription:
    """One candidate class: the name shown to the user and the text that is embedded."""

    name: str  # shown in results; equals `text` when no "Name:" prefix was given
    text: str  # embedded by the model


def parse_descriptions(descriptions: str | Sequence[str | ClassDescription]) -> list[ClassDescription]:
    """Parse and check class descriptions: one per line, optionally ``Name: description``.

    A line ``Cardinal: a red bird with a black face`` shows "Cardinal" and embeds the text after
    the colon. Blank lines are skipped. Plain strings in a list are parsed the same way.

    Args:
        descriptions: a text block (one description per line), or a list of lines or
            `ClassDescription` objects.

    Returns:
        The descriptions in input order (at least two, at most `MAX_DESCRIPTIONS`).

    Raises:
        ZeroShotInputError: no descriptions, only one, more than `MAX_DESCRIPTIONS`, a line longer
            than `MAX_DESCRIPTION_CHARS`, an empty description after a name, or duplicate names.
    """
    if isinstance(descriptions, str):
        items: list[str | ClassDescription] = list(descriptions.splitlines())
    else:
        items = list(descriptions)
    parsed: list[tuple[int, ClassDescription]] = []
    for line_no, item in enumerate(items, start=1):
        if isinstance(item, ClassDescription):
            parsed.append((line_no, item))
            continue
        if not isinstance(item, str):
            raise ZeroShotInputError(f"description {line_no} must be text, got {type(item).__name__}")
        line = item.strip()
        if not line:
            continue
        if len(line) > MAX_DESCRIPTION_CHARS:
            raise ZeroShotInputError(
                f"description on line {line_no} is {len(line)} characters long; the limit is "
                f"{MAX_DESCRIPTION_CHARS}. Describe the class in a sentence or two "
                f"(colour, size, shape), e.g. 'a small bird with a red crown and short beak'."
            )
        parsed.append((line_no, _split_name(line, line_no)))

    if not parsed:
        raise ZeroShotInputError(
            "no class descriptions given: write one per line, optionally as 'Name: description', "
            "e.g. 'Cardinal: a red bird with a black face'."
        )
    if len(parsed) == 1:
        raise ZeroShotInputError(
            "only one class description given: probabilities compare classes, so at least two are "
            "needed. Add another line describing an alternative class."
        )
    if len(parsed) > MAX_DESCRIPTIONS:
        raise ZeroShotInputError(
            f"{len(parsed)} class descriptions given; the limit is {MAX_DESCRIPTIONS}. "
            "Remove some lines or split them into several requests."
        )
    seen: dict[str, int] = {}
    dupes: list[str] = []
    for line_no, desc in parsed:
        key = desc.name.casefold()
        if key in seen:
            dupes.append(f"{desc.name!r} (lines {seen[key]} and {line_no})")
        else:
            seen[key] = line_no
    if dupes:
        raise ZeroShotInputError(
            f"duplicate class names: {', '.join(dupes)}. Each class needs its own name; rename one "
            "of them (e.g. 'Cardinal (male): ...' and 'Cardinal (female): ...')."
        )
    return [desc for _, desc in parsed]


def _split_name(line: str, line_no: int) -> ClassDescription:
    name, sep, text = line.partition(":")
    name, text = name.strip(), text.strip()
    if not sep or not name or len(name) > MAX_NAME_CHARS:
        return ClassDescription(name=line, text=line)
    if not text:
        raise ZeroShotInputError(
            f"line {line_no} names the class {name!r} but gives no description after the colon; "
            f"write e.g. '{name}: a small bird with a red crown'."
        )
    return ClassDescription(name=name, text=text)


def vocabulary_notes(
    descriptions: Sequence[ClassDescription],
    split: Callable[[str], list[str]],
    vocabulary: Container[str],
    max_words: int | None = None,
) -> list[str]:
    """Check descriptions against a word-level vocabulary (CLAREL runs).

    Args:
        descriptions: parsed descriptions.
        split: the run tokenizer's word splitter.
        vocabulary: words the run learned (others are dropped by its tokenizer).
        max_words: tokens the text encoder reads (``config.text.max_len``), or None.

    Returns:
        Notes about unknown words and cut-off descriptions (empty when nothing looks off).

    Raises:
        ZeroShotInputError: a description with no known word at all (it would embed as an empty
            text, identical for every such description).
    """
    notes: list[str] = []
    unknown: dict[str, None] = {}
    empty: list[str] = []
    too_long: list[str] = []
    for desc in descriptions:
        words = split(desc.text)
        known = [w for w in words if w in vocabulary]
        unknown.update((w, None) for w in words if w not in vocabulary)
        if not known:
            empty.append(desc.name)
        elif max_words is not None and len(known) > max_words:
            too_long.append(desc.name)
    if empty:
        non_ascii = any(not d.text.isascii() for d in descriptions if d.name in empty)
        raise ZeroShotInputError(
            f"no word of {_names(empty)} is in this run's vocabulary"
            + (" (it learned English words from its training captions; non-ASCII text is unknown to it)"
               if non_ascii else "")
            + ". Describe the class with words like those in the training captions "
            "(colours, sizes, body parts: e.g. 'a small bird with a red crown and black wings')."
        )
    if unknown:
        listed = ", ".join(repr(w) for w in list(unknown)[:8]) + (", ..." if len(unknown) > 8 else "")
        notes.append(f"Words this run never saw in training are ignored: {listed}.")
    if too_long:
        notes.append(
            f"{_names(too_long)}: longer than the {max_words} words this run reads; only the last "
            f"{max_words} known words are used."
        )
    return notes


def _names(names: list[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:3]) + (", ..." if len(names) > 3 else "")
    return f"description {shown}" if len(names) == 1 else f"descriptions {shown}"


# ---------------------------------------------------------------- images
ImageSource = PIL.Image.Image | str | Path | bytes


def load_image(source: ImageSource, max_side: int = MAX_IMAGE_SIDE) -> tuple[PIL.Image.Image, list[str]]:
    """Open, fully decode and normalise an image for classification.

    Applies the EXIF orientation, converts to RGB (transparent areas become white) and downscales
    so that the longer side is at most `max_side`.

    Args:
        source: a PIL image, a file path, or the file's bytes.
        max_side: longest side kept; larger images are downscaled (with a note).

    Returns:
        ``(rgb_image, notes)``; notes say what was changed (e.g. downscaling).

    Raises:
        ZeroShotInputError: not an image, a truncated/corrupt file, or an image too large to
            decode safely.
    """
    label = "the image"
    try:
        if isinstance(source, PIL.Image.Image):
            image = source
            original_size = image.size
        else:
            if isinstance(source, bytes):
                fp: Any = io.BytesIO(source)
            else:
                path = Path(source)
                label = repr(path.name)
                if not path.is_file():
                    raise ZeroShotInputError(f"image file {str(path)!r} does not exist")
                fp = path
            with warnings.catch_warnings():
                # PIL warns above MAX_IMAGE_PIXELS and raises above twice that; the raise is handled below.
                warnings.simplefilter("ignore", PIL.Image.DecompressionBombWarning)
                image = PIL.Image.open(fp)
                original_size = image.size
                if image.format == "JPEG" and max(image.size) > max_side:
                    # Decode big JPEGs at a reduced DCT scale: several times faster for photos.
                    image.draft("RGB", (max_side, max_side))
                image.load()
    except PIL.Image.DecompressionBombError as e:
        raise ZeroShotInputError(
            f"{label} is too large to decode safely ({e}). Resize it to at most a few thousand pixels "
            "per side and try again."
        ) from e
    except PIL.UnidentifiedImageError as e:
        raise ZeroShotInputError(
            f"{label} is not an image this app can read. Upload a {_FORMATS_HINT} file."
        ) from e
    except (OSError, SyntaxError, ValueError) as e:
        # "image file is truncated", broken PNG chunks, bad JPEG markers, ...
        raise ZeroShotInputError(
            f"{label} is truncated or corrupt and cannot be decoded ({e}). Re-export or re-upload "
            "the full file."
        ) from e

    notes: list[str] = []
    try:
        if image.getexif().get(0x0112, 1) in (5, 6, 7, 8):  # stored rotated by 90 degrees
            original_size = original_size[::-1]
        image = PIL.ImageOps.exif_transpose(image) or image
    except Exception:  # a broken EXIF block should not reject an otherwise fine image
        logger.debug("ignoring unreadable EXIF orientation", exc_info=True)
    if image.mode != "RGB":
        image = _to_rgb(image)
    width, height = image.size
    if width < 1 or height < 1:
        raise ZeroShotInputError(f"{label} has no pixels ({width}x{height})")
    if max(width, height) > max_side:
        scale = max_side / max(width, height)
        new_size = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = image.resize(new_size, PIL.Image.Resampling.BILINEAR, reducing_gap=2.0)
    if max(original_size) > max_side:
        notes.append(
            f"The image ({original_size[0]}x{original_size[1]}) was downscaled to "
            f"{image.size[0]}x{image.size[1]} before classification."
        )
    return image, notes


def _to_rgb(image: PIL.Image.Image) -> PIL.Image.Image:
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = PIL.Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return PIL.Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        # 16-bit / float greyscale: rescale to 8 bits before RGB, or PIL clips to white.
        arr = np.asarray(image, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
        return PIL.Image.fromarray(arr.astype(np.uint8)).convert("RGB")
    return image.convert("RGB")


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
