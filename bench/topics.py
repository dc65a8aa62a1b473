"""Subscribe users to one topic in API-sized chunks and time each chunk.

    python -m bench.topics              # 10 chunks of 10,000 new users: a 100,000-user topic
    python -m bench.topics --quick      # 3 chunks of 1,000

A chunk's cost must not grow with the topic (issue 11, item 5): the first and the last
chunk should take about as long. Runs `herald serve` on a fresh database in the embedded
PostgreSQL of bench.all (or --database-url) and sends POST /v3/topics/{id}/users."""

import argparse
import asyncio
import time

import httpx

from app.runtime import create_app_record, migrate
from bench.all import DATA_DIR
from bench.seed import progress
from bench.server import (
    KEYRING,
    drop,
    given_server,
    herald,
    postgres_server,
    recreate,
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.topics", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--chunks", type=int)
    parser.add_argument("--chunk", type=int, help="users per call (10,000, the API's limit)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--database-url")
    parser.add_argument("--database-name", default="herald_bench_topics")
    args = parser.parse_args(argv)
    chunks = args.chunks or (3 if args.quick else 10)
    chunk = args.chunk or (1_000 if args.quick else 10_000)
    with postgres_server(given_server(args.database_url), DATA_DIR) as server_url:
        url = asyncio.run(recreate(server_url, args.database_name))
        migrate(url)
        made = create_app_record(url, KEYRING, "bench")
        with herald(url) as (base, _proc):
            times = asyncio.run(_subscribe(base, made.api_key, made.api_secret, chunks, chunk))
        asyncio.run(drop(server_url, args.database_name))
    listed = ", ".join(f"{t:.2f}" for t in times)
    print(f"chunks of {chunk:,} users into one topic, seconds each: {listed}")
    print(
        f"RESULT first {times[0]:.2f} s, last {times[-1]:.2f} s, "
        f"last/first {times[-1] / times[0]:.2f}, topic of {chunks * chunk:,} users"
    )


async def _subscribe(base: str, key: str, secret: str, chunks: int, chunk: int) -> list[float]:
    headers = {"X-ENGAGESPOT-API-KEY": key, "X-ENGAGESPOT-API-SECRET": secret}
    times: list[float] = []
    async with httpx.AsyncClient(base_url=base, timeout=300, headers=headers) as client:
        made = await client.post("/v3/topics", json={"name": "Everyone"})
        made.raise_for_status()
        topic = made.json()["id"]
        for k in range(chunks):
            users = [
                {"identifier": f"user-{k}-{i}", "channels": ["inApp"] if i % 2 else []}
                for i in range(chunk)
            ]
            started = time.perf_counter()
            response = await client.post(f"/v3/topics/{topic}/users", json={"users": users})
            seconds = time.perf_counter() - started
            response.raise_for_status()
            times.append(seconds)
            progress(f"topics: chunk {k + 1}/{chunks}: {seconds:.2f} s")
    return times


if __name__ == "__main__":
    main()
