"""Session fixtures of the data-layer tests: real-format CUB and Flowers trees, a small SynthBirds."""

from __future__ import annotations

import pytest

from clarel.data.synth import generate_synthbirds
from tests.data.data_builders import build_cub_base, build_flowers_base

SMALL = {"classes": 8, "images_per_class": 12, "size": 32}


@pytest.fixture(scope="session")
def cub_base(tmp_path_factory):
    return build_cub_base(tmp_path_factory.mktemp("cub-base"))


@pytest.fixture(scope="session")
def flowers_base(tmp_path_factory):
    return build_flowers_base(tmp_path_factory.mktemp("flowers-base"))


@pytest.fixture(scope="session")
def small_synth(tmp_path_factory):
    """A small SynthBirds (8 species x 12 images, 32 px); copy it before editing."""
    return generate_synthbirds(tmp_path_factory.mktemp("synth") / "sb", seed=3, **SMALL)
