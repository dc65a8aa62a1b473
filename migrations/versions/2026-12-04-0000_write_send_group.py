"""write_send_group(): write_sends() without its NOTIFY, which the caller sends after the commit

Revision ID: 0017_write_send_group
Revises: 0016_write_sends_generic
Create Date: 2026-12-04 00:00:00+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0017_write_send_group"
down_revision: str | None = "0016_write_sends_generic"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A transaction that notifies holds PostgreSQL's one NOTIFY lock from just before its commit
# until the commit is on disk, so two processes' groups took turns for their WAL flushes
# (wait event Lock:object at 2 processes, bench/procs.py). This function writes the same
# rows and returns the NOTIFY payloads instead; the caller sends them once the rows are
# committed, in a transaction that writes nothing else and so waits for no flush. An event
# still never goes out for rows that did not commit.
#
# write_sends() stays for the processes of the previous release that still call it until
# they restart.
_SIGNATURE = (
    "write_send_group(uuid[], bigint[], text[], integer[], text[], text[], timestamptz[], "
    "bigint[], text[], text, bigint[], text[], uuid[], text[], text[], text[], text[], "
    "text[], text[], text[], timestamptz[], text, integer)"
)


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION write_send_group(
            r_id uuid[], r_app bigint[], r_payload text[], r_count integer[],
            r_cancellation text[], r_workflow text[], r_at timestamptz[],
            u_app bigint[], u_identifier text[], email_like text,
            i_app bigint[], i_identifier text[], i_request uuid[], i_title text[],
            i_message text[], i_icon text[], i_url text[], i_data text[], i_blocks text[],
            i_tenant text[], i_at timestamptz[], event text, per_message integer
        ) RETURNS text[]
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

            RETURN ARRAY(
                SELECT '{"e":' || to_json(event)::text || ',"p":['
                       || string_agg('[' || w_users[k] || ',' || w_ids[k] || ']', ','
                                     ORDER BY k)
                       || ']}'
                FROM generate_subscripts(w_users, 1) AS k
                GROUP BY (k - 1) / per_message
                ORDER BY (k - 1) / per_message
            );
        END
        $$
        """
    )
    # As write_sends() since 0016: every row is found by a unique key, so plans made once
    # per connection lose nothing, and planning on every call cost a third of a small group.
    op.execute(f"ALTER FUNCTION {_SIGNATURE} SET plan_cache_mode = force_generic_plan")


def downgrade() -> None:
    op.execute(f"DROP FUNCTION IF EXISTS {_SIGNATURE}")
