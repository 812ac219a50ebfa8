"""Log positions become 64-bit on PostgreSQL (SQLite's INTEGER already is).

A 32-bit ``seq`` runs out after 2.1 billion events; widening it later would rewrite the
largest table under a lock, so it is done while the log is young.

Revision ID: 0002
Revises: 0001
Create Date: 2024-06-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

POSITIONS = (("events", "seq"), ("log_head", "seq"), ("checkpoints", "seq"), ("proj_alerts", "seq"))


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, column in POSITIONS:
        op.alter_column(table, column, type_=sa.BigInteger(), existing_type=sa.Integer())


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, column in POSITIONS:
        op.alter_column(table, column, type_=sa.Integer(), existing_type=sa.BigInteger())
