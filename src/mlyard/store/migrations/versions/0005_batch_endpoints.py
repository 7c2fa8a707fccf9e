"""batch endpoints, deployments and the jobs of their invocations

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 19:00:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('batch_endpoints',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('spec', sa.JSON(), nullable=False),
    sa.Column('default_deployment', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.BigInteger(), nullable=False),
    sa.Column('created_by', sa.String(length=255), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('batch_deployments',
    sa.Column('endpoint', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('type', sa.String(length=16), nullable=False),
    sa.Column('spec', sa.JSON(), nullable=False),
    sa.Column('model', sa.String(length=400), nullable=True),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.BigInteger(), nullable=False),
    sa.Column('created_by', sa.String(length=255), nullable=False),
    sa.ForeignKeyConstraint(['endpoint'], ['batch_endpoints.name'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('endpoint', 'name')
    )
    op.create_table('batch_endpoint_jobs',
    sa.Column('job', sa.String(length=255), nullable=False),
    sa.Column('endpoint', sa.String(length=64), nullable=False),
    sa.Column('deployment', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['endpoint'], ['batch_endpoints.name'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('job')
    )
    with op.batch_alter_table('batch_endpoint_jobs', schema=None) as batch_op:
        batch_op.create_index('ix_batch_endpoint_jobs_endpoint_created', ['endpoint', 'created_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('batch_endpoint_jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_batch_endpoint_jobs_endpoint_created')
    op.drop_table('batch_endpoint_jobs')
    op.drop_table('batch_deployments')
    op.drop_table('batch_endpoints')
