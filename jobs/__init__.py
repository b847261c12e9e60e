"""The job runner and run store of CLAREL Studio.

``from jobs import open_store`` is the API the CLI, the worker and the app use; see
``docs/CONTRACTS.md``. Workers: ``python -m jobs.worker``; CLI: ``python -m jobs --help``.
"""

from jobs.db import JobState
from jobs.records import (
    ArtifactInfo,
    Embeddings,
    EvalArrays,
    GroupInfo,
    GroupSummary,
    JobInfo,
    JobNotFound,
    JobsError,
    SettingAggregate,
    UmapProjection,
    WorkerInfo,
)
from jobs.store import Store, database_url, open_store

__all__ = [
    "ArtifactInfo",
    "Embeddings",
    "EvalArrays",
    "GroupInfo",
    "GroupSummary",
    "JobInfo",
    "JobNotFound",
    "JobState",
    "JobsError",
    "SettingAggregate",
    "Store",
    "UmapProjection",
    "WorkerInfo",
    "database_url",
    "open_store",
]
