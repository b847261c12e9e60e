"""Session fixtures of the data-layer tests: real-format CUB and Flowers trees, a small SynthBirds.

The big trees (about 20k files each) live in RAM (``/dev/shm``) when it is available and are
removed at the end of the session: creating and deleting that many files on a busy disk takes
far longer than the tests themselves.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from clarel.data.synth import generate_synthbirds
from tests.data.data_builders import build_cub_base, build_flowers_base

SMALL = {"classes": 8, "images_per_class": 12, "size": 32}


@pytest.fixture(scope="session")
def fast_tmp(tmp_path_factory):
    """A scratch folder in RAM when possible (removed at the end), else pytest's tmp folder."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        path = Path(tempfile.mkdtemp(prefix="clarel-data-tests-", dir=shm))
        yield path
        shutil.rmtree(path, ignore_errors=True)
    else:
        yield tmp_path_factory.mktemp("data")


@pytest.fixture(scope="session")
def cub_base(fast_tmp):
    return build_cub_base(fast_tmp / "cub-base")


@pytest.fixture(scope="session")
def flowers_base(fast_tmp):
    return build_flowers_base(fast_tmp / "flowers-base")


@pytest.fixture(scope="session")
def small_synth(fast_tmp):
    """A small SynthBirds (8 species x 12 images, 32 px); copy it before editing."""
    return generate_synthbirds(fast_tmp / "synth" / "sb", seed=3, **SMALL)
