"""Outbox columns for fencing, grouping, rate limits, health reports and manual retries.

``attempts`` (already there) becomes the fencing token; ``kind``/``ref`` let a row be a health
report about another row; ``lease_owner`` lets a worker release the leases of a dead process
on its own host; ``message_id``, ``last_attempt_at`` and ``sent_at`` feed grouping and rate
limits; ``requeued_at`` restarts the maximum age after ``monitor alerts retry``.

Revision ID: 0003
Revises: 0002
Create Date: 2024-06-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("kind", sa.String(20), nullable=False, server_default="alert"))
        batch.add_column(sa.Column("ref", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("lease_owner", sa.String(200), nullable=True))
        batch.add_column(sa.Column("message_id", sa.String(64), nullable=True))
        batch.add_column(sa.Column("last_attempt_at", TS, nullable=True))
        batch.add_column(sa.Column("sent_at", TS, nullable=True))
        batch.add_column(sa.Column("requeued_at", TS, nullable=True))
        batch.create_index("ix_outbox_channel_sent_at", ["channel", "sent_at"])


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_index("ix_outbox_channel_sent_at")
        for column in (
            "requeued_at",
            "sent_at",
            "last_attempt_at",
            "message_id",
            "lease_owner",
            "ref",
            "kind",
        ):
            batch.drop_column(column)
