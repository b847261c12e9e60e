"""Evaluation and re-scoring speed of the core metrics: ``python -m tests.benchmarks.bench_core_eval``.

Goals (issue 3): evaluating 5,000 test images x 200 classes well under 1 s (distances from
1024-d embeddings + every metric of an `EvalResult`: alpha grid, dense sweep, AUSUC, stacking);
re-scoring the stored matrix for a new alpha (predictions + u/s/H) under 20 ms. Prints figures.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch

from clarel import metrics as M
from clarel.config import PAPER_ALPHA_GRID
from clarel.evaluate import score_distances
from clarel.losses import pairwise_distances


def main() -> None:
    torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    n, c, d = 5000, 200, 1024
    protos = rng.normal(size=(c, d)).astype(np.float32)
    labels = rng.integers(0, c, n)
    images = protos[labels] + rng.normal(scale=1.2, size=(n, d)).astype(np.float32)
    seen = np.arange(c) < 150
    class_mask = np.ones(c, dtype=bool)

    times = []
    for _ in range(5):
        t = time.perf_counter()
        dist = pairwise_distances(torch.from_numpy(images).double(), torch.from_numpy(protos).double(), eps=0.0)
        distances = dist.float().numpy()
        score_distances(distances, labels, seen, class_mask, 0.02, 0.0, PAPER_ALPHA_GRID, 101)
        times.append(time.perf_counter() - t)
    print(f"evaluate 5000x200 from 1024-d embeddings (distances + all metrics): "
          f"median {1000 * statistics.median(times):.0f} ms (goal < 1000 ms)")

    rescore = []
    for a in np.linspace(0, 0.05, 50):
        t = time.perf_counter()
        M.gzsl_metrics(distances, labels, seen, float(a))
        rescore.append(time.perf_counter() - t)
    print(f"re-score for a new alpha (predictions + u/s/H): median {1000 * statistics.median(rescore):.1f} ms, "
          f"max {1000 * max(rescore):.1f} ms (goal < 20 ms)")
    t = time.perf_counter()
    M.alpha_sweep(distances, labels, seen, M.dense_values(distances, seen, 101))
    print(f"dense 101-point sweep (AUSUC curve): {1000 * (time.perf_counter() - t):.1f} ms")


if __name__ == "__main__":
    main()
