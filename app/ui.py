"""Widgets and panels shared by the pages: error boundary, worker status, run picker, demo launcher."""

from __future__ import annotations

import functools
import logging
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import streamlit as st

from app import data
from app.logic import format_eta, worker_summary

log = logging.getLogger(__name__)

DEMO_PRESET = "synthbirds"
STATE_ICONS = {"QUEUED": "○", "RUNNING": "●", "SUCCEEDED": "✓", "FAILED": "✗", "CANCELLED": "–"}  # plain-font glyphs


def show_error(error: BaseException, what: str) -> None:
    """A readable error box (type and message first); the traceback only behind an expander."""
    log.exception("%s failed", what)
    st.error(f"**{what} failed.** {type(error).__name__}: {error}", icon=":material/error:")
    with st.expander("Technical details"):
        st.code("".join(traceback.format_exception(error)), language=None)


@contextmanager
def boundary(what: str) -> Iterator[None]:
    """Show any exception raised inside as `show_error` instead of a bare traceback.

    Streamlit's own control flow (``st.rerun``, ``st.stop``) derives from BaseException and passes.
    """
    try:
        yield
    except Exception as e:
        show_error(e, what)


def guarded(what: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Decorator form of `boundary` for page and fragment bodies."""

    def wrap(fn: Callable[..., None]) -> Callable[..., None]:
        @functools.wraps(fn)
        def inner(*args: Any, **kwargs: Any) -> None:
            with boundary(what):
                fn(*args, **kwargs)

        return inner

    return wrap


def job_label(job: Any) -> str:
    """``#12 synthbirds · H 41.2% · SUCCEEDED``."""
    h = (job.final_metrics or {}).get("H")
    metric = f" · H {h:.1%}" if h is not None else ""
    return f"#{job.id} {job.name}{metric} · {STATE_ICONS.get(job.state, '')} {job.state.lower()}"


def run_picker(jobs: Sequence[Any], key: str, label: str = "Run") -> Any:
    """Select box over runs that remembers the last run chosen on any page."""
    ids = [j.id for j in jobs]
    by_id = {j.id: j for j in jobs}
    current = st.session_state.get("current_run")
    index = ids.index(current) if current in ids else 0
    if st.session_state.get(key) not in ids:
        st.session_state.pop(key, None)
    chosen = st.selectbox(label, ids, index=index, key=key, format_func=lambda i: job_label(by_id[i]))
    st.session_state["current_run"] = chosen
    return by_id[chosen]


def metric_row(values: Sequence[tuple[str, str, str | None]], help_texts: Sequence[str | None] = ()) -> None:
    """A row of metric cards: (label, value, delta or None)."""
    cols = st.columns(len(values))
    helps = list(help_texts) + [None] * len(values)
    for col, (label, value, delta), help_text in zip(cols, values, helps):
        col.metric(label, value, delta, border=True, help=help_text)


def worker_status(compact: bool = False) -> bool:
    """Show whether a worker is alive (heartbeats) and how to start one; returns alive."""
    alive, text = worker_summary(data.store().workers())
    if alive:
        st.success(text, icon=":material/check_circle:")
    else:
        st.warning(text, icon=":material/warning:")
        if not compact:
            st.markdown("Start one in a terminal at the repository root:")
        st.code(data.WORKER_COMMAND, language="bash", wrap_lines=True)
    return alive


def demo_panel(jobs: Sequence[Any]) -> None:
    """First start: one clear action that trains the demo model on SynthBirds, then its progress."""
    active = [j for j in jobs if j.state in data.ACTIVE]
    demo = next((j for j in active if j.preset == DEMO_PRESET), active[-1] if active else None)
    with st.container(border=True):
        st.subheader(":material/waving_hand: No trained model yet")
        if demo is None:
            st.markdown(
                "Train the **demo model on SynthBirds**, a small synthetic bird dataset made on this machine "
                "(no download). It trains twice, once on validation data to choose α and once on the test split: "
                "about 2-3 minutes on an idle 2-core CPU (measured: 140 s from click to finished run), longer "
                "on a busy machine, less on a GPU. The dataset is generated first if needed."
            )
            if st.button("Train the demo model", type="primary", key="demo_train", icon=":material/rocket_launch:"):
                ids = data.store().submit(DEMO_PRESET, name="demo-synthbirds")
                st.session_state["current_run"] = ids[0]
                st.toast(f"Queued job #{ids[0]}")
                st.rerun()
        else:
            st.markdown(f"Training **{demo.name}** (job #{demo.id}); the pages fill in as soon as it finishes.")
            _demo_progress(demo.id)
        if demo is None:
            worker_status()


@st.fragment(run_every=2)
def _demo_progress(job_id: int) -> None:
    with boundary("Reading the demo job"):
        job = data.store().get_job(job_id)
        if job.state not in data.ACTIVE:  # finished (pages fill in) or failed (the button comes back)
            st.rerun(scope="app")
        progress_bar(job)
        worker_status()  # inside the fragment so "idle" turns into "running job #N" without a reload


def progress_bar(job: Any) -> None:
    """Progress of one job with its phase and ETA."""
    if job.state == "QUEUED":
        st.progress(0.0, text=f"Job #{job.id} is queued, waiting for a worker…")
        return
    text = f"Job #{job.id}: {job.progress_message or job.state.lower()}"
    if job.state == "RUNNING" and job.eta_seconds is not None:
        text += f" · about {format_eta(job.eta_seconds)} left"
    st.progress(min(max(float(job.progress or 0.0), 0.0), 1.0), text=text)


def require_finished_runs() -> list[Any]:
    """The succeeded runs, or the demo panel and a stop when there is none yet."""
    jobs = data.finished_jobs()
    if not jobs:
        st.info("This page shows a trained run. There is none yet: train the demo model below, or launch a job "
                "from the Runs page.", icon=":material/info:")
        demo_panel(data.store().list_jobs())
        st.stop()
    return jobs
