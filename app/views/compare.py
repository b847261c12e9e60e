"""Compare: runs side by side (the config keys that differ, the metrics) and sweep plots over seeds."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from app import figures
from app.logic import SWEEPABLE, compare_frame, differing_keys, flatten_config, sweep_points
from app.reference import paper_curve, paper_headline
from app.ui import guarded, job_label, require_finished_runs

_PERCENT_COLUMNS = ("H", "u (unseen)", "s (seen)", "ZSL top-1", "H at α=0", "AUSUC", "H stacking")


@guarded("The Compare page")
def render() -> None:
    st.title("Compare runs")
    st.caption("Pick runs to see what differs between their configs and how that moved u, s and H.")
    jobs = require_finished_runs()
    by_id = {j.id: j for j in jobs}
    chosen = st.multiselect("Runs", list(by_id), default=_default_selection(jobs), key="cmp_runs",
                            format_func=lambda i: job_label(by_id[i]))
    selected = [by_id[i] for i in chosen]
    if not selected:
        st.info("Select at least one run.", icon=":material/info:")
        return
    frame = compare_frame(selected)
    config_cols = differing_keys([j.config for j in selected])
    if len(selected) > 1 and not config_cols:
        st.caption("These runs have identical configs (apart from their names).")
    st.dataframe(frame, hide_index=True, width="stretch", key="cmp_table", column_config={
        c: st.column_config.NumberColumn(c, format="percent") for c in _PERCENT_COLUMNS if c in frame})
    runs = frame["run"].tolist()
    st.plotly_chart(figures.metrics_bar_figure(runs, {k: _metric(selected, k) for k in ("u", "s", "H")}),
                    key="cmp_bars")
    _sweep_section(selected, config_cols)


def _default_selection(jobs: list[Any]) -> list[int]:
    """The newest group (sweep or seeds) if any, else the newest few runs."""
    newest_group = next((j.group_id for j in jobs if j.group_id is not None), None)
    if newest_group is not None:
        return [j.id for j in jobs if j.group_id == newest_group][:24]
    return [j.id for j in jobs[:4]]


def _metric(jobs: list[Any], key: str) -> list[float | None]:
    return [(j.final_metrics or {}).get(key) for j in jobs]


def _sweep_section(selected: list[Any], config_cols: list[str]) -> None:
    st.subheader("Sweep")
    numeric = [k for k in config_cols if k != "optim.seed" and all(
        isinstance(flatten_config(j.config).get(k), int | float) for j in selected)]
    params = list(dict.fromkeys([*numeric, "loss.kappa", "loss.lam"]))
    c1, c2 = st.columns(2)
    param = c1.selectbox("Parameter", params, key="cmp_param", format_func=lambda k: SWEEPABLE.get(k, k))
    metric = c2.selectbox("Metric", ["H", "u", "s"], key="cmp_metric")
    points = sweep_points(selected, param, metric)
    datasets = {flatten_config(j.config).get("data.dataset") for j in selected}
    dataset = datasets.pop() if len(datasets) == 1 else None
    reference = paper_curve(dataset, param) if dataset else None
    headline = (paper_headline(dataset) or {}).get(metric) if dataset else None
    label = SWEEPABLE.get(param, param)
    if len(points) < 2 and reference is None:
        st.info(f"The selected runs share one value of {label}. Launch a sweep from the Runs page (Sweep over "
                f"{label}) or select runs with different values to see a curve.", icon=":material/info:")
        return
    st.plotly_chart(figures.sweep_figure(points, label, metric, reference, headline), key="cmp_sweep")
    if reference is not None:
        st.caption("Dashed: the paper's figure (mean of runs, α re-validated per setting), "
                   "shared/docs/clarel-method.md §9.")
    if not points.empty:
        table = points.rename(columns={"value": label, "mean": f"mean {metric}", "std": "std over seeds"})
        st.dataframe(pd.DataFrame(table), hide_index=True, key="cmp_sweep_table", column_config={
            f"mean {metric}": st.column_config.NumberColumn(format="percent"),
            "std over seeds": st.column_config.NumberColumn(format="percent")})
