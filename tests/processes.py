"""Helpers for tests that attack a sweep running in another process.

A test that waits for a milestone (a run recorded) and then acts races the process it
watches: on a busy machine the act may come after the sweep has finished, and the test
then proves nothing or fails. ``paused`` stops the process with SIGSTOP for the act, so
what the test sees at the milestone is what the process is doing while it is attacked.
A stopped process keeps its locks, files and pipes, and a signal sent to it meanwhile is
handled as soon as it continues.
"""

from __future__ import annotations

import signal
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator


def wait_until(condition: Callable[[], bool], process: subprocess.Popen, *, timeout: float, what: str) -> None:
    """Poll ``condition`` until it holds; fail, naming ``what``, if the process ends first
    or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            _, stderr = process.communicate()
            shown = stderr[-3000:] if stderr else "(stderr not captured)"
            raise AssertionError(f"the process ended (exit {process.returncode}) before {what}:\n{shown}")
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout:.0f} s"
        time.sleep(0.02)


def recorded_runs(out: Path) -> int:
    """Lines a sweep has written to ``runs.jsonl`` so far (a line being written counts)."""
    path = out / "runs.jsonl"
    return len(path.read_text().splitlines()) if path.exists() else 0


@contextmanager
def paused(process: subprocess.Popen) -> Iterator[None]:
    """Keep the process stopped inside the block; it continues afterwards unless the
    block killed it."""
    process.send_signal(signal.SIGSTOP)
    # The kernel stops the process at its next return to user space, not within kill().
    stat = Path(f"/proc/{process.pid}/stat")
    while stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] not in "TtZX":
        time.sleep(0.001)
    try:
        yield
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGCONT)
