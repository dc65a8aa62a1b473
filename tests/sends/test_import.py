"""`herald import`: JSON lines into inboxes with COPY; exact counters; a bad line keeps nothing."""

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.sends import history
from tests.db import ROOT
from tests.factories import Creds

pytestmark = pytest.mark.live


def _line(i: int, user: str = "big", **extra: object) -> str:
    item: dict[str, object] = {
        "user": user,
        "title": f"Old #{i}",
        "message": "From the cloud",
        "createdAt": f"2024-01-{1 + i % 28:02d}T10:{i % 60:02d}:18.302Z",
        **extra,
    }
    if i % 3 == 0:
        item["seenAt"] = "2024-02-01T00:00:00Z"
    if i % 9 == 0:
        item["clickedAt"] = "2024-02-01T00:01:00Z"
    if i % 10 == 0:
        item["category"] = "orders"
        item["data"] = {"orderId": i}
    return json.dumps(item)


def _herald(*args: str, stdin: str | None = None, url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HERALD_DATABASE_URL": url, "HERALD_LOG_LEVEL": "warning"}
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def _counts(engine: AsyncEngine, app_id: int, user: str) -> tuple[tuple[int, ...], ...]:
    async with engine.connect() as conn:
        truth = (
            await conn.execute(
                text(
                    "SELECT count(*), count(*) FILTER (WHERE seen_at IS NULL AND clicked_at IS "
                    "NULL), count(*) FILTER (WHERE clicked_at IS NULL) FROM notifications n "
                    "JOIN users u ON u.id = n.user_id WHERE u.app_id = :a AND u.identifier = :u "
                    "AND n.deleted_at IS NULL"
                ),
                {"a": app_id, "u": user},
            )
        ).one()
        kept = (
            await conn.execute(
                text(
                    "SELECT c.total, c.unseen, c.unclicked FROM inbox_counters c JOIN users u "
                    "ON u.id = c.user_id WHERE u.app_id = :a AND u.identifier = :u"
                ),
                {"a": app_id, "u": user},
            )
        ).one()
    return tuple(truth), tuple(kept)


async def test_100000_rows_for_one_user(
    live_database_url: str,
    live_server: str,
    live_app: Creds,
    live_engine: AsyncEngine,
    tmp_path: Path,
) -> None:
    source = tmp_path / "history.jsonl"
    source.write_text("\n".join(_line(i) for i in range(100_000)) + "\n")
    # Its speed is reported by the command itself (rows/s), not asserted here.
    run = _herald("import", str(source), "--app-id", str(live_app.id), url=live_database_url)
    assert run.returncode == 0, run.stderr
    assert "import: 20,000 rows" in run.stderr  # progress while it works
    assert "import: done, 100,000 rows for 1 users" in run.stderr

    truth, kept = await _counts(live_engine, live_app.id, "big")
    assert truth == kept
    assert truth[0] == 100_000
    async with httpx.AsyncClient(base_url=live_server) as client:
        page = (await client.get("/v3/notifications", headers=live_app.user("big"))).json()
        ordered = await client.get(
            "/v3/notifications", params={"category": "orders"}, headers=live_app.user("big")
        )
    assert page["pagination"]["totalCount"] == 100_000
    assert page["unreadCount"] == truth[1]
    assert ordered.json()["pagination"]["totalCount"] == 10_000
    item = page["data"][0]
    assert item["title"].startswith("Old #")
    assert item["createdAt"].endswith("Z")


async def test_a_bad_line_imports_nothing_and_says_where(
    live_database_url: str, live_app: Creds, live_engine: AsyncEngine
) -> None:
    lines = [_line(i, user="careful") for i in range(5)] + ['{"user": "careful"}']
    run = _herald(
        "import",
        "-",
        "--app-id",
        str(live_app.id),
        stdin="\n".join(lines),
        url=live_database_url,
    )
    assert run.returncode != 0
    assert "line 6: `title` is required; nothing was imported" in run.stderr
    assert "Traceback" not in run.stderr
    async with live_engine.connect() as conn:
        found = await conn.execute(
            text("SELECT count(*) FROM users WHERE app_id = :a AND identifier = 'careful'"),
            {"a": live_app.id},
        )
    assert found.scalar_one() == 0

    unknown = _herald("import", "-", "--app-id", "999999", stdin=_line(1), url=live_database_url)
    assert unknown.returncode != 0
    assert "no app with id 999999" in unknown.stderr


async def test_lines_sharing_a_request_id_are_one_send(session: AsyncSession, creds: Creds) -> None:
    shared = str(uuid.uuid4())
    lines = [
        _line(1, user="a", requestId=shared),
        _line(2, user="b", requestId=shared),
        _line(3, user="c"),
        "",
    ]
    done = await history.load(session, app_id=creds.id, lines=lines)
    assert done.rows == 3
    requests = await session.execute(
        text("SELECT recipient_count FROM notification_requests WHERE app_id = :a ORDER BY 1"),
        {"a": creds.id},
    )
    assert [r[0] for r in requests] == [1, 2]
    for bad, message in [
        ("[1]", "line 1: not a JSON object"),
        ('{"user": "a", "title": "t", "data": [1]}', "`data` must be an object"),
        ('{"user": "a", "title": "t", "createdAt": "yesterday"}', "not an ISO 8601 time"),
        ('{"user": "a", "title": "t", "requestId": "x"}', "`requestId` must be a UUID"),
        ('{"user": "a", "title": "t\\u0000"}', "NUL"),
    ]:
        with pytest.raises(history.BadLine, match=message):
            await history.load(session, app_id=creds.id, lines=[bad])
