"""Fill a fresh Herald database with a large inbox, fast, with plain SQL."""

import contextlib
import sys
import time
from dataclasses import dataclass

import asyncpg

# The measured user; the others are u1 … uN and receive the benchmark's sends.
BIG_USER = "u0"
CATEGORIES = ("orders", "billing", "social")


@dataclass(frozen=True)
class Shape:
    rows: int
    user_rows: int
    users: int  # users besides BIG_USER
    chunk: int = 100_000


@dataclass(frozen=True)
class Seeded:
    big_user_id: int
    listed: int  # the big user's rows that are not deleted (the inbox's totalCount)
    unseen: int  # the big user's unreadCount
    table_rows: int
    table_mb: float
    seconds: float


def check(shape: Shape) -> None:
    if not 1 <= shape.user_rows <= shape.rows:
        raise SystemExit("--user-rows must be between 1 and --rows")
    if shape.users < 1:
        raise SystemExit("--users must be at least 1")
    # Each request goes to the big user once plus a run of consecutive other users;
    # the run must not wrap around onto a user twice.
    group = -(-shape.rows // shape.user_rows)
    if group - 1 > shape.users:
        raise SystemExit(f"--users must be at least {group - 1} for this --rows/--user-rows")


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# Row g (1 … rows) of the table. The big user's rows are spread evenly through the table
# (every rows/user_rows-th row), as they would be in a shared production table, not packed
# together. Rows between two of the big user's rows form one request (a small fan-out)
# whose other recipients are consecutive users. Ids and created_at both grow with g.
# States come from multiplicative hashes of g modulo primes (so they do not line up with
# the big user's every-tenth-row pattern): 1 % deleted; ~95 % of the older rows seen and
# ~30 % of those clicked, 2 % interacted with a custom state; the newest 2 % of rows mostly
# unseen; 30 % of rows in one of three categories; 20 % carry a small data object.
_NOTIFICATIONS = """
INSERT INTO notifications (app_id, user_id, request_id, title, message, url, data,
                           category_id, created_at, seen_at, clicked_at, interacted_at,
                           state, deleted_at)
SELECT $1::bigint,
       CASE WHEN big THEN $2::bigint ELSE $3::bigint + (other % $4::bigint) END,
       lpad(to_hex(grp), 32, '0')::uuid,
       'Order #' || g || ' has shipped',
       'Your order #' || g || ' left our warehouse and should arrive within three days.',
       'https://shop.example/orders/' || g,
       CASE WHEN h1 < 202 THEN jsonb_build_object('orderId', g, 'items', h1 % 7 + 1) END,
       CASE WHEN h5 < 31 THEN $5::bigint + h5 % 3 END,
       made,
       CASE WHEN seen THEN made + interval '5 minutes' END,
       CASE WHEN seen AND h2 < 300 THEN made + interval '6 minutes' END,
       CASE WHEN seen AND h2 < 20 THEN made + interval '7 minutes' END,
       CASE WHEN seen AND h2 < 20 THEN 'accepted' END,
       CASE WHEN h3 = 0 THEN made + interval '1 day' END
FROM (
    SELECT g, big, grp, other, h1, h2, h3, h5, made,
           h4 < CASE WHEN g <= $6::bigint * 98 / 100 THEN 962 ELSE 152 END AS seen
    FROM (
        SELECT g,
               (g * $7::bigint) / $6::bigint > ((g - 1) * $7::bigint) / $6::bigint AS big,
               ((g - 1) * $7::bigint) / $6::bigint AS grp,
               (g - 1) - ((g - 1) * $7::bigint) / $6::bigint AS other,
               (g * 2654435761) % 1009 AS h1,
               (g * 40503 + 7) % 997 AS h2,
               (g * 69069 + 3) % 101 AS h3,
               (g * 48271 + 11) % 1013 AS h4,
               (g * 7919 + 5) % 103 AS h5,
               now() - interval '365 days' * (1 - g::float8 / $6::bigint) AS made
        FROM generate_series($8::bigint, $9::bigint) AS g
    ) AS numbered
) AS shaped
ORDER BY g
"""


async def seed(
    conn: asyncpg.Connection, *, app_id: int, shape: Shape, extra_sql: list[str]
) -> Seeded:
    """Write users, categories, requests and `shape.rows` notifications; then VACUUM ANALYZE."""
    started = time.perf_counter()
    fast = await _without_fk_triggers(conn)
    await conn.execute(
        "INSERT INTO categories (app_id, identifier, name) "
        "SELECT $1::bigint, c, initcap(c) FROM unnest($2::text[]) AS c",
        app_id,
        list(CATEGORIES),
    )
    first_category = await conn.fetchval("SELECT min(id) FROM categories WHERE app_id = $1", app_id)
    await conn.execute(
        "INSERT INTO users (app_id, identifier) "
        "SELECT $1::bigint, 'u' || g FROM generate_series(0, $2::bigint) AS g ORDER BY g",
        app_id,
        shape.users,
    )
    big = await conn.fetchval(
        "SELECT id FROM users WHERE app_id = $1 AND identifier = $2", app_id, BIG_USER
    )
    low, high, count = await conn.fetchrow(
        "SELECT min(id), max(id), count(*) FROM users WHERE app_id = $1 AND identifier <> $2",
        app_id,
        BIG_USER,
    )
    if high - low + 1 != count:
        raise RuntimeError("seeded user ids are not contiguous; seed into an empty database")
    progress(f"seed: {shape.users + 1:,} users, {len(CATEGORIES)} categories")
    await conn.execute(
        "INSERT INTO notification_requests (id, app_id, payload, recipient_count, created_at) "
        "SELECT lpad(to_hex(r), 32, '0')::uuid, $1::bigint, "
        """       '{"notification": {"title": "Order update"}, "sendTo": {"recipients": []}}', """
        "       $3::int, now() - interval '365 days' * (1 - r::float8 / $2::bigint) "
        "FROM generate_series(0, $2::bigint - 1) AS r",
        app_id,
        shape.user_rows,
        -(-shape.rows // shape.user_rows),
    )
    progress(f"seed: {shape.user_rows:,} notification requests")
    done = 0
    while done < shape.rows:
        upto = min(done + shape.chunk, shape.rows)
        await conn.execute(
            _NOTIFICATIONS,
            app_id,
            big,
            low,
            count,
            first_category,
            shape.rows,
            shape.user_rows,
            done + 1,
            upto,
        )
        done = upto
        elapsed = time.perf_counter() - started
        progress(f"seed: {done:,} / {shape.rows:,} notifications ({elapsed:.1f} s)")
    if fast:
        await conn.execute("SET session_replication_role = DEFAULT")
        await rebuild_counters(conn)  # their triggers were off with the foreign keys'
    for statement in extra_sql:
        progress(f"seed: {statement}")
        await conn.execute(statement)
    progress("seed: VACUUM (ANALYZE) so index-only scans see an all-visible table")
    for table in ("notifications", "notification_requests", "users", "categories"):
        await conn.execute(f"VACUUM (ANALYZE) {table}")
    with contextlib.suppress(asyncpg.InsufficientPrivilegeError):
        await conn.execute("CHECKPOINT")  # flush now rather than during the measurements
    listed, unseen = await conn.fetchrow(
        "SELECT count(*) FILTER (WHERE deleted_at IS NULL), "
        "       count(*) FILTER (WHERE deleted_at IS NULL AND seen_at IS NULL"
        "                          AND clicked_at IS NULL) "
        "FROM notifications WHERE user_id = $1",
        big,
    )
    table_rows = await conn.fetchval("SELECT count(*) FROM notifications")
    size = await conn.fetchval("SELECT pg_total_relation_size('notifications')")
    seconds = time.perf_counter() - started
    progress(f"seed: done in {seconds:.1f} s")
    return Seeded(big, listed, unseen, table_rows, size / 1e6, seconds)


async def _without_fk_triggers(conn: asyncpg.Connection) -> bool:
    """Skip per-row foreign-key checks while seeding (superusers only); the data is built valid."""
    try:
        await conn.execute("SET session_replication_role = replica")
    except asyncpg.InsufficientPrivilegeError:
        return False
    return True


# Users whose whole inbox is one size, appended after the shared table: one request per row
# (a row's request id and user are unique together), seen/clicked like the older shared rows.
_SIZED = """
WITH req AS (
    INSERT INTO notification_requests (id, app_id, payload, recipient_count, created_at)
    SELECT md5($3 || ':' || g)::uuid, $1::bigint,
           '{"notification": {"title": "Sized"}, "sendTo": {"recipients": []}}', 1,
           now() - interval '1 second' * ($4::bigint - g)
    FROM generate_series(1, $4::bigint) AS g
    RETURNING id
)
INSERT INTO notifications (app_id, user_id, request_id, title, message, url, created_at,
                           seen_at, clicked_at)
SELECT $1::bigint, $2::bigint, md5($3 || ':' || g)::uuid,
       'Invoice #' || g || ' is ready', 'Your invoice #' || g || ' can be downloaded.',
       'https://shop.example/invoices/' || g,
       now() - interval '1 second' * ($4::bigint - g),
       CASE WHEN g < $4::bigint - 20 THEN now() END,
       CASE WHEN g % 3 = 0 AND g < $4::bigint - 20 THEN now() END
FROM generate_series(1, $4::bigint) AS g
ORDER BY g
"""


async def seed_sized(
    conn: asyncpg.Connection, *, app_id: int, sizes: dict[str, int]
) -> dict[str, int]:
    """Create one user per (identifier, rows) with exactly that many inbox rows; return ids."""
    ids: dict[str, int] = {}
    await _without_fk_triggers(conn)
    for identifier, rows in sizes.items():
        started = time.perf_counter()
        user_id = await conn.fetchval(
            "INSERT INTO users (app_id, identifier) VALUES ($1, $2) RETURNING id",
            app_id,
            identifier,
        )
        await conn.execute(_SIZED, app_id, user_id, identifier, rows)
        ids[identifier] = user_id
        seconds = time.perf_counter() - started
        progress(f"seed: user {identifier} with {rows:,} rows ({seconds:.1f} s)")
    await conn.execute("SET session_replication_role = DEFAULT")
    return ids


async def seed_topic(
    conn: asyncpg.Connection, *, app_id: int, identifier: str, subscribers: int
) -> int:
    """A topic with `subscribers` fresh users (t1 … tN) subscribed to every channel."""
    started = time.perf_counter()
    topic_id = await conn.fetchval(
        "INSERT INTO topics (app_id, identifier, name) VALUES ($1, $2, $2) RETURNING id",
        app_id,
        identifier,
    )
    await conn.execute(
        "INSERT INTO users (app_id, identifier) "
        "SELECT $1::bigint, 't' || g FROM generate_series(1, $2::bigint) AS g ORDER BY g",
        app_id,
        subscribers,
    )
    await conn.execute(
        "INSERT INTO topic_subscriptions (topic_id, user_id) "
        "SELECT $1::bigint, id FROM users WHERE app_id = $2 AND identifier LIKE 't%' ORDER BY id",
        topic_id,
        app_id,
    )
    progress(
        f"seed: topic {identifier} with {subscribers:,} subscribers "
        f"({time.perf_counter() - started:.1f} s)"
    )
    return int(topic_id)


async def rebuild_counters(conn: asyncpg.Connection) -> None:
    """Recount the per-user inbox counters after seeding with triggers off (when they exist)."""
    if await conn.fetchval("SELECT to_regclass('inbox_counters')") is None:
        return
    started = time.perf_counter()
    await conn.execute("TRUNCATE inbox_counters")
    await conn.execute(
        """
        INSERT INTO inbox_counters (user_id, total, unseen, unclicked, interacted)
        SELECT user_id, count(*),
               count(*) FILTER (WHERE seen_at IS NULL AND clicked_at IS NULL),
               count(*) FILTER (WHERE clicked_at IS NULL),
               count(*) FILTER (WHERE interacted_at IS NOT NULL)
        FROM notifications WHERE deleted_at IS NULL
        GROUP BY user_id ORDER BY user_id
        """
    )
    progress(f"seed: inbox counters recounted ({time.perf_counter() - started:.1f} s)")


async def finish(conn: asyncpg.Connection) -> None:
    """VACUUM (ANALYZE) and CHECKPOINT, so measurements start from a settled database."""
    progress("seed: VACUUM (ANALYZE)")
    await conn.execute("VACUUM (ANALYZE)")
    with contextlib.suppress(asyncpg.InsufficientPrivilegeError):
        await conn.execute("CHECKPOINT")
