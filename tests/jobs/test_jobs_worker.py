"""The worker with real training (`clarel.train` on a tiny generated SynthBirds) in real child
processes: results stored, bad configs and datasets fail clearly, cancel, SIGTERM and crashes."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from clarel.config import RunConfig, get_preset
from clarel.errors import DatasetError
from jobs import open_store
from jobs.worker import Worker
from tests.jobs.conftest import wait_for

pytestmark = pytest.mark.slow
LONG = ["optim.steps=100000"]  # runs until stopped


def start_worker(url: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "jobs.worker", "--db", url, "--poll", "0.2", "--threads", "1", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def stop_worker(proc: subprocess.Popen) -> str:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.stdout.read() if proc.stdout else ""


def training(store, job_id: int):
    """The job is RUNNING and its training loop has started (so it polls should_stop)."""
    job = store.get_job(job_id)
    return job if job.state == "RUNNING" and job.eta_seconds is not None else None


def job_child_pids(pid: int) -> list[int]:
    """The worker's job child processes (not multiprocessing's resource tracker)."""
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            except OSError:
                continue
            if b"spawn_main" in cmdline:
                out.append(int(child))
    return out


def test_run_one_stores_every_result(db_url, tiny_overrides):
    store = open_store(db_url)
    with_umap = db_url.startswith("sqlite")  # UMAP costs ~15 s per process: once is enough
    overrides = tiny_overrides + (["eval.umap_cap=40"] if with_umap else [])
    job_id = store.submit("tiny", overrides)[0]
    worker = Worker(store, worker_id="test-worker", device="cpu", threads=1)
    assert worker.run_one() == job_id
    assert worker.run_one() is None  # queue empty
    job = store.get_job(job_id)
    assert job.state == "SUCCEEDED", (job.error_summary, job.error_traceback, store.log_tail(job_id))
    assert job.attempts == 1 and job.progress == 1.0 and job.device == "cpu" and job.worker_id == "test-worker"
    for key in ("u", "s", "H", "zsl_top1", "alpha_best"):
        assert 0.0 <= job.final_metrics[key] <= 1.0, key
    hist = store.metric_history(job_id)
    assert hist["loss"][0].tolist() == [1, 2]
    ev = store.eval_arrays(job_id)
    n_classes = len(ev.class_names)
    assert ev.distances.dtype == np.float32 and ev.distances.shape == (len(ev.labels), n_classes)
    assert ev.seen_mask.shape == (n_classes,) and len(ev.alpha_curve.values) == 10
    emb = store.embeddings(job_id)
    assert emb.image.shape[0] == len(ev.labels) and emb.prototypes.shape[0] == n_classes
    assert emb.text.shape[0] == len(emb.text_index) > 0 and emb.image.shape[1] == emb.text.shape[1] == 32
    proj = store.umap(job_id)
    if with_umap:
        assert proj.coords.shape == (len(proj.modality), 2) and np.isfinite(proj.coords).all()
        assert set(proj.modality.tolist()) == {"image", "text", "prototype"}
        assert (proj.modality == "image").sum() <= 40 and (proj.modality == "text").sum() <= 40
    else:
        assert proj is None
    ckpt = next(a for a in store.artifacts(job_id) if a.kind == "checkpoint")
    assert ckpt.sha256 == hashlib.sha256(Path(ckpt.path).read_bytes()).hexdigest()
    assert Path(ckpt.path).parent == Path(job.run_dir)
    assert "clarel.train" in store.log_tail(job_id)
    assert store.workers()[0].worker_id == "test-worker"
    store.close()


def test_invalid_config_fails_clearly_and_the_worker_keeps_serving(tmp_path, tiny_overrides):
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    bad = get_preset("tiny", tiny_overrides).to_dict()
    bad["loss"]["kappa"] = 5.0
    bad_id = store.submit_config(bad, validate=False)
    good_id = store.submit("tiny", tiny_overrides)[0]
    worker = Worker(store, device="cpu", threads=1)
    assert worker.run_one() == bad_id
    assert worker.run_one() == good_id
    bad_job = store.get_job(bad_id)
    assert bad_job.state == "FAILED" and bad_job.attempts == 1  # a ConfigError is not retried
    assert bad_job.error_summary.startswith("ConfigError: loss.kappa=5.0 is outside [0.0, 1.0]")
    assert "Traceback" in bad_job.error_traceback
    assert store.get_job(good_id).state == "SUCCEEDED"
    store.close()


def test_missing_and_corrupt_datasets_fail_with_the_data_layers_message(tmp_path, tiny_dataset, tiny_overrides):
    import shutil

    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    corrupt = tmp_path / "corrupt"
    shutil.copytree(tiny_dataset, corrupt)
    images_txt = next(corrupt.rglob("images.txt"))
    images_txt.write_text("1 not/a/real/image.jpg\nthis line is garbage\n")
    missing = tmp_path / "no-such-cub"
    expected = []
    for overrides in (["data.dataset=cub", f"data.root={missing}"], [f"data.root={corrupt}"]):
        cfg = get_preset("tiny", tiny_overrides + overrides)
        with pytest.raises(DatasetError) as err:
            from clarel.data import ensure_dataset

            ensure_dataset(RunConfig.from_dict(cfg.to_dict()).data)
        expected.append((store.submit_config(cfg), str(err.value)))
    worker = Worker(store, device="cpu", threads=1)
    while worker.run_one() is not None:
        pass
    for job_id, message in expected:
        job = store.get_job(job_id)
        assert job.state == "FAILED" and job.attempts == 1
        assert job.error_summary == f"DatasetError: {message}"
    store.close()


def test_sigterm_checkpoints_and_requeues_the_job(tmp_path, tiny_overrides):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = open_store(url)
    job_id = store.submit("tiny", tiny_overrides + LONG)[0]
    proc = start_worker(url)
    try:
        wait_for(lambda: training(store, job_id), 90, what="training to start")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        output = stop_worker(proc)
    job = store.get_job(job_id)
    assert job.state == "QUEUED" and job.attempts == 0, output
    assert (Path(job.run_dir) / "checkpoint.pt").is_file()  # clarel checkpointed on should_stop
    assert "requeued" in store.log_tail(job_id)
    assert [w.state for w in store.workers()] == ["stopped"]
    store.cancel(job_id)
    store.close()


def test_a_crashed_child_is_retried_and_cancel_takes_under_5_seconds(tmp_path, tiny_overrides):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = open_store(url)
    job_id = store.submit("tiny", tiny_overrides + LONG)[0]
    proc = start_worker(url)
    try:
        wait_for(lambda: training(store, job_id), 90, what="training to start")
        children = wait_for(lambda: job_child_pids(proc.pid), 10, what="the job's child process")
        os.kill(children[0], signal.SIGKILL)  # what the kernel's OOM killer does
        job = wait_for(lambda: (j := store.get_job(job_id)).attempts == 2 and j.state == "RUNNING" and j, 60,
                       what="the second attempt")
        assert "killed by SIGKILL" in job.error_summary and "out of memory" in job.error_summary
        assert proc.poll() is None  # the worker survived
        wait_for(lambda: training(store, job_id), 90, what="the second attempt's training")
        t0 = time.monotonic()
        assert store.cancel(job_id) == "RUNNING"
        wait_for(lambda: store.get_job(job_id).state == "CANCELLED", 10, interval=0.05, what="CANCELLED")
        assert time.monotonic() - t0 < 5.0
        assert proc.poll() is None and job_child_pids(proc.pid) == []  # child gone, worker serving
    finally:
        stop_worker(proc)
    store.close()
