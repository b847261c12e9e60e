"""Shared test set-up: every test runs offline, on the CPU, with its own CLAREL_HOME.

Subfolders (tests/data, tests/core, tests/jobs, tests/app, tests/gradio) add their own fixtures.
"""

from __future__ import annotations

import os
import tempfile

# Set before anything imports huggingface_hub/open_clip: offline, a missing pretrained tag must
# fail at once instead of retrying for a minute.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Never write into the developer's data/ folder from tests.
if "CLAREL_HOME" not in os.environ or os.environ.get("CLAREL_TEST_KEEP_HOME") != "1":
    os.environ["CLAREL_HOME"] = tempfile.mkdtemp(prefix="clarel-test-home-")
os.environ.pop("CLAREL_DB_URL", None)
os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(tempfile.gettempdir(), "clarel-test-numba-cache"))

import sys  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _restore_main_module():
    """Put ``sys.modules["__main__"]`` back after every test.

    Streamlit's AppTest runs the script under test as ``__main__`` and leaves it there; a later
    ``multiprocessing`` spawn (the worker's job child, the parallel val twin, process pools in the
    queue tests) re-runs ``__main__`` in the child, so the child died at start-up and a `Pool`
    kept respawning it forever. Found when an AppTest built with ``from_function`` ran first.
    """
    main = sys.modules.get("__main__")
    yield
    if main is not None:
        sys.modules["__main__"] = main


def pytest_collection_modifyitems(config, items):
    """Skip `gpu` tests when no CUDA device is present."""
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except Exception:  # pragma: no cover - torch is a hard dependency
        has_cuda = False
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
