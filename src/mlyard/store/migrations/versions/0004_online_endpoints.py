"""online endpoints and deployments

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 16:50:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('online_endpoints',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('spec', sa.JSON(), nullable=False),
    sa.Column('auth_mode', sa.String(length=16), nullable=False),
    sa.Column('traffic', sa.JSON(), nullable=False),
    sa.Column('mirror_traffic', sa.JSON(), nullable=False),
    sa.Column('keys', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.BigInteger(), nullable=False),
    sa.Column('created_by', sa.String(length=255), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('online_deployments',
    sa.Column('endpoint', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('spec', sa.JSON(), nullable=False),
    sa.Column('model', sa.String(length=400), nullable=True),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.BigInteger(), nullable=False),
    sa.Column('created_by', sa.String(length=255), nullable=False),
    sa.ForeignKeyConstraint(['endpoint'], ['online_endpoints.name'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('endpoint', 'name')
    )


def downgrade() -> None:
    op.drop_table('online_deployments')
    op.drop_table('online_endpoints')
