"""Plotly figure builders for the pages: pure functions from arrays/frames to `go.Figure`.

One palette everywhere: seen classes blue, unseen orange, H green, so a stakeholder reading any
page learns the colours once.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

SEEN_COLOR = "#2563EB"
UNSEEN_COLOR = "#F97316"
H_COLOR = "#059669"
PAPER_COLOR = "#6B7280"
GROUP_COLORS = {"seen": SEEN_COLOR, "unseen": UNSEEN_COLOR}
MODALITY_SYMBOLS = {"image": "circle", "text": "diamond", "prototype": "star"}
MODALITY_NAMES = {"image": "image", "text": "caption (per-image text)", "prototype": "class prototype"}
_CLASS_PALETTE = qualitative.Dark24 + qualitative.Light24 + qualitative.Alphabet
_LAYOUT = dict(template="plotly_white", margin=dict(l=10, r=10, t=48, b=10), font=dict(size=13))


def class_color(label: int) -> str:
    """A stable colour per class index."""
    return _CLASS_PALETTE[int(label) % len(_CLASS_PALETTE)]


def unique_labels(names: Sequence[str]) -> list[str]:
    """Names made distinct by numbering repeats (``Finch``, ``Finch (2)``)."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name} ({seen[name]})")
    return out


def history_figure(history: dict[str, tuple[np.ndarray, np.ndarray]], keys: Sequence[str], title: str,
                   percent: bool = False) -> go.Figure:
    """Line chart of some metric histories (key -> (steps, values)) against the training step."""
    fig = go.Figure()
    colors = {"H": H_COLOR, "u": UNSEEN_COLOR, "s": SEEN_COLOR}
    for key in keys:
        if key not in history:
            continue
        steps, values = history[key]
        values = np.asarray(values, dtype=float) * (100.0 if percent else 1.0)
        fig.add_trace(go.Scatter(x=np.asarray(steps), y=values, mode="lines+markers" if len(steps) < 30 else "lines",
                                 name=key, line=dict(color=colors.get(key))))
    fig.update_layout(title=title, xaxis_title="step", yaxis_title="%" if percent else None,
                      height=320, legend=dict(orientation="h", y=-0.25), **_LAYOUT)
    return fig


def umap_figure(frame: pd.DataFrame, color_by: str = "class", selected: int | None = None) -> go.Figure:
    """Scatter of the joint space: one trace per modality (marker shape), colour by class or group.

    ``customdata`` holds each point's row label in ``frame`` so a selection maps back to it.
    """
    fig = go.Figure()
    for modality, symbol in MODALITY_SYMBOLS.items():
        part = frame[frame["modality"] == modality]
        if part.empty:
            continue
        if color_by == "group":
            colors = part["group"].map(GROUP_COLORS).tolist()
        else:
            colors = [class_color(c) for c in part["label"]]
        is_proto = modality == "prototype"
        fig.add_trace(go.Scattergl(
            x=part["x"], y=part["y"], mode="markers", name=MODALITY_NAMES[modality],
            customdata=np.asarray(part.index), hovertext=part["hover"], hoverinfo="text",
            marker=dict(symbol=symbol, color=colors, size=15 if is_proto else 7, opacity=1.0 if is_proto else 0.75,
                        line=dict(width=1.2 if is_proto else 0, color="#111827")),
        ))
    if selected is not None and selected in frame.index:
        row = frame.loc[selected]
        fig.add_trace(go.Scatter(x=[row["x"]], y=[row["y"]], mode="markers", name="selected", hoverinfo="skip",
                                 marker=dict(size=22, color="rgba(0,0,0,0)", line=dict(width=3, color="#DC2626"))))
    fig.update_layout(height=620, legend=dict(orientation="h", y=1.06, x=0), dragmode="pan",
                      xaxis=dict(showticklabels=False, title=None, zeroline=False),
                      yaxis=dict(showticklabels=False, title=None, zeroline=False), **_LAYOUT)
    return fig


def confusion_figure(matrix: np.ndarray, names: Sequence[str], n_seen: int) -> go.Figure:
    """Heatmap of the row-normalised class confusion, seen classes first, with the seen/unseen split drawn."""
    n = len(names)
    names = unique_labels(names)  # plotly merges equal category names
    fig = go.Figure(go.Heatmap(
        z=matrix * 100.0, x=names, y=names, colorscale="Blues", zmin=0, zmax=100,
        colorbar=dict(title="% of row"),
        hovertemplate="true %{y}<br>predicted %{x}<br>%{z:.1f}% of the class<extra></extra>",
    ))
    if 0 < n_seen < n:
        edge = n_seen - 0.5
        for kw in (dict(x0=edge, x1=edge, y0=-0.5, y1=n - 0.5), dict(x0=-0.5, x1=n - 0.5, y0=edge, y1=edge)):
            fig.add_shape(type="line", line=dict(color="#DC2626", width=2), **kw)
    show_labels = n <= 60
    fig.update_layout(height=max(420, min(900, 14 * n + 160)), title="Class confusion (rows: true class, seen then unseen)",
                      xaxis=dict(title="predicted", showticklabels=show_labels, tickangle=-60, tickfont=dict(size=9)),
                      yaxis=dict(title="true", showticklabels=show_labels, autorange="reversed", tickfont=dict(size=9)),
                      **_LAYOUT)
    return fig


def block_figure(block: np.ndarray) -> go.Figure:
    """The 2 x 2 true seen/unseen x predicted seen/unseen block, annotated with counts and row shares."""
    block = np.asarray(block, dtype=float)
    totals = block.sum(axis=1, keepdims=True)
    share = np.divide(block, totals, out=np.zeros_like(block), where=totals > 0)
    text = [[f"{int(block[i, j])}<br>({share[i, j]:.0%})" for j in range(2)] for i in range(2)]
    fig = go.Figure(go.Heatmap(z=share, x=["predicted seen", "predicted unseen"], y=["true seen", "true unseen"],
                               text=text, texttemplate="%{text}", textfont=dict(size=16), colorscale="Blues",
                               zmin=0, zmax=1, showscale=False, hoverinfo="skip"))
    fig.update_layout(height=260, title="Seen / unseen block", yaxis=dict(autorange="reversed"), **_LAYOUT)
    return fig


def seen_unseen_curve_figure(curve, current: tuple[float, float] | None, chosen: tuple[float, float] | None,
                             title: str, parameter: str = "α", color: str = H_COLOR) -> go.Figure:
    """Chao et al.'s seen-unseen curve (u on x, s on y) with the current and the calibrated points."""
    fig = go.Figure()
    if curve is not None and len(curve.values):
        fig.add_trace(go.Scatter(
            x=np.asarray(curve.u) * 100, y=np.asarray(curve.s) * 100, mode="lines", name="curve",
            line=dict(color=color, width=3), customdata=np.asarray(curve.values),
            hovertemplate=parameter + "=%{customdata:.4g}<br>u=%{x:.1f}%<br>s=%{y:.1f}%<extra></extra>",
        ))
    if chosen is not None:
        fig.add_trace(go.Scatter(x=[chosen[0] * 100], y=[chosen[1] * 100], mode="markers", name=f"calibrated {parameter}*",
                                 marker=dict(symbol="star", size=16, color="#111827")))
    if current is not None:
        fig.add_trace(go.Scatter(x=[current[0] * 100], y=[current[1] * 100], mode="markers", name="current",
                                 marker=dict(size=14, color="#DC2626", line=dict(width=2, color="white"))))
    fig.update_layout(title=title, height=360, xaxis=dict(title="u: unseen accuracy (%)", range=[0, 101]),
                      yaxis=dict(title="s: seen accuracy (%)", range=[0, 101]),
                      legend=dict(orientation="h", y=-0.25), **_LAYOUT)
    return fig


def alpha_figure(curve, alpha: float, alpha_star: float | None) -> go.Figure:
    """u, s and H against alpha with the slider position and alpha* as vertical lines."""
    fig = go.Figure()
    if curve is not None and len(curve.values):
        for name, values, color in (("u", curve.u, UNSEEN_COLOR), ("s", curve.s, SEEN_COLOR), ("H", curve.h, H_COLOR)):
            fig.add_trace(go.Scatter(x=np.asarray(curve.values), y=np.asarray(values) * 100, mode="lines", name=name,
                                     line=dict(color=color, width=3 if name == "H" else 2)))
    fig.add_vline(x=alpha, line=dict(color="#DC2626", width=2), annotation_text="current", annotation_position="top")
    if alpha_star is not None:
        fig.add_vline(x=alpha_star, line=dict(color="#111827", dash="dash"), annotation_text="α*",
                      annotation_position="bottom right")
    if curve is not None and len(curve.values) > 4:
        # The sweep's end points only anchor the all-seen / all-unseen extremes; zoom on the trade-off.
        inner = np.sort(np.asarray(curve.values, dtype=float))[1:-1]
        marks = [alpha] + ([alpha_star] if alpha_star is not None else [])
        lo, hi = min(inner[0], *marks), max(inner[-1], *marks)
        pad = 0.03 * (hi - lo or 1.0)
        fig.update_xaxes(range=[lo - pad, hi + pad])
    fig.update_layout(title="Accuracy as α moves", height=360, xaxis_title="α (seen distances × (1 + α))",
                      yaxis=dict(title="%", range=[0, 101]), legend=dict(orientation="h", y=-0.25), **_LAYOUT)
    return fig


def sweep_figure(points: pd.DataFrame, param_label: str, metric: str = "H",
                 reference: pd.DataFrame | None = None, headline: float | None = None) -> go.Figure:
    """Metric (mean ± std over seeds) against a swept parameter, with the paper's curve if given."""
    fig = go.Figure()
    if not points.empty:
        fig.add_trace(go.Scatter(
            x=points["value"], y=points["mean"] * 100, mode="lines+markers", name=f"{metric} (this project)",
            error_y=dict(type="data", array=points["std"] * 100, visible=True),
            line=dict(color=H_COLOR, width=3), customdata=points["n"],
            hovertemplate="%{x}: %{y:.1f}% (n=%{customdata})<extra></extra>",
        ))
    if reference is not None and metric in reference:
        fig.add_trace(go.Scatter(x=reference["value"], y=reference[metric] * 100, mode="lines+markers",
                                 name=f"{metric} (paper, §9)", line=dict(color=PAPER_COLOR, dash="dash")))
    if headline is not None:
        fig.add_hline(y=headline * 100, line=dict(color=PAPER_COLOR, dash="dot"),
                      annotation_text="paper default", annotation_position="bottom right")
    fig.update_layout(title=f"{metric} vs {param_label}", height=380, xaxis_title=param_label,
                      yaxis=dict(title=f"{metric} (%)", rangemode="tozero"),
                      legend=dict(orientation="h", y=-0.25), **_LAYOUT)
    return fig


def metrics_bar_figure(runs: Sequence[str], metrics: dict[str, Sequence[float | None]]) -> go.Figure:
    """Grouped bars of u, s, H (fractions) per run."""
    colors = {"u": UNSEEN_COLOR, "s": SEEN_COLOR, "H": H_COLOR}
    fig = go.Figure()
    for key, values in metrics.items():
        y = [None if v is None else v * 100 for v in values]
        fig.add_trace(go.Bar(x=list(runs), y=y, name=key, marker_color=colors.get(key),
                             text=[None if v is None else f"{v:.1f}" for v in y], textposition="outside"))
    fig.update_layout(barmode="group", height=340, title="Final metrics", yaxis=dict(title="%", range=[0, 105]),
                      legend=dict(orientation="h", y=-0.25), **_LAYOUT)
    return fig
