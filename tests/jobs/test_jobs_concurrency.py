"""Concurrency at the store level, with real processes, on SQLite and PostgreSQL: every job is
claimed exactly once, concurrent first opens migrate safely, readers see consistent state, and
the database is never left locked."""

from __future__ import annotations

import multiprocessing as mp
import sqlite3
import time
from collections import Counter

from jobs import open_store
from jobs.store import head_revision
from tests.jobs import jobs_procs

N_JOBS = 200
N_PROCS = 4


def test_concurrent_claims_each_job_exactly_once(db_url):
    store = open_store(db_url)
    ids = store.submit("tiny", sweep={"optim.steps": list(range(1, N_JOBS + 1))})
    assert len(ids) == N_JOBS
    ctx = mp.get_context("spawn")
    start_at = time.time() + 3.0  # all claimers start together, after their imports
    with ctx.Pool(N_PROCS + 1) as pool:
        reader = pool.apply_async(jobs_procs.watch, (db_url, N_JOBS, 60.0))
        results = pool.starmap(jobs_procs.claim_and_finish, [(db_url, f"w{i}", start_at) for i in range(N_PROCS)])
        reads, violations = reader.get(timeout=120)
    claimed = [j for ids_, _ in results for j in ids_]
    errors = [e for _, errs in results for e in errs]
    assert errors == []
    assert Counter(claimed) == Counter(ids)  # each job exactly once
    assert violations == [] and reads > 0
    jobs = store.list_jobs(limit=N_JOBS)
    assert all(j.state == "SUCCEEDED" and j.attempts == 1 for j in jobs)
    store.close()


def test_concurrent_first_open_migrates_once(db_url):
    ctx = mp.get_context("spawn")
    start_at = time.time() + 3.0
    with ctx.Pool(N_PROCS) as pool:
        revisions = pool.starmap(jobs_procs.open_at, [(db_url, start_at)] * N_PROCS)
    assert revisions == [head_revision()] * N_PROCS
    store = open_store(db_url)
    assert store.submit("tiny") == [1]
    store.close()


def test_sqlite_is_never_left_locked_after_a_writer_is_killed(tmp_path):
    """kill -9 a process in the middle of its write transactions: the next writer gets the lock at once."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = open_store(url)
    store.submit("tiny", sweep={"optim.steps": list(range(1, 2001))})
    ctx = mp.get_context("spawn")
    proc = ctx.Process(target=jobs_procs.claim_and_finish, args=(url, "doomed", 0.0))
    proc.start()
    deadline = time.time() + 60
    while store.count_by_state()["SUCCEEDED"] < 20 and time.time() < deadline:
        time.sleep(0.05)
    proc.kill()
    proc.join()
    conn = sqlite3.connect(tmp_path / "store.db", timeout=0, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")  # raises "database is locked" if anything still held the lock
    conn.execute("COMMIT")
    conn.close()
    counts = store.count_by_state()
    assert counts["SUCCEEDED"] >= 20 and counts["RUNNING"] <= 1
    assert sum(counts.values()) == 2000
    store.close()
