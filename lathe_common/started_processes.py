"""Process groups Lathe starts in a session of their own (an evaluation's vLLM), written down on disk.

A process started with `start_new_session=True` survives the death of whoever started it: a pool child
killed with SIGKILL, a worker lost with its machine. So each such group gets a small record (its pid and
start time, and those of the process that owns it) in a folder per machine, and whoever finds a record
whose owner is gone stops the group: the next worker at start, a worker every few seconds, `manage.py
dev` on its way out. The start times make a record safe against pid reuse after a reboot.
Nothing here imports Django.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import threading
import time
from collections.abc import Iterable
from pathlib import Path

import psutil


def _started_at(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return None


def _same_process(pid: int, started_at: float | None) -> bool:
    """The process `pid` is still the one recorded (not a new one that reuses the number)."""
    now = _started_at(pid)
    return now is not None and started_at is not None and abs(now - started_at) < 1.0


def _gone(pid: int) -> bool:
    try:
        reaped, _ = os.waitpid(pid, os.WNOHANG)
        # Our child is gone once reaped (then it is no zombie either). Before that it may show as a
        # zombie while it still runs: a leader whose main thread returned while other threads work on
        # (vLLM's API server after SIGTERM does that).
        return reaped == pid
    except ChildProcessError:
        pass  # not our child, or reaped already: what the system says is all we know
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def process_group_stop(pid: int | None, *, grace_seconds: float = 15.0) -> None:
    """Stop a process group led by `pid`: SIGTERM, wait for its leader, then SIGKILL whatever is left."""
    if not pid:
        return
    try:
        os.killpg(pid, signal.SIGTERM)
    except PermissionError:
        return
    except ProcessLookupError:
        _gone(pid)  # stopped already (by a reaper, say): reap the leader if it is our zombie child
        return
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline:
        if _gone(pid):
            break
        time.sleep(0.2)
    # Its children too (vLLM's engine core, its GPU workers), even when the leader went first.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    # Then reap the leader if it is our child: else a leader killed after the grace period stays a
    # zombie, listed as running, until this process happens to start another one.
    deadline = time.monotonic() + 5.0
    while not _gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def process_groups_stop(pids: Iterable[int], *, grace_seconds: float = 15.0) -> None:
    """Stop several groups at once, so the wait is one grace period rather than one per group."""
    threads = [
        threading.Thread(target=process_group_stop, args=(pid,), kwargs={"grace_seconds": grace_seconds})
        for pid in set(pids)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


class StartedProcesses:
    """The records of one machine: `folder` is e.g. DATA_DIR/processes/<hostname>."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def record(self, pid: int, *, label: str, owner_pid: int | None = None) -> None:
        """Write down group `pid`, owned by `owner_pid` (this process unless told)."""
        owner_pid = owner_pid or os.getpid()
        self.folder.mkdir(parents=True, exist_ok=True)
        entry = {
            "pid": pid,
            "started_at": _started_at(pid),
            "owner_pid": owner_pid,
            "owner_started_at": _started_at(owner_pid),
            "label": label,
        }
        path = self.folder / f"{pid}.json"
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(entry))
        temporary.replace(path)

    def forget(self, pid: int) -> None:
        (self.folder / f"{pid}.json").unlink(missing_ok=True)

    def entries(self) -> list[dict]:
        found = []
        for path in sorted(self.folder.glob("*.json")):
            try:
                found.append(json.loads(path.read_text()))
            except (OSError, ValueError):
                path.unlink(missing_ok=True)  # half-written by a process killed mid-write
        return found

    def stop(self, *, owners: Iterable[int] | None = None, grace_seconds: float = 15.0) -> list[int]:
        """Stop the recorded groups whose owner is gone, or (given `owners`) is one of those pids.

        Returns the pids of the groups stopped; every record handled is removed.
        """
        wanted = set(owners) if owners is not None else None
        doomed = []
        for entry in self.entries():
            owner_alive = _same_process(entry["owner_pid"], entry.get("owner_started_at"))
            if wanted is None and owner_alive:
                continue
            if wanted is not None and entry["owner_pid"] not in wanted:
                continue
            if _same_process(entry["pid"], entry.get("started_at")):
                doomed.append(entry["pid"])
            else:
                self.forget(entry["pid"])
        process_groups_stop(doomed, grace_seconds=grace_seconds)
        for pid in doomed:
            self.forget(pid)
        return doomed


def machine_records(data_dir: Path) -> StartedProcesses:
    """This machine's records under a data folder (which several machines may share)."""
    return StartedProcesses(data_dir / "processes" / socket.gethostname())
