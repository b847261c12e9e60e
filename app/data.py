"""Everything the pages read, through the `jobs` store, cached per run.

The store is one shared resource per database URL. Stored arrays are cached with
``st.cache_data`` keyed by (database, job id, finish time): a finished run never changes, and a
run that finishes later gets a new key instead of a stale "nothing yet".
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import streamlit as st

from clarel.paths import default_dataset_root
from jobs import open_store

log = logging.getLogger(__name__)

FINISHED = "SUCCEEDED"
ACTIVE = ("QUEUED", "RUNNING")
WORKER_COMMAND = ".venv/bin/python -m jobs.worker"
GRADIO_COMMAND = ".venv/bin/python -m app.gradio_app"


def db_url() -> str:
    """The database the app reads: ``CLAREL_DB_URL``, or "" for the store's default."""
    return os.environ.get("CLAREL_DB_URL", "")


@st.cache_resource(show_spinner=False)
def _store(url: str) -> Any:
    return open_store(url or None)


def store() -> Any:
    """The shared `jobs` store of this app's database."""
    return _store(db_url())


def _key(job: Any) -> tuple[str, int, str]:
    return db_url(), int(job.id), str(job.finished_at)


@st.cache_data(show_spinner=False, max_entries=16)
def _eval_arrays(url: str, job_id: int, finished: str) -> Any:
    return _store(url).eval_arrays(job_id)


@st.cache_data(show_spinner=False, max_entries=16)
def _embeddings(url: str, job_id: int, finished: str) -> Any:
    return _store(url).embeddings(job_id)


@st.cache_data(show_spinner=False, max_entries=16)
def _umap(url: str, job_id: int, finished: str) -> Any:
    return _store(url).umap(job_id)


@st.cache_data(show_spinner=False, max_entries=32)
def _history(url: str, job_id: int, finished: str) -> dict:
    return _store(url).metric_history(job_id)


def eval_arrays(job: Any) -> Any:
    """The stored `EvalArrays` of a run, or None."""
    return _eval_arrays(*_key(job))


def embeddings(job: Any) -> Any:
    """The stored joint-space `Embeddings` of a run, or None."""
    return _embeddings(*_key(job))


def umap(job: Any) -> Any:
    """The stored `UmapProjection` of a run, or None."""
    return _umap(*_key(job))


def history(job: Any) -> dict:
    """Metric histories of a run; not cached while it runs (it grows)."""
    if job.state in ACTIVE:
        return store().metric_history(job.id)
    return _history(*_key(job))


def dataset_root(config: dict[str, Any]) -> Path:
    """The dataset folder a run used (its ``data.root``, or the default for its dataset)."""
    data = config.get("data", {})
    root = data.get("root") or ""
    return Path(root) if root else default_dataset_root(data.get("dataset", "synthbirds"))


@st.cache_resource(show_spinner="Reading the dataset folder…", max_entries=4)
def _dataset(root: str) -> Any:
    from clarel.data import load_dataset

    return load_dataset(Path(root))


def dataset_for(job: Any) -> tuple[Any, str | None]:
    """(the run's dataset, None) for thumbnails and captions, or (None, why not) — file reading only."""
    root = dataset_root(job.config)
    if not root.exists():
        return None, f"The dataset folder {root} is not on this machine, so images and captions cannot be shown."
    try:
        return _dataset(str(root)), None
    except Exception as e:  # a broken folder must not break the page; say what is wrong instead
        log.warning("could not load dataset %s: %s", root, e)
        return None, f"Could not read the dataset at {root}: {e}"


def finished_jobs(limit: int = 200) -> list[Any]:
    """Succeeded runs, newest first."""
    return [j for j in store().list_jobs(limit=limit) if j.state == FINISHED]
