"""The `herald` command."""

import argparse
import asyncio
import json
import logging
import signal
import sys
from typing import TextIO

import asyncpg
import uvicorn
from sqlalchemy.exc import DBAPIError

from app import runtime
from app.apps import repository as apps_repository
from app.apps.models import App
from app.apps.schemas import AppRead
from app.config import Settings, get_settings
from app.db import make_engine, make_sessionmaker
from app.main import create_app, served
from app.sends import history
from app.worker import Worker


def _logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(message)s", stream=sys.stderr)
    logging.getLogger("alembic").setLevel(logging.INFO)


def serve(host: str | None, port: int | None, *, worker: bool) -> None:
    settings = get_settings().model_copy(update={"worker": worker})
    host = host or settings.host
    port = port or settings.port
    db = runtime.database(settings)
    try:
        runtime.migrate(db.url)
        token = runtime.admin_token(settings)
        first = runtime.ensure_default_app(db.url)
    except BaseException:
        db.stop()
        raise
    _banner(host, port, db, token, first)
    app = create_app(settings, database_url=db.url, admin_token=token.value, on_shutdown=db.stop)
    try:
        uvicorn.run(
            served(app),
            host=host,
            port=port,
            access_log=False,
            log_config=None,
            # engine.io pings every socket itself; uvicorn's own keepalive doubles idle CPU.
            ws_ping_interval=None,
        )
    finally:
        db.stop()


def run_worker(settings: Settings, *, concurrency: int) -> None:
    """Consume the queue until SIGINT/SIGTERM, finishing the jobs in flight."""
    db = runtime.database(settings)

    async def main() -> None:
        engine = make_engine(db.url, pool_size=max(2, concurrency))
        worker = Worker(
            db.url.replace("+asyncpg", "", 1), make_sessionmaker(engine), concurrency=concurrency
        )
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, worker.stop)
        try:
            await worker.run()
        finally:
            await engine.dispose()

    try:
        asyncio.run(main())
    finally:
        db.stop()


def import_history(settings: Settings, *, app_id: int, source: str) -> None:
    """`herald import`: JSON lines into one app's inboxes with COPY, progress on stderr."""
    db = runtime.database(settings)

    def shown(done: history.Imported) -> None:
        rate = done.rows / done.seconds if done.seconds else 0
        print(
            f"import: {done.rows:,} rows ({done.seconds:.1f} s, {rate:,.0f} rows/s)",
            file=sys.stderr,
            flush=True,
        )

    async def main(lines: TextIO) -> history.Imported:
        engine = make_engine(db.url, pool_size=1)
        try:
            async with make_sessionmaker(engine).begin() as session:
                if await apps_repository.by_id(session, app_id) is None:
                    raise history.BadLine(f"no app with id {app_id}")
                return await history.load(session, app_id=app_id, lines=lines, progress=shown)
        finally:
            await engine.dispose()

    try:
        runtime.migrate(db.url)
        with sys.stdin if source == "-" else open(source, encoding="utf-8") as lines:
            done = asyncio.run(main(lines))
    except (history.BadLine, OSError) as exc:
        raise SystemExit(f"herald import: {exc}; nothing was imported") from None
    except (DBAPIError, asyncpg.PostgresError) as exc:
        # e.g. the same user twice under one requestId, or a value PostgreSQL refuses.
        detail = str(getattr(exc, "orig", exc)).splitlines()[0]
        raise SystemExit(
            f"herald import: the database refused a row ({detail}); nothing was imported"
        ) from None
    finally:
        db.stop()
    rate = done.rows / done.seconds if done.seconds else 0
    print(
        f"import: done, {done.rows:,} rows for {len(done.users):,} users in "
        f"{done.seconds:.1f} s ({rate:,.0f} rows/s)",
        file=sys.stderr,
    )


def _banner(
    host: str, port: int, db: runtime.Database, token: runtime.AdminToken, first: App | None
) -> None:
    shown = "localhost" if host in ("127.0.0.1", "0.0.0.0") else host  # noqa: S104
    base = f"http://{shown}:{port}"
    where = f"embedded PostgreSQL in {db.embedded.pgdata}" if db.embedded else "external"
    lines = [
        "",
        "  Herald is running",
        f"  API         {base}/v3",
        f"  Docs        {base}/docs",
        f"  Database    {where}",
    ]
    if token.path is not None:
        lines.append(f"  Admin token in {token.path}")
    else:
        lines.append("  Admin token from HERALD_ADMIN_TOKEN")
    if token.created:
        lines.append(f"  Admin token (shown once): {token.value}")
    if first is not None:
        read = AppRead.of(first)
        lines += [
            "  App 'default' created:",
            f"    apiKey    {read.apiKey}",
            f"    apiSecret {read.apiSecret}",
        ]
    print("\n".join(lines) + "\n", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="herald", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_serve = sub.add_parser("serve", help="apply migrations, then serve the API")
    p_serve.add_argument("--host")
    p_serve.add_argument("--port", type=int)
    p_serve.add_argument(
        "--no-worker", action="store_true", help="do not run a queue worker in this process"
    )
    p_worker = sub.add_parser("worker", help="run queue workers (any number, any machine)")
    p_worker.add_argument("--concurrency", type=int, default=4)
    sub.add_parser("migrate", help="apply database migrations")
    p_import = sub.add_parser(
        "import",
        help="import notification history from JSON lines (see app/sends/history.py)",
        description=history.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p_import.add_argument("file", help="a file of JSON lines, or - for standard input")
    p_import.add_argument("--app-id", type=int, required=True, help="the app to import into")
    p_apps = sub.add_parser("apps", help="manage apps").add_subparsers(dest="apps", required=True)
    p_create = p_apps.add_parser("create", help="create an app and print its credentials")
    p_create.add_argument("--name", required=True)
    args = parser.parse_args(argv)

    settings = get_settings()
    _logging(settings.log_level)
    if args.command == "serve":
        serve(args.host, args.port, worker=settings.worker and not args.no_worker)
        return
    if args.command == "worker":
        run_worker(settings, concurrency=args.concurrency)
        return
    if args.command == "import":
        import_history(settings, app_id=args.app_id, source=args.file)
        return
    db = runtime.database(settings)
    try:
        runtime.migrate(db.url)
        if args.command == "apps" and args.apps == "create":
            app = runtime.create_app_record(db.url, args.name)
            print(
                json.dumps(
                    AppRead.of(app).model_dump(include={"id", "name", "apiKey", "apiSecret"})
                )
            )
    finally:
        db.stop()


if __name__ == "__main__":
    main()
