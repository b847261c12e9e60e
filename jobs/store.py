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
import socket
from collections.abc import Sequence
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import case, delete, func, inspect, select, text, update
from sqlalchemy.orm import Session

from clarel.config import RunConfig, get_preset
from clarel.paths import clarel_home
from jobs.db import Database, FinalMetricRow, JobRow, JobState, LogRow, WorkerRow, aware, utcnow
from jobs.groups import GroupsMixin
from jobs.records import Claim, Heartbeat, JobInfo, JobNotFound, JobsError, WorkerInfo
from jobs.results_store import ResultsMixin

log = logging.getLogger(__name__)

_MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_PG_MIGRATION_LOCK = 7_204_117_001  # pg_advisory_lock key of the schema migration
DEFAULT_LEASE_S = 60.0
DEFAULT_MAX_ATTEMPTS = 3
WORKER_ALIVE_S = 30.0  # a worker whose last heartbeat is older than this is shown as dead


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


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "-", name).strip("-")[:80] or "job"


class Store(ResultsMixin, GroupsMixin):
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

    # ------------------------------------------------------------ queue (workers)
    def claim(self, worker_id: str, *, device: str | None = None, lease_s: float = DEFAULT_LEASE_S,
              runs_root: Path | None = None) -> Claim | None:
        """Atomically take the next queued job (highest priority, then oldest) for ``worker_id``.

        One statement does it: ``UPDATE jobs ... WHERE id = (SELECT ... LIMIT 1 FOR UPDATE SKIP
        LOCKED) RETURNING ...``. On SQLite the transaction is ``BEGIN IMMEDIATE`` (the FOR UPDATE
        clause is not rendered there), on PostgreSQL concurrent claimers skip each other's rows.
        Returns None when the queue is empty.
        """
        now = utcnow()
        expires = now + timedelta(seconds=lease_s)
        next_id = (
            select(JobRow.id)
            .where(JobRow.state == JobState.QUEUED.value)
            .order_by(JobRow.priority.desc(), JobRow.id)
            .limit(1)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        stmt = (
            update(JobRow)
            .where(JobRow.id == next_id, JobRow.state == JobState.QUEUED.value)
            .values(state=JobState.RUNNING.value, attempts=JobRow.attempts + 1, worker_id=worker_id,
                    started_at=now, finished_at=None, lease_expires_at=expires, heartbeat_at=now,
                    device=device, progress=0.0, eta_seconds=None, progress_message="starting")
            .returning(JobRow.id, JobRow.name, JobRow.config_json, JobRow.attempts, JobRow.max_attempts,
                       JobRow.created_at)
            .execution_options(synchronize_session=False)
        )
        with self.db.session() as s:
            got = s.execute(stmt).first()
            if got is None:
                return None
            job_id, name, config_json, attempts, max_attempts, created_at = got
            # The submission time keeps run folders of different databases sharing one home apart.
            folder = f"job-{job_id:05d}-{created_at:%Y%m%d-%H%M%S-%f}-{slug(name)}"
            run_dir = str((runs_root or clarel_home() / "runs") / folder)
            s.execute(update(JobRow).where(JobRow.id == job_id).values(run_dir=run_dir)
                      .execution_options(synchronize_session=False))
            self._log(s, job_id, f"attempt {attempts}/{max_attempts} claimed by {worker_id}"
                                 + (f" on {device}" if device else ""))
        return Claim(job_id=job_id, name=name, config_json=config_json, attempts=attempts,
                     max_attempts=max_attempts, run_dir=run_dir, lease_expires_at=aware(expires))

    def heartbeat(self, job_id: int, worker_id: str, *, lease_s: float = DEFAULT_LEASE_S) -> Heartbeat:
        """Extend a running job's lease; tells the worker whether it still owns it and if cancel was asked."""
        now = utcnow()
        stmt = (
            update(JobRow)
            .where(JobRow.id == job_id, JobRow.worker_id == worker_id, JobRow.state == JobState.RUNNING.value)
            .values(lease_expires_at=now + timedelta(seconds=lease_s), heartbeat_at=now)
            .returning(JobRow.cancel_requested)
            .execution_options(synchronize_session=False)
        )
        with self.db.session() as s:
            got = s.execute(stmt).first()
        if got is None:
            return Heartbeat(still_owned=False, cancel_requested=False)
        return Heartbeat(still_owned=True, cancel_requested=bool(got[0]))

    def cancel_requested(self, job_id: int) -> bool:
        """A cheap read the worker polls between heartbeats."""
        with self.db.session(write=False) as s:
            return bool(s.scalar(select(JobRow.cancel_requested).where(JobRow.id == job_id)))

    def finish(self, job_id: int, worker_id: str, state: JobState | str, *, summary: str | None = None,
               traceback: str | None = None, message: str | None = None) -> bool:
        """Move a job this worker runs to a terminal state. Returns False if it no longer owns it."""
        state = JobState(state)
        assert state.terminal, state
        values: dict[str, Any] = {"state": state.value, "finished_at": utcnow(), "lease_expires_at": None}
        if state is JobState.SUCCEEDED:
            values.update(progress=1.0, progress_message=message or "done", eta_seconds=0.0,
                          error_summary=None, error_traceback=None)
        else:
            values.update(progress_message=message or state.value.lower(), eta_seconds=None)
            if summary is not None:
                values.update(error_summary=summary, error_traceback=traceback)
        with self.db.session() as s:
            n = s.execute(
                update(JobRow)
                .where(JobRow.id == job_id, JobRow.worker_id == worker_id, JobRow.state == JobState.RUNNING.value)
                .values(**values).execution_options(synchronize_session=False)
            ).rowcount
            if n:
                self._log(s, job_id, f"{state.value}" + (f": {summary}" if summary else ""))
        return bool(n)

    def fail_or_retry(self, job_id: int, worker_id: str, *, summary: str, traceback: str | None,
                      retryable: bool) -> str | None:
        """Record a failed attempt: requeue if ``retryable`` and attempts remain, else FAILED.

        Returns the new state name (None when this worker no longer owns the job).
        """
        with self.db.session() as s:
            row = s.get(JobRow, job_id)
            if row is None or row.worker_id != worker_id or row.state != JobState.RUNNING.value:
                return None
            row.error_summary = summary
            row.error_traceback = traceback
            row.lease_expires_at = None
            row.eta_seconds = None
            if retryable and row.attempts < row.max_attempts:
                row.state = JobState.QUEUED.value
                row.worker_id = None
                row.progress_message = f"attempt {row.attempts} failed; queued again"
                self._log(s, job_id, f"attempt {row.attempts}/{row.max_attempts} failed, will retry: {summary}")
            else:
                row.state = JobState.FAILED.value
                row.finished_at = utcnow()
                why = "" if not retryable else f" (all {row.max_attempts} attempts used)"
                row.progress_message = "failed" + why
                self._log(s, job_id, f"FAILED{why}: {summary}")
            return row.state

    def requeue(self, job_id: int, worker_id: str, reason: str) -> bool:
        """Give a running job back to the queue without spending an attempt (graceful shutdown)."""
        with self.db.session() as s:
            n = s.execute(
                update(JobRow)
                .where(JobRow.id == job_id, JobRow.worker_id == worker_id, JobRow.state == JobState.RUNNING.value)
                .values(state=JobState.QUEUED.value, worker_id=None, lease_expires_at=None,
                        attempts=case((JobRow.attempts > 0, JobRow.attempts - 1), else_=0),
                        progress_message=f"requeued: {reason}")
                .execution_options(synchronize_session=False)
            ).rowcount
            if n:
                self._log(s, job_id, f"requeued by {worker_id}: {reason}")
        return bool(n)

    def recover_expired(self) -> list[int]:
        """Requeue (or fail, once attempts are used up) running jobs whose lease expired.

        A lease expires when its worker stopped heartbeating (killed, host lost). Any worker may
        call this; each expired job is recovered exactly once.
        """
        now = utcnow()
        expired = (JobRow.state == JobState.RUNNING.value) & (JobRow.lease_expires_at < now)
        with self.db.session(write=False) as s:
            if s.scalar(select(func.count()).select_from(JobRow).where(expired)) == 0:
                return []
        recovered: list[int] = []
        with self.db.session() as s:
            rows = list(s.scalars(select(JobRow).where(expired).with_for_update(skip_locked=True)))
            for row in rows:
                who = row.worker_id or "?"
                reason = f"worker {who} stopped heartbeating (lease expired {row.lease_expires_at:%H:%M:%S} UTC)"
                row.lease_expires_at = None
                if row.cancel_requested:
                    row.state = JobState.CANCELLED.value
                    row.finished_at = now
                    row.progress_message = "cancelled (its worker had died)"
                elif row.attempts >= row.max_attempts:
                    row.state = JobState.FAILED.value
                    row.finished_at = now
                    row.error_summary = f"{reason}; all {row.max_attempts} attempts are used up"
                    row.progress_message = "failed: worker lost"
                else:
                    row.state = JobState.QUEUED.value
                    row.worker_id = None
                    row.progress_message = f"requeued after attempt {row.attempts}: worker lost"
                self._log(s, row.id, f"recovered: {reason} -> {row.state}")
                recovered.append(row.id)
        if recovered:
            log.warning("recovered jobs with expired leases: %s", recovered)
        return recovered

    # ------------------------------------------------------------ workers
    def register_worker(self, worker_id: str, *, device: str | None = None) -> None:
        now = utcnow()
        with self.db.session() as s:
            row = s.get(WorkerRow, worker_id)
            if row is None:
                s.add(WorkerRow(worker_id=worker_id, host=socket.gethostname(), pid=os.getpid(), device=device,
                                started_at=now, last_heartbeat=now, current_job_id=None, state="idle"))
            else:
                row.host, row.pid, row.device = socket.gethostname(), os.getpid(), device
                row.started_at = row.last_heartbeat = now
                row.state, row.current_job_id = "idle", None

    def worker_heartbeat(self, worker_id: str, *, state: str = "idle", current_job_id: int | None = None) -> None:
        with self.db.session() as s:
            s.execute(update(WorkerRow).where(WorkerRow.worker_id == worker_id)
                      .values(last_heartbeat=utcnow(), state=state, current_job_id=current_job_id)
                      .execution_options(synchronize_session=False))

    def workers(self, max_age_s: float | None = None, *, alive_after_s: float = WORKER_ALIVE_S) -> list[WorkerInfo]:
        """Known workers, most recent heartbeat first.

        Args:
            max_age_s: only workers heard from in the last ``max_age_s`` seconds (None: all).
            alive_after_s: a worker is ``alive`` if not stopped and heard from this recently.
        """
        now = utcnow()
        with self.db.session(write=False) as s:
            q = select(WorkerRow).order_by(WorkerRow.last_heartbeat.desc())
            if max_age_s is not None:
                q = q.where(WorkerRow.last_heartbeat >= now - timedelta(seconds=max_age_s))
            rows = list(s.scalars(q))
        return [
            WorkerInfo(worker_id=r.worker_id, host=r.host, pid=r.pid, device=r.device,
                       last_heartbeat=aware(r.last_heartbeat), current_job_id=r.current_job_id,
                       alive=r.state != "stopped" and (now - r.last_heartbeat).total_seconds() <= alive_after_s,
                       state=r.state, started_at=aware(r.started_at))
            for r in rows
        ]

    def forget_stopped_workers(self) -> int:
        with self.db.session() as s:
            return s.execute(delete(WorkerRow).where(WorkerRow.state == "stopped")).rowcount

    # ------------------------------------------------------------ helpers
    @staticmethod
    def _log(s: Session, job_id: int, line: str) -> None:
        s.add(LogRow(job_id=job_id, created_at=utcnow(), line=f"[jobs] {line}"))
