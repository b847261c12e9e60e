"""The store contract suite: every test runs against SQLite and a real PostgreSQL server."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import time
from pathlib import Path

import numpy as np
import pytest

from clarel.errors import ConfigError
from clarel.results import AlphaCurve, EvalResult
from jobs import JobNotFound, JobsError, JobState, UmapProjection, open_store
from jobs.store import head_revision


def _finish(store, job_id: int, metrics: dict[str, float], worker: str = "w") -> None:
    """Run a claimed job to SUCCEEDED through the queue API (no training)."""
    store.save_final_metrics(job_id, metrics)
    assert store.finish(job_id, worker, JobState.SUCCEEDED)


def _claim_all(store, worker: str = "w") -> list[int]:
    ids = []
    while (c := store.claim(worker, lease_s=60)) is not None:
        ids.append(c.job_id)
    return ids


def _eval_result(rng: np.random.Generator, n: int = 40, c: int = 7, d: int = 5) -> EvalResult:
    curve = AlphaCurve(values=np.linspace(0, 0.045, 10), u=rng.random(10), s=rng.random(10), h=rng.random(10))
    dist = rng.random((n, c)).astype(np.float32)
    dist[:, -1] = np.inf  # a class outside the protocol
    protos = rng.normal(size=(c, d)).astype(np.float32)
    protos[-1] = np.nan
    return EvalResult(
        metrics={"u": 0.4, "s": 0.6, "H": 0.48, "zsl_top1": 0.5, "alpha": 0.02, "ausuc": float("nan")},
        protocol="test", distances=dist, labels=rng.integers(0, c - 1, n), image_index=np.arange(n) * 3,
        seen_mask=np.array([True] * 4 + [False] * 3), class_mask=np.array([True] * 6 + [False]),
        class_names=[f"class {i}" for i in range(c)], alpha_curve=curve, sweep_curve=curve, stacking_curve=curve,
        image_embeddings=rng.normal(size=(n, d)).astype(np.float32),
        text_embeddings=rng.normal(size=(n + 5, d)).astype(np.float32), text_index=np.arange(n + 5),
        prototypes=protos)


# ---------------------------------------------------------------- schema
def test_open_store_migrates_once_and_is_idempotent(db_url):
    s1 = open_store(db_url)
    s1.submit("tiny")
    s2 = open_store(db_url)  # second open: schema already at head, data kept
    assert [j.id for j in s2.list_jobs()] == [1]
    from jobs.store import _current_revision

    assert _current_revision(s2.db) == head_revision() == "0001"
    s1.close()
    s2.close()


def test_bad_url_is_a_clear_error():
    with pytest.raises(JobsError, match="unsupported database URL"):
        open_store("mysql://x@y/z")


# ---------------------------------------------------------------- submission and reads
def test_submit_list_get(store):
    ids = store.submit("tiny", {"optim.steps": 7}, name="first")
    assert len(ids) == 1
    job = store.get_job(ids[0])
    assert (job.name, job.preset, job.state, job.attempts, job.max_attempts) == ("first", "tiny", "QUEUED", 0, 3)
    assert job.config["optim"]["steps"] == 7 and job.config["preset"] == "tiny"
    assert job.created_at.tzinfo is not None and job.final_metrics == {} and job.group_id is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        job.state = "RUNNING"  # type: ignore[misc]
    store.submit("tiny", ["optim.steps=3"])
    assert [j.id for j in store.list_jobs()] == [2, 1]
    assert [j.id for j in store.list_jobs(limit=1)] == [2]
    assert store.count_by_state()["QUEUED"] == 2


def test_bad_submissions_queue_nothing(store):
    with pytest.raises(ConfigError, match="unknown preset"):
        store.submit("nope")
    with pytest.raises(ConfigError, match="loss.kappa"):
        store.submit("tiny", {"loss.kappa": 3})
    with pytest.raises(ConfigError, match="unknown config key"):
        store.submit("tiny", sweep={"loss.kapa": [0, 1]})
    assert store.list_jobs() == []
    with pytest.raises(JobNotFound, match="no job with id 42"):
        store.get_job(42)


def test_submit_config_unvalidated_is_queued_as_is(store):
    job_id = store.submit_config({"name": "broken", "loss": {"kappa": 9}}, validate=False)
    assert store.get_job(job_id).config == {"name": "broken", "loss": {"kappa": 9}}


# ---------------------------------------------------------------- queue
def test_claim_order_priority_and_empty(store):
    a, b = store.submit("tiny")[0], store.submit("tiny")[0]
    c = store.submit("tiny", priority=5)[0]
    claims = [store.claim("w1", device="cpu", lease_s=30) for _ in range(3)]
    assert [x.job_id for x in claims] == [c, a, b]
    assert store.claim("w1") is None
    job = store.get_job(c)
    assert (job.state, job.attempts, job.worker_id, job.device) == ("RUNNING", 1, "w1", "cpu")
    assert job.run_dir and Path(job.run_dir).name.startswith(f"job-{c:05d}-")
    assert Path(job.run_dir).name.endswith("-tiny")
    assert json.loads(claims[0].config_json)["optim"]["steps"] == 30


def test_heartbeat_extends_lease_and_reports_cancel(store):
    job_id = store.submit("tiny")[0]
    store.claim("w1", lease_s=1)
    before = store.get_job(job_id).lease_expires_at
    hb = store.heartbeat(job_id, "w1", lease_s=60)
    assert hb.still_owned and not hb.cancel_requested
    assert store.get_job(job_id).lease_expires_at > before
    assert not store.heartbeat(job_id, "intruder").still_owned
    assert store.cancel(job_id) == "RUNNING"
    assert store.heartbeat(job_id, "w1").cancel_requested and store.cancel_requested(job_id)
    assert store.finish(job_id, "w1", JobState.CANCELLED)
    assert store.get_job(job_id).state == "CANCELLED"


def test_recover_expired_requeues_then_fails_when_attempts_are_used(store):
    job_id = store.submit("tiny", max_attempts=2)[0]
    store.claim("dead1", lease_s=0.05)
    store.add_metrics(job_id, [(1, "loss", 2.0)])
    time.sleep(0.1)
    assert store.recover_expired() == [job_id]
    assert store.recover_expired() == []  # exactly once
    job = store.get_job(job_id)
    assert (job.state, job.attempts, job.worker_id) == ("QUEUED", 1, None)
    assert not store.heartbeat(job_id, "dead1").still_owned  # the dead worker lost it
    store.claim("dead2", lease_s=0.05)
    time.sleep(0.1)
    store.recover_expired()
    job = store.get_job(job_id)
    assert job.state == "FAILED" and "attempts are used up" in job.error_summary and "dead2" in job.error_summary
    assert store.metric_history(job_id)["loss"][1].tolist() == [2.0]  # metrics written before are kept
    assert "recovered" in store.log_tail(job_id)


def test_recover_expired_honours_a_pending_cancel(store):
    job_id = store.submit("tiny")[0]
    store.claim("dead", lease_s=0.05)
    store.cancel(job_id)
    time.sleep(0.1)
    store.recover_expired()
    assert store.get_job(job_id).state == "CANCELLED"


def test_fail_or_retry_and_requeue(store):
    job_id = store.submit("tiny", max_attempts=2)[0]
    store.claim("w")
    assert store.fail_or_retry(job_id, "w", summary="OSError: disk", traceback="tb", retryable=True) == "QUEUED"
    store.claim("w")
    assert store.fail_or_retry(job_id, "w", summary="OSError: disk", traceback="tb", retryable=True) == "FAILED"
    job = store.get_job(job_id)
    assert job.error_summary == "OSError: disk" and job.error_traceback == "tb" and job.attempts == 2
    other = store.submit("tiny")[0]
    store.claim("w")
    assert store.fail_or_retry(other, "w", summary="ConfigError: bad", traceback=None, retryable=False) == "FAILED"
    assert store.get_job(other).attempts == 1
    third = store.submit("tiny")[0]
    store.claim("w")
    assert store.requeue(third, "w", "shutdown")
    assert (store.get_job(third).state, store.get_job(third).attempts) == ("QUEUED", 0)  # no attempt spent
    assert store.fail_or_retry(third, "w", summary="x", traceback=None, retryable=True) is None  # not owned


def test_cancel_queued_and_retry(store):
    job_id = store.submit("tiny")[0]
    assert store.cancel(job_id) == "CANCELLED"
    assert store.cancel(job_id) == "CANCELLED"  # idempotent
    assert store.claim("w") is None
    assert store.retry(job_id) == job_id
    job = store.get_job(job_id)
    assert (job.state, job.attempts, job.error_summary) == ("QUEUED", 0, None)
    with pytest.raises(JobsError, match="only FAILED or CANCELLED"):
        store.retry(job_id)
    with pytest.raises(JobNotFound):
        store.cancel(999)


def test_finish_requires_ownership(store):
    job_id = store.submit("tiny")[0]
    store.claim("w1")
    assert not store.finish(job_id, "w2", JobState.SUCCEEDED)
    assert store.finish(job_id, "w1", JobState.SUCCEEDED)
    assert not store.finish(job_id, "w1", JobState.FAILED)  # already terminal
    job = store.get_job(job_id)
    assert job.state == "SUCCEEDED" and job.progress == 1.0 and job.finished_at is not None


# ---------------------------------------------------------------- results
def test_progress_metrics_and_logs(store):
    job_id = store.submit("tiny")[0]
    store.update_progress(job_id, 0.25, "train step 3", eta_seconds=12.5)
    job = store.get_job(job_id)
    assert (job.progress, job.progress_message, job.eta_seconds) == (0.25, "train step 3", 12.5)
    assert store.add_metrics(job_id, [(1, "loss", 3.0), (2, "loss", 2.5), (2, "lr", 0.1), (3, "loss", float("nan"))]) == 3
    store.add_metrics(job_id, [(2, "loss", 2.4)])  # a resumed attempt rewrites step 2
    hist = store.metric_history(job_id)
    assert hist["loss"][0].tolist() == [1, 2] and hist["loss"][1].tolist() == [3.0, 2.4]
    assert hist["lr"][0].dtype == np.int64
    store.append_log(job_id, [f"line {i}" for i in range(300)])
    tail = store.log_tail(job_id, lines=5)
    assert tail.splitlines() == [f"line {i}" for i in range(295, 300)]


def test_final_metrics_and_artifacts(store, tmp_path):
    job_id = store.submit("tiny")[0]
    store.save_final_metrics(job_id, {"u": 0.5, "H": 0.25, "bad": float("inf"), "name": "x"})
    assert store.get_job(job_id).final_metrics == {"u": 0.5, "H": 0.25}
    ckpt = tmp_path / "checkpoint.pt"
    ckpt.write_bytes(b"abc" * 1000)
    info = store.save_artifact(job_id, "checkpoint", ckpt)
    import hashlib

    assert info.sha256 == hashlib.sha256(b"abc" * 1000).hexdigest() and info.size_bytes == 3000
    store.save_artifact(job_id, "checkpoint", ckpt)  # replaced, not duplicated
    assert [a.kind for a in store.artifacts(job_id)] == ["checkpoint"]
    with pytest.raises(JobsError, match="does not exist"):
        store.save_artifact(job_id, "vocab", tmp_path / "missing.json")


def test_eval_arrays_embeddings_and_umap_round_trip(store):
    rng = np.random.default_rng(0)
    job_id = store.submit("tiny")[0]
    assert store.eval_arrays(job_id) is None and store.embeddings(job_id) is None and store.umap(job_id) is None
    ev = _eval_result(rng)
    store.save_evaluation(job_id, ev)
    got = store.eval_arrays(job_id)
    assert got.distances.dtype == np.float32 and np.array_equal(got.distances, ev.distances)
    assert np.isinf(got.distances[:, -1]).all()
    for name in ("labels", "image_index", "seen_mask", "class_mask"):
        assert np.array_equal(getattr(got, name), getattr(ev, name)), name
    assert got.seen_mask.dtype == bool and got.class_names == ev.class_names and got.alpha == 0.02
    assert np.allclose(got.alpha_curve.h, ev.alpha_curve.h) and np.allclose(got.sweep_curve.values, ev.sweep_curve.values)
    assert np.isnan(got.metrics["ausuc"]) and got.metrics["H"] == 0.48

    text_labels = rng.integers(0, 6, len(ev.text_index))
    store.save_embeddings(job_id, "image", ev.image_embeddings, ev.image_index, ev.labels)
    store.save_embeddings(job_id, "text", ev.text_embeddings, ev.text_index, text_labels)
    store.save_embeddings(job_id, "prototype", ev.prototypes, np.arange(7), np.arange(7))
    emb = store.embeddings(job_id)
    assert np.array_equal(emb.image, ev.image_embeddings) and np.array_equal(emb.text_index, ev.text_index)
    assert np.array_equal(emb.prototypes, ev.prototypes, equal_nan=True) and np.array_equal(emb.text_labels, text_labels)
    with pytest.raises(JobsError, match="must agree"):
        store.save_embeddings(job_id, "image", ev.image_embeddings, ev.image_index[:3], ev.labels)

    proj = UmapProjection(coords=rng.normal(size=(6, 2)).astype(np.float32),
                          modality=np.array(["image", "image", "text", "text", "prototype", "prototype"]),
                          item_index=np.arange(6), labels=np.array([0, 1, 0, 1, 0, 1]), params={"n_neighbors": 5})
    store.save_umap(job_id, proj)
    back = store.umap(job_id)
    assert np.array_equal(back.coords, proj.coords) and back.modality.tolist() == proj.modality.tolist()
    assert back.params == {"n_neighbors": 5}


def test_export_json_and_csv(store):
    job_id = store.submit("tiny")[0]
    store.add_metrics(job_id, [(1, "loss", 2.0), (2, "loss", 1.5)])
    store.save_final_metrics(job_id, {"H": 0.3})
    doc = json.loads(store.export_job(job_id, "json"))
    assert doc["id"] == job_id and doc["final_metrics"] == {"H": 0.3}
    assert doc["metric_history"]["loss"] == {"steps": [1, 2], "values": [2.0, 1.5]}
    rows = list(csv.DictReader(io.StringIO(store.export_job(job_id, "csv"))))
    assert [(r["kind"], r["key"], r["step"]) for r in rows] == [("final", "H", ""), ("history", "loss", "1"),
                                                                ("history", "loss", "2")]
    with pytest.raises(JobsError, match="json or csv"):
        store.export_job(job_id, "xml")


# ---------------------------------------------------------------- workers
def test_workers_alive_and_dead(store):
    store.register_worker("w-alive", device="cuda:0")
    store.register_worker("w-stopped")
    store.worker_heartbeat("w-alive", state="busy", current_job_id=3)
    store.worker_heartbeat("w-stopped", state="stopped")
    by_id = {w.worker_id: w for w in store.workers()}
    assert by_id["w-alive"].alive and by_id["w-alive"].current_job_id == 3 and by_id["w-alive"].device == "cuda:0"
    assert not by_id["w-stopped"].alive
    time.sleep(0.05)
    assert not any(w.alive for w in store.workers(alive_after_s=0.01))
    assert store.workers(max_age_s=0.01) == []


# ---------------------------------------------------------------- groups, sweeps, reproduction
def test_sweep_and_seeds_group_with_aggregates(store):
    ids = store.submit("tiny", {"optim.steps": 3}, sweep={"loss.kappa": [0.0, 1.0]}, seeds=3)
    assert len(ids) == 6
    jobs = [store.get_job(i) for i in ids]
    group_id = jobs[0].group_id
    assert group_id is not None and all(j.group_id == group_id for j in jobs)
    assert [(j.setting["loss.kappa"], j.seed) for j in jobs] == [(0.0, 0), (0.0, 1), (0.0, 2), (1.0, 0), (1.0, 1), (1.0, 2)]
    assert [j.config["optim"]["seed"] for j in jobs] == [0, 1, 2, 0, 1, 2]
    assert [j.config["loss"]["kappa"] for j in jobs] == [0.0] * 3 + [1.0] * 3
    values = {i: 0.1 * n for n, i in enumerate(ids)}
    for _ in ids[:5]:  # the last job stays queued
        c = store.claim("w")
        _finish(store, c.job_id, {"u": values[c.job_id], "s": 0.5, "H": 0.4, "zsl_top1": 0.3})
    summary = store.group_summary(group_id)
    assert summary.group.kind == "sweep" and summary.group.state_counts == {"SUCCEEDED": 5, "QUEUED": 1}
    rows = {r.setting["loss.kappa"]: r for r in summary.rows}
    us0 = [values[i] for i in ids[:3]]
    assert rows[0.0].n_succeeded == 3 and rows[0.0].mean["u"] == pytest.approx(np.mean(us0))
    assert rows[0.0].std["u"] == pytest.approx(np.std(us0, ddof=1))
    assert rows[1.0].n_succeeded == 2 and rows[1.0].std["s"] == 0.0
    assert store.groups()[0].id == group_id


def test_reproduction_phases(store):
    group_id = store.reproduce("synthbirds", seeds=2, overrides={"optim.steps": 5})
    phase1 = store.list_jobs(group_id=group_id)
    assert len(phase1) == 2
    assert all(j.config["data"]["protocol"] == "val" and j.config["eval"]["alpha_selection"] == "none" for j in phase1)
    assert all(j.config["optim"]["steps"] == 5 for j in phase1)
    assert store.advance_reproduction(group_id) == []  # not finished yet
    for best in (0.01, 0.02):
        c = store.claim("w")
        _finish(store, c.job_id, {"u": 0.3, "s": 0.6, "H": 0.4, "zsl_top1": 0.5, "alpha_best": best})
    report = store.reproduction_report(group_id)  # queues phase 2
    assert report.phase == 2 and report.alpha_star == pytest.approx(0.015) and not report.done
    phase2 = [j for j in store.list_jobs(group_id=group_id) if j.phase == 2]
    assert len(phase2) == 2 and store.advance_reproduction(group_id) == []  # queued exactly once
    for j in phase2:
        assert j.config["data"]["protocol"] == "test" and j.config["eval"]["alpha"] == pytest.approx(0.015)
        assert j.config["eval"]["alpha_selection"] == "fixed" and j.config["optim"]["steps"] == 5
    for u in (0.5, 0.7):
        c = store.claim("w")
        _finish(store, c.job_id, {"u": u, "s": 0.5, "H": 0.55, "zsl_top1": 0.6})
    report = store.reproduction_report(group_id)
    assert report.done
    rows = {r[0]: r for r in report.rows}
    assert rows["u"][1] == pytest.approx(60.0) and rows["u"][2] == pytest.approx(np.std([50, 70], ddof=1))
    assert rows["u"][3] == 2 and rows["u"][4] is None  # SynthBirds: no paper numbers


def test_reproduction_stops_when_no_validation_run_succeeds(store):
    group_id = store.reproduce("cub", seeds=1)
    c = store.claim("w")
    store.fail_or_retry(c.job_id, "w", summary="DatasetError: missing", traceback=None, retryable=False)
    report = store.reproduction_report(group_id)
    assert report.phase == -1 and "no validation run succeeded" in report.message
    assert dict((r[0], r[4]) for r in report.rows)["H"] == 55.9  # the paper's CUB number is shown
    with pytest.raises(JobsError, match="choose one of"):
        store.reproduce("imagenet")


def test_tables_match_the_migrations(store):
    """The ORM tables in jobs/db.py and the Alembic migrations describe the same schema."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from jobs.db import Base

    with store.db.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
