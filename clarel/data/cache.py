"""On-disk cache of loaded datasets, keyed by a fingerprint of the source files.

Reading 12k images' worth of caption files takes seconds; a pickle of the loaded `ZSLDataset`
reloads in a fraction of that. The fingerprint hashes the names, sizes and modification times of
the metadata files and of every file under the image and caption folders (no file contents), so
editing, adding or removing any source file gives a new key and the stale pickle is replaced.
Cache files live in ``clarel.paths.cache_dir()/datasets/``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import pickle
import tempfile
from pathlib import Path

from clarel.data.dataset import ZSLDataset
from clarel.paths import cache_dir

log = logging.getLogger(__name__)

CACHE_VERSION = 1  # bump when the loaders change what they produce


def dataset_cache_dir() -> Path:
    return cache_dir() / "datasets"


def _prefix(kind: str, root: Path) -> str:
    where = hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:10]
    return f"{kind}-{where}-"


def _layout() -> str:
    # A pickle made before ZSLDataset gained or lost a field must not be reused.
    names = ",".join(sorted(f.name for f in dataclasses.fields(ZSLDataset)))
    return hashlib.sha1(f"{CACHE_VERSION}|{names}".encode()).hexdigest()[:6]


def cache_path(kind: str, root: Path, fingerprint: str) -> Path:
    """The pickle of a dataset loaded from ``root`` with this fingerprint."""
    return dataset_cache_dir() / f"{_prefix(kind, root)}{fingerprint}-{_layout()}.pkl"


def load_cached(kind: str, root: Path, fingerprint: str) -> ZSLDataset | None:
    """The cached dataset, or None when absent or unreadable (a broken cache is just ignored)."""
    path = cache_path(kind, root, fingerprint)
    if not path.exists():
        return None
    try:
        with open(path, "rb") as f:
            ds = pickle.load(f)
    except Exception as e:  # a truncated or foreign pickle: reload from source
        log.warning("ignoring unreadable dataset cache %s (%s)", path, e)
        return None
    if not isinstance(ds, ZSLDataset) or ds.fingerprint != fingerprint:
        return None
    return ds


def save_cached(kind: str, ds: ZSLDataset) -> Path | None:
    """Write the cache atomically and drop older caches of the same root; None if not writable."""
    directory = dataset_cache_dir()
    path = cache_path(kind, ds.root, ds.fingerprint)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
        with os.fdopen(fd, "wb") as f:
            pickle.dump(ds, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
        for old in directory.glob(_prefix(kind, ds.root) + "*.pkl"):
            if old != path:
                old.unlink(missing_ok=True)
    except OSError as e:
        log.warning("could not write dataset cache %s: %s", path, e)
        return None
    return path
