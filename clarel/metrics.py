"""Pure numpy metrics of zero-shot evaluation: rescaled predictions, per-class accuracy, GZSL u/s/H,
alpha / gamma sweeps and AUSUC. The Streamlit slider calls these on a stored distance matrix.

Shapes: ``distances [N, C]`` (image-to-prototype Euclidean distances; classes outside the protocol
may be ``inf`` or excluded with ``class_mask``), ``labels [N]``, ``seen_mask [C]`` bool.
"""

from __future__ import annotations

import numpy as np

from clarel.results import AlphaCurve


def _masked(distances: np.ndarray, class_mask: np.ndarray | None) -> np.ndarray:
    if class_mask is None:
        return distances
    return np.where(np.asarray(class_mask, dtype=bool)[None, :], distances, np.inf)


def rescaled_predictions(distances: np.ndarray, seen_mask: np.ndarray, alpha: float,
                         class_mask: np.ndarray | None = None) -> np.ndarray:
    """argmin_c (1 + α·[c seen])·d_c (§6.1); ties go to the lower class index.  -> [N] int64"""
    factor = np.where(np.asarray(seen_mask, dtype=bool), 1.0 + alpha, 1.0).astype(distances.dtype)
    return np.argmin(_masked(distances, class_mask) * factor[None, :], axis=1)


def stacked_predictions(distances: np.ndarray, seen_mask: np.ndarray, gamma: float,
                        class_mask: np.ndarray | None = None) -> np.ndarray:
    """Calibrated stacking (Chao et al. 2016): seen scores -d_c lowered by γ, i.e. d_c + γ.  -> [N]"""
    offset = np.where(np.asarray(seen_mask, dtype=bool), gamma, 0.0).astype(distances.dtype)
    return np.argmin(_masked(distances, class_mask) + offset[None, :], axis=1)


def per_class_accuracy(preds: np.ndarray, labels: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Top-1 accuracy within each class of ``classes`` (NaN for a class with no images).  -> [K]"""
    classes = np.asarray(classes, dtype=np.int64)
    labels = np.asarray(labels, dtype=np.int64)
    if len(classes) == 0:
        return np.zeros(0)
    n = int(max(classes.max(), labels.max(initial=0))) + 1
    totals = np.bincount(labels, minlength=n)[classes]
    hits = np.bincount(labels[np.asarray(preds) == labels], minlength=n)[classes]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, hits / np.maximum(totals, 1), np.nan)


def mean_per_class_accuracy(preds: np.ndarray, labels: np.ndarray) -> float:
    """Per-class mean top-1 over the classes present in ``labels`` (0 when there are none)."""
    classes = np.unique(labels)
    return float(per_class_accuracy(preds, labels, classes).mean()) if len(classes) else 0.0


def harmonic_mean(u: float, s: float) -> float:
    return 0.0 if u + s == 0 else 2.0 * u * s / (u + s)


def _us(preds: np.ndarray, labels: np.ndarray, seen_mask: np.ndarray) -> tuple[float, float]:
    is_seen = np.asarray(seen_mask, dtype=bool)[labels]
    u = mean_per_class_accuracy(preds[~is_seen], labels[~is_seen])
    s = mean_per_class_accuracy(preds[is_seen], labels[is_seen])
    return u, s


def gzsl_metrics(distances: np.ndarray, labels: np.ndarray, seen_mask: np.ndarray, alpha: float,
                 class_mask: np.ndarray | None = None) -> dict[str, float]:
    """u (unseen-label images), s (seen-label images), H = 2us/(u+s), per-class mean top-1."""
    u, s = _us(rescaled_predictions(distances, seen_mask, alpha, class_mask), labels, seen_mask)
    return {"u": u, "s": s, "H": harmonic_mean(u, s)}


def zsl_top1(distances: np.ndarray, labels: np.ndarray, unseen_mask: np.ndarray) -> float:
    """Classical ZSL: unseen-label images classified among the unseen classes only."""
    unseen_mask = np.asarray(unseen_mask, dtype=bool)
    rows = unseen_mask[labels]
    if not rows.any():
        return 0.0
    preds = np.argmin(_masked(distances[rows], unseen_mask), axis=1)
    return mean_per_class_accuracy(preds, labels[rows])


def seen_unseen_confusion(preds: np.ndarray, labels: np.ndarray, seen_mask: np.ndarray) -> np.ndarray:
    """Counts ``[2, 2]``: rows true seen/unseen, columns predicted seen/unseen."""
    seen_mask = np.asarray(seen_mask, dtype=bool)
    true_unseen = (~seen_mask[labels]).astype(np.int64)
    pred_unseen = (~seen_mask[preds]).astype(np.int64)
    return np.bincount(true_unseen * 2 + pred_unseen, minlength=4).reshape(2, 2)


# ------------------------------------------------------------------ sweeps
def _group_minima(distances: np.ndarray, seen_mask: np.ndarray, class_mask: np.ndarray | None):
    d = _masked(distances, class_mask)
    seen_mask = np.asarray(seen_mask, dtype=bool)
    ds = np.where(seen_mask[None, :], d, np.inf)
    du = np.where(seen_mask[None, :], np.inf, d)
    cs, cu = ds.argmin(1), du.argmin(1)
    rows = np.arange(len(d))
    return ds[rows, cs], cs, du[rows, cu], cu


def alpha_sweep(distances: np.ndarray, labels: np.ndarray, seen_mask: np.ndarray, values,
                mode: str = "multiplicative", class_mask: np.ndarray | None = None) -> AlphaCurve:
    """u, s, H for each alpha (``multiplicative``) or gamma (``stacking``) in ``values``.

    Exactly the predictions of `rescaled_predictions`/`stacked_predictions`, but each value costs
    O(N): only the nearest seen and the nearest unseen class of each image can win.
    """
    if mode not in ("multiplicative", "stacking"):
        raise ValueError(f"mode={mode!r}; choose 'multiplicative' or 'stacking'")
    values = np.asarray(values, dtype=np.float64)
    dmin_s, cs, dmin_u, cu = _group_minima(distances, seen_mask, class_mask)
    labels = np.asarray(labels)
    is_seen = np.asarray(seen_mask, dtype=bool)[labels]
    classes_u, classes_s = np.unique(labels[~is_seen]), np.unique(labels[is_seen])
    u = np.zeros(len(values))
    s = np.zeros(len(values))
    for i, v in enumerate(values):
        if mode == "multiplicative":
            scaled = dmin_s * distances.dtype.type(1.0 + v)
        else:
            scaled = dmin_s + distances.dtype.type(v)
        pick_seen = (scaled < dmin_u) | ((scaled == dmin_u) & (cs < cu))
        preds = np.where(pick_seen, cs, cu)
        u[i] = per_class_accuracy(preds[~is_seen], labels[~is_seen], classes_u).mean() if len(classes_u) else 0.0
        s[i] = per_class_accuracy(preds[is_seen], labels[is_seen], classes_s).mean() if len(classes_s) else 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        h = np.where(u + s > 0, 2 * u * s / np.maximum(u + s, 1e-12), 0.0)
    return AlphaCurve(values=values, u=u, s=s, h=h)


def dense_values(distances: np.ndarray, seen_mask: np.ndarray, points: int = 101,
                 mode: str = "multiplicative", class_mask: np.ndarray | None = None) -> np.ndarray:
    """Sweep values covering the whole seen-unseen trade-off (all-seen to all-unseen predictions).

    Each image switches from its nearest seen to its nearest unseen class at one threshold
    (``d_u/d_s - 1`` or ``d_u - d_s``); the values are quantiles of those thresholds plus one
    value below and one above all of them.
    """
    dmin_s, _, dmin_u, _ = _group_minima(distances, seen_mask, class_mask)
    with np.errstate(invalid="ignore", divide="ignore"):
        t = (dmin_u / dmin_s - 1.0) if mode == "multiplicative" else (dmin_u - dmin_s)
    t = t[np.isfinite(t)].astype(np.float64)
    if len(t) == 0:
        return np.array([0.0])
    lo, hi = float(t.min()), float(t.max())
    margin = 1e-3 * (abs(hi) + abs(lo) + 1.0)
    below = (lo - 1.0) / 2.0 if mode == "multiplicative" else lo - margin  # alpha must stay > -1
    inner = np.quantile(t, np.linspace(0.0, 1.0, max(points - 2, 2)))
    return np.unique(np.concatenate([[below], inner, [hi + margin]]))


def ausuc(curve: AlphaCurve) -> float:
    """Area under the seen-unseen accuracy curve (x = u, y = s; Chao et al. 2016)."""
    order = np.lexsort((-curve.s, curve.u))
    u, s = curve.u[order], curve.s[order]
    return float(np.trapezoid(s, u))


def best_value(curve: AlphaCurve) -> float:
    """The sweep value with the highest H (the first one on ties: smallest alpha)."""
    return float(curve.values[int(np.argmax(curve.h))])
