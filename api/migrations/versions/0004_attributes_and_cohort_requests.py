"""The projects' small-cell threshold for cohort counts (``projects.min_cell``); attribute
uploads beside encodings (``uploads.kind``, their declared columns), and cohort
requests: a researcher's definition and purpose, the owner's decision, the export job.

Revision ID: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        batch.add_column(sa.Column("min_cell", sa.Integer, nullable=False,
                                   server_default="11"))
    with op.batch_alter_table("uploads") as batch:
        batch.add_column(sa.Column("kind", sa.String(16), nullable=False,
                                   server_default="encodings"))
        batch.add_column(sa.Column("columns_json", sa.Text, nullable=True))
    op.create_table(
        "cohort_requests",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("project_id", sa.String(32), sa.ForeignKey("projects.id"), nullable=False,
                  index=True),
        sa.Column("run_id", sa.Integer, sa.ForeignKey("jobs.id"), nullable=False),
        sa.Column("researcher", sa.String(32), nullable=False),
        sa.Column("purpose", sa.Text, nullable=False),
        sa.Column("definition_json", sa.Text, nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("job_id", sa.Integer, sa.ForeignKey("jobs.id"), nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("decided_at", sa.Float, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("cohort_requests")
    with op.batch_alter_table("uploads") as batch:
        batch.drop_column("columns_json")
        batch.drop_column("kind")
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("min_cell")
