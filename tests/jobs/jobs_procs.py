"""Process bodies for the concurrency tests (module-level so ``spawn`` children can import them)."""

from __future__ import annotations

import time


def claim_and_finish(url: str, worker_id: str, start_at: float) -> tuple[list[int], list[str]]:
    """Claim jobs until the queue is empty, finishing each; returns (job ids, errors)."""
    from jobs import JobState, open_store

    store = open_store(url, migrate=False)
    time.sleep(max(0.0, start_at - time.time()))
    ids: list[int] = []
    errors: list[str] = []
    while True:
        try:
            claim = store.claim(worker_id, lease_s=60)
            if claim is None:
                break
            store.add_metrics(claim.job_id, [(1, "loss", 1.0), (2, "loss", 0.5)])
            store.save_final_metrics(claim.job_id, {"H": 0.5})
            if not store.finish(claim.job_id, worker_id, JobState.SUCCEEDED):
                errors.append(f"finish of {claim.job_id} refused")
            ids.append(claim.job_id)
        except Exception as e:  # noqa: BLE001 - counted and reported by the test
            errors.append(f"{type(e).__name__}: {e}")
    store.close()
    return ids, errors


def open_at(url: str, start_at: float) -> str:
    """Open (and migrate) the store at the same moment as the other processes."""
    from jobs import open_store
    from jobs.store import _current_revision

    time.sleep(max(0.0, start_at - time.time()))
    store = open_store(url)
    rev = _current_revision(store.db)
    store.close()
    return rev


def watch(url: str, total: int, seconds: float) -> tuple[int, list[str]]:
    """Read the store repeatedly and check invariants a consistent snapshot must satisfy."""
    from jobs import open_store

    store = open_store(url, migrate=False)
    violations: list[str] = []
    reads = 0
    end = time.time() + seconds
    while time.time() < end:
        jobs = store.list_jobs(limit=total + 10)
        reads += 1
        if len(jobs) != total:
            violations.append(f"saw {len(jobs)} jobs, expected {total}")
        for j in jobs:
            if j.state == "SUCCEEDED" and "H" not in j.final_metrics:
                violations.append(f"job {j.id} SUCCEEDED without its final metrics")
            if j.state == "RUNNING" and not j.worker_id:
                violations.append(f"job {j.id} RUNNING without a worker")
        if all(j.state == "SUCCEEDED" for j in jobs):
            break
    store.close()
    return reads, violations[:20]
