"""What runs inside a job's child process: training through `clarel.train`, live progress and
metrics into the store, then final metrics, artifacts, evaluation arrays, embeddings and a UMAP
projection of the joint space.

The worker (`jobs.worker`) starts `child_main` in a fresh ``spawn`` process per job, so a crash,
an out-of-memory kill or a hung library never takes the worker down. The child reports its
outcome through a pipe; the worker alone moves the job's state.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

METRIC_POINTS = 1000  # step metrics kept per run: every max(1, steps // METRIC_POINTS) steps
FLUSH_EVERY_S = 1.0  # buffered metrics/progress/log lines reach the store at least this often
SKIP_STEP_KEYS = ("progress", "eta_seconds")
TRACEBACK_LINES = 40
ARTIFACT_FILES = {"config": "config.json", "metrics": "metrics.jsonl", "final_metrics": "final_metrics.json",
                  "vocab": "vocab.json"}
# Errors that would fail again the same way: the worker does not retry them.
NON_RETRYABLE = (ImportError, SyntaxError)


def numba_cache_dir() -> Path:
    """Where numba keeps compiled UMAP code between jobs (the first fit costs ~40 s, a warm one ~6 s)."""
    from clarel.paths import cache_dir

    return cache_dir() / "numba"


# ---------------------------------------------------------------- logging into the store
class StoreLogHandler(logging.Handler):
    """Buffers formatted log records; `flush_to` writes them as the job's log lines."""

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.extend(self.format(record).splitlines() or [""])
        except Exception:  # noqa: BLE001 - logging must never break training
            self.handleError(record)

    def flush_to(self, store, job_id: int) -> None:  # noqa: ANN001
        lines, self.lines = self.lines, []
        if lines:
            store.append_log(job_id, lines)


# ---------------------------------------------------------------- the training callback
class StoreCallback:
    """A `clarel.train.Callback` that streams progress, metrics and log lines into the store.

    Writes are buffered and flushed at most every `FLUSH_EVERY_S` (and at every evaluation), so a
    fast loop does not turn into one database transaction per step.
    """

    def __init__(self, store, job_id: int, steps: int, log_handler: StoreLogHandler | None = None) -> None:  # noqa: ANN001
        self.store = store
        self.job_id = job_id
        self.every = max(1, steps // METRIC_POINTS)
        self.log_handler = log_handler
        self.rows: list[tuple[int, str, float]] = []
        self.progress: tuple[float, str | None, float | None] | None = None
        self.last_flush = 0.0

    def on_step_end(self, step: int, metrics: dict[str, float]) -> None:
        if step % self.every == 0:
            self.rows.extend((step, k, v) for k, v in metrics.items() if k not in SKIP_STEP_KEYS)
        if "progress" in metrics:
            message = self.progress[1] if self.progress else None
            self.progress = (metrics["progress"], message, metrics.get("eta_seconds"))
        self._maybe_flush()

    def on_eval_end(self, step: int, metrics: dict[str, float]) -> None:
        self.rows.extend((step, k, v) for k, v in metrics.items() if k != "step")
        self.flush()

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        step = int(metrics.get("step", epoch))
        self.rows.extend((step, f"epoch_{k}", v) for k, v in metrics.items() if k != "step")

    def on_progress(self, fraction: float, message: str) -> None:
        eta = self.progress[2] if self.progress else None
        changed = self.progress is None or self.progress[1] != message
        self.progress = (fraction, message, eta)
        if changed and not message.split(": ")[-1].startswith("step "):
            self.flush()  # a new phase shows at once
        else:
            self._maybe_flush()

    def _maybe_flush(self) -> None:
        if time.monotonic() - self.last_flush >= FLUSH_EVERY_S:
            self.flush()

    def flush(self) -> None:
        self.last_flush = time.monotonic()
        rows, self.rows = self.rows, []
        if rows:
            self.store.add_metrics(self.job_id, rows)
        if self.progress is not None:
            self.store.update_progress(self.job_id, *self.progress)
        if self.log_handler is not None:
            self.log_handler.flush_to(self.store, self.job_id)


# ---------------------------------------------------------------- UMAP
def project_joint_space(image: np.ndarray, image_labels: np.ndarray, image_index: np.ndarray,
                        text: np.ndarray, text_labels: np.ndarray, text_index: np.ndarray,
                        prototypes: np.ndarray, cap: int, seed: int = 0):
    """A 2-D UMAP of image embeddings, per-image text embeddings and class prototypes.

    Each of images and texts is subsampled to at most ``cap`` points (fixed seed); prototypes
    of classes outside the protocol (NaN rows) are left out. Returns a `UmapProjection`, or None
    when there are too few points to project.
    """
    from jobs.records import UmapProjection

    rng = np.random.default_rng(seed)

    def pick(n: int) -> np.ndarray:
        return np.arange(n) if n <= cap else np.sort(rng.choice(n, size=cap, replace=False))

    ii, ti = pick(len(image)), pick(len(text))
    proto_rows = np.flatnonzero(np.isfinite(prototypes).all(axis=1)) if len(prototypes) else np.zeros(0, np.int64)
    x = np.concatenate([image[ii], text[ti], prototypes[proto_rows]]).astype(np.float32)
    n = len(x)
    if n < 5:
        log.warning("UMAP skipped: only %d points", n)
        return None
    modality = np.array(["image"] * len(ii) + ["text"] * len(ti) + ["prototype"] * len(proto_rows))
    item_index = np.concatenate([image_index[ii], text_index[ti], proto_rows]).astype(np.int64)
    labels = np.concatenate([image_labels[ii], text_labels[ti], proto_rows]).astype(np.int64)
    os.environ.setdefault("NUMBA_CACHE_DIR", str(numba_cache_dir()))
    import umap  # late: numba compilation, cached on disk under NUMBA_CACHE_DIR

    n_neighbors = int(min(15, n - 1))
    params = {"n_neighbors": n_neighbors, "min_dist": 0.1, "metric": "euclidean", "random_state": seed, "cap": cap}
    t0 = time.perf_counter()
    try:
        coords = umap.UMAP(n_components=2, n_neighbors=n_neighbors, min_dist=0.1, random_state=seed,
                           n_jobs=1).fit_transform(x)
    except (ValueError, TypeError) as e:  # spectral init can fail on tiny, degenerate sets
        log.warning("UMAP spectral init failed (%s); using random init", e)
        params["init"] = "random"
        coords = umap.UMAP(n_components=2, n_neighbors=n_neighbors, min_dist=0.1, random_state=seed, n_jobs=1,
                           init="random").fit_transform(x)
    params["seconds"] = round(time.perf_counter() - t0, 2)
    log.info("UMAP of %d points (%d images, %d texts, %d prototypes) in %.1f s", n, len(ii), len(ti),
             len(proto_rows), params["seconds"])
    return UmapProjection(coords=np.asarray(coords, dtype=np.float32), modality=modality, item_index=item_index,
                          labels=labels, params=params)


# ---------------------------------------------------------------- one job
def run_job(store, job_id: int, config_json: str, run_dir: Path, device: str | None,  # noqa: ANN001
            should_stop: Callable[[], bool], log_handler: StoreLogHandler | None = None) -> dict[str, float]:
    """Train and evaluate one job and store everything it produced. Returns its final metrics.

    Raises whatever `clarel.train` raises (`ConfigError`, `DatasetError`, `TrainingInterrupted`, ...).
    """
    from clarel.config import RunConfig
    from clarel.data import ensure_dataset
    from clarel.train import Callback, train

    config = RunConfig.from_json(config_json)
    config.validate()
    if device and config.optim.device == "auto":
        config.optim.device = device
    callback = StoreCallback(store, job_id, config.optim.steps, log_handler)
    callback.on_progress(0.0, "loading dataset")
    dataset = ensure_dataset(config.data)

    class _Bridge(Callback):  # the contract's base class, so train sees a real Callback
        def on_step_end(self, step, metrics):  # noqa: ANN001
            callback.on_step_end(step, metrics)

        def on_eval_end(self, step, metrics):  # noqa: ANN001
            callback.on_eval_end(step, metrics)

        def on_epoch_end(self, epoch, metrics):  # noqa: ANN001
            callback.on_epoch_end(epoch, metrics)

        def on_progress(self, fraction, message):  # noqa: ANN001
            callback.on_progress(fraction, message)

    result = train(config, run_dir, [_Bridge()], dataset=dataset, should_stop=should_stop)
    callback.on_progress(0.96, "storing results")
    ev = result.evaluation
    store.set_job_device(job_id, str(result.device))
    for kind, path in [("checkpoint", Path(result.checkpoint))] + [(k, run_dir / f) for k, f in ARTIFACT_FILES.items()]:
        if path.is_file():
            store.save_artifact(job_id, kind, path)
    store.save_evaluation(job_id, ev)
    labels = np.asarray(dataset.labels)
    text_labels = labels[np.asarray(ev.text_index, dtype=np.int64)]
    n_classes = len(ev.class_names)
    store.save_embeddings(job_id, "image", ev.image_embeddings, ev.image_index, ev.labels, split=ev.protocol)
    store.save_embeddings(job_id, "text", ev.text_embeddings, ev.text_index, text_labels, split=ev.protocol)
    store.save_embeddings(job_id, "prototype", ev.prototypes, np.arange(n_classes), np.arange(n_classes),
                          split=ev.protocol)
    if config.eval.umap_cap > 0:
        callback.on_progress(0.97, "projecting the joint space (UMAP)")
        callback.flush()
        proj = project_joint_space(np.asarray(ev.image_embeddings), np.asarray(ev.labels), np.asarray(ev.image_index),
                                   np.asarray(ev.text_embeddings), text_labels, np.asarray(ev.text_index),
                                   np.asarray(ev.prototypes), config.eval.umap_cap, seed=config.eval.seed)
        if proj is not None:
            store.save_umap(job_id, proj)
    metrics = {k: float(v) for k, v in result.metrics.items() if isinstance(v, int | float)}
    if "alpha_best" not in metrics and len(ev.alpha_curve.values):
        metrics["alpha_best"] = float(ev.alpha_curve.values[int(np.argmax(ev.alpha_curve.h))])
    store.save_final_metrics(job_id, metrics)  # last: a job with final metrics has all its results
    callback.on_progress(1.0, "done")
    callback.flush()
    return metrics


# ---------------------------------------------------------------- the child process
def _die_with_parent() -> None:
    """Linux: get SIGKILL when the worker dies (kill -9), so no orphan keeps training."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def error_report(exc: BaseException) -> dict[str, Any]:
    """What the worker records for a failed attempt: summary, traceback tail, whether to retry."""
    from clarel.errors import ClarelError

    summary = f"{type(exc).__name__}: {exc}".strip()
    if len(summary) > 2000:
        summary = summary[:2000] + " ..."
    tb = "".join(traceback.format_exception(exc)).splitlines()
    return {"summary": summary, "traceback": "\n".join(tb[-TRACEBACK_LINES:]),
            "retryable": not isinstance(exc, (ClarelError, *NON_RETRYABLE))}


def child_main(db_url: str, job_id: int, config_json: str, run_dir: str, device: str | None,
               stop_event, conn, env: dict[str, str]) -> None:  # noqa: ANN001
    """Entry point of the job's child process (``multiprocessing`` spawn target)."""
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the worker, which asks us to stop
    os.environ.update(env)
    if env.get("OMP_NUM_THREADS"):
        import torch

        torch.set_num_threads(int(env["OMP_NUM_THREADS"]))
    parent = os.getppid()
    handler = StoreLogHandler()
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    root.addHandler(handler)
    logging.captureWarnings(True)
    from jobs.store import open_store

    store = open_store(db_url, migrate=False)
    outcome: tuple[str, dict[str, Any]]
    try:
        def should_stop() -> bool:
            return stop_event.is_set() or os.getppid() != parent

        metrics = run_job(store, job_id, config_json, Path(run_dir), device, should_stop, handler)
        outcome = ("ok", {"metrics": metrics})
    except BaseException as e:  # noqa: BLE001 - everything is reported to the worker
        from clarel.errors import TrainingInterrupted

        kind = "interrupted" if isinstance(e, TrainingInterrupted) else "error"
        outcome = (kind, error_report(e))
        log.error("%s", outcome[1]["summary"])
    try:
        handler.flush_to(store, job_id)
    except Exception:  # noqa: BLE001 - the outcome matters more than the last log lines
        pass
    store.close()
    conn.send(outcome)
    conn.close()
    sys.exit(0 if outcome[0] == "ok" else 1)
