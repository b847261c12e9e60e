"""Fixtures of the app tests: a run store seeded by real `tiny` runs through the real worker."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest


def seed_store(home: Path) -> SimpleNamespace:
    """A SQLite store with a succeeded tiny run, a failed run and a succeeded run without arrays.

    The good run goes through `jobs.worker.Worker.run_one` (training, evaluation, UMAP in the
    job's process), exactly as in production; the failure is a real one (a CUB folder that is
    not there); the bare run is one whose worker stored no arrays (e.g. an older worker).
    """
    import torch

    from clarel.data import generate_synthbirds
    from jobs import open_store
    from jobs.worker import Worker

    torch.set_num_threads(1)
    url = f"sqlite:///{home / 'store.db'}"
    root = generate_synthbirds(home / "synthbirds", seed=0, classes=12, images_per_class=12, size=32)
    store = open_store(url)
    good = store.submit("tiny", {"data.root": str(root)}, name="tiny-good")[0]
    assert Worker(store).run_one(timeout_s=300) == good
    info = store.get_job(good)
    assert info.state == "SUCCEEDED", f"seeding run failed: {info.error_summary}\n{store.log_tail(good)}"
    bad = store.submit("tiny", {"data.dataset": "cub", "data.root": str(home / "no-such-cub")}, name="tiny-bad",
                       max_attempts=1)[0]
    assert Worker(store).run_one(timeout_s=120) == bad
    assert store.get_job(bad).state == "FAILED"
    bare = store.submit("tiny", {"data.root": str(root)}, name="no-arrays")[0]
    claim = store.claim("test-seeder")
    assert claim is not None and claim.job_id == bare
    store.finish(bare, "test-seeder", "SUCCEEDED")
    return SimpleNamespace(url=url, store=store, root=root, good=good, bad=bad, bare=bare)


@pytest.fixture(scope="session")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    return seed_store(tmp_path_factory.mktemp("app-store"))


@pytest.fixture
def use_db(monkeypatch: pytest.MonkeyPatch):
    """Point the app at a database URL for one test."""

    def use(url: str) -> str:
        monkeypatch.setenv("CLAREL_DB_URL", url)
        return url

    return use


@pytest.fixture
def empty_db(tmp_path: Path, use_db) -> str:
    return use_db(f"sqlite:///{tmp_path / 'empty.db'}")
