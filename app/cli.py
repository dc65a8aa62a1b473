"""The `herald` command."""

import argparse
import asyncio
import json
import logging
import signal
import sys

from app import runtime
from app.apps.models import App
from app.apps.schemas import AppRead
from app.config import Settings, get_settings
from app.db import make_engine, make_sessionmaker
from app.main import create_app, served
from app.server import run as run_server
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
        run_server(served(app), settings, host=host, port=port)
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
