"""Run `herald migrate` twice at once on each database named on the command line.

`python -m tests.faults.migrate_pairs LOGDIR URL...`: imports Herald once, then for each URL
forks two processes that enter `herald migrate` (app.cli.main) at the same moment; their
output goes to LOGDIR/<n>-<a|b>.log. Prints one line per URL: the two exit codes. Forking
from an imported interpreter keeps a trial to the migration itself: on a busy machine
starting Python and importing Herald takes seconds, which would dwarf it."""

import os
import sys
import traceback
from pathlib import Path

from app import cli
from app.config import get_settings


def _child(url: str, log: Path) -> int:
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.environ["HERALD_DATABASE_URL"] = url
    os.environ["HERALD_LOG_LEVEL"] = "info"
    get_settings.cache_clear()
    try:
        cli.main(["migrate"])
    except SystemExit as exc:
        if exc.code not in (0, None):
            print(exc.code, file=sys.stderr)
            return 1
    except BaseException as exc:
        traceback.print_exception(exc)
        return 1
    return 0


def main(logdir: Path, urls: list[str]) -> None:
    for n, url in enumerate(urls):
        pids = []
        for side in "ab":
            pid = os.fork()
            if pid == 0:
                code = _child(url, logdir / f"{n}-{side}.log")
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
            pids.append(pid)
        codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in pids]
        print(*codes, flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2:])
