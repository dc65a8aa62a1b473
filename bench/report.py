"""What the benchmark prints and writes: machine facts, query plans, the table, RESULTS.md."""

import hashlib
import json
import os
import platform
import re
import shlex
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg

from bench.load import Sample
from bench.seed import BIG_USER, Seeded
from bench.sql import Captured, literal

RUNS_MARKER = (
    "<!-- bench:inbox runs: sections below are written by bench/inbox.py, newest first -->"
)
PG_SETTINGS = ("shared_buffers", "synchronous_commit", "fsync", "jit", "random_page_cost")


@dataclass(frozen=True)
class Machine:
    cpus: int
    cpu_model: str
    memory_gb: float
    system: str
    python: str
    postgres: str
    settings: dict[str, str]
    herald: str

    def line(self) -> str:
        settings = ", ".join(f"{k}={v}" for k, v in self.settings.items())
        return (
            f"{self.cpus} CPUs ({self.cpu_model}), {self.memory_gb:.0f} GB RAM, {self.system}; "
            f"Python {self.python}; PostgreSQL {self.postgres} ({settings}); Herald {self.herald}"
        )


@dataclass(frozen=True)
class Sizes:
    rows: int
    user_rows: int
    users: int
    sends: int
    reads: int
    concurrency: int
    clients: int
    rounds: int
    variant: str  # changes tried on top of the shipped schema/settings; "" for none

    def load(self) -> str:
        who = (
            "one httpx.AsyncClient in the bench process"
            if self.clients == 1
            else f"{self.clients} client processes, one httpx.AsyncClient each"
        )
        return (
            f"concurrency {self.concurrency}, {who}; each phase in {self.rounds} interleaved "
            "round(s); the load generator shares the CPUs with the server and PostgreSQL"
        )


@dataclass(frozen=True)
class Plan:
    query: str
    mode: str  # custom | generic (forced) | auto→… (what the server runs), maybe "after sends"
    text: str
    path: str  # node types and indexes, outermost first
    indexes: tuple[str, ...]
    heap_fetches: int
    ms: float
    shared_hit: int
    shared_read: int


@dataclass(frozen=True)
class Result:
    started: datetime
    command: str
    machine: Machine
    opts: Sizes
    seeded: Seeded
    samples: list[Sample]
    plans: list[Plan]
    floors: dict[str, list[str]]

    def sample(self, name: str) -> Sample:
        return next(s for s in self.samples if s.name == name)


async def machine(dsn: str) -> Machine:
    conn = await asyncpg.connect(dsn)
    try:
        version = await conn.fetchval("SHOW server_version")
        settings = {name: await conn.fetchval(f"SHOW {name}") for name in PG_SETTINGS}
    finally:
        await conn.close()
    return Machine(
        cpus=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 0,
        cpu_model=_cpu_model(),
        memory_gb=_memory_gb(),
        system=f"{platform.system()} {platform.release()}",
        python=platform.python_version(),
        postgres=str(version),
        settings={k: str(v) for k, v in settings.items()},
        herald=_revision(),
    )


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _memory_gb() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return 0.0


def command_line(module: str, argv: Sequence[str] | None) -> str:
    """`python -m <module> <its arguments>`, as the report names the run."""
    return shlex.join(["python", "-m", module, *(sys.argv[1:] if argv is None else argv)])


def _git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=root, capture_output=True, text=True, check=True, timeout=10
    ).stdout.strip()


def _revision() -> str:
    root = Path(__file__).resolve().parent.parent
    try:
        rev = _git(root, "rev-parse", "--short", "HEAD")
        dirty = _git(
            root, "status", "--porcelain", "--untracked-files=no", "--", "app", "migrations"
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown revision"
    return rev + ("+changes in app/" if dirty else "")


def verify_page(page: Any, seeded: Seeded) -> None:
    """The measured page must be what the seed implies, so the numbers measure the real thing."""
    pagination = page["pagination"]
    expected = (seeded.listed, seeded.unseen, min(15, seeded.listed))
    got = (pagination["totalCount"], page["unreadCount"], len(page["data"]))
    if got != expected:
        raise RuntimeError(f"inbox page (totalCount, unreadCount, items) {got} != {expected}")


async def explain(
    conn: asyncpg.Connection, statements: list[Captured], *, modes: tuple[str, ...]
) -> list[Plan]:
    """EXPLAIN (ANALYZE, BUFFERS) the inbox's page and counts for the big user.

    Herald runs them as asyncpg prepared statements; PostgreSQL plans the first five
    executions with the parameter values (custom) and may then switch to one plan for any
    value (generic). Modes: "custom" and "generic" force one; "auto" is what the server
    runs in its steady state (plan_cache_mode=auto after six executions)."""
    plans: list[Plan] = []
    for statement in statements:
        name = statement.label
        if name not in ("page", "totalCount", "unreadCount"):
            continue
        execute = f"EXECUTE bench_q({', '.join(literal(a) for a in statement.args)})"
        for mode in modes:
            await conn.execute(f"PREPARE bench_q AS {statement.sql}")
            try:
                forced = "auto" if mode == "auto" else f"force_{mode}_plan"
                await conn.execute(f"SET plan_cache_mode = {forced}")
                for _ in range(6 if mode == "auto" else 1):
                    await conn.execute(execute)
                raw = await conn.fetchval(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {execute}")
                rows = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {execute}")
            finally:
                await conn.execute("RESET plan_cache_mode")
                await conn.execute("DEALLOCATE bench_q")
            text = "\n".join(r[0] for r in rows)
            if mode == "auto":
                # A generic plan shows the placeholder where a custom one shows the value.
                mode = "auto→generic" if "$1" in text else "auto→custom"
            plans.append(_plan(name, mode, json.loads(raw)[0], text))
    return plans


def _plan(query: str, mode: str, doc: dict[str, Any], text: str) -> Plan:
    steps: list[str] = []
    indexes: list[str] = []
    heap = 0

    def walk(node: dict[str, Any]) -> None:
        nonlocal heap
        label = node["Node Type"]
        if "Index Name" in node:
            indexes.append(node["Index Name"])
            label += f" ({node['Index Name']})"
        elif "Relation Name" in node:
            label += f" ({node['Relation Name']})"
        heap += int(node.get("Heap Fetches", 0))
        steps.append(label)
        for child in node.get("Plans", []):
            walk(child)

    top = doc["Plan"]
    walk(top)
    return Plan(
        query=query,
        mode=mode,
        text=text,
        path=" > ".join(steps),
        indexes=tuple(dict.fromkeys(indexes)),
        heap_fetches=heap,
        ms=float(doc["Execution Time"]),
        shared_hit=int(top.get("Shared Hit Blocks", 0)),
        shared_read=int(top.get("Shared Read Blocks", 0)),
    )


# The rows of the timed table, in order: (sample name, label, floor it is compared with).
HTTP_FLOOR = "GET /health"
ROWS = (
    ("GET /health", "HTTP floor"),
    ("inbox SQL (asyncpg)", "SQL floor of the inbox page"),
    ("GET /v3/notifications", "inbox page, user with a large inbox"),
    ("GET /health c=1", "HTTP floor, one request at a time"),
    ("inbox SQL (asyncpg) c=1", "SQL floor of the page, one at a time"),
    ("GET /v3/notifications c=1", "inbox page, one request at a time"),
    ("send SQL (asyncpg)", "SQL floor of a send"),
    ("POST /v3/notifications", "1-recipient send"),
    ("inbox SQL (asyncpg) after sends", "SQL floor of the page, after the sends"),
    ("GET /v3/notifications after sends", "inbox page, after the sends"),
)


def ratios(result: Result) -> list[tuple[str, float]]:
    health = result.sample(HTTP_FLOOR)
    inbox_sql = result.sample("inbox SQL (asyncpg)")
    inbox = result.sample("GET /v3/notifications")
    send_sql = result.sample("send SQL (asyncpg)")
    send = result.sample("POST /v3/notifications")
    health1 = result.sample("GET /health c=1")
    inbox_sql1 = result.sample("inbox SQL (asyncpg) c=1")
    inbox1 = result.sample("GET /v3/notifications c=1")
    later_sql = result.sample("inbox SQL (asyncpg) after sends")
    later = result.sample("GET /v3/notifications after sends")
    return [
        ("inbox reads/s ÷ /health req/s", _div(inbox.rate, health.rate)),
        ("inbox p50 ÷ /health p50", _div(inbox.percentile(50), health.percentile(50))),
        ("inbox reads/s ÷ inbox SQL floor/s", _div(inbox.rate, inbox_sql.rate)),
        ("inbox p50 ÷ inbox SQL floor p50", _div(inbox.percentile(50), inbox_sql.percentile(50))),
        ("inbox p99 ÷ inbox SQL floor p99", _div(inbox.percentile(99), inbox_sql.percentile(99))),
        ("inbox p50 ÷ SQL floor p50, c=1", _div(inbox1.percentile(50), inbox_sql1.percentile(50))),
        ("inbox p50 ÷ /health p50, c=1", _div(inbox1.percentile(50), health1.percentile(50))),
        ("sends/s ÷ /health req/s", _div(send.rate, health.rate)),
        ("sends/s ÷ send SQL floor/s", _div(send.rate, send_sql.rate)),
        ("send p50 ÷ send SQL floor p50", _div(send.percentile(50), send_sql.percentile(50))),
        (
            "inbox p50 after sends ÷ its SQL floor p50",
            _div(later.percentile(50), later_sql.percentile(50)),
        ),
        (
            "inbox p50 after sends ÷ inbox p50 before",
            _div(later.percentile(50), inbox.percentile(50)),
        ),
    ]


def _div(a: float, b: float) -> float:
    return a / b if b else 0.0


def _per_request(cpu_seconds: float | None, sample: Sample) -> str:
    if cpu_seconds is None or not sample.done:
        return "-"
    return f"{cpu_seconds / sample.done * 1000:.2f}"


def _elsewhere(sample: Sample) -> str:
    """CPU that other programs used during the phase, in % of one core."""
    others = sample.cpu.others
    if others is None or sample.cpu.wall <= 0:
        return "-"
    return f"{others / sample.cpu.wall * 100:.0f}%"


def table(result: Result) -> str:
    s, sizes = result.seeded, result.opts
    lines = [
        "",
        f"Herald inbox benchmark, {result.started:%Y-%m-%d %H:%M} UTC",
        f"machine  {result.machine.line()}",
        f"data     {s.table_rows:,} notification rows ({s.table_mb:,.0f} MB with indexes); "
        f"user {BIG_USER} has {sizes.user_rows:,} ({s.listed:,} listed, {s.unseen:,} unread); "
        f"{sizes.users + 1:,} users; seeded in {s.seconds:.0f} s",
        f"load     {sizes.load()}",
        "",
        f"{'phase':<34}{'done':>7}{'rate/s':>10}{'p50 ms':>9}{'p99 ms':>9}"
        f"   {'CPU ms per request: client':>26}{'server':>8}{'postgres':>10}"
        f"{'other programs':>16}",
    ]
    for name, _ in ROWS:
        x = result.sample(name)
        lines.append(
            f"{name:<34}{x.done:>7}{x.rate:>10.1f}{x.percentile(50):>9.2f}{x.percentile(99):>9.2f}"
            f"   {_per_request(x.cpu.client, x):>26}{_per_request(x.cpu.server, x):>8}"
            f"{_per_request(x.cpu.postgres, x):>10}{_elsewhere(x):>16}"
            + ("  (cut short)" if x.cut_short else "")
        )
    lines += [""]
    lines += [f"SQL floor of {k}: {', '.join(v)}" for k, v in result.floors.items()]
    lines += ["", "ratios (same run, same machine)"]
    lines += [f"  {label:<44}{value:>8.3f}" for label, value in ratios(result)]
    lines += ["", "plans (EXPLAIN ANALYZE, big user)"]
    for p in result.plans:
        lines.append(
            f"  {p.query:<12}{p.mode:<26}{p.ms:>8.2f} ms  heap fetches {p.heap_fetches:<6} {p.path}"
        )
    send, inbox = result.sample("POST /v3/notifications"), result.sample("GET /v3/notifications")
    later = result.sample("GET /v3/notifications after sends")
    alone = result.sample("GET /v3/notifications c=1")
    lines += [
        "",
        f"sends/s {send.rate:.1f}; inbox p50 {inbox.percentile(50):.2f} ms, "
        f"p99 {inbox.percentile(99):.2f} ms at concurrency {sizes.concurrency} "
        f"(one at a time: p50 {alone.percentile(50):.2f} ms, p99 {alone.percentile(99):.2f} ms; "
        f"after the sends: p50 {later.percentile(50):.2f} ms, p99 {later.percentile(99):.2f} ms)",
        "",
    ]
    if sizes.variant:
        lines.insert(5, f"variant  {sizes.variant}")
    return "\n".join(lines)


def markdown(result: Result) -> str:
    s, sizes, m = result.seeded, result.opts, result.machine
    out = [
        f"### {result.started:%Y-%m-%d %H:%M} UTC: {sizes.rows:,} rows, "
        f"{sizes.user_rows:,} for the measured user"
        + (f" (variant: {sizes.variant})" if sizes.variant else ""),
        "",
        f"- Machine: {m.line()}",
        f"- Command: `{result.command}`",
        f"- Data: {s.table_rows:,} notification rows ({s.table_mb:,.0f} MB with indexes), "
        f"{sizes.users + 1:,} users; user `{BIG_USER}` has {sizes.user_rows:,} rows "
        f"({s.listed:,} listed, {s.unseen:,} unread); seeded in {s.seconds:.0f} s",
        f"- Load: {sizes.load()}",
        *(
            [f"- Variant (bench-only, app/ and migrations/ untouched): `{sizes.variant}`"]
            if sizes.variant
            else []
        ),
        "",
        "| phase | what | done | rate/s | p50 ms | p99 ms "
        "| CPU ms/req: client | server | postgres | other programs (% of a core) |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for name, what in ROWS:
        x = result.sample(name)
        out.append(
            f"| `{name}` | {what} | {x.done:,} | {x.rate:,.1f} | {x.percentile(50):.2f} | "
            f"{x.percentile(99):.2f} | {_per_request(x.cpu.client, x)} | "
            f"{_per_request(x.cpu.server, x)} | {_per_request(x.cpu.postgres, x)} | "
            f"{_elsewhere(x)} |"
        )
    out += [""]
    out += [
        f"- SQL floor of `{k}`: the {len(v)} statements it issued ({', '.join(v)}), "
        "replayed with asyncpg in one transaction."
        for k, v in result.floors.items()
    ]
    out += ["", "| ratio | value |", "|---|--:|"]
    out += [f"| {label} | {value:.3f} |" for label, value in ratios(result)]
    out += [
        "",
        "| query (user u0) | plan | ms | heap fetches | shared hit/read | path |",
        "|---|---|--:|--:|--:|---|",
    ]
    for p in result.plans:
        out.append(
            f"| {p.query} | {p.mode} | {p.ms:.2f} | {p.heap_fetches} | "
            f"{p.shared_hit}/{p.shared_read} | {p.path} |"
        )
    # The full text of the plans the server runs (auto); the forced ones are in the table.
    out += [
        "",
        "<details><summary>EXPLAIN (ANALYZE, BUFFERS) of the plans the server runs</summary>",
        "",
    ]
    for p in result.plans:
        if p.mode.startswith("auto"):
            out += [f"{p.query}, {p.mode}:", "", "```", p.text, "```", ""]
    out += ["</details>", ""]
    return "\n".join(out)


def update(path: Path, result: Result) -> None:
    """Put this run's section first under the runs marker, replacing one with the same key."""
    s = result.opts
    tag = "shipped" if not s.variant else hashlib.sha1(s.variant.encode()).hexdigest()[:8]
    key = f"<!-- bench:inbox {result.started:%Y-%m-%d} {s.rows}x{s.user_rows} {tag} -->"
    end = "<!-- /bench:inbox -->"
    section = f"{key}\n{markdown(result)}{end}\n"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    text = re.sub(re.escape(key) + r".*?" + re.escape(end) + r"\n?", "", text, flags=re.S)
    if RUNS_MARKER not in text:
        text = text.rstrip("\n") + f"\n\n## Inbox runs\n\n{RUNS_MARKER}\n"
    head, tail = text.split(RUNS_MARKER, 1)
    path.write_text(f"{head}{RUNS_MARKER}\n\n{section}{tail.lstrip(chr(10))}")
