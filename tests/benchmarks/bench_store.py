"""Run-store figures: ``python -m tests.benchmarks.bench_store [--pg URL]``.

Claim latency (submit + claim + finish through the queue API), metric-write throughput (batched
as the worker's callback writes them), and storing/loading the arrays of a CUB-sized run: image
and per-image text embeddings (~11.8k x 1024 float32 each) and the test distance matrix
(4.7k x 200 float32). SQLite by default (a temp file); ``--pg URL`` or ``CLAREL_BENCH_PG_URL``
adds a PostgreSQL run. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import numpy as np

from clarel.results import AlphaCurve, EvalResult
from jobs import JobState, open_store


def _ms(values: list[float]) -> str:
    values = sorted(values)
    return (f"median {1000 * statistics.median(values):.2f} ms, p95 {1000 * values[int(0.95 * (len(values) - 1))]:.2f} ms"
            f" over {len(values)}")


def bench(url: str, label: str) -> None:
    store = open_store(url)
    print(f"--- {label}")
    # Claim latency: one claim transaction (BEGIN IMMEDIATE / FOR UPDATE SKIP LOCKED + UPDATE ... RETURNING).
    store.submit("tiny", sweep={"optim.steps": list(range(1, 501))})
    claims, finishes = [], []
    while True:
        t0 = time.perf_counter()
        c = store.claim("bench", lease_s=60)
        t1 = time.perf_counter()
        if c is None:
            break
        store.finish(c.job_id, "bench", JobState.SUCCEEDED)
        finishes.append(time.perf_counter() - t1)
        claims.append(t1 - t0)
    print(f"claim latency (500 queued jobs): {_ms(claims)}; finish: {_ms(finishes)}")

    job_id = store.submit("tiny")[0]
    rng = np.random.default_rng(0)
    # Metric writes: batches of 50 rows (the callback flushes about once a second).
    n_batches, batch = 200, 50
    t0 = time.perf_counter()
    for b in range(n_batches):
        store.add_metrics(job_id, [(b * 10 + i // 5, f"k{i % 5}", float(rng.random())) for i in range(batch)])
    dt = time.perf_counter() - t0
    print(f"metric writes: {n_batches * batch / dt:,.0f} rows/s in batches of {batch} "
          f"({1000 * dt / n_batches:.1f} ms per batch)")
    t0 = time.perf_counter()
    hist = store.metric_history(job_id)
    print(f"metric history read ({sum(len(s) for s, _ in hist.values()):,} points): {1000 * (time.perf_counter() - t0):.0f} ms")

    # A CUB-sized run: 11,788 images, 1024-d; test set 4,731 x 200 distances.
    n_img, dim, n_test, n_cls = 11788, 1024, 4731, 200
    image = rng.normal(size=(n_img, dim)).astype(np.float32)
    text = rng.normal(size=(n_img, dim)).astype(np.float32)
    protos = rng.normal(size=(n_cls, dim)).astype(np.float32)
    labels = rng.integers(0, n_cls, n_img)
    t0 = time.perf_counter()
    store.save_embeddings(job_id, "image", image, np.arange(n_img), labels)
    store.save_embeddings(job_id, "text", text, np.arange(n_img), labels)
    store.save_embeddings(job_id, "prototype", protos, np.arange(n_cls), np.arange(n_cls))
    save_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    emb = store.embeddings(job_id)
    load_s = time.perf_counter() - t0
    assert np.array_equal(emb.image, image)
    mb = (image.nbytes + text.nbytes + protos.nbytes) / 2**20
    print(f"embeddings {n_img} x {dim} image + text ({mb:.0f} MiB float32): store {save_s:.2f} s, load {load_s:.2f} s")

    curve = AlphaCurve(values=np.linspace(0, 0.045, 10), u=rng.random(10), s=rng.random(10), h=rng.random(10))
    dense = AlphaCurve(values=np.linspace(0, 1, 101), u=rng.random(101), s=rng.random(101), h=rng.random(101))
    ev = EvalResult(metrics={"u": 0.5, "s": 0.5, "H": 0.5, "alpha": 0.02}, protocol="test",
                    distances=rng.random((n_test, n_cls)).astype(np.float32), labels=rng.integers(0, n_cls, n_test),
                    image_index=np.arange(n_test), seen_mask=np.arange(n_cls) < 150, class_mask=np.ones(n_cls, bool),
                    class_names=[f"class {i}" for i in range(n_cls)], alpha_curve=curve, sweep_curve=dense,
                    stacking_curve=dense, image_embeddings=image[:0], text_embeddings=text[:0],
                    text_index=np.arange(0), prototypes=protos)
    t0 = time.perf_counter()
    store.save_evaluation(job_id, ev)
    save_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    got = store.eval_arrays(job_id)
    load_s = time.perf_counter() - t0
    assert np.array_equal(got.distances, ev.distances)
    print(f"distance matrix {n_test} x {n_cls} float32 + labels/masks/curves: store {1000 * save_s:.0f} ms, "
          f"load {1000 * load_s:.0f} ms")
    store.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pg", default=os.environ.get("CLAREL_BENCH_PG_URL"), help="also benchmark this PostgreSQL URL")
    args = parser.parse_args(argv if argv is not None else [])
    with tempfile.TemporaryDirectory(prefix="clarel-bench-") as tmp:
        bench(f"sqlite:///{tmp}/bench.db", "SQLite (WAL, file in a temp folder)")
    if args.pg:
        bench(args.pg, "PostgreSQL")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
