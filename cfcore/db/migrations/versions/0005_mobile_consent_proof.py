"""consent proofs, encrypted under the recording's data key (mobile dial-in opt-in)

Revision ID: 0005_mobile
Revises: 0004_webui
Create Date: 2026-12-02 05:15:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0005_mobile'
down_revision = '0004_webui'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('consents') as batch:
        batch.add_column(sa.Column('proof_enc', sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('consents') as batch:
        batch.drop_column('proof_enc')
