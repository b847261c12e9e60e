"""Fixtures of the job runner tests: a store per backend (SQLite file, real PostgreSQL) and a
tiny generated SynthBirds.

PostgreSQL: ``CLAREL_TEST_PG_URL`` when set; otherwise a private cluster is started on
127.0.0.1 (free port) with ``initdb``/``pg_ctl`` in a temporary folder, as the ``postgres`` user
when running as root (initdb refuses root). When neither works the PostgreSQL tests are skipped
and the test summary says so loudly.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
import warnings
from pathlib import Path

import pytest

_PG_SKIP_REASON: list[str] = []


def _find_pg_bin(name: str) -> str | None:
    for cand in [shutil.which(name), f"/usr/local/bin/{name}", *sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))]:
        if cand and os.path.exists(cand):
            return cand
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_user_prefix() -> list[str] | None:
    """Command prefix to run initdb/pg_ctl unprivileged; [] when not root; None when impossible."""
    if os.geteuid() != 0:
        return []
    import pwd

    try:
        pwd.getpwnam("postgres")
    except KeyError:
        if shutil.which("useradd") is None:
            return None
        subprocess.run(["useradd", "--system", "--no-create-home", "postgres"], check=False, capture_output=True)
    if shutil.which("runuser"):
        return ["runuser", "-u", "postgres", "--"]
    if shutil.which("setpriv"):
        import pwd as _pwd

        pw = _pwd.getpwnam("postgres")
        return ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups"]
    return None


@pytest.fixture(scope="session")
def pg_admin_url():
    """URL of a PostgreSQL server for the tests (its ``postgres`` database), or None."""
    url = os.environ.get("CLAREL_TEST_PG_URL")
    if url:
        yield url
        return
    initdb, pg_ctl = _find_pg_bin("initdb"), _find_pg_bin("pg_ctl")
    prefix = _as_user_prefix()
    if not initdb or not pg_ctl or prefix is None:
        _PG_SKIP_REASON.append("PostgreSQL tests SKIPPED: CLAREL_TEST_PG_URL is unset and no initdb/pg_ctl "
                               "(apt-get install postgresql) or no unprivileged user to run them")
        warnings.warn(_PG_SKIP_REASON[-1], stacklevel=1)
        yield None
        return
    tmp = Path(tempfile.mkdtemp(prefix="clarel-pg-"))
    data = tmp / "data"
    if prefix:
        shutil.chown(tmp, "postgres", "postgres")
    port = _free_port()
    run = lambda *cmd: subprocess.run([*prefix, *cmd], capture_output=True, text=True, timeout=120)  # noqa: E731
    r = run(initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")
    if r.returncode != 0:
        _PG_SKIP_REASON.append(f"PostgreSQL tests SKIPPED: initdb failed: {r.stderr.strip()[-500:]}")
        warnings.warn(_PG_SKIP_REASON[-1], stacklevel=1)
        yield None
        return
    opts = f"-p {port} -k {tmp} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c max_connections=200"
    r = run(pg_ctl, "-D", str(data), "-o", opts, "-l", str(tmp / "pg.log"), "-w", "-t", "60", "start")
    if r.returncode != 0:
        log_text = (tmp / "pg.log").read_text() if (tmp / "pg.log").exists() else ""
        _PG_SKIP_REASON.append(f"PostgreSQL tests SKIPPED: pg_ctl start failed: {r.stderr.strip()[-300:]} {log_text[-300:]}")
        warnings.warn(_PG_SKIP_REASON[-1], stacklevel=1)
        yield None
        return
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        run(pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(tmp, ignore_errors=True)


def pytest_terminal_summary(terminalreporter):
    for reason in _PG_SKIP_REASON:
        terminalreporter.write_sep("!", reason, red=True, bold=True)


def _pg_database(admin_url: str) -> tuple[str, str]:
    """Create a fresh database; returns (url, name)."""
    import psycopg

    name = f"clarel_test_{uuid.uuid4().hex[:10]}"
    plain = admin_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin_url.rsplit("/", 1)[0] + "/" + name, name


def _pg_drop(admin_url: str, name: str) -> None:
    import psycopg

    plain = admin_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path, pg_admin_url):
    """A fresh, empty database URL of each backend (not yet migrated)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    if pg_admin_url is None:
        pytest.skip(_PG_SKIP_REASON[-1] if _PG_SKIP_REASON else "no PostgreSQL")
    url, name = _pg_database(pg_admin_url)
    try:
        yield url
    finally:
        _pg_drop(pg_admin_url, name)


@pytest.fixture
def store(db_url):
    from jobs import open_store

    s = open_store(db_url)
    yield s
    s.close()


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """A small SynthBirds (8 classes x 10 images x 32 px), generated once per session."""
    from clarel.data import generate_synthbirds

    root = tmp_path_factory.mktemp("synth") / "synthbirds"
    generate_synthbirds(root, seed=0, classes=8, images_per_class=10, size=32)
    return root


@pytest.fixture
def tiny_overrides(tiny_dataset) -> list[str]:
    """The cheapest real job: the tiny preset, 2 steps, no UMAP, on the CPU."""
    return ["optim.steps=2", f"data.root={tiny_dataset}", "eval.umap_cap=0", "optim.device=cpu"]


def wait_for(predicate, timeout: float, interval: float = 0.1, what: str = "condition"):
    """Poll ``predicate`` until it returns a truthy value; fail the test after ``timeout`` s."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
