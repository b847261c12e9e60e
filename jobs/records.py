"""What the store hands out: frozen dataclasses and numpy arrays, never ORM rows.

The app keeps these across reruns without holding a database session.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from clarel.results import AlphaCurve


class JobsError(Exception):
    """A store or queue operation that cannot be done (message says why and what to do)."""


class JobNotFound(JobsError):
    """No job (or group) with that id."""


@dataclass(frozen=True)
class JobInfo:
    """One job as the CLI and the app see it.

    ``state`` is the state name (``"QUEUED"``, ``"RUNNING"``, ``"SUCCEEDED"``, ``"FAILED"``,
    ``"CANCELLED"``); timestamps are timezone-aware UTC; ``progress`` is in [0, 1].
    """

    id: int
    name: str
    preset: str
    config: dict[str, Any]
    state: str
    attempts: int
    max_attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    worker_id: str | None
    progress: float
    progress_message: str
    eta_seconds: float | None
    error_summary: str | None
    error_traceback: str | None
    device: str | None
    group_id: int | None
    run_dir: str | None
    final_metrics: dict[str, float]
    # Extensions beyond the contract (compatible: appended with defaults).
    cancel_requested: bool = False
    lease_expires_at: datetime | None = None
    heartbeat_at: datetime | None = None
    setting: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    priority: int = 0
    phase: int = 0

    @property
    def terminal(self) -> bool:
        return self.state in ("SUCCEEDED", "FAILED", "CANCELLED")


@dataclass(frozen=True)
class Claim:
    """A job a worker has just claimed: what it needs to run it."""

    job_id: int
    name: str
    config_json: str
    attempts: int
    max_attempts: int
    run_dir: str
    lease_expires_at: datetime


@dataclass(frozen=True)
class Heartbeat:
    """The answer to a running job's heartbeat."""

    still_owned: bool  # False: the lease was lost (the job was recovered elsewhere): stop at once
    cancel_requested: bool


@dataclass(frozen=True)
class EvalArrays:
    """The evaluation arrays the app re-scores without a model (see `clarel.results.EvalResult`)."""

    distances: np.ndarray  # [N, C] float32
    labels: np.ndarray  # [N] int64
    image_index: np.ndarray  # [N] int64
    seen_mask: np.ndarray  # [C] bool
    class_mask: np.ndarray  # [C] bool
    class_names: list[str]
    alpha: float
    alpha_curve: AlphaCurve
    sweep_curve: AlphaCurve
    stacking_curve: AlphaCurve
    protocol: str = "test"
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Embeddings:
    """Joint-space embeddings of a finished job (the test-protocol evaluation)."""

    image: np.ndarray  # [N, D]
    image_index: np.ndarray  # [N] dataset image index
    text: np.ndarray  # [M, D] per-image text embeddings
    text_index: np.ndarray  # [M]
    prototypes: np.ndarray  # [C, D] (NaN rows for classes outside the protocol)
    image_labels: np.ndarray | None = None  # [N] class index
    text_labels: np.ndarray | None = None  # [M] class index


@dataclass(frozen=True)
class UmapProjection:
    """A stored 2-D projection of the joint space."""

    coords: np.ndarray  # [P, 2] float32
    modality: np.ndarray  # [P] str: "image" | "text" | "prototype"
    item_index: np.ndarray  # [P] dataset image index, or class index for prototypes
    labels: np.ndarray  # [P] class index
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ArtifactInfo:
    kind: str
    path: str
    size_bytes: int
    sha256: str
    created_at: datetime


@dataclass(frozen=True)
class WorkerInfo:
    worker_id: str
    host: str
    pid: int
    device: str | None
    last_heartbeat: datetime
    current_job_id: int | None
    alive: bool
    state: str = "idle"
    started_at: datetime | None = None


@dataclass(frozen=True)
class GroupInfo:
    """A sweep, a set of seeds or a reproduction, with its jobs' state counts."""

    id: int
    name: str
    kind: str  # "sweep" | "seeds" | "reproduce"
    spec: dict[str, Any]
    phase: int
    created_at: datetime
    job_ids: tuple[int, ...]
    state_counts: dict[str, int]


@dataclass(frozen=True)
class SettingAggregate:
    """Mean and standard deviation of the final metrics over the seeds of one sweep point."""

    setting: dict[str, Any]
    phase: int
    job_ids: tuple[int, ...]
    n_succeeded: int
    mean: dict[str, float]
    std: dict[str, float]  # population std over seeds (0 for one seed)


@dataclass(frozen=True)
class GroupSummary:
    group: GroupInfo
    rows: tuple[SettingAggregate, ...]
