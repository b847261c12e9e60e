"""All tables of the run store, the engine factory and the one commit-or-rollback helper.

Every table lives in this module (the Alembic migrations in ``jobs/migrations/versions`` create
exactly these). Timestamps are naive UTC ``datetime`` values in the database; the store turns them
into timezone-aware values at its boundary. Numpy arrays are stored as ``np.save`` blobs
(`array_to_blob` / `blob_to_array`), never pickled.
"""

from __future__ import annotations

import enum
import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import numpy as np
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    create_engine,
    event,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 30_000


class JobState(enum.StrEnum):
    """Lifecycle of a job. QUEUED -> RUNNING -> one of the three terminal states (or back to QUEUED)."""

    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def terminal(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


def utcnow() -> datetime:
    """Naive UTC now, the form every timestamp takes in the database."""
    return datetime.now(UTC).replace(tzinfo=None)


def aware(dt: datetime | None) -> datetime | None:
    """A database timestamp (naive UTC) as a timezone-aware UTC datetime."""
    return dt.replace(tzinfo=UTC) if dt is not None and dt.tzinfo is None else dt


class Base(DeclarativeBase):
    pass


class GroupRow(Base):
    """A sweep, a set of seeds, or a paper reproduction: jobs submitted together."""

    __tablename__ = "groups"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))  # "sweep" | "seeds" | "reproduce"
    spec: Mapped[dict] = mapped_column(JSON)  # preset, overrides, sweep grid, seeds (+ reproduce phase, alpha*)
    phase: Mapped[int] = mapped_column(Integer, default=1)  # reproduce: 1 = validation runs, 2 = test runs
    created_at: Mapped[datetime] = mapped_column(DateTime)


class JobRow(Base):
    """One training/evaluation job and everything the queue needs to run it once."""

    __tablename__ = "jobs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    preset: Mapped[str] = mapped_column(String(100), default="")
    config_json: Mapped[str] = mapped_column(Text)  # the full RunConfig as JSON
    state: Mapped[str] = mapped_column(String(16), default=JobState.QUEUED.value)
    priority: Mapped[int] = mapped_column(Integer, default=0)  # higher runs first
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # claims so far
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    started_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    worker_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    progress_message: Mapped[str] = mapped_column(String(500), default="")
    eta_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    error_summary: Mapped[str | None] = mapped_column(Text, nullable=True)
    error_traceback: Mapped[str | None] = mapped_column(Text, nullable=True)
    device: Mapped[str | None] = mapped_column(String(50), nullable=True)
    run_dir: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    group_id: Mapped[int | None] = mapped_column(ForeignKey("groups.id", ondelete="SET NULL"), nullable=True)
    setting: Mapped[dict] = mapped_column(JSON, default=dict)  # the sweep point this job is ({} if none)
    seed: Mapped[int] = mapped_column(Integer, default=0)
    phase: Mapped[int] = mapped_column(Integer, default=0)  # reproduce phase of the job (0 = not a reproduction)

    __table_args__ = (Index("ix_jobs_state_priority", "state", "priority", "id"), Index("ix_jobs_group", "group_id"))


class MetricRow(Base):
    """One scalar over training steps (loss terms, lr, periodic evaluation metrics)."""

    __tablename__ = "metrics"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    step: Mapped[int] = mapped_column(Integer)
    key: Mapped[str] = mapped_column(String(100))
    value: Mapped[float] = mapped_column(Float)

    __table_args__ = (Index("ix_metrics_job_key_step", "job_id", "key", "step"),)


class FinalMetricRow(Base):
    """The final metrics of a finished job (u, s, H, zsl_top1, alpha, ausuc, best_alpha, ...)."""

    __tablename__ = "final_metrics"
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[float] = mapped_column(Float)


class ArtifactRow(Base):
    """A file a job produced (checkpoint, config, metrics log) with its size and checksum."""

    __tablename__ = "artifacts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(50))  # "checkpoint" | "config" | "metrics" | ...
    path: Mapped[str] = mapped_column(String(1000))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime)

    __table_args__ = (Index("ix_artifacts_job", "job_id"),)


class EmbeddingRow(Base):
    """Joint-space embeddings of one modality of one split, with the dataset item each row is."""

    __tablename__ = "embeddings"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    split: Mapped[str] = mapped_column(String(20))  # evaluation protocol: "test" | "val"
    modality: Mapped[str] = mapped_column(String(20))  # "image" | "text" | "prototype"
    count: Mapped[int] = mapped_column(Integer)
    dim: Mapped[int] = mapped_column(Integer)
    vectors: Mapped[bytes] = mapped_column(LargeBinary)  # [count, dim] float32
    item_index: Mapped[bytes] = mapped_column(LargeBinary)  # [count] dataset image index (class index for prototypes)
    labels: Mapped[bytes] = mapped_column(LargeBinary)  # [count] class index

    __table_args__ = (Index("ix_embeddings_job", "job_id", "split", "modality"),)


class EvalRow(Base):
    """The arrays of one evaluation: the distance matrix the app re-scores without a model."""

    __tablename__ = "evaluations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    protocol: Mapped[str] = mapped_column(String(20))
    alpha: Mapped[float] = mapped_column(Float)  # the alpha the reported metrics use
    metrics: Mapped[dict] = mapped_column(JSON)
    class_names: Mapped[list] = mapped_column(JSON)
    distances: Mapped[bytes] = mapped_column(LargeBinary)  # [N, C] float32
    labels: Mapped[bytes] = mapped_column(LargeBinary)  # [N] int64
    image_index: Mapped[bytes] = mapped_column(LargeBinary)  # [N] int64
    seen_mask: Mapped[bytes] = mapped_column(LargeBinary)  # [C] bool
    class_mask: Mapped[bytes] = mapped_column(LargeBinary)  # [C] bool
    alpha_curve: Mapped[bytes] = mapped_column(LargeBinary)  # [4, A] values, u, s, h
    sweep_curve: Mapped[bytes] = mapped_column(LargeBinary)  # [4, P]
    stacking_curve: Mapped[bytes] = mapped_column(LargeBinary)  # [4, P]

    __table_args__ = (Index("ix_evaluations_job", "job_id"),)


class UmapRow(Base):
    """A 2-D UMAP projection of the joint space (images, per-image texts, prototypes)."""

    __tablename__ = "umap_projections"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    params: Mapped[dict] = mapped_column(JSON)  # n_neighbors, min_dist, random_state, cap
    coords: Mapped[bytes] = mapped_column(LargeBinary)  # [P, 2] float32
    modality: Mapped[bytes] = mapped_column(LargeBinary)  # [P] str
    item_index: Mapped[bytes] = mapped_column(LargeBinary)  # [P] int64
    labels: Mapped[bytes] = mapped_column(LargeBinary)  # [P] int64

    __table_args__ = (Index("ix_umap_job", "job_id"),)


class LogRow(Base):
    """Log lines of a job (the worker's and its child process's), for the app's log tail."""

    __tablename__ = "job_logs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    line: Mapped[str] = mapped_column(Text)

    __table_args__ = (Index("ix_job_logs_job", "job_id", "id"),)


class WorkerRow(Base):
    """A worker process; its heartbeat tells the app whether it is alive."""

    __tablename__ = "workers"
    worker_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    host: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int] = mapped_column(Integer)
    device: Mapped[str | None] = mapped_column(String(50), nullable=True)
    started_at: Mapped[datetime] = mapped_column(DateTime)
    last_heartbeat: Mapped[datetime] = mapped_column(DateTime)
    current_job_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    state: Mapped[str] = mapped_column(String(20), default="idle")  # "idle" | "busy" | "stopped"


# ---------------------------------------------------------------- engine
def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite connections get WAL, a 30 s busy timeout and foreign keys.

    SQLite transactions are begun explicitly: ``BEGIN IMMEDIATE`` for sessions that write (so a
    writer waits for the lock up front instead of failing when it upgrades a read lock) and a
    plain ``BEGIN`` for readers.
    """
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_conn, _record):  # noqa: ANN001
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (below)
            cur = dbapi_conn.cursor()
            cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            if ":memory:" not in url and url not in ("sqlite://", "sqlite:///"):
                cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")  # safe with WAL; a crash loses no committed data
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):  # noqa: ANN001
            immediate = conn.get_execution_options().get("sqlite_immediate", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine
    return create_engine(url, pool_pre_ping=True)


class Database:
    """An engine plus the one place where sessions are opened, committed and rolled back."""

    def __init__(self, url: str, engine: Engine | None = None) -> None:
        self.url = url
        self.engine = engine or make_engine(url)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        writer = self.engine.execution_options(sqlite_immediate=True) if self.is_sqlite else self.engine
        self._writer = sessionmaker(bind=writer, expire_on_commit=False)
        self._reader = sessionmaker(bind=self.engine, expire_on_commit=False)

    @contextmanager
    def session(self, write: bool = True) -> Iterator[Session]:
        """A session that commits when the block ends and rolls back if it raises.

        Args:
            write: the block writes (SQLite: take the write lock at BEGIN). Read-only blocks pass
                False so readers never queue behind writers.
        """
        session = (self._writer if write else self._reader)()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()


# ---------------------------------------------------------------- arrays
def array_to_blob(array: np.ndarray) -> bytes:
    """Serialise an array with ``np.save`` (dtype and shape kept; no pickle)."""
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def blob_to_array(blob: bytes) -> np.ndarray:
    """Inverse of `array_to_blob`."""
    return np.load(io.BytesIO(blob), allow_pickle=False)
