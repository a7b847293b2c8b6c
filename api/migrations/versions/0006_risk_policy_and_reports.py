"""The release gate: each project's risk policy (``projects.risk_policy_json``, the default
policy for existing projects) and the risk reports of cohort exports (``risk_reports``).

Revision ID: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        batch.add_column(sa.Column("risk_policy_json", sa.Text, nullable=False,
                                   server_default="{}"))
    op.create_table(
        "risk_reports",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("project_id", sa.String(32), sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("request_id", sa.String(32), sa.ForeignKey("cohort_requests.id"),
                  nullable=False),
        sa.Column("job_id", sa.Integer, sa.ForeignKey("jobs.id"), nullable=False),
        sa.Column("policy_json", sa.Text, nullable=False),
        sa.Column("passed", sa.Boolean, nullable=False),
        sa.Column("reasons_json", sa.Text, nullable=False),
        sa.Column("document_json", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False))
    op.create_index("ix_risk_reports_project_id", "risk_reports", ["project_id"])
    op.create_index("ix_risk_reports_request_id", "risk_reports", ["request_id"])


def downgrade() -> None:
    op.drop_table("risk_reports")
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("risk_policy_json")
