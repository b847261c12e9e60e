"""Runs: launch jobs, watch the queue live, inspect one run (progress, log, curves), cancel or retry."""

from __future__ import annotations

from typing import Any

import streamlit as st

from app import data, figures
from app.logic import SWEEPABLE, jobs_frame, launch_overrides, parse_sweep_values
from app.ui import STATE_ICONS, boundary, demo_panel, guarded, metric_row, progress_bar
from clarel.config import get_preset, list_presets

DATASETS = ("synthbirds", "cub", "flowers")
_FORM_FIELDS = {"launch_kappa": "loss.kappa", "launch_lam": "loss.lam", "launch_steps": "optim.steps",
                "launch_dataset": "data.dataset"}


@guarded("The Runs page")
def render() -> None:
    st.title("Runs")
    st.caption("Launch training jobs, watch them progress and look inside each run.")
    jobs = data.store().list_jobs()
    if not any(j.state == data.FINISHED for j in jobs):
        demo_panel(jobs)
    notice = st.session_state.pop("launch_notice", None)
    if notice:
        st.success(notice, icon=":material/check_circle:")
    with st.expander("Launch a training job", expanded=not jobs, icon=":material/add_circle:"):
        _launch_form()
    _queue()
    _details()


def _preset_defaults(preset: str) -> dict[str, Any]:
    cfg = get_preset(preset)
    return {"launch_kappa": cfg.loss.kappa, "launch_lam": cfg.loss.lam, "launch_steps": cfg.optim.steps,
            "launch_dataset": cfg.data.dataset}


def _apply_preset() -> None:
    st.session_state.update(_preset_defaults(st.session_state["launch_preset"]))


def _launch_form() -> None:
    presets = list_presets()
    if "launch_preset" not in st.session_state:
        st.session_state["launch_preset"] = "synthbirds" if "synthbirds" in presets else presets[0]
    for key, value in _preset_defaults(st.session_state["launch_preset"]).items():
        st.session_state.setdefault(key, value)
    left, right = st.columns(2)
    preset = left.selectbox("Preset (encoders and schedule)", presets, key="launch_preset", on_change=_apply_preset,
                            help="Named settings from clarel.config: paper-* use precomputed features, clip-* a frozen "
                                 "open_clip backbone, synthbirds/tiny train small models from scratch on the CPU.")
    dataset = right.selectbox("Dataset", DATASETS, key="launch_dataset")
    c1, c2, c3, c4 = st.columns(4)
    kappa = c1.number_input("κ (class-loss weight)", 0.0, 1.0, step=0.05, key="launch_kappa")
    lam = c2.number_input("λ (image→text share)", 0.0, 1.0, step=0.05, key="launch_lam")
    steps = c3.number_input("Steps", 1, 1_000_000, step=100, key="launch_steps")
    seeds = c4.number_input("Seeds", 1, 20, value=1, step=1, key="launch_seeds",
                            help="Runs with seeds 0..n-1; their metrics are averaged on the Compare page.")
    s1, s2 = st.columns([1, 2])
    sweep_param = s1.selectbox("Sweep over", ["(none)", *SWEEPABLE], key="launch_sweep",
                               format_func=lambda k: SWEEPABLE.get(k, k))
    sweep_text = s2.text_input("Sweep values (comma separated)", "0, 0.25, 0.5, 0.75", key="launch_sweep_values",
                               disabled=sweep_param == "(none)")
    n1, n2 = st.columns(2)
    name = n1.text_input("Run name (optional)", key="launch_name")
    root = n2.text_input("Dataset folder (optional)", key="launch_root",
                         help="Leave empty for the default folder under CLAREL_HOME/datasets/.")
    if st.button("Launch", type="primary", key="launch_submit"):
        with boundary("Launching the job"):
            overrides = launch_overrides(get_preset(preset).to_dict(), dataset, kappa, lam, int(steps), root.strip())
            sweep = None
            if sweep_param != "(none)":
                sweep = {sweep_param: parse_sweep_values(sweep_text)}
            ids = data.store().submit(preset, overrides or None, name=name.strip() or None, sweep=sweep,
                                      seeds=int(seeds))
            st.session_state["runs_pending"] = ids[0]
            st.session_state["launch_notice"] = f"Queued {len(ids)} job(s): " + ", ".join(f"#{i}" for i in ids)
            st.rerun()  # the whole page, so the queue, the details and the first-start panel see the new jobs


@st.fragment(run_every=2)
def _queue() -> None:
    with boundary("Reading the queue"):
        st.subheader("Queue")
        jobs = data.store().list_jobs()
        if not jobs:
            st.info("No jobs yet. Launch one above.", icon=":material/info:")
            return
        counts = {s: sum(j.state == s for j in jobs) for s in STATE_ICONS}
        st.caption("  ·  ".join(f"{STATE_ICONS[s]} {n} {s.lower()}" for s, n in counts.items() if n))
        frame = jobs_frame(jobs)
        frame["state"] = [f"{STATE_ICONS.get(s, '')} {s.lower()}" for s in frame["state"]]
        st.dataframe(frame, hide_index=True, width="stretch", key="runs_table", column_config={
            "progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0, format="percent"),
            "created": st.column_config.DatetimeColumn("created", format="YYYY-MM-DD HH:mm"),
        })


@st.fragment(run_every=3)
def _details() -> None:
    with boundary("Reading the run"):
        jobs = data.store().list_jobs()
        if not jobs:
            return
        st.subheader("Run details")
        ids = [j.id for j in jobs]
        by_id = {j.id: j for j in jobs}
        if "runs_pending" in st.session_state:
            st.session_state["runs_job"] = st.session_state.pop("runs_pending")
        if st.session_state.get("runs_job") not in ids:
            st.session_state["runs_job"] = ids[0]
        # Labels without the state: the browser keeps an option's first label while the fragment polls.
        job_id = st.selectbox("Run", ids, key="runs_job", format_func=lambda i: f"#{i} {by_id[i].name}")
        job = by_id[job_id]
        _job_summary(job)
        _job_actions(job)
        _job_curves(job)
        with st.expander("Log tail"):
            st.code(data.store().log_tail(job.id) or "(no log lines yet)", language=None)
        with st.expander("Config"):
            st.json(job.config, expanded=False)


def _job_summary(job: Any) -> None:
    m = job.final_metrics or {}
    color = {"SUCCEEDED": "green", "FAILED": "red", "RUNNING": "blue", "QUEUED": "gray"}.get(job.state, "orange")
    st.markdown(f":{color}-badge[{STATE_ICONS.get(job.state, '')} {job.state.lower()}] "
                f"&nbsp; preset **{job.preset or '–'}** · device **{job.device or '–'}** · "
                f"attempt {job.attempts}/{job.max_attempts}")
    if m:
        metric_row([
            ("H", f"{m['H']:.1%}" if "H" in m else "–", None),
            ("u (unseen)", f"{m['u']:.1%}" if "u" in m else "–", None),
            ("s (seen)", f"{m['s']:.1%}" if "s" in m else "–", None),
            ("α*", f"{m['alpha']:.4g}" if "alpha" in m else "–", None),
        ])
    if job.state in data.ACTIVE:
        progress_bar(job)
    if job.state == "FAILED":
        st.error(f"**Run #{job.id} failed:** {job.error_summary or 'no error message was recorded'}", icon=":material/error:")
        if job.error_traceback:
            with st.expander("Technical details"):
                st.code(job.error_traceback, language=None)
    elif job.state == "CANCELLED":
        st.warning(f"Run #{job.id} was cancelled.", icon=":material/block:")


def _job_actions(job: Any) -> None:
    notice = st.session_state.pop("runs_notice", None)
    if notice:
        (st.success if notice[0] == "ok" else st.error)(notice[1])
    left, right, _ = st.columns([1, 1, 4])
    if job.state in data.ACTIVE:
        left.button("Cancel", key="runs_cancel", icon=":material/stop_circle:", on_click=_cancel, args=(job.id,))
    if job.state in ("FAILED", "CANCELLED"):
        right.button("Retry", key="runs_retry", icon=":material/replay:", on_click=_retry, args=(job.id,))


def _cancel(job_id: int) -> None:
    # Button callbacks run before the rerun, so the page already shows the new state.
    try:
        state = str(data.store().cancel(job_id))
        text = (f"Run #{job_id} cancelled." if state == "CANCELLED" else
                f"Run #{job_id}: cancel requested; its worker stops it within seconds.")
        st.session_state["runs_notice"] = ("ok", text)
    except Exception as e:
        st.session_state["runs_notice"] = ("error", f"Could not cancel run #{job_id}: {e}")


def _retry(job_id: int) -> None:
    try:
        new_id = data.store().retry(job_id)
        st.session_state["runs_pending"] = new_id
        again = "" if new_id == job_id else f" as #{new_id}"
        st.session_state["runs_notice"] = ("ok", f"Run #{job_id} queued again{again}.")
    except Exception as e:
        st.session_state["runs_notice"] = ("error", f"Could not retry run #{job_id}: {e}")


def _job_curves(job: Any) -> None:
    history = data.history(job)
    losses = sorted(k for k in history if "loss" in k)
    evals = [k for k in ("H", "u", "s", "zsl_top1") if k in history]
    if not losses and not evals:
        st.caption("No training curves yet.")
        return
    left, right = st.columns(2)
    if losses:
        left.plotly_chart(figures.history_figure(history, losses, "Training loss"), key="runs_loss_chart")
    if evals:
        right.plotly_chart(figures.history_figure(history, evals, "Validation metrics (α = 0)", percent=True),
                           key="runs_eval_chart")
    else:
        right.caption("Evaluation metrics appear after the first evaluation.")
