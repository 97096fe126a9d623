"""Dashboard sessions: one row per signed-in browser, deleted at sign-out.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dashboard_sessions",
        sa.Column("id_hash", sa.String(64), primary_key=True),
        sa.Column("key_id", sa.Integer(), sa.ForeignKey("api_keys.id"), nullable=False, index=True),
        sa.Column("expires_at", sa.Integer(), nullable=False, index=True),
    )


def downgrade() -> None:
    op.drop_table("dashboard_sessions")
