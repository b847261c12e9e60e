"""Dataset cache: reused while the sources are unchanged, replaced when any source file changes."""

from __future__ import annotations

import os

import numpy as np
import pytest

import clarel.data.cub as cub
from clarel.data import load_dataset
from clarel.data.cache import dataset_cache_dir
from tests.data.data_builders import copy_tree


@pytest.fixture
def sb(small_synth, fast_tmp, tmp_path, monkeypatch):
    monkeypatch.setenv("CLAREL_HOME", str(tmp_path / "home"))
    return copy_tree(small_synth, fast_tmp / "cache-copies" / tmp_path.name / "sb")


def _no_source_load(*args, **kwargs):
    raise AssertionError("the loader ran although the cache was valid")


def test_second_load_comes_from_the_cache(sb, monkeypatch):
    first = load_dataset(sb)
    files = list(dataset_cache_dir().glob("*.pkl"))
    assert len(files) == 1 and str(dataset_cache_dir()).startswith(os.environ["CLAREL_HOME"])
    monkeypatch.setattr(cub, "load_cub", _no_source_load)
    again = load_dataset(sb)
    assert again.fingerprint == first.fingerprint and again.captions == first.captions
    assert all(np.array_equal(again.splits[k], first.splits[k]) for k in first.splits)
    assert again.summary() == first.summary() and np.array_equal(again.attributes, first.attributes)


def test_an_edited_caption_file_invalidates_the_cache(sb):
    first = load_dataset(sb)
    path = sb / "text_c10" / first.image_paths[0].replace(".jpg", ".txt")
    lines = path.read_text().splitlines()
    lines[0] = "an edited caption about a bird with a very long tail"
    path.write_text("\n".join(lines) + "\n")
    again = load_dataset(sb)
    assert again.fingerprint != first.fingerprint
    assert again.captions[0][0] == lines[0]
    assert len(list(dataset_cache_dir().glob("*.pkl"))) == 1  # the stale pickle was replaced


def test_a_removed_image_or_a_changed_split_file_invalidates_the_cache(sb):
    first = load_dataset(sb)
    (sb / "CUB_200_2011" / "images" / first.image_paths[5]).unlink()
    second = load_dataset(sb)  # one missing image is skipped with a warning
    assert second.fingerprint != first.fingerprint and second.num_images == 95 and second.warnings
    listed = sb / "xlsa17/data/CUB/allclasses.txt"
    listed.write_text(listed.read_text() + "\n")
    assert load_dataset(sb).fingerprint != second.fingerprint


def test_a_corrupt_cache_file_is_ignored(sb):
    first = load_dataset(sb)
    (pkl,) = dataset_cache_dir().glob("*.pkl")
    pkl.write_bytes(b"garbage")
    again = load_dataset(sb)
    assert again.summary() == first.summary()


def test_use_cache_false_neither_reads_nor_writes(sb):
    load_dataset(sb, use_cache=False)
    assert list(dataset_cache_dir().glob("*.pkl")) == []
