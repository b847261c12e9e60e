"""Seen / unseen: move the rescaling factor α and watch u, s, H and the confusions follow.

Every number is recomputed from the run's stored test distance matrix with `clarel.metrics`
(no model in this process); the slider lives in a fragment so only this part re-runs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import streamlit as st

from app import data, figures
from app.logic import (
    block_frame,
    class_order,
    confusion_matrix,
    per_class_table,
    score_alpha,
    score_gamma,
    slider_options,
)
from app.ui import boundary, guarded, metric_row, require_finished_runs, run_picker

_HELP_ALPHA = ("Seen-class distances are multiplied by 1 + α before the nearest prototype is picked; larger α "
               "moves predictions toward unseen classes (negative α favours seen ones). α* is the value chosen "
               "on validation data. The slider stops where single images change sides.")


@guarded("The Seen / unseen page")
def render() -> None:
    st.title("Seen / unseen")
    st.caption("Generalised zero-shot: every test image is classified over seen and unseen classes together. "
               "Metric rescaling (α) trades seen accuracy for unseen accuracy.")
    job = run_picker(require_finished_runs(), key="su_run")
    ev = data.eval_arrays(job)
    if ev is None:
        st.warning(f"Run #{job.id} has no stored evaluation arrays (distance matrix), so there is nothing to "
                   "re-score. Re-run it with the current worker to store them.", icon=":material/warning:")
        return
    if len(ev.labels) == 0 or ev.distances.size == 0:
        st.warning(f"Run #{job.id} stored an empty evaluation (no test images).", icon=":material/warning:")
        return
    _slider_panel(job.id, ev)


def _delta(value: float, at_zero: float) -> str | None:
    points = (value - at_zero) * 100
    return None if abs(points) < 0.05 else f"{points:+.1f} pts vs α=0"


def _reset_alpha(value: float) -> None:
    st.session_state["su_alpha"] = value


@st.fragment
def _slider_panel(job_id: int, ev: Any) -> None:
    with boundary("Re-scoring"):
        options, alpha_star = slider_options(ev)
        if st.session_state.get("su_alpha_run") != job_id or st.session_state.get("su_alpha") not in options:
            st.session_state["su_alpha"] = alpha_star
            st.session_state["su_alpha_run"] = job_id
            st.session_state.pop("su_gamma", None)
        left, right = st.columns([5, 1], vertical_alignment="bottom")
        alpha = left.select_slider(f"α — seen-distance rescaling (α* = {alpha_star:.4g})", options=options,
                                   format_func=lambda v: f"{v:.4g}", key="su_alpha", help=_HELP_ALPHA)
        right.button("Reset to α*", key="su_reset", on_click=_reset_alpha, args=(alpha_star,))
        scores = score_alpha(ev, alpha)
        base = score_alpha(ev, 0.0)
        metric_row([
            ("u (unseen)", f"{scores.u:.1%}", _delta(scores.u, base.u)),
            ("s (seen)", f"{scores.s:.1%}", _delta(scores.s, base.s)),
            ("H", f"{scores.h:.1%}", _delta(scores.h, base.h)),
            ("α", f"{alpha:.4g}", None),
        ], help_texts=["Per-class mean top-1 on images of unseen classes, over all classes.",
                       "The same on images of seen classes.", "Harmonic mean 2us/(u+s).", _HELP_ALPHA])

        c1, c2 = st.columns([1, 2])
        c1.plotly_chart(figures.block_figure(scores.block), key="su_block_chart")
        c1.dataframe(block_frame(scores.block), key="su_block_table")
        c2.plotly_chart(figures.alpha_figure(ev.sweep_curve, alpha, ev.alpha), key="su_alpha_chart")

        st.subheader("Seen–unseen curves")
        m1, m2 = st.columns(2)
        star = score_alpha(ev, ev.alpha) if ev.alpha is not None else None
        m1.plotly_chart(figures.seen_unseen_curve_figure(
            ev.sweep_curve, (scores.u, scores.s), (star.u, star.s) if star else None,
            "Multiplicative rescaling (CLAREL)", "α", figures.H_COLOR), key="su_curve_mult")
        _stacking_panel(m2, ev)

        st.subheader("Where the predictions go")
        order = class_order(ev.seen_mask, ev.class_mask)
        names = [ev.class_names[i] for i in order]
        n_seen = int(np.sum(ev.seen_mask[order]))
        st.plotly_chart(figures.confusion_figure(confusion_matrix(scores.preds, ev.labels, order), names, n_seen),
                        key="su_confusion_chart")
        table = per_class_table(scores.preds, ev.labels, ev.seen_mask, ev.class_names)
        st.dataframe(table, hide_index=True, width="stretch", key="su_class_table", column_config={
            "accuracy": st.column_config.ProgressColumn("accuracy", min_value=0.0, max_value=1.0, format="percent"),
        })


def _stacking_panel(container: Any, ev: Any) -> None:
    curve = ev.stacking_curve
    if curve is None or len(curve.values) == 0:
        container.info("This run stored no calibrated-stacking curve.")
        return
    values = np.asarray(curve.values, dtype=float)
    best = float(values[int(np.argmax(curve.h))])
    gamma = container.select_slider("γ — calibrated stacking offset", options=[float(v) for v in values],
                                    value=best, format_func=lambda v: f"{v:.4g}", key="su_gamma")
    u, s, h = score_gamma(ev, gamma)
    bu, bs, _ = score_gamma(ev, best)
    container.plotly_chart(figures.seen_unseen_curve_figure(
        curve, (u, s), (bu, bs), f"Calibrated stacking (Chao et al.) · H {h:.1%} at γ={gamma:.3g}", "γ",
        figures.PAPER_COLOR), key="su_curve_stack")
