"""capture positions: segment windows, consent times (advisor acted / PBX applied)

Revision ID: 0003_asterisk
Revises: 0002_sec_auth
Create Date: 2026-12-02 04:30:00
"""

from alembic import op
import sqlalchemy as sa
import cfcore.db.base


revision = '0003_asterisk'
down_revision = '0002_sec_auth'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('mode_segments') as batch:
        batch.add_column(sa.Column('start_lo', sa.Float(), nullable=True))
        batch.add_column(sa.Column('start_hi', sa.Float(), nullable=True))
    with op.batch_alter_table('consents') as batch:
        batch.add_column(sa.Column('applied_at', cfcore.db.base.UTCDateTime(timezone=True), nullable=True))
    with op.batch_alter_table('capture_mode_requests') as batch:
        batch.add_column(sa.Column('acted_at', cfcore.db.base.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('capture_mode_requests') as batch:
        batch.drop_column('acted_at')
    with op.batch_alter_table('consents') as batch:
        batch.drop_column('applied_at')
    with op.batch_alter_table('mode_segments') as batch:
        batch.drop_column('start_hi')
        batch.drop_column('start_lo')
