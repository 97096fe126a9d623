"""Monitoring (issue 13): the day an ended episode ended, and each served risk's figures as columns.

``clients.ended_on``: monitoring groups ended episodes by the month they ended. ``sessions.probability``,
``sessions.landmark`` and ``sessions.model_version`` copy what the stored risk JSON already says, so
the monitor reads served risks as plain columns instead of decoding every risk (rows stored before
this revision are filled from their JSON here; the JSON stays as it was: served risks are immutable).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_FILL = {
    "postgresql": (
        "UPDATE sessions SET probability = CAST(risk->>'probability' AS DOUBLE PRECISION),"
        " landmark = CAST(risk->>'landmark' AS INTEGER), model_version = risk->>'model_version'"
    ),
    "sqlite": (
        "UPDATE sessions SET probability = json_extract(risk, '$.probability'),"
        " landmark = json_extract(risk, '$.landmark'), model_version = json_extract(risk, '$.model_version')"
    ),
}


def upgrade() -> None:
    with op.batch_alter_table("clients") as batch:
        batch.add_column(sa.Column("ended_on", sa.Date(), nullable=True))
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("probability", sa.Float(), nullable=True))
        batch.add_column(sa.Column("landmark", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("model_version", sa.String(40), nullable=True))
    fill = _FILL.get(op.get_bind().dialect.name)
    if fill is not None:
        op.execute(fill)


def downgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("model_version")
        batch.drop_column("landmark")
        batch.drop_column("probability")
    with op.batch_alter_table("clients") as batch:
        batch.drop_column("ended_on")
