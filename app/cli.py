"""The `herald` command: serve the API, run workers, migrate, and manage apps and sends."""

import argparse
import asyncio
import json
import signal
import sys
import uuid
from collections.abc import Callable
from datetime import timedelta
from importlib import metadata
from typing import TextIO

import asyncpg
from pydantic import ValidationError
from pydantic_settings import SettingsError
from sqlalchemy.exc import DBAPIError
from starlette.types import ASGIApp

from app import logs, runtime
from app.apps import repository as apps_repository
from app.apps.models import App
from app.apps.schemas import AppRead
from app.config import Settings, get_settings, parse_duration
from app.db import make_engine, make_sessionmaker
from app.keyring import Keyring
from app.main import create_app, served
from app.ops import commands, preflight
from app.ops.problems import CliError, ConfigError, redact, settings_problem
from app.retention import command as retention_command
from app.retention import service as retention_service
from app.retention.service import Policy as RetentionPolicy
from app.sends import history
from app.server import ServerFailed
from app.server import serve as serve_forever
from app.worker import Worker

Handler = Callable[[Settings, argparse.Namespace], None]


def version() -> str:
    try:
        return metadata.version("herald")
    except metadata.PackageNotFoundError:
        return "unknown"


def open_database(settings: Settings, *, opens_secrets: bool = False) -> runtime.Database:
    """Start (embedded) or reach the database and bring its schema up to date; with
    `opens_secrets`, for a command that opens the apps' secrets, first make sure it has the key."""
    if settings.database_url is None:
        preflight.data_dir(settings.data_dir)
    db = runtime.database(settings)
    try:
        preflight.database(db.url)
        if opens_secrets:  # before the migrations: a refused start changes nothing
            runtime.require_secret_key(settings)
        runtime.migrate(db.url)
    except BaseException:
        db.stop()
        raise
    return db


def open_secrets(settings: Settings, db: runtime.Database) -> Keyring:
    """The keyring of the apps' secrets, once any left in plaintext are sealed."""
    try:
        return runtime.seal_app_secrets(settings, db.url)
    except BaseException:
        db.stop()
        raise


def serve(
    host: str | None,
    port: int | None,
    *,
    worker: bool,
    workers: int | None = None,
    pin_cpus: bool = False,
) -> None:
    overrides: dict[str, object] = {"worker": worker}
    if workers is not None:
        overrides["workers"] = workers
    if pin_cpus:
        overrides["pin_cpus"] = True
    settings = get_settings().model_copy(update=overrides)
    port_setting = "--port" if port else "HERALD_PORT"
    host = host or settings.host
    port = port or settings.port
    if settings.database_url is None or settings.admin_token is None:
        preflight.data_dir(settings.data_dir)
    # Before any slow start-up work, and before the banner: a taken port is one line.
    preflight.port(host, port, setting=port_setting)
    if settings.redis_url is not None:
        preflight.redis(settings.redis_url)
    db = open_database(settings, opens_secrets=True)
    try:
        ring = runtime.seal_app_secrets(settings, db.url)
        token = runtime.admin_token(settings, db.url)
        first = runtime.ensure_default_app(db.url, ring)
    except BaseException:
        db.stop()
        raise
    _banner(host, port, db, token, first, settings.workers, pinned=settings.pin_cpus)
    # One process: the app stops the embedded database as its last act. Several: they are
    # forked after start-up, each makes its own app, and this process stops the database.
    alone = settings.workers == 1

    def make_app() -> ASGIApp:
        app = create_app(
            settings,
            database_url=db.url,
            admin_token_sha256=token.sha256,
            on_shutdown=db.stop if alone else None,
        )
        return served(app)

    try:
        serve_forever(make_app, settings, host=host, port=port)
    except ServerFailed as exc:
        raise CliError(str(exc)) from None
    except SystemExit as exc:
        if exc.code not in (0, None):
            # uvicorn logged why it gave up; when another process took the port after the
            # check above, also say so as the one line a config problem gets.
            preflight.port(host, port, setting=port_setting)
        raise
    finally:
        db.stop()


def run_worker(settings: Settings, *, concurrency: int) -> None:
    """Consume the queue until SIGINT/SIGTERM, finishing the jobs in flight."""
    db = open_database(settings, opens_secrets=True)
    # Web push opens the apps' VAPID keys: a wrong key is a start-up error here too.
    open_secrets(settings, db)

    async def main() -> None:
        engine = make_engine(db.url, pool_size=max(2, concurrency))
        worker = Worker(
            db.url.replace("+asyncpg", "", 1),
            make_sessionmaker(engine),
            concurrency=concurrency,
            retention=RetentionPolicy.of(settings),
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
    host: str,
    port: int,
    db: runtime.Database,
    token: runtime.AdminToken,
    first: App | None,
    workers: int = 1,
    *,
    pinned: bool = False,
) -> None:
    # Human text on stdout, not a log line. It says "starting", not "running": uvicorn
    # binds the port after this, and logs "Uvicorn running on …" once it has.
    shown = "localhost" if host in ("127.0.0.1", "0.0.0.0") else host  # noqa: S104
    base = f"http://{shown}:{port}"
    if db.embedded:
        where = f"embedded PostgreSQL in {db.embedded.pgdata}"
    else:
        where = redact(db.url.replace("+asyncpg", "", 1)) or "external PostgreSQL"
    lines = [
        "",
        f"  Herald {version()} starting on {base}",
        f"  API         {base}/v3",
        f"  Docs        {base}/docs",
        f"  Database    {where}",
    ]
    if workers > 1:
        lines.append(f"  Processes   {workers}, sharing the port")
    if pinned:
        lines.append("  CPUs        each serving process pinned to one (HERALD_PIN_CPUS)")
    if token.from_env:
        lines.append("  Admin token from HERALD_ADMIN_TOKEN")
    elif token.created:
        lines.append(f"  Admin token (shown once): {token.value}")
        lines.append(f"  Admin token in {token.path}")
    elif token.path is not None:
        lines.append(f"  Admin token in {token.path}")
    else:
        lines.append(
            "  Admin token shared by the replicas: the first one printed it and keeps it in "
            "its HERALD_DATA_DIR/admin-token"
        )
    if first is not None:
        read = AppRead.of(first)
        lines += [
            "  App 'default' created:",
            f"    apiKey    {read.apiKey}",
            f"    apiSecret {read.apiSecret}",
        ]
    print("\n".join(lines) + "\n", flush=True)


def _serve(settings: Settings, args: argparse.Namespace) -> None:
    serve(
        args.host,
        args.port,
        worker=settings.worker and not args.no_worker,
        workers=args.workers,
        pin_cpus=args.pin_cpus,
    )


def _worker(settings: Settings, args: argparse.Namespace) -> None:
    run_worker(settings, concurrency=args.concurrency)


def _migrate(settings: Settings, args: argparse.Namespace) -> None:
    open_database(settings).stop()
    print(f"database schema at {runtime.head_revision()}", flush=True)


def _apps_create(settings: Settings, args: argparse.Namespace) -> None:
    db = open_database(settings, opens_secrets=True)
    ring = open_secrets(settings, db)
    try:
        app = runtime.create_app_record(db.url, ring, args.name)
    finally:
        db.stop()
    print(json.dumps(_credentials(app)))


def _apps_list(settings: Settings, args: argparse.Namespace) -> None:
    db = open_database(settings, opens_secrets=True)
    ring = open_secrets(settings, db)
    try:
        apps = commands.list_apps(db.url, ring)
    finally:
        db.stop()
    rows = [AppRead.of(a).model_dump(exclude={"apiSecret", "vapidPublicKey"}) for a in apps]
    if args.json:
        print(json.dumps(rows))
        return
    if not rows:
        print("no apps (create one with `herald apps create --name NAME`)")
        return
    header = ("ID", "NAME", "API KEY", "CREATED", "OLD SECRET UNTIL")
    table = [header] + [
        (
            str(r["id"]),
            r["name"],
            r["apiKey"],
            r["createdAt"] or "",
            r["previousSecretExpiresAt"] or "",
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print("  ".join(cells).rstrip())


def _apps_rotate(settings: Settings, args: argparse.Namespace) -> None:
    grace = settings.secret_grace if args.grace is None else args.grace
    db = open_database(settings, opens_secrets=True)
    ring = open_secrets(settings, db)
    try:
        app = commands.rotate_secret(db.url, ring, args.app_id, grace=grace)
    finally:
        db.stop()
    print(json.dumps(_credentials(app, "previousSecretExpiresAt")))


def _requests_show(settings: Settings, args: argparse.Namespace) -> None:
    db = open_database(settings)
    try:
        status = commands.request_status(db.url, args.app_id, args.request_id)
    finally:
        db.stop()
    print(status.model_dump_json(indent=2))


def _import(settings: Settings, args: argparse.Namespace) -> None:
    """`herald import`: JSON lines into one app's inboxes with COPY, progress on stderr."""

    def shown(done: history.Imported) -> None:
        rate = done.rows / done.seconds if done.seconds else 0
        print(
            f"import: {done.rows:,} rows ({done.seconds:.1f} s, {rate:,.0f} rows/s)",
            file=sys.stderr,
            flush=True,
        )

    async def load(url: str, lines: TextIO) -> history.Imported:
        engine = make_engine(url, pool_size=1)
        try:
            async with make_sessionmaker(engine).begin() as session:
                if await apps_repository.by_id(session, args.app_id) is None:
                    raise history.BadLine(f"no app with id {args.app_id}")
                return await history.load(session, app_id=args.app_id, lines=lines, progress=shown)
        finally:
            await engine.dispose()

    db = open_database(settings)
    try:
        with sys.stdin if args.file == "-" else open(args.file, encoding="utf-8") as lines:
            done = asyncio.run(load(db.url, lines))
    except (history.BadLine, OSError) as exc:
        raise CliError(f"import: {exc}; nothing was imported") from None
    except (DBAPIError, asyncpg.PostgresError) as exc:
        # e.g. the same user twice under one requestId, or a value PostgreSQL refuses.
        detail = str(getattr(exc, "orig", exc)).splitlines()[0]
        raise CliError(
            f"import: the database refused a row ({detail}); nothing was imported"
        ) from None
    finally:
        db.stop()
    rate = done.rows / done.seconds if done.seconds else 0
    print(
        f"import: done, {done.rows:,} rows for {len(done.users):,} users in "
        f"{done.seconds:.1f} s ({rate:,.0f} rows/s)",
        file=sys.stderr,
    )


def _credentials(app: App, *more: str) -> dict[str, object]:
    return AppRead.of(app).model_dump(include={"id", "name", "apiKey", "apiSecret", *more})


def _duration(text: str) -> timedelta:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{exc} (got {text!r})") from None


def _process_count(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        count = 0
    if not 1 <= count <= 64:
        raise argparse.ArgumentTypeError(f"must be a number from 1 to 64 (got {text!r})")
    return count


def _request_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a request id (a UUID): {text!r}") from None


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="herald",
        description="Herald, a self-hosted notification server speaking the Engagespot v3 API. "
        "Settings come from HERALD_* environment variables (see the README).",
    )
    root.add_argument("--version", action="version", version=f"herald {version()}")
    sub = root.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "serve",
        help="apply migrations, then serve the API (and a queue worker)",
        description="Apply migrations, create the first app and admin token if the database "
        "has none, then serve the API, socket.io and, unless --no-worker, a queue worker. "
        "Any number of replicas may share one database.",
    )
    p.add_argument("--host", help="address to listen on (default HERALD_HOST, 127.0.0.1)")
    p.add_argument(
        "--port", type=int, help="port to listen on (default HERALD_PORT, 8000)", metavar="PORT"
    )
    p.add_argument(
        "--no-worker", action="store_true", help="do not run a queue worker in this process"
    )
    p.add_argument(
        "--workers",
        type=_process_count,
        help="processes serving the port, each with its own queue worker (default "
        "HERALD_WORKERS, 1)",
        metavar="N",
    )
    p.add_argument(
        "--pin-cpus",
        action="store_true",
        help="run each serving process on a CPU of its own, the queue workers on any "
        "(default HERALD_PIN_CPUS, off)",
    )
    p.set_defaults(handler=_serve)

    p = sub.add_parser(
        "worker",
        help="run queue workers (any number, any machine)",
        description="Consume the job queue until SIGINT/SIGTERM, finishing the jobs in flight.",
    )
    p.add_argument("--concurrency", type=int, default=4, help="jobs at once (default 4)")
    p.set_defaults(handler=_worker)

    p = sub.add_parser(
        "migrate",
        help="apply database migrations",
        description="Bring the database schema to the newest revision, logging each step. "
        "Safe to run while other replicas start: they take turns.",
    )
    p.set_defaults(handler=_migrate)

    apps = sub.add_parser(
        "apps", help="list, create apps and rotate their secrets", description="Manage apps."
    ).add_subparsers(dest="apps", required=True, metavar="ACTION")
    p = apps.add_parser(
        "create",
        help="create an app and print its credentials",
        description="Create an app and print its id, name, apiKey and apiSecret as JSON.",
    )
    p.add_argument("--name", required=True, help="the app's name")
    p.set_defaults(handler=_apps_create)
    p = apps.add_parser(
        "list",
        help="list every app",
        description="List every app: id, name, API key, creation time, and until when a "
        "rotated-out secret still works. Secrets are not shown.",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(handler=_apps_list)
    p = apps.add_parser(
        "rotate-secret",
        help="issue a new API secret; the old one works for a grace period",
        description="Issue a new API secret and print it as JSON. The old secret keeps "
        "working until previousSecretExpiresAt (HERALD_SECRET_GRACE, 24h by default), so "
        "backends can switch without an outage. --grace 0 ends it at once (a leaked secret).",
    )
    p.add_argument("app_id", type=int, metavar="ID", help="the app's id (see `herald apps list`)")
    p.add_argument(
        "--grace",
        type=_duration,
        metavar="DURATION",
        help="how long the old secret keeps working, e.g. 24h, 30m, 0 "
        "(default HERALD_SECRET_GRACE)",
    )
    p.set_defaults(handler=_apps_rotate)

    requests = sub.add_parser(
        "requests", help="inspect sends", description="Inspect notification sends."
    ).add_subparsers(dest="requests", required=True, metavar="ACTION")
    p = requests.add_parser(
        "show",
        help="show a send's status and counts",
        description="Show a send's state (queued, scheduled, fanning_out, done, cancelled, "
        "failed), its recipient and delivered counts, attempts and last error, as JSON.",
    )
    p.add_argument("app_id", type=int, metavar="APP_ID", help="the app's id")
    p.add_argument(
        "request_id", type=_request_id, metavar="REQUEST_ID", help="the send's requestId"
    )
    p.set_defaults(handler=_requests_show)

    p = sub.add_parser(
        "purge",
        help="delete now what the retention settings no longer keep",
        description=retention_command.DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--batch-size",
        type=retention_command.batch_size,
        default=retention_service.BATCH,
        help=f"rows deleted per transaction (default {retention_service.BATCH:,})",
    )
    p.add_argument(
        "--pause",
        type=retention_command.pause,
        default=0.0,
        help="after each batch, sleep this many times as long as it took (default 0: at "
        "once; the periodic purge uses 1)",
    )
    p.set_defaults(handler=_purge)

    p = sub.add_parser(
        "import",
        help="import notification history from JSON lines",
        description=history.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", help="a file of JSON lines, or - for standard input")
    p.add_argument("--app-id", type=int, required=True, help="the app to import into")
    p.set_defaults(handler=_import)
    return root


def _purge(settings: Settings, args: argparse.Namespace) -> None:
    db = open_database(settings)
    try:
        retention_command.run(db.url, settings, batch=args.batch_size, pause=args.pause)
    finally:
        db.stop()


def load_settings() -> Settings:
    try:
        return get_settings()
    except ValidationError as exc:
        raise settings_problem(exc) from None
    except SettingsError as exc:
        raise ConfigError(str(exc).splitlines()[0]) from None


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        settings = load_settings()
        logs.configure(settings.log_level)
        handler(settings, args)
    except CliError as exc:
        for line in str(exc).splitlines():
            print(f"herald: {line}", file=sys.stderr, flush=True)
        raise SystemExit(exc.exit_code) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
