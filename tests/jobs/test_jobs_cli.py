"""The ``python -m jobs`` command line (in-process through `jobs.cli.main`, plus one real
``python -m jobs`` subprocess), against a SQLite store."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from jobs import JobState, open_store
from jobs.cli import main, parse_sweep
from jobs.records import JobsError


@pytest.fixture
def url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


def run(url: str, *args: str) -> int:
    return main(["--db", url, *args])


def test_submit_list_show_cancel_retry_export(url, capsys, tmp_path):
    assert run(url, "submit", "--preset", "tiny", "--set", "optim.steps=3", "--name", "one") == 0
    assert "queued 1 job(s): 1" in capsys.readouterr().out
    assert run(url, "submit", "--preset", "tiny", "--sweep", "loss.kappa=0,0.5,1", "--seeds", "2") == 0
    assert "queued 6 job(s): 2, 3, 4, 5, 6, 7 (group 1)" in capsys.readouterr().out
    assert run(url, "list") == 0
    rows = capsys.readouterr().out.splitlines()[1:]
    assert len(rows) == 7 and rows[-1].split()[:3] == ["1", "QUEUED", "one"]
    assert run(url, "cancel", "1") == 0 and "CANCELLED" in capsys.readouterr().out
    assert run(url, "list", "--state", "CANCELLED") == 0
    assert [r.split()[0] for r in capsys.readouterr().out.splitlines()[1:]] == ["1"]
    assert run(url, "retry", "1") == 0 and "queued again" in capsys.readouterr().out
    assert run(url, "show", "1") == 0
    shown = capsys.readouterr().out
    assert "state      QUEUED" in shown and "retried by the user" in shown
    assert run(url, "group", "1") == 0
    assert shown.count("\n") > 3 and '{"loss.kappa": 0.5}' in capsys.readouterr().out
    out = tmp_path / "job1.json"
    assert run(url, "export", "1", "--format", "json", "-o", str(out)) == 0
    assert json.loads(out.read_text())["name"] == "one"
    capsys.readouterr()
    assert run(url, "export", "1", "--format", "csv") == 0
    assert capsys.readouterr().out.startswith("job_id,name,state,kind,key,step,value")


@pytest.mark.parametrize("args, message", [
    (["submit", "--preset", "nope"], "unknown preset 'nope'"),
    (["submit", "--preset", "tiny", "--set", "loss.kappa=7"], "loss.kappa=7"),
    (["submit", "--preset", "tiny", "--set", "optim.stepz=3"], "unknown config key 'optim.stepz'"),
    (["submit", "--preset", "tiny", "--sweep", "loss.kappa"], "must look like key=v1,v2"),
    (["submit", "--preset", "tiny", "--seeds", "0"], "--seeds 0 must be at least 1"),
    (["show", "99"], "no job with id 99"),
    (["retry", "99"], "no job with id 99"),
    (["reproduce", "--status"], "no reproduction found"),
    (["reproduce"], "give a dataset"),
])
def test_bad_input_is_a_clear_error_and_nonzero_exit(url, capsys, args, message):
    assert run(url, *args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err


def test_unknown_command_and_bad_url_exit_nonzero(url, capsys):
    with pytest.raises(SystemExit) as e:
        run(url, "frobnicate")
    assert e.value.code == 2
    assert main(["--db", "mysql://nope/x", "list"]) == 2
    assert "unsupported database URL" in capsys.readouterr().err


def test_reproduce_queues_phase_one_and_reports(url, capsys):
    assert run(url, "reproduce", "cub", "--seeds", "2") == 0
    assert "reproduction group 1" in capsys.readouterr().out
    store = open_store(url)
    assert all(j.config["data"]["protocol"] == "val" for j in store.list_jobs())
    for _ in range(2):  # finish phase 1 through the queue API
        c = store.claim("w")
        store.save_final_metrics(c.job_id, {"alpha_best": 0.02, "u": 0.5, "s": 0.5, "H": 0.5})
        store.finish(c.job_id, "w", JobState.SUCCEEDED)
    assert run(url, "reproduce", "--status") == 0
    out = capsys.readouterr().out
    assert "alpha* = 0.02" in out and "phase 2/2" in out
    assert "55.9" in out  # the paper's CUB H next to ours
    assert len(store.list_jobs()) == 4
    store.close()


def test_parse_sweep():
    assert parse_sweep(["loss.kappa=0,0.5,1", "optim.lr=0.1"]) == {"loss.kappa": [0, 0.5, 1], "optim.lr": [0.1]}
    with pytest.raises(JobsError, match="has no values"):
        parse_sweep(["loss.kappa="])


def test_python_dash_m_jobs_migrate_and_list(url):
    r = subprocess.run([sys.executable, "-m", "jobs", "--db", url, "migrate"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "schema at revision 0001" in r.stdout
    r = subprocess.run([sys.executable, "-m", "jobs", "--db", url, "show", "5"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "no job with id 5" in r.stderr
