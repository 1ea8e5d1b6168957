"""web UI: each user's language (de/en; NULL: from the browser's Accept-Language)

Revision ID: 0004_webui
Revises: 0003_asterisk
Create Date: 2026-12-02 05:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0004_webui'
down_revision = '0003_asterisk'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('users') as batch:
        batch.add_column(sa.Column('language', sa.String(length=8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('users') as batch:
        batch.drop_column('language')
