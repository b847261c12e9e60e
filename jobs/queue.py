"""The queue side of the store: atomic claims, leases and heartbeats, failure/retry bookkeeping,
recovery of jobs whose worker died, and the workers table. Mixed into `jobs.store.Store`.
"""

from __future__ import annotations

import logging
import os
import socket
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import case, delete, func, select, update
from sqlalchemy.orm import Session

from clarel.paths import clarel_home
from jobs.db import JobRow, JobState, LogRow, WorkerRow, aware, utcnow
from jobs.records import Claim, Heartbeat, WorkerInfo

log = logging.getLogger(__name__)

DEFAULT_LEASE_S = 60.0
WORKER_ALIVE_S = 30.0  # a worker whose last heartbeat is older than this is shown as dead


def add_log_line(s: Session, job_id: int, line: str) -> None:
    """Append a ``[jobs]`` line to a job's log inside an open session."""
    s.add(LogRow(job_id=job_id, created_at=utcnow(), line=f"[jobs] {line}"))


def slug(name: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9_.=-]+", "-", name).strip("-")[:80] or "job"


class QueueMixin:
    """Methods of `Store` for workers (``self.db`` is the `jobs.db.Database`)."""

    _log = staticmethod(add_log_line)

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

