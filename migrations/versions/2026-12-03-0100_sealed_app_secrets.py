"""apps: API secrets and VAPID private keys sealed at rest (text columns)

The sealing itself needs HERALD_SECRET_KEY, which a migration does not read: each start
seals the rows still in plaintext (app.runtime.seal_app_secrets, under an advisory lock).
Until then a plaintext row keeps working, so an upgrade never locks an app out.

Revision ID: 0014_sealed_app_secrets
Revises: 0013_webpush
Create Date: 2026-12-03 01:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_sealed_app_secrets"
down_revision: str | None = "0013_webpush"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # varchar(128) -> text is binary coercible: no table rewrite. A sealed secret is ~107
    # characters today; text leaves room for a longer envelope.
    op.alter_column("apps", "api_secret", type_=sa.Text(), existing_type=sa.String(128))
    op.alter_column("apps", "previous_api_secret", type_=sa.Text(), existing_type=sa.String(128))


def downgrade() -> None:
    # Sealed values fit in 128 characters; an older Herald cannot open them anyway (run it
    # with a database restored from before the upgrade).
    op.alter_column("apps", "previous_api_secret", type_=sa.String(128), existing_type=sa.Text())
    op.alter_column("apps", "api_secret", type_=sa.String(128), existing_type=sa.Text())
