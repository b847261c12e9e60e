"""How long one move of the Seen/unseen α slider takes on the server: ``python -m tests.benchmarks.bench_slider``.

Goal (issue 5): re-scoring plus metrics for 5,000 images x 200 classes under 50 ms. Measures what
the page recomputes per move — predictions, u/s/H, the 2x2 block (`app.logic.score_alpha`), the
class confusion ordered seen then unseen and the per-class table — and, separately, building the
plotly figures. Prints figures; asserts nothing about speed.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from app import figures
from app.logic import class_order, confusion_matrix, per_class_table, score_alpha
from clarel.metrics import alpha_sweep, dense_values
from jobs.records import EvalArrays


def synthetic_eval(n_images: int = 5000, n_classes: int = 200, n_seen: int = 150, seed: int = 0) -> EvalArrays:
    """A distance matrix shaped like CUB's test set: images nearer their own class, seen bias."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, n_images)
    seen_mask = np.zeros(n_classes, dtype=bool)
    seen_mask[:n_seen] = True
    distances = rng.normal(60.0, 3.0, (n_images, n_classes)).astype(np.float32)
    distances[np.arange(n_images), labels] -= 4.0
    distances[:, seen_mask] -= 1.0
    class_mask = np.ones(n_classes, dtype=bool)
    values = dense_values(distances, seen_mask, 101)
    curve = alpha_sweep(distances, labels, seen_mask, values)
    stack = alpha_sweep(distances, labels, seen_mask, dense_values(distances, seen_mask, 101, "stacking"), "stacking")
    return EvalArrays(distances=distances, labels=labels, image_index=np.arange(n_images), seen_mask=seen_mask,
                      class_mask=class_mask, class_names=[f"class {i}" for i in range(n_classes)], alpha=0.02,
                      alpha_curve=curve, sweep_curve=curve, stacking_curve=stack)


def one_move(ev: EvalArrays, alpha: float, order: np.ndarray) -> float:
    scores = score_alpha(ev, alpha)
    confusion_matrix(scores.preds, ev.labels, order)
    per_class_table(scores.preds, ev.labels, ev.seen_mask, ev.class_names)
    return scores.h


def main() -> None:
    ev = synthetic_eval()
    order = class_order(ev.seen_mask, ev.class_mask)
    alphas = np.linspace(0.0, 0.1, 60)
    one_move(ev, 0.0, order)  # warm-up
    compute_ms = []
    for a in alphas:
        t0 = time.perf_counter()
        one_move(ev, float(a), order)
        compute_ms.append((time.perf_counter() - t0) * 1000)
    figure_ms = []
    for a in alphas[:15]:
        t0 = time.perf_counter()
        scores = score_alpha(ev, float(a))
        names = [ev.class_names[i] for i in order]
        figures.confusion_figure(confusion_matrix(scores.preds, ev.labels, order), names, 150).to_json()
        figures.block_figure(scores.block).to_json()
        figures.alpha_figure(ev.sweep_curve, float(a), ev.alpha).to_json()
        figures.seen_unseen_curve_figure(ev.sweep_curve, (scores.u, scores.s), None, "m").to_json()
        figure_ms.append((time.perf_counter() - t0) * 1000)

    def p95(xs: list[float]) -> float:
        return float(np.percentile(xs, 95))

    print(f"slider re-scoring + metrics, {ev.distances.shape[0]} images x {ev.distances.shape[1]} classes "
          f"({len(compute_ms)} moves): median {statistics.median(compute_ms):.1f} ms, p95 {p95(compute_ms):.1f} ms "
          f"(goal < 50 ms)")
    print(f"  + building and serialising the 4 figures: median {statistics.median(figure_ms):.1f} ms, "
          f"p95 {p95(figure_ms):.1f} ms")


if __name__ == "__main__":
    main()
