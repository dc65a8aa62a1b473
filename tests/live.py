"""Start real Herald processes for tests that need a socket (SDKs, several processes)."""

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from bench.server import herald


@contextmanager
def running_server(
    database_url: str,
    *,
    admin_token: str,
    extra_env: dict[str, str] | None = None,
    args: Sequence[str] = (),
) -> Iterator[str]:
    """`herald serve [args]` on `database_url`; yields its base URL once it is ready."""
    with herald(database_url, admin_token=admin_token, extra_env=extra_env, args=args) as (
        base,
        _,
    ):
        yield base


running_process = herald  # the same, yielding the process too (for its pid)
