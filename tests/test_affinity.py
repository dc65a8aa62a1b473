"""app.kit.affinity: a serving process pinned to one CPU by its slot, and a process it
starts put back on every CPU. Each case runs in a process of its own: a pin is inherited."""

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    not hasattr(os, "sched_setaffinity"), reason="no CPU affinity on this platform"
)

PROBE = """
import json, os, subprocess, sys
from app.kit import affinity
slot = int(sys.argv[1])
before = affinity.unpinned()
cpu = affinity.pin(slot)
again = affinity.pin(slot + 1)  # a second pin keeps the first set to return to
child = subprocess.run(
    [sys.executable, "-c",
     "import json, os, sys; from app.kit import affinity; "
     "affinity.restore(json.loads(sys.argv[1])); "
     "print(json.dumps(sorted(os.sched_getaffinity(0))))",
     json.dumps(sorted(affinity.unpinned() or []))],
    capture_output=True, text=True, check=True,
)
print(json.dumps({
    "before": before, "cpu": cpu, "again": again, "now": sorted(os.sched_getaffinity(0)),
    "unpinned": sorted(affinity.unpinned() or []), "child": json.loads(child.stdout),
}))
"""


def _probe(slot: int) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(slot)], capture_output=True, text=True, check=True
    )
    result: dict[str, object] = json.loads(out.stdout)
    return result


@pytest.mark.parametrize("slot", [0, 1, 5])
def test_a_slot_takes_its_cpu_wrapping_and_a_child_gets_them_all_back(slot: int) -> None:
    allowed = sorted(os.sched_getaffinity(0))
    got = _probe(slot)
    assert got["before"] is None  # never pinned, nothing to return to
    assert got["cpu"] == allowed[slot % len(allowed)]
    assert got["again"] == allowed[(slot + 1) % len(allowed)]
    assert got["now"] == [allowed[(slot + 1) % len(allowed)]]
    assert got["unpinned"] == allowed
    assert got["child"] == allowed


def test_restore_of_nothing_leaves_the_affinity_alone() -> None:
    from app.kit import affinity

    before = os.sched_getaffinity(0)
    affinity.restore(None)
    assert os.sched_getaffinity(0) == before
