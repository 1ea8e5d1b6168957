"""credentials: split password resets, deployment flags, normalised user names in approvals

Revision ID: 0002_sec_auth
Revises: 0001
"""

import unicodedata

import sqlalchemy as sa
from alembic import op

import cfcore.db.base

revision = '0002_sec_auth'
down_revision = '0001'
branch_labels = None
depends_on = None


def _norm(name: str) -> str:
    return unicodedata.normalize("NFKC", name).casefold().strip()


def upgrade() -> None:
    op.create_table('password_resets',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('user_id', sa.String(length=32), nullable=False),
    sa.Column('half_a_hash', sa.String(length=64), nullable=False),
    sa.Column('half_a_by_id', sa.String(length=32), nullable=False),
    sa.Column('half_a_by', sa.String(length=64), nullable=False),
    sa.Column('half_b_hash', sa.String(length=64), nullable=True),
    sa.Column('half_b_by_id', sa.String(length=32), nullable=True),
    sa.Column('half_b_by', sa.String(length=64), nullable=True),
    sa.Column('created_at', cfcore.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', cfcore.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('used_at', cfcore.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('failed_attempts', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_password_resets_user_id_users'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_password_resets'))
    )
    with op.batch_alter_table('password_resets', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_password_resets_user_id'), ['user_id'], unique=False)
    op.create_table('deployment_flags',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('set_at', cfcore.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('set_by', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_deployment_flags'))
    )
    # Names are compared as people read them (NFKC, case-folded, stripped): bring open four-eyes
    # requests about users, and user names themselves, to that form.
    conn = op.get_bind()
    approvals = sa.table('approvals', sa.column('id', sa.String), sa.column('target_kind', sa.String),
                         sa.column('target_id', sa.String))
    for row in conn.execute(sa.select(approvals.c.id, approvals.c.target_id)
                            .where(approvals.c.target_kind == 'user')).all():
        if row.target_id and _norm(row.target_id) != row.target_id:
            conn.execute(approvals.update().where(approvals.c.id == row.id).values(target_id=_norm(row.target_id)))
    users = sa.table('users', sa.column('id', sa.String), sa.column('username', sa.String))
    rows = conn.execute(sa.select(users.c.id, users.c.username)).all()
    seen: dict[str, str] = {}
    for row in rows:
        norm = _norm(row.username)
        if norm in seen and seen[norm] != row.id:
            raise RuntimeError(f"user names {row.username!r} and another read the same ({norm!r}); "
                               "rename one before upgrading")
        seen[norm] = row.id
    for row in rows:
        if _norm(row.username) != row.username:
            conn.execute(users.update().where(users.c.id == row.id).values(username=_norm(row.username)))


def downgrade() -> None:
    op.drop_table('deployment_flags')
    with op.batch_alter_table('password_resets', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_password_resets_user_id'))
    op.drop_table('password_resets')
