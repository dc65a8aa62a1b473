"""CPU affinity for the serving processes (HERALD_PIN_CPUS): each on a CPU of its own, and
the processes they start (the queue worker) back on every CPU the server may use.

Why pin: on the 2-core bench machine at 2 processes, the kernel now and then queued both
serving processes on one core while the other sat idle for up to 11 ms (a scheduler trace
under wrk); pinned, that cannot happen, and 2 processes went from 1.21 and 1.20 times the
sends/s of one to 1.37 and 1.27 in two runs of bench/procs.py (2026-12-04). Why not by
default: a pinned process cannot move off a core that other work (PostgreSQL on the same
machine, a noisy neighbour) has taken."""

import contextlib
import os
from collections.abc import Iterable

_unpinned: frozenset[int] | None = None


def pin(slot: int) -> int | None:
    """Run the calling thread, and the threads and processes it starts from now on, on one
    of the CPUs it may use: the `slot`-th, wrapping around. Return that CPU; None where it
    could not be pinned (no affinity on this platform)."""
    global _unpinned
    if not hasattr(os, "sched_setaffinity"):
        return None
    # Once pinned, the CPUs to choose from are still those from before the first pin.
    allowed = sorted(_unpinned if _unpinned is not None else os.sched_getaffinity(0))
    cpu = allowed[slot % len(allowed)]
    try:
        os.sched_setaffinity(0, {cpu})
    except OSError:  # the CPU left this process's cpuset meanwhile
        return None
    if _unpinned is None:
        _unpinned = frozenset(allowed)
    return cpu


def unpinned() -> frozenset[int] | None:
    """The CPUs this process could use before `pin`, for a process it starts to return to;
    None when it was never pinned."""
    return _unpinned


def restore(cpus: Iterable[int] | None) -> None:
    """Undo an inherited pin: run this process on `cpus` (from the parent's `unpinned`).
    Where that fails (none of them is this process's any more), it keeps the pin."""
    if cpus is None or not hasattr(os, "sched_setaffinity"):
        return
    with contextlib.suppress(OSError):
        os.sched_setaffinity(0, set(cpus))
