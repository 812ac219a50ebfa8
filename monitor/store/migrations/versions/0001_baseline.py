"""Baseline: the schema as the first release created it (``create_all`` of tables.py).

Revision ID: 0001
Revises:
Create Date: 2024-06-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("stream", sa.String(200), nullable=False),
        sa.Column("stream_version", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("schema_version", sa.Integer(), nullable=False),
        sa.Column("occurred_at", TS, nullable=True),
        sa.Column("recorded_at", TS, nullable=False),
        sa.Column("idempotency_key", sa.String(300), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("stream", "stream_version", name="uq_events_stream_version"),
        sa.UniqueConstraint("id"),
        sa.UniqueConstraint("idempotency_key"),
    )
    op.create_index("ix_events_type_seq", "events", ["type", "seq"])
    op.create_table(
        "log_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.bulk_insert(sa.table("log_head", sa.column("id"), sa.column("seq")), [{"id": 1, "seq": 0}])
    op.create_table(
        "checkpoints",
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "proj_series",
        sa.Column("watch", sa.String(100), nullable=False),
        sa.Column("side", sa.String(100), nullable=False),
        sa.Column("category", sa.String(20), nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("reports", sa.Integer(), nullable=False),
        sa.Column("last_event_id", sa.String(36), nullable=False),
        sa.Column("updated_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("watch", "side", "category", "outcome"),
    )
    op.create_table(
        "proj_ceasefire",
        sa.Column("watch", sa.String(100), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("broker", sa.String(20), nullable=True),
        sa.Column("last_event_id", sa.String(36), nullable=False),
        sa.Column("updated_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("watch"),
    )
    op.create_table(
        "proj_third_parties",
        sa.Column("watch", sa.String(100), nullable=False),
        sa.Column("actor", sa.String(20), nullable=False),
        sa.Column("kinds", sa.JSON(), nullable=False),
        sa.Column("first_event_id", sa.String(36), nullable=False),
        sa.Column("first_seen", TS, nullable=True),
        sa.PrimaryKeyConstraint("watch", "actor"),
    )
    op.create_table(
        "proj_feed_health",
        sa.Column("feed", sa.String(200), nullable=False),
        sa.Column("url", sa.String(), nullable=False),
        sa.Column("last_success", TS, nullable=True),
        sa.Column("last_error", sa.String(), nullable=True),
        sa.Column("last_error_at", TS, nullable=True),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("polls", sa.Integer(), nullable=False),
        sa.Column("last_items", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("feed"),
    )
    op.create_table(
        "proj_alerts",
        sa.Column("alert_id", sa.String(36), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("rule", sa.String(200), nullable=False),
        sa.Column("severity", sa.String(20), nullable=False),
        sa.Column("watch", sa.String(100), nullable=True),
        sa.Column("title", sa.String(), nullable=False),
        sa.Column("dedup_key", sa.String(300), nullable=False),
        sa.Column("raised_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("alert_id"),
    )
    op.create_index("ix_proj_alerts_seq", "proj_alerts", ["seq"])
    op.create_table(
        "rule_state",
        sa.Column("rule", sa.String(200), nullable=False),
        sa.Column("key", sa.String(300), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("rule", "key"),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("alert_id", sa.String(36), nullable=False),
        sa.Column("channel", sa.String(100), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", TS, nullable=False),
        sa.Column("lease_until", TS, nullable=True),
        sa.Column("last_error", sa.String(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("alert_id", "channel", name="uq_outbox_alert_channel"),
    )
    op.create_index("ix_outbox_alert_id", "outbox", ["alert_id"])
    op.create_index("ix_outbox_status", "outbox", ["status"])


def downgrade() -> None:
    for table in (
        "outbox",
        "rule_state",
        "proj_alerts",
        "proj_feed_health",
        "proj_third_parties",
        "proj_ceasefire",
        "proj_series",
        "checkpoints",
        "log_head",
        "events",
    ):
        op.drop_table(table)
