"""CPU per inbox page in this process: the ASGI app called directly, no sockets, no wrk.

    python -m bench.all --keep          # once: seed the database and keep it
    python -m bench.pagecpu --pages 2000

On a shared machine a wrk figure moves with everyone else's load; this one counts only the
application's own work for a page of `u0` (FastAPI, auth, the session, the statement, the
body), as process CPU time, so two versions of the code can be compared run against run.
It leaves out uvicorn, app/edge.py and PostgreSQL's side."""

import argparse
import asyncio
import statistics
import time
from collections.abc import MutableMapping
from typing import Any

import asyncpg

from app.config import Settings
from app.embedded import EmbeddedPostgres
from app.main import create_app
from bench.all import DATA_DIR
from bench.seed import BIG_USER
from bench.server import beside, plain


async def _key(url: str) -> str:
    conn = await asyncpg.connect(plain(url))
    try:
        return str(await conn.fetchval("SELECT api_key FROM apps WHERE name = 'bench'"))
    finally:
        await conn.close()


async def _pages(url: str, pages: int, rounds: int, path: str) -> list[float]:
    key = await _key(url)
    settings = Settings(database_url=url, worker=False, admin_token="pagecpu-admin-token-x")
    app = create_app(settings)
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"herald.bench"),
            (b"x-engagespot-api-key", key.encode()),
            (b"x-engagespot-user-id", BIG_USER.encode()),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    body: list[bytes] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.body":
            body.append(message.get("body", b""))
        elif message["status"] != 200:
            raise RuntimeError(f"{path}: {message['status']}")

    per_page: list[float] = []
    async with app.router.lifespan_context(app):
        for _ in range(200):
            await app({**scope, "state": {}}, receive, send)
        for _ in range(rounds):
            started = time.process_time()
            for _ in range(pages):
                await app({**scope, "state": {}}, receive, send)
            per_page.append(1000 * (time.process_time() - started) / pages)
            body.clear()
    return per_page


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.pagecpu", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--pages", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--path", default="/v3/notifications")
    parser.add_argument("--database-name", default="herald_bench_all")
    args = parser.parse_args(argv)
    embedded = EmbeddedPostgres(DATA_DIR)
    url = beside(embedded.start(), args.database_name)
    try:
        per_page = asyncio.run(_pages(url, args.pages, args.rounds, args.path))
    finally:
        embedded.stop()
    shown = " ".join(f"{v:.3f}" for v in per_page)
    print(f"{args.path}: CPU ms per request {shown} (median {statistics.median(per_page):.3f})")


if __name__ == "__main__":
    main()
