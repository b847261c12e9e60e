"""Every page through `streamlit.testing.v1.AppTest`, against real stores (empty, seeded, broken).

AppTest renders plotly charts and iframes as unknown elements, so what is asserted here is what
the user reads: metric cards, tables, messages; the figures themselves are tested in
test_app_logic.py and in the browser test.
"""

from __future__ import annotations

import http.server
import socket
import threading

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from app import data
from app.logic import score_alpha, slider_options
from jobs import open_store

pytestmark = pytest.mark.slow

MAIN = str(__import__("pathlib").Path(__file__).resolve().parents[2] / "app" / "main.py")
PAGE = "import streamlit as st\nst.set_page_config(layout='wide')\nfrom app.views import {name}\n{name}.render()\n"


def page(name: str) -> AppTest:
    return AppTest.from_string(PAGE.format(name=name), default_timeout=60).run()


def messages(at: AppTest) -> str:
    parts = [e.value for e in [*at.error, *at.warning, *at.info, *at.success]]
    return "\n".join(str(p) for p in parts)


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def table_with(at: AppTest, *columns: str):
    """The first dataframe that has these columns (AppTest does not index dataframes by key)."""
    for frame in at.dataframe:
        value = frame.value
        if all(c in value.columns for c in columns):
            return value
    raise AssertionError(f"no table with columns {columns}")


def no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


# ------------------------------------------------------------------ first start
def test_first_start_offers_one_action_that_queues_the_demo(empty_db):
    at = AppTest.from_file(MAIN, default_timeout=60).run()
    no_exception(at)
    assert "No worker is running" in messages(at)
    assert any(data.WORKER_COMMAND in c.value for c in at.code)
    at.button(key="demo_train").click().run()
    no_exception(at)
    jobs = open_store(empty_db).list_jobs()
    assert [(j.preset, j.state) for j in jobs] == [("synthbirds", "QUEUED")]
    assert at.get("progress"), "the queued demo job shows a progress bar"
    assert not [b for b in at.button if b.key == "demo_train"], "no second demo button once it is queued"


@pytest.mark.parametrize("name", ["joint_space", "seen_unseen", "compare"])
def test_result_pages_explain_the_empty_store(empty_db, name):
    at = page(name)
    no_exception(at)
    assert "There is none yet" in messages(at)
    assert at.button(key="demo_train").label == "Train the demo model"


def test_a_broken_database_gives_a_message_not_a_traceback(tmp_path, use_db):
    use_db(f"sqlite:///{tmp_path / 'not-a-folder' / 'sub' / 'x.db'}")
    (tmp_path / "not-a-folder").write_text("a file where a folder should be")
    for name in ("runs", "seen_unseen"):
        at = page(name)
        no_exception(at)
        assert at.error and "failed" in at.error[0].value


# ------------------------------------------------------------------ Runs
def test_runs_page_shows_the_queue_and_a_failed_run(seeded, use_db):
    use_db(seeded.url)
    at = page("runs")
    no_exception(at)
    table = table_with(at, "id", "progress", "ETA")
    assert set(table["id"]) >= {seeded.good, seeded.bad, seeded.bare}
    at.selectbox(key="runs_job").set_value(seeded.bad).run()
    summary = seeded.store.get_job(seeded.bad).error_summary
    assert f"Run #{seeded.bad} failed" in messages(at) and summary in messages(at)
    assert [b.label for b in at.button if b.key == "runs_retry"] == ["Retry"]
    at.selectbox(key="runs_job").set_value(seeded.good).run()
    good = seeded.store.get_job(seeded.good)
    assert metric(at, "H") == f"{good.final_metrics['H']:.1%}"
    assert any("step" in c.value for c in at.code), "the log tail shows the training log"


def test_launch_form_follows_the_preset_queues_a_sweep_and_rejects_bad_values(empty_db):
    at = page("runs")
    at.selectbox(key="launch_preset").set_value("tiny").run()
    assert at.number_input(key="launch_steps").value == 30
    at.number_input(key="launch_steps").set_value(12)
    at.selectbox(key="launch_sweep").set_value("loss.kappa").run()
    at.text_input(key="launch_sweep_values").set_value("0, x").run()
    at.button(key="launch_submit").click().run()
    assert "'x' is not a number" in messages(at)
    store = open_store(empty_db)
    assert store.list_jobs() == []
    at.text_input(key="launch_sweep_values").set_value("0, 0.5").run()
    at.button(key="launch_submit").click().run()
    no_exception(at)
    jobs = sorted(store.list_jobs(), key=lambda j: j.id)
    assert [j.config["loss"]["kappa"] for j in jobs] == [0.0, 0.5]
    assert {j.config["optim"]["steps"] for j in jobs} == {12} and jobs[0].group_id is not None
    assert "Queued 2 job(s)" in messages(at)


def test_cancel_then_retry_from_the_runs_page(empty_db):
    store = open_store(empty_db)
    job = store.submit("tiny", name="to-cancel")[0]
    at = page("runs")
    at.button(key="runs_cancel").click().run()
    assert store.get_job(job).state == "CANCELLED"
    assert f"Run #{job} cancelled." in messages(at)
    at.button(key="runs_retry").click().run()
    no_exception(at)
    # The store re-queues the same job (it resumes from its checkpoint); the page follows it.
    retried = store.list_jobs()[0]
    assert retried.state == "QUEUED" and at.selectbox(key="runs_job").value == retried.id
    assert "queued again" in messages(at)


# ------------------------------------------------------------------ Seen / unseen
def test_the_alpha_slider_changes_the_displayed_h(seeded, use_db):
    use_db(seeded.url)
    at = page("seen_unseen")
    no_exception(at)
    at.selectbox(key="su_run").set_value(seeded.good).run()
    ev = seeded.store.eval_arrays(seeded.good)
    options, alpha_star = slider_options(ev)
    assert at.select_slider(key="su_alpha").value == alpha_star
    start = score_alpha(ev, alpha_star)
    assert metric(at, "H") == f"{start.h:.1%}" and metric(at, "u (unseen)") == f"{start.u:.1%}"
    target = max(options, key=lambda a: abs(score_alpha(ev, a).h - start.h))
    moved = score_alpha(ev, target)
    assert f"{moved.h:.1%}" != f"{start.h:.1%}", "the stored curve must span different H values"
    at.select_slider(key="su_alpha").set_value(target).run()
    no_exception(at)
    assert metric(at, "H") == f"{moved.h:.1%}"
    assert metric(at, "s (seen)") == f"{moved.s:.1%}"
    block = table_with(at, "predicted seen", "predicted unseen")
    assert block.to_numpy().sum() == len(ev.labels)
    assert np.array_equal(block.to_numpy(), moved.block)
    table = table_with(at, "class", "most confused with")
    assert len(table) == len(np.unique(ev.labels))
    at.button(key="su_reset").click().run()
    assert metric(at, "H") == f"{start.h:.1%}"


def test_seen_unseen_explains_a_run_without_arrays(seeded, use_db):
    use_db(seeded.url)
    at = page("seen_unseen")
    at.selectbox(key="su_run").set_value(seeded.bare).run()
    no_exception(at)
    assert "has no stored evaluation arrays" in messages(at)


# ------------------------------------------------------------------ Joint space
def test_joint_space_filters_and_lists_neighbours(seeded, use_db):
    use_db(seeded.url)
    at = page("joint_space")
    at.selectbox(key="js_run").set_value(seeded.good).run()
    no_exception(at)
    total = len(seeded.store.umap(seeded.good).coords)
    assert any(f"{total} of {total} points" in c.value for c in at.caption)
    at.pills(key="js_modalities").set_value(["prototype"]).run()
    assert any(f"12 of {total} points" in c.value for c in at.caption)
    at.selectbox(key="js_proto").select_index(1).run()
    no_exception(at)
    neighbours = table_with(at, "modality", "same class", "distance")
    assert set(neighbours["modality"]) == {"image", "text"}
    for _, part in neighbours.groupby("modality"):
        assert part["distance"].is_monotonic_increasing


def test_joint_space_explains_a_run_without_projection(seeded, use_db):
    use_db(seeded.url)
    at = page("joint_space")
    at.selectbox(key="js_run").set_value(seeded.bare).run()
    no_exception(at)
    assert "has no stored UMAP projection" in messages(at)


# ------------------------------------------------------------------ Compare
def test_compare_shows_runs_side_by_side(seeded, use_db):
    use_db(seeded.url)
    at = page("compare")
    no_exception(at)
    table = table_with(at, "run", "H")
    assert len(table) == 2  # the two succeeded runs
    good = seeded.store.get_job(seeded.good)
    row = table[table["run"].str.startswith(f"#{seeded.good} ")].iloc[0]
    assert row["H"] == pytest.approx(good.final_metrics["H"])
    at.selectbox(key="cmp_metric").set_value("u").run()
    no_exception(at)
    at.multiselect(key="cmp_runs").set_value([]).run()
    assert "Select at least one run" in messages(at)


# ------------------------------------------------------------------ Classify
def test_classify_says_how_to_start_the_gradio_server(monkeypatch, empty_db):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("CLAREL_GRADIO_URL", f"http://127.0.0.1:{port}")
    at = page("classify")
    no_exception(at)
    assert f"not answering at http://127.0.0.1:{port}" in messages(at)
    assert any(data.GRADIO_COMMAND in c.value for c in at.code)


def test_classify_embeds_a_running_server(monkeypatch, empty_db):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("CLAREL_GRADIO_URL", f"http://127.0.0.1:{server.server_address[1]}")
        at = page("classify")
        no_exception(at)
        assert not at.warning
        assert at.get("iframe"), "the Gradio page is embedded"
    finally:
        server.shutdown()


def test_demo_progress_fragment_refreshes_the_worker_status(empty_db):
    """Regression: the demo panel said "idle" while its worker ran the job, because the worker
    status sat outside the polling fragment; the fragment itself must now show it."""
    store = open_store(empty_db)
    (job_id,) = store.submit("tiny", name="demo-synthbirds")
    store.register_worker("w-test", device="cpu")
    assert store.claim("w-test", device="cpu").job_id == job_id
    store.worker_heartbeat("w-test", state="running", current_job_id=job_id)

    def fragment_only(job_id: int) -> None:
        from app import ui

        ui._demo_progress(job_id)

    at = AppTest.from_function(fragment_only, args=(job_id,), default_timeout=60).run()
    no_exception(at)
    assert f"running job #{job_id}" in messages(at)
    assert at.get("progress"), "the fragment shows the job's progress bar"
