"""Fixtures of the Gradio tests: a run store seeded by a real `tiny` run and a live server.

The server is `python -m app.gradio_app` in a subprocess on a free localhost port, with its own
CLAREL_HOME and SQLite store, so the tests see exactly what a user's browser would.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class GradioEnv:
    home: Path  # CLAREL_HOME of the server
    db_url: str  # its run store
    job_id: int  # the SUCCEEDED tiny run in the store
    run_dir: Path  # that run's folder
    doomed_run: Path  # a copy of it, offered with --run, whose checkpoint a test deletes
    dataset_root: Path  # the small SynthBirds folder the run trained on


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def gradio_stack(tmp_path_factory):
    """A store seeded with a real `tiny` run and a live `python -m app.gradio_app` serving it.

    The server starts before the seeding run so that its start-up overlaps with training; it lists
    runs from the store on each request, so the run shows up once finished.
    """
    import torch

    from clarel.data.synth import generate_synthbirds
    from jobs import open_store
    from jobs.worker import Worker

    torch.set_num_threads(1)
    home = tmp_path_factory.mktemp("gradio-home")
    db_url = f"sqlite:///{home / 'clarel.db'}"
    root = generate_synthbirds(home / "datasets" / "synthbirds-small", classes=12, images_per_class=10, size=32)
    store = open_store(db_url)  # creates the schema before the server opens it
    doomed = home / "doomed-run"
    proc, url, log_path = _start_server(home, db_url, doomed, tmp_path_factory.mktemp("gradio-log"))
    try:
        old_home = os.environ.get("CLAREL_HOME")
        os.environ["CLAREL_HOME"] = str(home)  # the worker writes run folders under it; restored below
        try:
            [job_id] = store.submit("tiny", {"data.root": str(root)}, name="gradio-tiny")
            ran = Worker(store).run_one(timeout_s=300)
        finally:
            if old_home is None:
                os.environ.pop("CLAREL_HOME", None)
            else:
                os.environ["CLAREL_HOME"] = old_home
        assert ran == job_id
        job = store.get_job(job_id)
        assert job.state == "SUCCEEDED", f"seeding run failed: {job.error_summary}\n{job.error_traceback}"
        run_dir = Path(job.run_dir)
        shutil.copytree(run_dir, doomed)
        env = GradioEnv(home=home, db_url=db_url, job_id=job_id, run_dir=run_dir, doomed_run=doomed,
                        dataset_root=root)
        _wait_until_serving(proc, url, log_path)
        yield env, url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _start_server(home: Path, db_url: str, extra_run: Path, log_dir: Path):
    port = _free_port()
    log_path = log_dir / "server.log"
    env = dict(os.environ, CLAREL_HOME=str(home), CLAREL_DB_URL=db_url, HF_HUB_OFFLINE="1",
               GRADIO_ANALYTICS_ENABLED="False", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.pop("CLAREL_GRADIO_OPEN_CLIP", None)
    cmd = [sys.executable, "-m", "app.gradio_app", "--host", "127.0.0.1", "--port", str(port),
           "--open-clip", "ViT-S-32/random", "--open-clip", "ViT-B-32/laion2b_s34b_b79k",
           "--run", str(extra_run)]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    return proc, f"http://127.0.0.1:{port}", log_path


def _wait_until_serving(proc: subprocess.Popen, url: str, log_path: Path, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            pytest.fail(f"gradio server exited with {proc.returncode}:\n{log_path.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(url + "/", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"gradio server did not answer within {timeout_s} s:\n{log_path.read_text()[-4000:]}")
        time.sleep(0.3)


@pytest.fixture(scope="session")
def gradio_env(gradio_stack) -> GradioEnv:
    return gradio_stack[0]


@pytest.fixture(scope="session")
def gradio_url(gradio_stack) -> str:
    return gradio_stack[1]


@pytest.fixture(scope="session")
def gradio_client(gradio_url):
    from gradio_client import Client

    return Client(gradio_url, verbose=False)
