"""The Keras-equivalent tokenizer rules of §2.2."""

from __future__ import annotations

import pytest

from clarel.errors import ClarelError
from clarel.text import Tokenizer, split_words


def test_split_lowercases_removes_apostrophe_and_punctuation():
    assert split_words("This Bird's wings, are (very) BLACK!\tyes\nno") == [
        "this", "birds", "wings", "are", "very", "black", "yes", "no"]
    assert split_words("a-b/c") == ["a", "b", "c"]  # filter characters separate words


def test_vocabulary_by_frequency_ties_first_seen_and_num_words_cut():
    tok = Tokenizer(num_words=4, max_len=5).fit(["b a c", "a c d", "a e"])
    # a:3, c:2, then b, d, e tie at 1 (first seen: b); num_words=4 keeps ids 1..3
    assert tok.words == ["a", "c", "b"]
    assert tok.word_index() == {"a": 1, "c": 2, "b": 3}


def test_oov_dropped_front_truncation_and_padding():
    tok = Tokenizer(num_words=10, max_len=3).fit(["one two three four five"])
    ids, lengths = tok.encode(["one two zzz three four five", "two"])
    idx = tok.word_index()
    assert ids[0].tolist() == [idx["three"], idx["four"], idx["five"]]  # the front is dropped
    assert ids[1].tolist() == [idx["two"], 0, 0]  # padded at the end
    assert lengths.tolist() == [3, 1]


def test_length_clamped_to_at_least_one():
    tok = Tokenizer(num_words=10, max_len=4).fit(["red bird"])
    ids, lengths = tok.encode(["", "unknown words only", "!!!"])
    assert (ids == 0).all()
    assert lengths.tolist() == [1, 1, 1]


def test_save_load_round_trip(tmp_path):
    tok = Tokenizer(num_words=50, max_len=7).fit(["a small red bird", "a big blue bird's beak"])
    tok.save(tmp_path / "vocab.json")
    back = Tokenizer.load(tmp_path / "vocab.json")
    assert back.words == tok.words and back.max_len == 7 and back.num_words == 50
    assert (back.encode(["big bird"])[0] == tok.encode(["big bird"])[0]).all()


def test_missing_or_bad_vocab_names_the_file(tmp_path):
    with pytest.raises(ClarelError, match="vocab.json"):
        Tokenizer.load(tmp_path / "vocab.json")
    (tmp_path / "vocab.json").write_text("{not json")
    with pytest.raises(ClarelError, match="not a valid vocab.json"):
        Tokenizer.load(tmp_path / "vocab.json")
