"""Reliability with real worker processes and real (tiny) training: several workers share a queue
and run every job exactly once; a worker killed with SIGKILL mid-job is recovered by another."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections import Counter

import pytest

from jobs import open_store
from tests.jobs.conftest import wait_for

pytestmark = pytest.mark.slow


def start_worker(url: str, worker_id: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "jobs.worker", "--db", url, "--poll", "0.2",
                             "--worker-id", worker_id, "--threads", "1", *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def stop(procs: list[subprocess.Popen]) -> list[int | None]:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    codes = []
    for p in procs:
        try:
            codes.append(p.wait(60))
        except subprocess.TimeoutExpired:
            p.kill()
            codes.append(None)
    return codes


def test_three_workers_run_twenty_jobs_exactly_once(db_url, tiny_overrides):
    store = open_store(db_url)
    ids = store.submit("tiny", tiny_overrides, seeds=20)
    workers = [start_worker(db_url, f"w{i}") for i in range(3)]
    violations: list[str] = []
    try:
        def all_done() -> bool:
            jobs = store.list_jobs()  # this test process is a reader next to the three workers
            if len(jobs) != 20:
                violations.append(f"saw {len(jobs)} jobs")
            for j in jobs:
                if j.state == "RUNNING" and j.worker_id not in ("w0", "w1", "w2"):
                    violations.append(f"job {j.id} RUNNING on {j.worker_id!r}")
                if j.state == "SUCCEEDED" and "H" not in j.final_metrics:
                    violations.append(f"job {j.id} SUCCEEDED without final metrics")
                if j.state in ("FAILED", "CANCELLED"):
                    violations.append(f"job {j.id} {j.state}: {j.error_summary}")
            return all(j.state == "SUCCEEDED" for j in jobs) or any(j.state == "FAILED" for j in jobs)

        wait_for(all_done, 600, interval=0.5, what="20 jobs to finish")
    finally:
        codes = stop(workers)
    assert violations == []
    jobs = store.list_jobs()
    assert sorted(j.id for j in jobs) == sorted(ids) and all(j.state == "SUCCEEDED" for j in jobs)
    assert all(j.attempts == 1 for j in jobs)
    claims = Counter(j.id for j in jobs for line in store.log_tail(j.id).splitlines() if "claimed by" in line)
    assert claims == Counter({i: 1 for i in ids})  # each job claimed exactly once
    assert {j.worker_id for j in jobs} <= {"w0", "w1", "w2"}
    assert codes == [0, 0, 0]
    summary = store.group_summary(jobs[0].group_id)
    assert summary.rows[0].n_succeeded == 20 and set(summary.rows[0].mean) >= {"u", "s", "H", "zsl_top1"}
    store.close()


def test_kill_9_worker_mid_job_is_recovered_by_another(db_url, tiny_overrides):
    store = open_store(db_url)
    job_id = store.submit("tiny", tiny_overrides + ["optim.steps=40", "optim.checkpoint_every=10"])[0]
    first = start_worker(db_url, "doomed", "--lease", "2")
    second = None
    try:
        def past_checkpoint():
            hist = store.metric_history(job_id)
            return "loss" in hist and hist["loss"][0].max() >= 12 and hist

        before = wait_for(past_checkpoint, 180, interval=0.1, what="the first attempt to pass step 12")
        first.kill()  # SIGKILL: no cleanup, the lease simply stops being renewed
        first.wait(10)
        assert store.get_job(job_id).state == "RUNNING"  # nobody knows yet
        second = start_worker(db_url, "rescuer", "--lease", "2")
        wait_for(lambda: store.get_job(job_id).state in ("SUCCEEDED", "FAILED"), 240, interval=0.3,
                 what="the job to be recovered and finished")
    finally:
        stop([p for p in (first, second) if p is not None])
    job = store.get_job(job_id)
    assert job.state == "SUCCEEDED", (job.error_summary, store.log_tail(job_id))
    assert job.attempts == 2 and job.worker_id == "rescuer"
    assert "recovered: worker doomed stopped heartbeating" in store.log_tail(job_id)
    steps_before = set(before["loss"][0].tolist())
    steps_after = store.metric_history(job_id)["loss"][0].tolist()
    assert steps_before <= set(steps_after)  # metrics written by the killed attempt are kept
    assert steps_after == list(range(1, 41))
    store.close()
