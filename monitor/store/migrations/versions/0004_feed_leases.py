"""Feed leases: the polling schedule shared by replicas, with conditional-GET and health state.

Revision ID: 0004
Revises: 0003
Create Date: 2024-06-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "feed_leases",
        sa.Column("feed", sa.String(200), nullable=False),
        sa.Column("owner", sa.String(200), nullable=True),
        sa.Column("lease_until", TS, nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("next_due", TS, nullable=False),
        sa.Column("etag", sa.String(500), nullable=True),
        sa.Column("last_modified", sa.String(100), nullable=True),
        sa.Column("last_polled_at", TS, nullable=True),
        sa.Column("last_success_at", TS, nullable=True),
        sa.Column("last_new_at", TS, nullable=True),
        sa.Column("last_items", sa.Integer(), nullable=False),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("failing_since", TS, nullable=True),
        sa.Column("last_error", sa.String(), nullable=True),
        sa.Column("last_error_kind", sa.String(40), nullable=True),
        sa.Column("polled_by", sa.String(200), nullable=True),
        sa.Column("health_alert", sa.String(300), nullable=True),
        sa.PrimaryKeyConstraint("feed"),
    )


def downgrade() -> None:
    op.drop_table("feed_leases")
