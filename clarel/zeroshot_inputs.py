"""Input checks for zero-shot classification: class descriptions and images.

Every front end (the Streamlit Classify page, the Gradio tab) goes through these, so the same bad
input gets the same message everywhere:

    descs = parse_descriptions("Cardinal: a red bird with a black face\na blue bird")
    notes = vocabulary_notes(descs, split_words, vocabulary, max_words)   # CLAREL runs only
    image, notes = load_image(uploaded_bytes)                             # RGB, downscaled

Problems raise `ZeroShotInputError`, a `ClarelError` whose message says what to fix. The
classifier itself lives in `clarel.zeroshot`, which re-exports these names.
"""

from __future__ import annotations

import io
import logging
import warnings
from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import PIL.ImageOps

from clarel.errors import ClarelError

__all__ = [
    "MAX_DESCRIPTIONS",
    "MAX_DESCRIPTION_CHARS",
    "MAX_IMAGE_SIDE",
    "MAX_NAME_CHARS",
    "ClassDescription",
    "ImageSource",
    "ZeroShotInputError",
    "load_image",
    "parse_descriptions",
    "vocabulary_notes",
]

logger = logging.getLogger(__name__)

MAX_DESCRIPTIONS = 200  # more classes than this is not a demo any more; say so instead of hanging
MAX_DESCRIPTION_CHARS = 1000  # longer lines are pasted documents, not class descriptions
MAX_NAME_CHARS = 60  # a "Name: description" prefix longer than this is treated as description text
MAX_IMAGE_SIDE = 1024  # larger images are downscaled before the model (which resizes anyway)

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
