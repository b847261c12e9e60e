"""Caption tokenisation equivalent to the Keras ``Tokenizer`` used by the paper (§2.2).

Rules: lowercase; Keras' default filter characters (ASCII punctuation, tab, newline) become
separators and the apostrophe is removed ("bird's" -> "birds"); split on spaces; the vocabulary is ordered by frequency (ties keep first-seen order)
and only ids ``1..num_words-1`` are kept; out-of-vocabulary words are dropped; sequences are
padded with 0 at the end and truncated from the *front*; the length is clamped to ``[1, max_len]``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from clarel.errors import ClarelError

# Keras' default `filters` (every ASCII punctuation mark but the apostrophe, plus tab and newline).
KERAS_FILTERS = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'
_SPLIT_TABLE = str.maketrans({c: " " for c in KERAS_FILTERS})
_DROP_TABLE = str.maketrans({"'": None})


def split_words(text: str) -> list[str]:
    """Words of one caption under the paper's rules (lowercase, filters split, apostrophe removed).

    The original adds the apostrophe to the Keras filters, which would *split* "bird's" into
    "bird" and "s"; the method notes say it becomes "birds", so the apostrophe is deleted instead.
    """
    return text.lower().translate(_DROP_TABLE).translate(_SPLIT_TABLE).split()


class Tokenizer:
    """Word-level tokenizer fitted on all captions; saved and loaded as ``vocab.json``.

    Args:
        num_words: Keras ``num_words``: word ids ``1..num_words-1`` are kept.
        max_len: tokens per caption after padding/truncation.
    """

    def __init__(self, num_words: int = 10000, max_len: int = 30, words: Sequence[str] = ()) -> None:
        if num_words < 2:
            raise ClarelError(f"num_words={num_words} must be at least 2 (id 0 is padding)")
        self.num_words = int(num_words)
        self.max_len = int(max_len)
        self.words: list[str] = list(words)[: self.num_words - 1]  # id = position + 1
        self._index = {w: i + 1 for i, w in enumerate(self.words)}

    # ------------------------------------------------------------------ fitting
    def fit(self, texts: Iterable[str]) -> Tokenizer:
        """Build the vocabulary by word frequency (descending; ties in first-seen order)."""
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(split_words(text))
        # Counter preserves insertion order and sorted() is stable, like Keras' list.sort.
        ordered = sorted(counts.items(), key=lambda kv: kv[1], reverse=True)
        self.words = [w for w, _ in ordered[: self.num_words - 1]]
        self._index = {w: i + 1 for i, w in enumerate(self.words)}
        return self

    @property
    def vocab_size(self) -> int:
        """Rows of the embedding table (``num_words``: padding id 0 plus kept words)."""
        return self.num_words

    def word_index(self) -> dict[str, int]:
        return dict(self._index)

    # --------------------------------------------------------------- encoding
    def ids(self, text: str) -> list[int]:
        """Word ids of one caption, OOV words dropped, not truncated."""
        index = self._index
        return [index[w] for w in split_words(text) if w in index]

    def encode(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Pad/truncate captions to ``max_len``.

        Returns:
            tokens: int64 ids, 0-padded at the end, front-truncated.  # [M, L]
            lengths: valid tokens per caption, clamped to [1, L] (an empty caption counts as 1
                padding token, which avoids a NaN mean in the encoder).  # [M]
        """
        L = self.max_len
        tokens = np.zeros((len(texts), L), dtype=np.int64)
        lengths = np.ones(len(texts), dtype=np.int64)
        for i, text in enumerate(texts):
            seq = self.ids(text)[-L:]  # Keras truncating="pre": keep the last L
            tokens[i, : len(seq)] = seq
            lengths[i] = max(1, len(seq))
        return tokens, lengths

    # ------------------------------------------------------------------ files
    def to_dict(self) -> dict:
        return {"num_words": self.num_words, "max_len": self.max_len, "words": self.words}

    def save(self, path: Path | str) -> None:
        Path(path).write_text(json.dumps(self.to_dict()))

    @classmethod
    def load(cls, path: Path | str) -> Tokenizer:
        path = Path(path)
        if not path.is_file():
            raise ClarelError(f"tokenizer vocabulary {path} is missing; the run folder is incomplete")
        try:
            data = json.loads(path.read_text())
            return cls(data["num_words"], data["max_len"], data["words"])
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise ClarelError(f"{path} is not a valid vocab.json ({e})") from e
