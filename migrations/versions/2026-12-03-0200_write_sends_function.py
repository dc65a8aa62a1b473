"""write_sends(): a group of plain sends written by one statement that commits itself

Revision ID: 0015_write_sends
Revises: 0014_sealed_app_secrets
Create Date: 2026-12-03 02:00:00+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0015_write_sends"
down_revision: str | None = "0014_sealed_app_secrets"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# A function, not statements sent one by one (app/sends/group.py): a group took five round
# trips (BEGIN, requests and users, inbox rows, NOTIFY, COMMIT), each waiting its turn on a
# busy event loop, and a flight of 16 sends took 17 to 20 ms. Called alone, outside any
# transaction, it is one round trip and commits before it answers. The inbox rows are a
# statement of their own: a VOLATILE function takes a snapshot per statement, so they see
# the users a concurrent transaction committed while the user insert waited for it.
#
# The rows: requests (r_*), then one entry per inbox row (i_*), and the users to create in
# the order given (sorted by the caller, as users_repository.ensure sorts its own, so that
# concurrent writers wait on each other's new users in one order). The NOTIFY payloads are
# those of app.inbox.events.messages: at most `per_message` (user id, notification id)
# pairs each. Returns the inbox rows written.
def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION write_sends(
            r_id uuid[], r_app bigint[], r_payload text[], r_count integer[],
            r_cancellation text[], r_workflow text[], r_at timestamptz[],
            u_app bigint[], u_identifier text[], email_like text,
            i_app bigint[], i_identifier text[], i_request uuid[], i_title text[],
            i_message text[], i_icon text[], i_url text[], i_data text[], i_blocks text[],
            i_tenant text[], i_at timestamptz[],
            channel text, event text, per_message integer
        ) RETURNS integer
        LANGUAGE plpgsql VOLATILE AS $$
        DECLARE
            w_users bigint[];
            w_ids bigint[];
        BEGIN
            INSERT INTO notification_requests (id, app_id, payload, recipient_count, status,
                                               cancellation_key, workflow_identifier,
                                               created_at, updated_at)
            SELECT id, app_id, CAST(payload AS jsonb), n, 'done', ck, wf, at, at
            FROM unnest(r_id, r_app, r_payload, r_count, r_cancellation, r_workflow, r_at)
                 AS r(id, app_id, payload, n, ck, wf, at);

            INSERT INTO users (app_id, identifier, profile)
            SELECT a, i,
                   CASE WHEN i ~ email_like THEN jsonb_build_object('email', i)
                        ELSE '{}'::jsonb END
            FROM unnest(u_app, u_identifier) WITH ORDINALITY AS u(a, i, k)
            ORDER BY k
            ON CONFLICT (app_id, identifier) DO NOTHING;

            WITH written AS (
                INSERT INTO notifications (app_id, user_id, request_id, title, message, icon,
                                           url, data, blocks, category_id,
                                           tenant_identifier, created_at)
                SELECT r.app_id, u.id, r.request_id, r.title, r.message, r.icon, r.url,
                       CAST(r.data AS jsonb), CAST(r.blocks AS jsonb), NULL, r.tenant, r.at
                FROM unnest(i_app, i_identifier, i_request, i_title, i_message, i_icon,
                            i_url, i_data, i_blocks, i_tenant, i_at)
                     AS r(app_id, identifier, request_id, title, message, icon, url, data,
                          blocks, tenant, at)
                JOIN users u ON u.app_id = r.app_id AND u.identifier = r.identifier
                ON CONFLICT (request_id, user_id) DO NOTHING
                RETURNING user_id, id
            )
            SELECT array_agg(user_id), array_agg(id) INTO w_users, w_ids FROM written;

            PERFORM pg_notify(
                channel,
                '{"e":' || to_json(event)::text || ',"p":['
                || string_agg('[' || w_users[k] || ',' || w_ids[k] || ']', ',' ORDER BY k)
                || ']}'
            )
            FROM generate_subscripts(w_users, 1) AS k
            GROUP BY (k - 1) / per_message;

            RETURN coalesce(cardinality(w_users), 0);
        END
        $$
        """
    )


def downgrade() -> None:
    op.execute(
        "DROP FUNCTION IF EXISTS write_sends(uuid[], bigint[], text[], integer[], text[], "
        "text[], timestamptz[], bigint[], text[], text, bigint[], text[], uuid[], text[], "
        "text[], text[], text[], text[], text[], text[], timestamptz[], text, text, integer)"
    )
