"""Initial schema: groups, jobs, metrics, final metrics, artifacts, embeddings, evaluations,
UMAP projections, job logs, workers.

Revision ID: 0001
Revises:
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "groups",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("phase", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("preset", sa.String(100), nullable=False),
        sa.Column("config_json", sa.Text, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("max_attempts", sa.Integer, nullable=False),
        sa.Column("cancel_requested", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("started_at", sa.DateTime, nullable=True),
        sa.Column("finished_at", sa.DateTime, nullable=True),
        sa.Column("worker_id", sa.String(200), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime, nullable=True),
        sa.Column("heartbeat_at", sa.DateTime, nullable=True),
        sa.Column("progress", sa.Float, nullable=False),
        sa.Column("progress_message", sa.String(500), nullable=False),
        sa.Column("eta_seconds", sa.Float, nullable=True),
        sa.Column("error_summary", sa.Text, nullable=True),
        sa.Column("error_traceback", sa.Text, nullable=True),
        sa.Column("device", sa.String(50), nullable=True),
        sa.Column("run_dir", sa.String(1000), nullable=True),
        sa.Column("group_id", sa.Integer, sa.ForeignKey("groups.id", ondelete="SET NULL"), nullable=True),
        sa.Column("setting", sa.JSON, nullable=False),
        sa.Column("seed", sa.Integer, nullable=False),
        sa.Column("phase", sa.Integer, nullable=False),
    )
    op.create_index("ix_jobs_state_priority", "jobs", ["state", "priority", "id"])
    op.create_index("ix_jobs_group", "jobs", ["group_id"])
    op.create_table(
        "metrics",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("job_id", sa.Integer, sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("key", sa.String(100), nullable=False),
        sa.Column("value", sa.Float, nullable=False),
    )
    op.create_index("ix_metrics_job_key_step", "metrics", ["job_id", "key", "step"])
    op.create_table(
        "final_metrics",
        sa.Column("job_id", sa.Integer, sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("key", sa.String(100), primary_key=True),
        sa.Column("value", sa.Float, nullable=False),
    )
    op.create_table(
        "artifacts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("job_id", sa.Integer, sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("kind", sa.String(50), nullable=False),
        sa.Column("path", sa.String(1000), nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_artifacts_job", "artifacts", ["job_id"])
    op.create_table(
        "embeddings",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("job_id", sa.Integer, sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("split", sa.String(20), nullable=False),
        sa.Column("modality", sa.String(20), nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("dim", sa.Integer, nullable=False),
        sa.Column("vectors", sa.LargeBinary, nullable=False),
        sa.Column("item_index", sa.LargeBinary, nullable=False),
        sa.Column("labels", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_embeddings_job", "embeddings", ["job_id", "split", "modality"])
    op.create_table(
        "evaluations",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("job_id", sa.Integer, sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("protocol", sa.String(20), nullable=False),
        sa.Column("alpha", sa.Float, nullable=False),
        sa.Column("metrics", sa.JSON, nullable=False),
        sa.Column("class_names", sa.JSON, nullable=False),
        sa.Column("distances", sa.LargeBinary, nullable=False),
        sa.Column("labels", sa.LargeBinary, nullable=False),
        sa.Column("image_index", sa.LargeBinary, nullable=False),
        sa.Column("seen_mask", sa.LargeBinary, nullable=False),
        sa.Column("class_mask", sa.LargeBinary, nullable=False),
        sa.Column("alpha_curve", sa.LargeBinary, nullable=False),
        sa.Column("sweep_curve", sa.LargeBinary, nullable=False),
        sa.Column("stacking_curve", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_evaluations_job", "evaluations", ["job_id"])
    op.create_table(
        "umap_projections",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("job_id", sa.Integer, sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("coords", sa.LargeBinary, nullable=False),
        sa.Column("modality", sa.LargeBinary, nullable=False),
        sa.Column("item_index", sa.LargeBinary, nullable=False),
        sa.Column("labels", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_umap_job", "umap_projections", ["job_id"])
    op.create_table(
        "job_logs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("job_id", sa.Integer, sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("line", sa.Text, nullable=False),
    )
    op.create_index("ix_job_logs_job", "job_logs", ["job_id", "id"])
    op.create_table(
        "workers",
        sa.Column("worker_id", sa.String(200), primary_key=True),
        sa.Column("host", sa.String(200), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("device", sa.String(50), nullable=True),
        sa.Column("started_at", sa.DateTime, nullable=False),
        sa.Column("last_heartbeat", sa.DateTime, nullable=False),
        sa.Column("current_job_id", sa.Integer, nullable=True),
        sa.Column("state", sa.String(20), nullable=False),
    )


def downgrade() -> None:
    for table in ("workers", "job_logs", "umap_projections", "evaluations", "embeddings", "artifacts",
                  "final_metrics", "metrics", "jobs", "groups"):
        op.drop_table(table)
