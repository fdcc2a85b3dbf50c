"""jobs: indexes that serve a filtered page newest first

`GET /jobs?submitter=X` (and `backend=`) reads the newest jobs of one submitter:
an index on (submitter, seq) answers it without sorting every job of theirs.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_jobs_submitter", "jobs")
    op.drop_index("ix_jobs_backend", "jobs")
    op.create_index("ix_jobs_submitter_seq", "jobs", ["submitter", "seq"])
    op.create_index("ix_jobs_backend_seq", "jobs", ["backend", "seq"])


def downgrade() -> None:
    op.drop_index("ix_jobs_backend_seq", "jobs")
    op.drop_index("ix_jobs_submitter_seq", "jobs")
    op.create_index("ix_jobs_backend", "jobs", ["backend"])
    op.create_index("ix_jobs_submitter", "jobs", ["submitter"])
