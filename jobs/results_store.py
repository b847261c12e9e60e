"""Writing and reading what jobs produce: progress, metrics, logs, artifacts, evaluation arrays,
embeddings and UMAP projections. Mixed into `jobs.store.Store`.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import math
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import delete, insert, select, update

from clarel.results import AlphaCurve, EvalResult
from jobs.db import (
    ArtifactRow,
    EmbeddingRow,
    EvalRow,
    FinalMetricRow,
    JobRow,
    LogRow,
    MetricRow,
    UmapRow,
    array_to_blob,
    aware,
    blob_to_array,
    utcnow,
)
from jobs.records import ArtifactInfo, Embeddings, EvalArrays, JobsError, UmapProjection

MAX_LOG_LINE = 2000  # characters kept of one log line


def finite_or_none(value: Any) -> float | None:
    """A float for JSON/SQL, or None for NaN/inf/non-numbers (PostgreSQL's JSON rejects NaN)."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _curve_blob(curve: AlphaCurve) -> bytes:
    return array_to_blob(np.stack([np.asarray(curve.values, np.float64), np.asarray(curve.u, np.float64),
                                   np.asarray(curve.s, np.float64), np.asarray(curve.h, np.float64)]))


def _blob_curve(blob: bytes) -> AlphaCurve:
    arr = blob_to_array(blob)
    return AlphaCurve(values=arr[0], u=arr[1], s=arr[2], h=arr[3])


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class ResultsMixin:
    """Methods of `Store` for job outputs (``self.db`` is the `jobs.db.Database`)."""

    # ------------------------------------------------------------ progress, metrics, logs
    def set_job_device(self, job_id: int, device: str) -> None:
        """Record the device a job really ran on (e.g. ``cuda:0`` for ``auto``)."""
        with self.db.session() as s:
            s.execute(update(JobRow).where(JobRow.id == job_id).values(device=device[:50])
                      .execution_options(synchronize_session=False))

    def update_progress(self, job_id: int, fraction: float, message: str | None = None,
                        eta_seconds: float | None = None) -> None:
        values: dict[str, Any] = {"progress": min(max(float(fraction), 0.0), 1.0), "eta_seconds": finite_or_none(eta_seconds)}
        if message is not None:
            values["progress_message"] = message[:500]
        with self.db.session() as s:
            s.execute(update(JobRow).where(JobRow.id == job_id).values(**values)
                      .execution_options(synchronize_session=False))

    def add_metrics(self, job_id: int, rows: Iterable[tuple[int, str, float]]) -> int:
        """Append ``(step, key, value)`` rows; non-finite values are skipped. Returns rows written."""
        data = [{"job_id": job_id, "step": int(step), "key": str(key)[:100], "value": v}
                for step, key, value in rows if (v := finite_or_none(value)) is not None]
        if data:
            with self.db.session() as s:
                s.execute(insert(MetricRow), data)
        return len(data)

    def metric_history(self, job_id: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """key -> (steps [T] int64, values [T] float64), by step; a step written twice (a resumed
        attempt) keeps its latest value."""
        with self.db.session(write=False) as s:
            rows = s.execute(select(MetricRow.key, MetricRow.step, MetricRow.value)
                             .where(MetricRow.job_id == job_id).order_by(MetricRow.id)).all()
        by_key: dict[str, dict[int, float]] = {}
        for key, step, value in rows:
            by_key.setdefault(key, {})[step] = value
        out = {}
        for key, points in sorted(by_key.items()):
            steps = np.array(sorted(points), dtype=np.int64)
            out[key] = (steps, np.array([points[int(t)] for t in steps], dtype=np.float64))
        return out

    def append_log(self, job_id: int, lines: Iterable[str]) -> None:
        now = utcnow()
        data = [{"job_id": job_id, "created_at": now, "line": line[:MAX_LOG_LINE]} for line in lines]
        if data:
            with self.db.session() as s:
                s.execute(insert(LogRow), data)

    def log_tail(self, job_id: int, lines: int = 200) -> str:
        """The last ``lines`` log lines of a job (worker and training), oldest first."""
        with self.db.session(write=False) as s:
            got = list(s.scalars(select(LogRow.line).where(LogRow.job_id == job_id)
                                 .order_by(LogRow.id.desc()).limit(lines)))
        return "\n".join(reversed(got))

    # ------------------------------------------------------------ final metrics and artifacts
    def save_final_metrics(self, job_id: int, metrics: dict[str, Any]) -> None:
        """Replace a job's final metrics (numeric, finite values only)."""
        data = [{"job_id": job_id, "key": str(k)[:100], "value": v}
                for k, val in metrics.items() if (v := finite_or_none(val)) is not None]
        with self.db.session() as s:
            s.execute(delete(FinalMetricRow).where(FinalMetricRow.job_id == job_id))
            if data:
                s.execute(insert(FinalMetricRow), data)

    def save_artifact(self, job_id: int, kind: str, path: Path | str) -> ArtifactInfo:
        """Record a file (size and sha256 computed now); replaces an earlier record of the same kind."""
        path = Path(path)
        if not path.is_file():
            raise JobsError(f"artifact {kind!r} of job {job_id} does not exist: {path}")
        info = ArtifactInfo(kind=kind, path=str(path), size_bytes=path.stat().st_size, sha256=sha256_file(path),
                            created_at=utcnow())
        with self.db.session() as s:
            s.execute(delete(ArtifactRow).where(ArtifactRow.job_id == job_id, ArtifactRow.kind == kind))
            s.add(ArtifactRow(job_id=job_id, kind=kind, path=info.path, size_bytes=info.size_bytes,
                              sha256=info.sha256, created_at=info.created_at))
        return info

    def artifacts(self, job_id: int) -> list[ArtifactInfo]:
        with self.db.session(write=False) as s:
            rows = list(s.scalars(select(ArtifactRow).where(ArtifactRow.job_id == job_id).order_by(ArtifactRow.id)))
        return [ArtifactInfo(kind=r.kind, path=r.path, size_bytes=r.size_bytes, sha256=r.sha256,
                             created_at=aware(r.created_at)) for r in rows]

    # ------------------------------------------------------------ evaluation arrays
    def save_evaluation(self, job_id: int, ev: EvalResult) -> None:
        """Store the arrays of an evaluation (replaces any earlier one of the same job and protocol)."""
        metrics = {k: finite_or_none(v) for k, v in ev.metrics.items()}
        row = EvalRow(
            job_id=job_id, protocol=ev.protocol, alpha=finite_or_none(ev.metrics.get("alpha", 0.0)) or 0.0,
            metrics=metrics, class_names=[str(c) for c in ev.class_names],
            distances=array_to_blob(np.asarray(ev.distances, dtype=np.float32)),
            labels=array_to_blob(np.asarray(ev.labels, dtype=np.int64)),
            image_index=array_to_blob(np.asarray(ev.image_index, dtype=np.int64)),
            seen_mask=array_to_blob(np.asarray(ev.seen_mask, dtype=bool)),
            class_mask=array_to_blob(np.asarray(ev.class_mask, dtype=bool)),
            alpha_curve=_curve_blob(ev.alpha_curve), sweep_curve=_curve_blob(ev.sweep_curve),
            stacking_curve=_curve_blob(ev.stacking_curve),
        )
        with self.db.session() as s:
            s.execute(delete(EvalRow).where(EvalRow.job_id == job_id, EvalRow.protocol == ev.protocol))
            s.add(row)

    def eval_arrays(self, job_id: int, protocol: str | None = None) -> EvalArrays | None:
        """The stored evaluation of a job (the test protocol's if it has several), or None."""
        with self.db.session(write=False) as s:
            q = select(EvalRow).where(EvalRow.job_id == job_id)
            if protocol is not None:
                q = q.where(EvalRow.protocol == protocol)
            rows = list(s.scalars(q.order_by(EvalRow.id)))
        if not rows:
            return None
        row = next((r for r in rows if r.protocol == "test"), rows[-1])
        return EvalArrays(
            distances=blob_to_array(row.distances), labels=blob_to_array(row.labels),
            image_index=blob_to_array(row.image_index), seen_mask=blob_to_array(row.seen_mask),
            class_mask=blob_to_array(row.class_mask), class_names=list(row.class_names), alpha=float(row.alpha),
            alpha_curve=_blob_curve(row.alpha_curve), sweep_curve=_blob_curve(row.sweep_curve),
            stacking_curve=_blob_curve(row.stacking_curve), protocol=row.protocol,
            metrics={k: (float("nan") if v is None else float(v)) for k, v in row.metrics.items()},
        )

    # ------------------------------------------------------------ embeddings
    def save_embeddings(self, job_id: int, modality: str, vectors: np.ndarray, item_index: np.ndarray,
                        labels: np.ndarray, *, split: str = "test") -> None:
        """Store one modality's joint-space embeddings (``"image"``, ``"text"``, ``"prototype"``)."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(item_index) != len(vectors) or len(labels) != len(vectors):
            raise JobsError(f"embeddings of {modality!r}: vectors {vectors.shape}, item_index {len(item_index)} "
                            f"and labels {len(labels)} rows must agree")
        row = EmbeddingRow(job_id=job_id, split=split, modality=modality, count=len(vectors), dim=vectors.shape[1],
                           vectors=array_to_blob(vectors),
                           item_index=array_to_blob(np.asarray(item_index, dtype=np.int64)),
                           labels=array_to_blob(np.asarray(labels, dtype=np.int64)))
        with self.db.session() as s:
            s.execute(delete(EmbeddingRow).where(EmbeddingRow.job_id == job_id, EmbeddingRow.split == split,
                                                 EmbeddingRow.modality == modality))
            s.add(row)

    def embeddings(self, job_id: int, split: str = "test") -> Embeddings | None:
        """Image, per-image text and prototype embeddings of a job, or None if not stored."""
        with self.db.session(write=False) as s:
            rows = {r.modality: r for r in s.scalars(
                select(EmbeddingRow).where(EmbeddingRow.job_id == job_id, EmbeddingRow.split == split))}
        if "image" not in rows:
            return None

        def part(modality: str, dim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            r = rows.get(modality)
            if r is None:
                return np.zeros((0, dim), np.float32), np.zeros(0, np.int64), np.zeros(0, np.int64)
            return blob_to_array(r.vectors), blob_to_array(r.item_index), blob_to_array(r.labels)

        dim = rows["image"].dim
        image, image_index, image_labels = part("image", dim)
        text, text_index, text_labels = part("text", dim)
        prototypes, _, _ = part("prototype", dim)
        return Embeddings(image=image, image_index=image_index, text=text, text_index=text_index,
                          prototypes=prototypes, image_labels=image_labels, text_labels=text_labels)

    # ------------------------------------------------------------ UMAP
    def save_umap(self, job_id: int, proj: UmapProjection) -> None:
        row = UmapRow(job_id=job_id, params=dict(proj.params),
                      coords=array_to_blob(np.asarray(proj.coords, dtype=np.float32)),
                      modality=array_to_blob(np.asarray(proj.modality).astype(str)),
                      item_index=array_to_blob(np.asarray(proj.item_index, dtype=np.int64)),
                      labels=array_to_blob(np.asarray(proj.labels, dtype=np.int64)))
        with self.db.session() as s:
            s.execute(delete(UmapRow).where(UmapRow.job_id == job_id))
            s.add(row)

    def umap(self, job_id: int) -> UmapProjection | None:
        """The stored 2-D projection of a job's joint space, or None."""
        with self.db.session(write=False) as s:
            row = s.scalars(select(UmapRow).where(UmapRow.job_id == job_id).order_by(UmapRow.id.desc())).first()
        if row is None:
            return None
        return UmapProjection(coords=blob_to_array(row.coords), modality=blob_to_array(row.modality),
                              item_index=blob_to_array(row.item_index), labels=blob_to_array(row.labels),
                              params=dict(row.params))

    # ------------------------------------------------------------ export
    def export_job(self, job_id: int, fmt: str = "json") -> str:
        """A job as JSON (info, config, final metrics, metric history, artifacts) or CSV (metrics)."""
        info = self.get_job(job_id)
        history = self.metric_history(job_id)
        if fmt == "json":
            doc = {k: _jsonable(v) for k, v in dataclasses.asdict(info).items()}
            doc["metric_history"] = {k: {"steps": steps.tolist(), "values": values.tolist()}
                                     for k, (steps, values) in history.items()}
            doc["artifacts"] = [{k: _jsonable(v) for k, v in dataclasses.asdict(a).items()}
                                for a in self.artifacts(job_id)]
            return json.dumps(doc, indent=2, sort_keys=True)
        if fmt == "csv":
            buf = io.StringIO()
            w = csv.writer(buf, lineterminator="\n")
            w.writerow(["job_id", "name", "state", "kind", "key", "step", "value"])
            for key, value in sorted(info.final_metrics.items()):
                w.writerow([info.id, info.name, info.state, "final", key, "", repr(value)])
            for key, (steps, values) in history.items():
                for step, value in zip(steps.tolist(), values.tolist()):
                    w.writerow([info.id, info.name, info.state, "history", key, step, repr(value)])
            return buf.getvalue()
        raise JobsError(f"unknown export format {fmt!r}; choose json or csv")


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float):
        return finite_or_none(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value
