"""One job queue with kinds (runs become jobs of kind ``linkage``), token lifetimes (label,
last use, expiry, revocation), pruned uploads, and worker presence.

Revision ID: 0003
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_LIFETIME = ("last_used_at", "expires_at", "revoked_at")


def upgrade() -> None:
    for table in ("admin_tokens", "project_tokens"):
        with op.batch_alter_table(table) as batch:
            for column in _LIFETIME:
                batch.add_column(sa.Column(column, sa.Float, nullable=True))
            if table == "project_tokens":
                batch.add_column(sa.Column("label", sa.String(200), nullable=False,
                                           server_default=""))
    with op.batch_alter_table("uploads") as batch:
        batch.add_column(sa.Column("deleted_at", sa.Float, nullable=True))
    op.rename_table("runs", "jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("kind", sa.String(32), nullable=False,
                                   server_default="linkage"))
        batch.add_column(sa.Column("params_json", sa.Text, nullable=False,
                                   server_default="{}"))
    connection = op.get_bind()
    jobs = sa.table("jobs", sa.column("id", sa.Integer), sa.column("threshold", sa.Float),
                    sa.column("blocking", sa.Boolean), sa.column("upload_ids", sa.Text),
                    sa.column("params_json", sa.Text))
    for row in connection.execute(sa.select(jobs.c.id, jobs.c.threshold, jobs.c.blocking,
                                            jobs.c.upload_ids)).all():
        params = {"threshold": row.threshold, "blocking": bool(row.blocking),
                  "upload_ids": json.loads(row.upload_ids)}
        connection.execute(sa.update(jobs).where(jobs.c.id == row.id)
                           .values(params_json=json.dumps(params)))
    with op.batch_alter_table("jobs") as batch:
        for column in ("threshold", "blocking", "upload_ids"):
            batch.drop_column(column)
    op.create_table(
        "workers",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("seen_at", sa.Float, nullable=False, index=True),
    )


def downgrade() -> None:
    op.drop_table("workers")
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("threshold", sa.Float, nullable=False, server_default="0.65"))
        batch.add_column(sa.Column("blocking", sa.Boolean, nullable=False,
                                   server_default=sa.false()))
        batch.add_column(sa.Column("upload_ids", sa.Text, nullable=False, server_default="[]"))
    connection = op.get_bind()
    jobs = sa.table("jobs", sa.column("id", sa.Integer), sa.column("threshold", sa.Float),
                    sa.column("blocking", sa.Boolean), sa.column("upload_ids", sa.Text),
                    sa.column("params_json", sa.Text), sa.column("kind", sa.String))
    for row in connection.execute(sa.select(jobs.c.id, jobs.c.params_json)).all():
        params = json.loads(row.params_json)
        connection.execute(sa.update(jobs).where(jobs.c.id == row.id).values(
            threshold=params.get("threshold", 0.65), blocking=params.get("blocking", False),
            upload_ids=json.dumps(params.get("upload_ids", []))))
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("kind")
        batch.drop_column("params_json")
    op.rename_table("jobs", "runs")
    with op.batch_alter_table("uploads") as batch:
        batch.drop_column("deleted_at")
    for table in ("admin_tokens", "project_tokens"):
        with op.batch_alter_table(table) as batch:
            for column in _LIFETIME:
                batch.drop_column(column)
            if table == "project_tokens":
                batch.drop_column("label")
