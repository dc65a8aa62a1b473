"""Two processes upgrading one empty database at once, ten times over: both exit 0, the schema
is at head, every index exists and none is INVALID (issue 12: before the migration lock, 2 of
4 trials deadlocked and left an index built CONCURRENTLY INVALID while Alembic recorded it done)."""

import json
import subprocess
import sys
import time
from pathlib import Path

from alembic.script import ScriptDirectory

from app.runtime import alembic_config
from tests import db
from tests.shared_server import own_database

TRIALS = 10
WAITING = "another process is migrating this database"


def test_two_processes_upgrading_one_database_at_once_leave_every_index_valid(
    pg_server: str, tmp_path: Path
) -> None:
    head = ScriptDirectory.from_config(alembic_config(pg_server)).get_current_head()
    with own_database(pg_server, "upgrade") as url:
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "tests.faults.migrate_pairs", str(tmp_path), url, str(TRIALS)],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=db.ROOT,
            check=False,
        )
        took = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    trials = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(trials) == TRIALS, done.stdout
    expected = trials[0]["indexes"]
    waited = 0
    for n, trial in enumerate(trials):
        outputs = [(tmp_path / f"{n}-{side}.log").read_text() for side in "ab"]
        assert trial["codes"] == [0, 0], outputs
        assert "Traceback" not in "".join(outputs), outputs
        # One migrated; the other waited for it, then found nothing to do.
        assert sum("Running upgrade" in out for out in outputs) == 1, outputs
        waited += any(WAITING in out for out in outputs)
        assert trial["version"] == head
        invalid = [name for name, valid in trial["indexes"] if not valid]
        assert invalid == [], f"trial {n}: INVALID {invalid}"
        # Every trial builds the same indexes: none skipped, none doubled.
        assert trial["indexes"] == expected, f"trial {n}"
    # Built CONCURRENTLY (migration 0006), the kind an interrupted build leaves INVALID.
    assert ["ix_notifications_created_at", True] in expected
    # They did run at once: in (nearly) every trial one found the other holding the lock.
    assert waited >= TRIALS // 2
    print(
        f"\n{TRIALS} trials of 2 concurrent `herald migrate` on an empty database: all exited 0, "
        f"one waited for the other in {waited}; {len(expected)} indexes, all valid, each time"
        f" ({took:.1f} s in all)"
    )
