"""app.kit.cpu.Contention: the share of time this thread waited for a core, from
/proc/thread-self/schedstat; the signal the send group commit gathers on."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.kit.cpu import SCHEDSTAT, Contention


def _schedstat(path: Path, waited_ns: int) -> None:
    path.write_text(f"123456 {waited_ns} 42\n")


def test_busy_when_the_wait_grew_by_more_than_its_share_of_the_window(tmp_path: Path) -> None:
    stat = tmp_path / "schedstat"
    _schedstat(stat, 0)
    contention = Contention(share=0.05, window=0.0, path=stat)
    assert not contention.busy()  # the first reading has nothing to compare with
    time.sleep(0.02)
    _schedstat(stat, 10_000_000_000)  # 10 s of waiting within a few milliseconds
    assert contention.busy()
    time.sleep(0.02)
    assert not contention.busy()  # no further wait
    time.sleep(0.02)
    _schedstat(stat, 10_000_000_000 + 100)  # 100 ns in ~20 ms: well under 5 %
    assert not contention.busy()


def test_the_verdict_is_kept_for_a_window(tmp_path: Path) -> None:
    stat = tmp_path / "schedstat"
    _schedstat(stat, 0)
    contention = Contention(share=0.05, window=0.01, path=stat)
    contention.busy()
    time.sleep(0.02)
    _schedstat(stat, 10_000_000_000)
    assert contention.busy()
    _schedstat(stat, 10_000_000_000)
    assert contention.busy()  # within the window: not read again


@pytest.mark.parametrize("text", [None, "", "garbage", "1"])
def test_never_busy_without_a_readable_file(tmp_path: Path, text: str | None) -> None:
    stat = tmp_path / "schedstat"
    if text is not None:
        stat.write_text(text)
    contention = Contention(window=0.0, path=stat)
    assert [contention.busy() for _ in range(3)] == [False] * 3


@pytest.mark.skipif(not SCHEDSTAT.exists(), reason="no /proc/thread-self/schedstat (not Linux)")
def test_busy_on_a_machine_with_more_runnable_processes_than_cores() -> None:
    spinners = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"])
        for _ in range((os.cpu_count() or 1) + 1)
    ]
    try:
        contention = Contention(share=0.05, window=0.2)
        contention.busy()
        verdicts: list[bool] = []
        deadline = time.monotonic() + 10
        # This thread spins too, so it is always runnable: with one process more than
        # cores beside it, it waits for a core about half of the time.
        while time.monotonic() < deadline and not any(verdicts):
            started = time.monotonic()
            while time.monotonic() - started < 0.25:
                pass
            verdicts.append(contention.busy())
        assert any(verdicts), verdicts
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
