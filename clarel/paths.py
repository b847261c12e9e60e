"""Where the product writes files: one home folder (``CLAREL_HOME``)."""

from __future__ import annotations

import os
from pathlib import Path

_REPO_ROOT = Path(__file__).resolve().parent.parent


def clarel_home() -> Path:
    """The folder for generated datasets, feature caches, runs and the default database.

    ``CLAREL_HOME`` wins; otherwise ``data/`` in the repository (git-ignored) when running from a
    checkout, else ``~/.clarel``.
    """
    env = os.environ.get("CLAREL_HOME")
    if env:
        home = Path(env).expanduser()
    elif (_REPO_ROOT / "pyproject.toml").exists():
        home = _REPO_ROOT / "data"
    else:
        home = Path.home() / ".clarel"
    home.mkdir(parents=True, exist_ok=True)
    return home


def datasets_dir() -> Path:
    """Default parent folder of dataset roots (``$CLAREL_HOME/datasets``)."""
    return clarel_home() / "datasets"


def default_dataset_root(name: str) -> Path:
    """Default root folder of a dataset by name (``synthbirds``, ``cub``, ``flowers``)."""
    return datasets_dir() / name


def cache_dir() -> Path:
    """Feature and dataset caches (``$CLAREL_HOME/cache``)."""
    return clarel_home() / "cache"


def runs_dir() -> Path:
    """Run directories (config, checkpoints, logs): ``$CLAREL_HOME/runs``."""
    return clarel_home() / "runs"
