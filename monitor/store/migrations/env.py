"""Alembic environment: runs inside the connection that ``monitor.store.migrate`` hands over.

The whole upgrade is one transaction that first takes a lock (an advisory lock on PostgreSQL,
``BEGIN IMMEDIATE`` on SQLite), so two processes starting at once migrate once, not twice.
A database created before migrations existed (tables present, no ``alembic_version``) is
stamped at the baseline revision first, then upgraded like any other.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import inspect, text
from sqlmodel import SQLModel

import monitor.store.tables  # noqa: F401  (registers every table on the metadata)

BASELINE = "0001"
LOCK_ID = 7_418_202_011  # any constant: PostgreSQL advisory lock shared by all migrators

config = context.config
connection = config.attributes["connection"]

context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    transactional_ddl=True,
    render_as_batch=True,  # SQLite cannot ALTER most things: batch mode copies the table
    compare_type=True,
)

if not context.is_offline_mode():
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": LOCK_ID})
    tables = set(inspect(connection).get_table_names())
    if "events" in tables and "alembic_version" not in tables:
        context.get_context().stamp(context.script, BASELINE)

context.run_migrations()
