"""The run store: job submission, the queue (claims, leases, heartbeats, recovery) and job reads.

`open_store()` is the one way in: it resolves the database URL, migrates the schema once (under
a lock, so several processes can start at the same moment) and returns a `Store`. Results
(metrics, arrays, embeddings, UMAP, logs) are in `jobs.results_store`, groups (sweeps, seeds,
reproduction) in `jobs.groups`; `Store` combines them.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import func, inspect, select, text
from sqlalchemy.orm import Session

from clarel.config import RunConfig, get_preset
from clarel.paths import clarel_home
from jobs.db import Database, FinalMetricRow, JobRow, JobState, aware, utcnow
from jobs.groups import GroupsMixin
from jobs.queue import DEFAULT_LEASE_S, WORKER_ALIVE_S, QueueMixin
from jobs.records import JobInfo, JobNotFound, JobsError
from jobs.results_store import ResultsMixin

log = logging.getLogger(__name__)

_MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_PG_MIGRATION_LOCK = 7_204_117_001  # pg_advisory_lock key of the schema migration
DEFAULT_MAX_ATTEMPTS = 3
__all__ = ["DEFAULT_LEASE_S", "WORKER_ALIVE_S", "Store", "database_url", "open_store"]


def database_url(url: str | None = None) -> str:
    """The store's URL: ``url``, else ``CLAREL_DB_URL``, else ``sqlite:///<CLAREL_HOME>/clarel.db``."""
    url = url or os.environ.get("CLAREL_DB_URL") or f"sqlite:///{clarel_home() / 'clarel.db'}"
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]  # psycopg 3 is the installed driver
    if not (url.startswith("sqlite") or url.startswith("postgresql")):
        raise JobsError(f"unsupported database URL {url!r}: use sqlite:///path/to/file.db or "
                        "postgresql://user@host:port/dbname (set CLAREL_DB_URL)")
    return url


def open_store(url: str | None = None, *, migrate: bool = True) -> Store:
    """Open the run store, creating or upgrading its schema first.

    Args:
        url: SQLAlchemy URL; default ``CLAREL_DB_URL`` or the SQLite file under ``clarel_home()``.
        migrate: run the Alembic migrations (under a lock) before returning. Worker child
            processes pass False: their parent already did.

    Raises:
        JobsError: the URL is unsupported or the database cannot be reached.
    """
    url = database_url(url)
    if url.startswith("sqlite:///") and ":memory:" not in url:
        Path(url.removeprefix("sqlite:///")).expanduser().parent.mkdir(parents=True, exist_ok=True)
    db = Database(url)
    if migrate:
        migrate_schema(db)
    return Store(db)


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(_MIGRATIONS)).get_current_head()


def migrate_schema(db: Database) -> str:
    """Bring the schema to the newest Alembic revision; safe to call from many processes at once.

    SQLite: an exclusive ``flock`` on ``<db>.migrate.lock``; PostgreSQL: an advisory lock.
    Returns the revision now in the database.
    """
    from alembic import command
    from alembic.config import Config

    head = head_revision()
    try:
        if _current_revision(db) == head:
            return head
        with _migration_lock(db):
            with db.engine.connect() as conn:
                if db.engine.dialect.name == "postgresql":
                    conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
                    conn.commit()
                try:
                    cfg = Config()
                    cfg.set_main_option("script_location", str(_MIGRATIONS))
                    cfg.attributes["connection"] = conn
                    command.upgrade(cfg, "head")
                    conn.commit()
                finally:
                    if db.engine.dialect.name == "postgresql":
                        conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_MIGRATION_LOCK})
                        conn.commit()
    except JobsError:
        raise
    except Exception as e:
        raise JobsError(f"cannot open or migrate the run store at {_redact(db.url)}: {e}") from e
    log.info("run store schema at revision %s (%s)", head, _redact(db.url))
    return head


def _current_revision(db: Database) -> str | None:
    with db.engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


@contextmanager
def _migration_lock(db: Database):
    if not db.is_sqlite or ":memory:" in db.url:
        yield
        return
    path = Path(db.url.removeprefix("sqlite:///")).expanduser()
    with open(str(path) + ".migrate.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _redact(url: str) -> str:
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


class Store(QueueMixin, ResultsMixin, GroupsMixin):
    """The run store (see the module docstring). Every method returns frozen dataclasses."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @property
    def url(self) -> str:
        return self.db.url

    def close(self) -> None:
        self.db.dispose()

    # ------------------------------------------------------------ submission
    def submit_config(
        self,
        config: RunConfig | dict[str, Any] | str,
        *,
        name: str | None = None,
        preset: str | None = None,
        validate: bool = True,
        group_id: int | None = None,
        setting: dict[str, Any] | None = None,
        seed: int | None = None,
        phase: int = 0,
        priority: int = 0,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    ) -> int:
        """Queue one job from a full config (a `RunConfig`, its dict or its JSON).

        Args:
            validate: check the config now and raise `ConfigError`; False queues it as is (the
                worker then fails it with the same message, e.g. for configs edited by hand).

        Returns:
            The new job id.
        """
        if isinstance(config, RunConfig):
            cfg_dict = config.to_dict()
        elif isinstance(config, str):
            cfg_dict = json.loads(config) if not validate else RunConfig.from_json(config).to_dict()
        else:
            cfg_dict = dict(config)
        if validate:
            cfg = RunConfig.from_dict(cfg_dict)
            cfg.validate()
            cfg_dict = cfg.to_dict()
        if max_attempts < 1:
            raise JobsError(f"max_attempts={max_attempts} must be at least 1")
        with self.db.session() as s:
            return self._insert_job(s, cfg_dict, name=name, preset=preset, group_id=group_id, setting=setting,
                                    seed=seed, phase=phase, priority=priority, max_attempts=max_attempts)

    @staticmethod
    def _insert_job(s: Session, cfg_dict: dict[str, Any], *, name: str | None, preset: str | None,
                    group_id: int | None, setting: dict[str, Any] | None, seed: int | None, phase: int,
                    priority: int, max_attempts: int) -> int:
        cfg_name = cfg_dict.get("name") if isinstance(cfg_dict.get("name"), str) else "run"
        optim = cfg_dict.get("optim") if isinstance(cfg_dict.get("optim"), dict) else {}
        if seed is None:
            seed = optim.get("seed", 0) if isinstance(optim.get("seed", 0), int) else 0
        row = JobRow(
            name=(name or cfg_name)[:200],
            preset=preset if preset is not None else str(cfg_dict.get("preset", "")),
            config_json=json.dumps(cfg_dict, sort_keys=True),
            state=JobState.QUEUED.value,
            priority=priority,
            attempts=0,
            max_attempts=max_attempts,
            cancel_requested=False,
            created_at=utcnow(),
            progress=0.0,
            progress_message="queued",
            group_id=group_id,
            setting=setting or {},
            seed=seed,
            phase=phase,
        )
        s.add(row)
        s.flush()
        return row.id

    def submit(
        self,
        preset: str,
        overrides: dict[str, Any] | Sequence[str] | None = None,
        *,
        name: str | None = None,
        sweep: dict[str, Sequence[Any]] | None = None,
        seeds: int = 1,
        priority: int = 0,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    ) -> list[int]:
        """Queue a preset with overrides; a ``sweep`` grid or ``seeds > 1`` makes one group.

        Args:
            preset: a name from `clarel.config.list_presets()`.
            overrides: dotted overrides, ``{"optim.steps": 200}`` or ``["optim.steps=200"]``.
            sweep: ``{"loss.kappa": [0.0, 0.5, 1.0]}``; every combination of the lists is a job.
            seeds: jobs per sweep point, with ``optim.seed`` = 0 .. seeds-1 (plus any seed override).

        Returns:
            The new job ids, in submission order.

        Raises:
            ConfigError: unknown preset, key or bad value (nothing is queued then).
        """
        if not sweep and seeds == 1:
            cfg = get_preset(preset, list(overrides) if isinstance(overrides, tuple) else overrides)
            return [self.submit_config(cfg, name=name, preset=preset, priority=priority, max_attempts=max_attempts)]
        return self.submit_group(preset, overrides, name=name, sweep=sweep, seeds=seeds,
                                 priority=priority, max_attempts=max_attempts)

    # ------------------------------------------------------------ reads
    def get_job(self, job_id: int) -> JobInfo:
        """One job. Raises `JobNotFound` naming the id."""
        with self.db.session(write=False) as s:
            row = s.get(JobRow, job_id)
            if row is None:
                raise JobNotFound(f"no job with id {job_id}; `python -m jobs list` shows the ids")
            return self._info(row, self._finals(s, [job_id]).get(job_id, {}))

    def list_jobs(self, limit: int = 200, *, state: str | None = None, group_id: int | None = None) -> list[JobInfo]:
        """The newest jobs first (optionally only one state or one group)."""
        with self.db.session(write=False) as s:
            q = select(JobRow).order_by(JobRow.id.desc()).limit(limit)
            if state is not None:
                q = q.where(JobRow.state == JobState(state.upper()).value)
            if group_id is not None:
                q = q.where(JobRow.group_id == group_id)
            rows = list(s.scalars(q))
            finals = self._finals(s, [r.id for r in rows])
            return [self._info(r, finals.get(r.id, {})) for r in rows]

    def count_by_state(self) -> dict[str, int]:
        with self.db.session(write=False) as s:
            counts = dict(s.execute(select(JobRow.state, func.count()).group_by(JobRow.state)).all())
        return {st.value: int(counts.get(st.value, 0)) for st in JobState}

    @staticmethod
    def _finals(s: Session, ids: list[int]) -> dict[int, dict[str, float]]:
        out: dict[int, dict[str, float]] = {}
        if not ids:
            return out
        for job_id, key, value in s.execute(
            select(FinalMetricRow.job_id, FinalMetricRow.key, FinalMetricRow.value).where(FinalMetricRow.job_id.in_(ids))
        ):
            out.setdefault(job_id, {})[key] = float(value)
        return out

    @staticmethod
    def _info(row: JobRow, finals: dict[str, float]) -> JobInfo:
        try:
            config = json.loads(row.config_json)
        except json.JSONDecodeError:
            config = {}
        return JobInfo(
            id=row.id, name=row.name, preset=row.preset, config=config, state=row.state,
            attempts=row.attempts, max_attempts=row.max_attempts, created_at=aware(row.created_at),
            started_at=aware(row.started_at), finished_at=aware(row.finished_at), worker_id=row.worker_id,
            progress=float(row.progress or 0.0), progress_message=row.progress_message or "",
            eta_seconds=row.eta_seconds, error_summary=row.error_summary, error_traceback=row.error_traceback,
            device=row.device, group_id=row.group_id, run_dir=row.run_dir, final_metrics=dict(finals),
            cancel_requested=bool(row.cancel_requested), lease_expires_at=aware(row.lease_expires_at),
            heartbeat_at=aware(row.heartbeat_at), setting=dict(row.setting or {}), seed=row.seed,
            priority=row.priority, phase=row.phase,
        )

    # ------------------------------------------------------------ user actions
    def cancel(self, job_id: int) -> str:
        """Cancel a job: a queued one at once, a running one by asking its worker (done within 5 s).

        Returns the job's state name afterwards (terminal jobs are left as they are).
        """
        with self.db.session() as s:
            row = s.get(JobRow, job_id)
            if row is None:
                raise JobNotFound(f"no job with id {job_id}; `python -m jobs list` shows the ids")
            if row.state == JobState.QUEUED.value:
                row.state = JobState.CANCELLED.value
                row.finished_at = utcnow()
                row.progress_message = "cancelled before it started"
                self._log(s, job_id, "cancelled while queued")
            elif row.state == JobState.RUNNING.value and not row.cancel_requested:
                row.cancel_requested = True
                row.progress_message = "cancel requested"
                self._log(s, job_id, "cancel requested")
            return row.state

    def retry(self, job_id: int) -> int:
        """Queue a FAILED or CANCELLED job again (same id, attempts reset; resumes from its checkpoint).

        Returns the job id. Raises `JobsError` for jobs in other states.
        """
        with self.db.session() as s:
            row = s.get(JobRow, job_id)
            if row is None:
                raise JobNotFound(f"no job with id {job_id}; `python -m jobs list` shows the ids")
            if row.state not in (JobState.FAILED.value, JobState.CANCELLED.value):
                raise JobsError(f"job {job_id} is {row.state}; only FAILED or CANCELLED jobs can be retried")
            row.state = JobState.QUEUED.value
            row.attempts = 0
            row.cancel_requested = False
            row.finished_at = None
            row.worker_id = None
            row.lease_expires_at = None
            row.error_summary = None
            row.error_traceback = None
            row.progress_message = "queued again (retry)"
            self._log(s, job_id, "retried by the user")
            return row.id
