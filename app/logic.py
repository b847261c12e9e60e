"""Pure functions behind the Streamlit pages: slider re-scoring, tables, neighbours, sweeps.

Nothing here imports Streamlit or touches the store: inputs are the frozen dataclasses and numpy
arrays that `jobs` hands out, outputs are numbers, arrays and pandas frames. The pages call these
and the tests check them directly (AppTest cannot see inside plotly charts or fragments).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from clarel.metrics import (
    gzsl_metrics,
    per_class_accuracy,
    rescaled_predictions,
    seen_unseen_confusion,
    stacked_predictions,
)

SWEEPABLE = {  # parameters the launch form can sweep -> label shown to the user
    "loss.kappa": "κ (class-loss weight)",
    "loss.lam": "λ (image→text vs text→image)",
    "optim.seed": "seed",
    "optim.steps": "training steps",
}
METRIC_LABELS = {  # final_metrics keys shown in tables, in display order
    "H": "H",
    "u": "u (unseen)",
    "s": "s (seen)",
    "zsl_top1": "ZSL top-1",
    "H_alpha0": "H at α=0",
    "ausuc": "AUSUC",
    "H_stacking": "H stacking",
    "alpha": "α*",
}
_NOT_A_CONFIG_DIFFERENCE = {"name"}  # differs for every run by construction


# ----------------------------------------------------------------------------- slider
@dataclass(frozen=True)
class AlphaScores:
    """Everything the Seen/unseen page shows for one value of the rescaling factor.

    Attributes:
        alpha: the rescaling factor (seen distances multiplied by 1 + alpha).
        u, s, h: per-class mean top-1 on unseen / seen test images, and their harmonic mean.
        preds: predicted class of each evaluation image.   # [N]
        block: counts, rows true seen/unseen, columns predicted seen/unseen.   # [2, 2]
    """

    alpha: float
    u: float
    s: float
    h: float
    preds: np.ndarray
    block: np.ndarray


def score_alpha(ev: Any, alpha: float) -> AlphaScores:
    """Re-score the stored distance matrix at ``alpha`` with the `clarel.metrics` functions.

    Args:
        ev: a `jobs` ``EvalArrays`` (distances [N, C], labels [N], seen_mask [C], class_mask [C]).
        alpha: rescaling factor, >= 0.
    """
    preds = rescaled_predictions(ev.distances, ev.seen_mask, alpha, ev.class_mask)
    m = gzsl_metrics(ev.distances, ev.labels, ev.seen_mask, alpha, ev.class_mask)
    block = seen_unseen_confusion(preds, ev.labels, ev.seen_mask)
    return AlphaScores(float(alpha), float(m["u"]), float(m["s"]), float(m["H"]), preds, np.asarray(block))


def score_gamma(ev: Any, gamma: float) -> tuple[float, float, float]:
    """u, s, H of calibrated stacking (seen distances minus ``gamma``) at one gamma."""
    preds = stacked_predictions(ev.distances, ev.seen_mask, gamma, ev.class_mask)
    u, s = _group_accuracies(preds, ev.labels, ev.seen_mask)
    return u, s, harmonic_mean(u, s)


def harmonic_mean(u: float, s: float) -> float:
    """2us/(u+s), 0 when both are 0."""
    return 0.0 if u + s <= 0 else 2.0 * u * s / (u + s)


def _group_accuracies(preds: np.ndarray, labels: np.ndarray, seen_mask: np.ndarray) -> tuple[float, float]:
    present = np.unique(labels)
    seen = present[seen_mask[present]]
    unseen = present[~seen_mask[present]]
    u = float(np.mean(per_class_accuracy(preds, labels, unseen))) if len(unseen) else 0.0
    s = float(np.mean(per_class_accuracy(preds, labels, seen))) if len(seen) else 0.0
    return u, s


def slider_options(ev: Any) -> tuple[list[float], float]:
    """(the alpha values the slider stops at, the default alpha*), ascending.

    The stops are the stored dense sweep (quantiles of the alphas at which single images switch
    from a seen to an unseen prediction; the selection grid if there is none), plus 0 and alpha*. Quantile stops
    make every slider step move about as many predictions, whatever the scale of the distances;
    the lowest stop (possibly negative: seen classes favoured) predicts almost everything seen and
    the highest almost everything unseen.
    """
    chosen = _round(float(ev.alpha or 0.0))
    curve = ev.sweep_curve if ev.sweep_curve is not None and len(ev.sweep_curve.values) else ev.alpha_curve
    values = [] if curve is None else [np.asarray(curve.values, dtype=float)]
    pool = np.concatenate([*values, [0.0, chosen]])
    pool = pool[np.isfinite(pool)]
    options = sorted({_round(v) for v in pool})
    return options, chosen


def _round(value: float) -> float:
    return float(f"{value:.6g}")


def class_order(seen_mask: np.ndarray, class_mask: np.ndarray | None = None) -> np.ndarray:
    """Class indices of the protocol, seen classes first, then unseen."""
    in_protocol = np.ones_like(seen_mask, dtype=bool) if class_mask is None else np.asarray(class_mask, bool)
    return np.concatenate([np.flatnonzero(seen_mask & in_protocol), np.flatnonzero(~seen_mask & in_protocol)])


def confusion_matrix(preds: np.ndarray, labels: np.ndarray, order: np.ndarray, normalize: bool = True) -> np.ndarray:
    """Class confusion, rows true class and columns predicted class, both in ``order``.

    Returns:
        [len(order), len(order)]: row-normalised fractions (rows with no images stay 0) or counts.
    """
    num = int(max(order.max(initial=0), labels.max(initial=0), preds.max(initial=0))) + 1
    counts = np.bincount(labels * num + preds, minlength=num * num).reshape(num, num)
    counts = counts[np.ix_(order, order)].astype(np.float64)
    if not normalize:
        return counts
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)


def per_class_table(preds: np.ndarray, labels: np.ndarray, seen_mask: np.ndarray,
                    class_names: Sequence[str]) -> pd.DataFrame:
    """One row per evaluated class: group, images, top-1 accuracy and the most frequent mistake."""
    present = np.unique(labels)
    acc = np.asarray(per_class_accuracy(preds, labels, present), dtype=float)
    rows = []
    for c, a in zip(present, acc):
        mine = preds[labels == c]
        wrong = mine[mine != c]
        confused = ""
        if len(wrong):
            top = np.bincount(wrong).argmax()
            confused = f"{class_names[top]} ({np.mean(mine == top):.0%})"
        rows.append({
            "class": class_names[c],
            "group": "seen" if seen_mask[c] else "unseen",
            "images": int(len(mine)),
            "accuracy": float(a),
            "most confused with": confused,
        })
    frame = pd.DataFrame(rows, columns=["class", "group", "images", "accuracy", "most confused with"])
    return frame.sort_values(["group", "accuracy"], ascending=[True, True], ignore_index=True)


def block_frame(block: np.ndarray) -> pd.DataFrame:
    """The 2 x 2 seen/unseen block as a labelled frame of counts."""
    return pd.DataFrame(np.asarray(block, dtype=int),
                        index=["true seen", "true unseen"], columns=["predicted seen", "predicted unseen"])


# ----------------------------------------------------------------------------- joint space
def umap_frame(proj: Any, class_names: Sequence[str], seen_mask: np.ndarray,
               captions: Sequence[Sequence[str]] | None = None) -> pd.DataFrame:
    """The stored UMAP projection as one row per point, with hover text.

    Args:
        proj: a `jobs` ``UmapProjection`` (coords [P, 2], modality [P], item_index [P], labels [P]).
        class_names, seen_mask: per class.
        captions: the dataset's captions per image (for text points' hover), or None.
    """
    labels = np.asarray(proj.labels, dtype=int)
    modality = np.asarray(proj.modality).astype(str)
    items = np.asarray(proj.item_index, dtype=int)
    names = np.asarray(class_names, dtype=object)[labels]
    groups = np.where(np.asarray(seen_mask)[labels], "seen", "unseen")
    hover = []
    for m, i, name, g in zip(modality, items, names, groups):
        text = f"<b>{name}</b> ({g})<br>{m}"
        if m == "text" and captions is not None and 0 <= i < len(captions) and captions[i]:
            text += "<br><i>" + _wrap(captions[i][0]) + "</i>"
        elif m == "image":
            text += f" #{i}"
        hover.append(text)
    return pd.DataFrame({
        "x": np.asarray(proj.coords)[:, 0], "y": np.asarray(proj.coords)[:, 1],
        "modality": modality, "item_index": items, "label": labels,
        "class_name": names, "group": groups, "hover": hover,
    })


def _wrap(text: str, width: int = 60) -> str:
    words, lines, line = text.split(), [], ""
    for w in words:
        if len(line) + len(w) + 1 > width and line:
            lines.append(line)
            line = w
        else:
            line = f"{line} {w}".strip()
    lines.append(line)
    return "<br>".join(lines[:4])


def filter_points(frame: pd.DataFrame, groups: Iterable[str], modalities: Iterable[str],
                  classes: Iterable[str] = ()) -> pd.DataFrame:
    """Rows whose group and modality are selected, and whose class is in ``classes`` if any given."""
    keep = frame["group"].isin(list(groups)) & frame["modality"].isin(list(modalities))
    classes = list(classes)
    if classes:
        keep &= frame["class_name"].isin(classes)
    return frame[keep]


def embedding_of(emb: Any, modality: str, item_index: int) -> np.ndarray | None:
    """The joint-space vector of one UMAP point, or None when the store has no row for it."""
    if modality == "prototype":
        if 0 <= item_index < len(emb.prototypes):
            vec = np.asarray(emb.prototypes[item_index])
            return None if not np.all(np.isfinite(vec)) else vec
        return None
    index, matrix = (emb.image_index, emb.image) if modality == "image" else (emb.text_index, emb.text)
    rows = np.flatnonzero(np.asarray(index) == item_index)
    return np.asarray(matrix[rows[0]]) if len(rows) else None


def nearest_neighbours(emb: Any, modality: str, item_index: int, k: int = 5) -> pd.DataFrame:
    """The ``k`` nearest items of each *other* modality to one point, by Euclidean distance.

    Image -> captions and prototypes, caption -> images and prototypes, prototype -> images and
    captions. Returns columns ``modality, item_index, distance`` (item_index is a dataset image
    index, or a class index for prototypes), nearest first within each modality.
    """
    query = embedding_of(emb, modality, item_index)
    columns = ["modality", "item_index", "distance"]
    if query is None:
        return pd.DataFrame(columns=columns)
    targets = {
        "image": (np.asarray(emb.image), np.asarray(emb.image_index)),
        "text": (np.asarray(emb.text), np.asarray(emb.text_index)),
        "prototype": (np.asarray(emb.prototypes), np.arange(len(emb.prototypes))),
    }
    parts = []
    for name, (matrix, index) in targets.items():
        if name == modality or len(matrix) == 0:
            continue
        dist = np.sqrt(np.sum((matrix.astype(np.float64) - query) ** 2, axis=1))
        dist[~np.isfinite(dist)] = np.inf
        order = np.argsort(dist, kind="stable")[:k]
        order = order[np.isfinite(dist[order])]
        parts.append(pd.DataFrame({"modality": name, "item_index": index[order].astype(int),
                                   "distance": dist[order]}))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)


# ----------------------------------------------------------------------------- runs and compare
def parse_sweep_values(text: str) -> list[float]:
    """``"0, 0.25, 0.5"`` -> [0.0, 0.25, 0.5]; raises ValueError naming the bad entry."""
    values = []
    for raw in text.replace(";", ",").split(","):
        raw = raw.strip()
        if not raw:
            continue
        try:
            values.append(float(raw))
        except ValueError:
            raise ValueError(f"sweep value {raw!r} is not a number; write numbers separated by commas, "
                             "e.g. 0, 0.25, 0.5") from None
    if not values:
        raise ValueError("the sweep needs at least one value, e.g. 0, 0.25, 0.5")
    return values


def launch_overrides(defaults: dict[str, Any], dataset: str, kappa: float, lam: float, steps: int,
                     dataset_root: str = "") -> dict[str, Any]:
    """Dotted overrides for `Store.submit`: only the values that differ from the preset."""
    wanted = {"data.dataset": dataset, "loss.kappa": float(kappa), "loss.lam": float(lam),
              "optim.steps": int(steps)}
    if dataset_root:
        wanted["data.root"] = dataset_root
    flat = flatten_config(defaults)
    return {k: v for k, v in wanted.items() if flat.get(k) != v}


def format_eta(seconds: float | None) -> str:
    """``75`` -> ``"1 min 15 s"``; None or negative -> ``"–"``."""
    if seconds is None or not np.isfinite(seconds) or seconds < 0:
        return "–"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, sec = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {sec:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def jobs_frame(jobs: Sequence[Any]) -> pd.DataFrame:
    """The queue as a table: one row per job, newest first."""
    rows = []
    for j in jobs:
        m = j.final_metrics or {}
        rows.append({
            "id": j.id, "name": j.name, "preset": j.preset, "state": j.state,
            "progress": float(j.progress or 0.0),
            "status": j.progress_message or (j.error_summary or ""),
            "ETA": format_eta(j.eta_seconds) if j.state == "RUNNING" else "",
            "H": f"{m['H']:.1%}" if m.get("H") is not None else "", "attempts": f"{j.attempts}/{j.max_attempts}",
            "created": j.created_at,
        })
    frame = pd.DataFrame(rows, columns=["id", "name", "preset", "state", "progress", "status", "ETA", "H",
                                        "attempts", "created"])
    return frame


def flatten_config(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"loss": {"kappa": 0.5}}`` -> ``{"loss.kappa": 0.5}`` (lists become tuples)."""
    flat: dict[str, Any] = {}
    for key, value in (config or {}).items():
        if isinstance(value, dict):
            flat.update(flatten_config(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = tuple(value) if isinstance(value, list) else value
    return flat


def differing_keys(configs: Sequence[dict[str, Any]]) -> list[str]:
    """Dotted config keys whose values are not the same in every config (run names excluded)."""
    flats = [flatten_config(c) for c in configs]
    keys = sorted(set().union(*flats)) if flats else []
    return [k for k in keys if k not in _NOT_A_CONFIG_DIFFERENCE
            and len({repr(f.get(k)) for f in flats}) > 1]


def compare_frame(jobs: Sequence[Any]) -> pd.DataFrame:
    """Runs side by side: the config keys that differ, then the final metrics (one row per run)."""
    keys = differing_keys([j.config for j in jobs])
    rows = []
    for j in jobs:
        flat = flatten_config(j.config)
        row: dict[str, Any] = {"run": f"#{j.id} {j.name}"}
        row.update({k: _cell(flat.get(k)) for k in keys})
        metrics = j.final_metrics or {}
        row.update({label: metrics.get(key) for key, label in METRIC_LABELS.items()})
        rows.append(row)
    return pd.DataFrame(rows)


def _cell(value: Any) -> Any:
    return ", ".join(map(str, value)) if isinstance(value, tuple) else value


def sweep_points(jobs: Sequence[Any], param: str, metric: str = "H") -> pd.DataFrame:
    """Mean and standard deviation of ``metric`` over runs grouped by the value of ``param``.

    Returns columns ``value, mean, std, n`` sorted by value; runs missing the metric are skipped.
    """
    rows = []
    for j in jobs:
        value = flatten_config(j.config).get(param)
        metric_value = (j.final_metrics or {}).get(metric)
        if isinstance(value, int | float) and metric_value is not None and np.isfinite(metric_value):
            rows.append((float(value), float(metric_value)))
    if not rows:
        return pd.DataFrame(columns=["value", "mean", "std", "n"])
    frame = pd.DataFrame(rows, columns=["value", "metric"])
    out = frame.groupby("value")["metric"].agg(["mean", "std", "count"]).reset_index()
    out = out.rename(columns={"count": "n"})
    out["std"] = out["std"].fillna(0.0)
    return out.sort_values("value", ignore_index=True)


def worker_summary(workers: Sequence[Any]) -> tuple[bool, str]:
    """(any alive, one-line description) of the workers' heartbeats."""
    alive = [w for w in workers if w.alive]
    if not alive:
        return False, "No worker is running: queued jobs wait until one starts."
    busy = [w for w in alive if w.current_job_id is not None]
    devices = sorted({str(w.device) for w in alive if w.device})
    noun = "worker" if len(alive) == 1 else "workers"
    text = f"{len(alive)} {noun} alive" + (f" ({', '.join(devices)})" if devices else "")
    if busy:
        text += ", running job " + ", ".join(f"#{w.current_job_id}" for w in busy)
    else:
        text += ", idle"
    return True, text
