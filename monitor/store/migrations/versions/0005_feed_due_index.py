"""Feed leases by due time: replicas claim the next due feeds from one shared queue.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_feed_leases_next_due", "feed_leases", ["next_due"])


def downgrade() -> None:
    op.drop_index("ix_feed_leases_next_due", table_name="feed_leases")
