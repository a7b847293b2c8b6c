"""The audit log becomes a hash chain per project (``audit_events.prev_hash`` and ``hash``,
``audit_heads``); the events already written are chained in id order.

Revision ID: 0005
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

from api.security.audit import GENESIS, event_hash, iso_time

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_APPEND_ONLY = "audit log is append-only"


def _chain_existing(connection: sa.Connection) -> dict[str, tuple[str, int]]:
    events = sa.table("audit_events", sa.column("id", sa.Integer), sa.column("at", sa.Float),
                      sa.column("project_id", sa.String), sa.column("actor", sa.String),
                      sa.column("role", sa.String), sa.column("action", sa.String),
                      sa.column("detail", sa.Text), sa.column("prev_hash", sa.String),
                      sa.column("hash", sa.String))
    heads: dict[str, tuple[str, int]] = {}
    rows = connection.execute(sa.select(events).order_by(events.c.id)).all()
    for row in rows:
        chain = row.project_id or ""
        previous, count = heads.get(chain, (GENESIS, 0))
        digest = event_hash(previous, iso_time(row.at), row.project_id, row.actor, row.role,
                            row.action, json.loads(row.detail))
        connection.execute(sa.update(events).where(events.c.id == row.id)
                           .values(prev_hash=previous, hash=digest))
        heads[chain] = (digest, count + 1)
    return heads


def upgrade() -> None:
    connection = op.get_bind()
    postgres = connection.dialect.name == "postgresql"
    # plain ADD COLUMN: a batch (copy) of the table on SQLite would drop its triggers
    op.add_column("audit_events", sa.Column("prev_hash", sa.String(64), nullable=False,
                                            server_default=GENESIS))
    op.add_column("audit_events", sa.Column("hash", sa.String(64), nullable=False,
                                            server_default=GENESIS))
    op.create_table("audit_heads",
                    sa.Column("chain", sa.String(32), primary_key=True),
                    sa.Column("last_hash", sa.String(64), nullable=False),
                    sa.Column("events", sa.Integer, nullable=False))
    # the append-only triggers are lifted only while this migration chains the old events
    if postgres:
        op.execute("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only")
    else:
        op.execute("DROP TRIGGER audit_events_no_update")
    heads = _chain_existing(connection)
    if postgres:
        op.execute("ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only")
    else:
        op.execute(f"""CREATE TRIGGER audit_events_no_update
            BEFORE UPDATE ON audit_events
            BEGIN SELECT RAISE(ABORT, '{_APPEND_ONLY}'); END""")
    table = sa.table("audit_heads", sa.column("chain", sa.String),
                     sa.column("last_hash", sa.String), sa.column("events", sa.Integer))
    if heads:
        op.bulk_insert(table, [{"chain": c, "last_hash": h, "events": n}
                               for c, (h, n) in heads.items()])


def downgrade() -> None:
    op.drop_table("audit_heads")
    op.drop_column("audit_events", "hash")  # not a batch copy: it would drop the triggers
    op.drop_column("audit_events", "prev_hash")
