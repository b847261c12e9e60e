"""The job worker: claims queued jobs and runs each in a child process.

    python -m jobs.worker [--device cuda:0] [--once] [--poll S] [--lease S]

The worker heartbeats its job's lease, polls for cancellation (honoured within 5 s), records
failures (retrying infrastructure failures a bounded number of times, never `ClarelError`s such
as a bad config or dataset), recovers jobs whose worker died, and on SIGTERM/SIGINT asks its job
to checkpoint and requeues it. Several workers may share a host (one per GPU: ``--device``
or ``CUDA_VISIBLE_DEVICES``) or a PostgreSQL store across hosts.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing as mp
import os
import signal
import socket
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.exc import DBAPIError

from jobs.db import JobState
from jobs.records import Claim
from jobs.store import DEFAULT_LEASE_S, Store

log = logging.getLogger(__name__)

CANCEL_POLL_S = 0.5  # how often a running job's cancel flag is read
CANCEL_GRACE_S = 2.0  # after asking the child to stop, terminate it if it is still running
STOP_GRACE_S = 120.0
DB_RETRY_S = 5.0  # wait before retrying when the store is unreachable  # on SIGTERM: time the job gets to checkpoint before it is killed


@dataclass
class _Outcome:
    kind: str  # "ok" | "error" | "interrupted" | "crashed" | "cancelled" | "lost" | "timeout"
    detail: dict


def _signal_name(code: int) -> str:
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


class Worker:
    """Claims and runs jobs one at a time.

    Args:
        store: the run store (`jobs.open_store()`).
        worker_id: a name unique among live workers; default ``<host>-<pid>-<random>``.
        device: passed to jobs whose ``optim.device`` is ``auto`` (e.g. ``cuda:1``).
        lease_s: a claimed job's lease; heartbeats renew it every ``lease_s / 3``.
        runs_root: parent folder of run directories (default ``clarel_home()/runs``).
        threads: CPU threads per job (OMP/MKL/torch); None keeps the libraries' default. Set it
            when several workers share a host's cores.
    """

    def __init__(self, store: Store, worker_id: str | None = None, device: str | None = None, *,
                 lease_s: float = DEFAULT_LEASE_S, runs_root: Path | None = None,
                 stop_grace_s: float = STOP_GRACE_S, threads: int | None = None) -> None:
        self.store = store
        self.worker_id = worker_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.device = device
        self.lease_s = float(lease_s)
        self.heartbeat_s = max(0.2, self.lease_s / 3)
        self.runs_root = runs_root
        self.stop_grace_s = stop_grace_s
        self.threads = threads
        self._stopping = False
        self._registered = False

    # ------------------------------------------------------------ public API
    def run_one(self, timeout_s: float | None = None) -> int | None:
        """Claim and run one queued job to completion (in a child process).

        Args:
            timeout_s: fail the job (without retry) if it runs longer than this.

        Returns:
            The job id, or None when the queue was empty.
        """
        self._ensure_registered()
        self.store.recover_expired()
        claim = self.store.claim(self.worker_id, device=self.device, lease_s=self.lease_s, runs_root=self.runs_root)
        if claim is None:
            return None
        log.info("job %d (%s): attempt %d/%d", claim.job_id, claim.name, claim.attempts, claim.max_attempts)
        try:
            self.store.worker_heartbeat(self.worker_id, state="busy", current_job_id=claim.job_id)
            outcome = self._supervise(claim, timeout_s)
            self._record(claim, outcome)
        finally:
            self.store.worker_heartbeat(self.worker_id, state="idle")
        return claim.job_id

    def run(self, *, once: bool = False, poll_s: float = 2.0, max_jobs: int | None = None) -> int:
        """Serve the queue until stopped (SIGTERM/SIGINT, ``once``, or ``max_jobs`` jobs). Returns jobs run."""
        self._install_signal_handlers()
        self._ensure_registered()
        log.info("worker %s serving %s (device %s)", self.worker_id, self.store.url.split("@")[-1], self.device or "auto")
        done = 0
        try:
            while not self._stopping:
                try:
                    job_id = self.run_one()
                except DBAPIError as e:  # database restarting or unreachable: wait and try again
                    log.warning("store unavailable (%s); retrying in %.0f s", str(e).splitlines()[0], DB_RETRY_S)
                    self._sleep(DB_RETRY_S)
                    continue
                if job_id is not None:
                    done += 1
                    if once or (max_jobs is not None and done >= max_jobs):
                        break
                    continue
                if once:
                    break
                try:
                    self.store.worker_heartbeat(self.worker_id, state="idle")
                    self.store.advance_reproductions()
                except DBAPIError as e:
                    log.warning("store unavailable (%s)", str(e).splitlines()[0])
                self._sleep(poll_s)
        finally:
            try:
                self.store.worker_heartbeat(self.worker_id, state="stopped")
            except DBAPIError:
                pass
            log.info("worker %s stopped after %d job(s)", self.worker_id, done)
        return done

    def request_stop(self) -> None:
        """Stop after the current job (which is asked to checkpoint and is requeued)."""
        self._stopping = True

    # ------------------------------------------------------------ internals
    def _ensure_registered(self) -> None:
        if not self._registered:
            self.store.register_worker(self.worker_id, device=self.device)
            self._registered = True

    def _install_signal_handlers(self) -> None:
        def handler(signum, _frame):  # noqa: ANN001
            log.warning("worker %s got %s: stopping after the current job is checkpointed",
                        self.worker_id, signal.Signals(signum).name)
            self._stopping = True

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def _sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not self._stopping and time.monotonic() < end:
            time.sleep(min(0.2, end - time.monotonic()))

    def _child_env(self) -> dict[str, str]:
        from jobs.runner import numba_cache_dir

        cache = numba_cache_dir()
        cache.mkdir(parents=True, exist_ok=True)
        env = {"NUMBA_CACHE_DIR": str(cache)}
        if self.threads:
            env.update(OMP_NUM_THREADS=str(self.threads), MKL_NUM_THREADS=str(self.threads),
                       NUMBA_NUM_THREADS=str(self.threads))
        return env

    def _supervise(self, claim: Claim, timeout_s: float | None) -> _Outcome:
        """Start the child, heartbeat, watch for cancel/stop/timeout, and collect its outcome."""
        from jobs.runner import child_main

        ctx = mp.get_context("spawn")
        stop_event = ctx.Event()
        receiver, sender = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=child_main, name=f"clarel-job-{claim.job_id}",
                           args=(self.store.url, claim.job_id, claim.config_json, claim.run_dir, self.device,
                                 stop_event, sender, self._child_env()))
        proc.start()
        sender.close()
        started = last_hb = last_cancel_check = time.monotonic()
        message = None
        reason = None  # why the worker stopped the child: "cancelled" | "stopping" | "lost" | "timeout"
        kill_at = None
        while True:
            if message is None and receiver.poll(0.1):
                try:
                    message = receiver.recv()
                except (EOFError, OSError):
                    message = ("eof", {})
            elif message is not None:
                time.sleep(0.05)
            if not proc.is_alive() and (message is not None or not receiver.poll(0)):
                break
            now = time.monotonic()
            if now - last_hb >= self.heartbeat_s:
                last_hb = now
                try:
                    hb = self.store.heartbeat(claim.job_id, self.worker_id, lease_s=self.lease_s)
                    self.store.worker_heartbeat(self.worker_id, state="busy", current_job_id=claim.job_id)
                except DBAPIError as e:  # keep the job running; a lost lease shows at the next heartbeat
                    log.warning("job %d: heartbeat failed (%s)", claim.job_id, str(e).splitlines()[0])
                    continue
                if not hb.still_owned and reason is None:
                    reason, kill_at = "lost", now  # recovered elsewhere: stop at once
                elif hb.cancel_requested and reason is None:
                    reason, kill_at = "cancelled", now + CANCEL_GRACE_S
                    stop_event.set()
            elif reason is None and now - last_cancel_check >= CANCEL_POLL_S:
                last_cancel_check = now
                try:
                    cancel = self.store.cancel_requested(claim.job_id)
                except DBAPIError:
                    cancel = False
                if cancel:
                    log.info("job %d: cancel requested", claim.job_id)
                    reason, kill_at = "cancelled", now + CANCEL_GRACE_S
                    stop_event.set()
            if reason is None and self._stopping:
                reason, kill_at = "stopping", now + self.stop_grace_s
                stop_event.set()
            if reason is None and timeout_s is not None and now - started > timeout_s:
                reason, kill_at = "timeout", now
            if kill_at is not None and now >= kill_at and proc.is_alive():
                log.warning("job %d: terminating its child process (%s)", claim.job_id, reason)
                proc.terminate()
                proc.join(1.0)
                if proc.is_alive():
                    proc.kill()
                kill_at = None
        proc.join()
        receiver.close()
        code = proc.exitcode
        kind, detail = message if message and message[0] != "eof" else ("crashed", {})
        if reason == "lost":
            return _Outcome("lost", {})
        if kind == "ok":
            return _Outcome("ok", detail)  # finished before the cancel/stop took effect: keep it
        if reason in ("cancelled", "timeout"):
            return _Outcome(reason, {"limit": timeout_s})
        if reason == "stopping" and kind == "interrupted":
            return _Outcome("interrupted", detail)
        if kind == "crashed":
            how = f"was killed by {_signal_name(code)}" if code is not None and code < 0 else f"exited with code {code}"
            hint = " (likely out of memory: the kernel's OOM killer sends SIGKILL)" if code == -signal.SIGKILL else ""
            return _Outcome("crashed", {"summary": f"the job's process {how}{hint}", "traceback": None,
                                        "retryable": True})
        if kind == "interrupted":  # stopped without being asked (parent gone?): try again
            return _Outcome("error", {**detail, "retryable": True})
        return _Outcome(kind, detail)

    def _record(self, claim: Claim, outcome: _Outcome) -> None:
        job_id, s = claim.job_id, self.store
        if outcome.kind == "ok":
            s.finish(job_id, self.worker_id, JobState.SUCCEEDED)
            log.info("job %d SUCCEEDED", job_id)
            if s.get_job(job_id).group_id is not None:
                s.advance_reproductions()
        elif outcome.kind == "cancelled":
            s.finish(job_id, self.worker_id, JobState.CANCELLED, message="cancelled")
            log.info("job %d CANCELLED", job_id)
        elif outcome.kind == "interrupted":
            s.requeue(job_id, self.worker_id, "worker shut down; resumes from its checkpoint")
            log.info("job %d requeued (worker shutting down)", job_id)
        elif outcome.kind == "timeout":
            s.finish(job_id, self.worker_id, JobState.FAILED,
                     summary=f"the job ran longer than its {outcome.detail['limit']:g} s limit and was stopped")
        elif outcome.kind == "lost":
            log.warning("job %d: lease lost (recovered by another worker); result discarded", job_id)
        else:
            state = s.fail_or_retry(job_id, self.worker_id, summary=outcome.detail.get("summary", "unknown error"),
                                    traceback=outcome.detail.get("traceback"),
                                    retryable=bool(outcome.detail.get("retryable", True)))
            log.warning("job %d attempt %d failed (%s): %s", job_id, claim.attempts, state,
                        outcome.detail.get("summary"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.worker", description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default=None, help="device for jobs whose optim.device is auto, e.g. cuda:0 or cpu")
    parser.add_argument("--once", action="store_true", help="run at most one job, then exit")
    parser.add_argument("--poll", type=float, default=2.0, metavar="S", help="seconds between polls of an empty queue")
    parser.add_argument("--lease", type=float, default=DEFAULT_LEASE_S, metavar="S",
                        help="job lease; a job whose worker is silent this long is recovered")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads per job (default: the libraries' own)")
    parser.add_argument("--max-jobs", type=int, default=None, help="exit after this many jobs")
    parser.add_argument("--worker-id", default=None, help="name shown in the app (default host-pid-random)")
    parser.add_argument("--db", default=None, help="database URL (default $CLAREL_DB_URL or the SQLite file)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    from jobs.records import JobsError
    from jobs.store import open_store

    try:
        store = open_store(args.db)
    except JobsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    worker = Worker(store, worker_id=args.worker_id, device=args.device, lease_s=args.lease, threads=args.threads)
    worker.run(once=args.once, poll_s=args.poll, max_jobs=args.max_jobs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
