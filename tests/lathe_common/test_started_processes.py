"""Records of process groups started in sessions of their own: whoever finds an owner gone stops the group."""

import os
import subprocess
import sys
import time

import psutil

from lathe_common.started_processes import StartedProcesses, process_group_stop
from tests.helpers import wait_until

# A group like vLLM's: a leader in its own session and a child of its own (the engine).
GROUP = (
    "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']); "
    + ("time.sleep(600)")
)


def _group_pids(leader: int) -> list[int]:
    return [leader, *(child.pid for child in psutil.Process(leader).children(recursive=True))]


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _gone_soon(pids: list[int]) -> None:
    wait_until(lambda: not any(_alive(pid) for pid in pids), timeout=5, message=f"processes {pids} to end")


def _start_group() -> subprocess.Popen:
    leader = subprocess.Popen([sys.executable, "-c", GROUP], start_new_session=True)
    deadline = time.monotonic() + 10
    while not psutil.Process(leader.pid).children() and time.monotonic() < deadline:
        time.sleep(0.05)
    return leader


def test_it_stops_a_group_whose_owner_died_and_only_that_one(tmp_path):
    records = StartedProcesses(tmp_path)
    orphan, kept = _start_group(), _start_group()
    try:
        # The orphan's owner: a process that is gone, as a pool process killed with SIGKILL.
        owner = subprocess.Popen([sys.executable, "-c", "pass"])
        owner.wait()
        records.record(orphan.pid, label="an evaluation's vLLM", owner_pid=owner.pid)
        records.record(kept.pid, label="a live evaluation's vLLM")  # owned by this live test process
        orphan_pids, kept_pids = _group_pids(orphan.pid), _group_pids(kept.pid)
        assert len(orphan_pids) == 2

        assert records.stop(grace_seconds=5) == [orphan.pid]

        orphan.wait(timeout=5)
        # The engine child too, not only the leader: killed, it is gone within moments (a loaded machine
        # may take a moment to run its exit).
        _gone_soon(orphan_pids)
        assert all(_alive(pid) for pid in kept_pids)
        assert [entry["pid"] for entry in records.entries()] == [kept.pid]

        # A worker that stops stops the groups of its own processes.
        assert records.stop(owners=[os.getpid()], grace_seconds=5) == [kept.pid]
        kept.wait(timeout=5)
        _gone_soon(kept_pids)
        assert records.entries() == []
    finally:
        for process in (orphan, kept):
            process_group_stop(process.pid, grace_seconds=1)


def test_it_never_stops_a_process_that_took_a_recorded_number(tmp_path):
    records = StartedProcesses(tmp_path)
    stranger = _start_group()
    try:
        owner = subprocess.Popen([sys.executable, "-c", "pass"])
        owner.wait()
        records.record(stranger.pid, label="before a reboot", owner_pid=owner.pid)
        entry_path = tmp_path / f"{stranger.pid}.json"
        # The record says the group started long ago: after a reboot this number is someone else's.
        entry_path.write_text(entry_path.read_text().replace('"started_at": ', '"started_at": 1000.0, "x": '))

        assert records.stop(grace_seconds=1) == []
        assert _alive(stranger.pid)
        assert records.entries() == []  # the stale record is dropped
    finally:
        process_group_stop(stranger.pid, grace_seconds=1)


def test_a_leader_that_ignores_sigterm_is_killed_after_the_grace_period_and_reaped():
    """vLLM busy on a loaded CPU can outlast the grace period: it must not stay behind as a zombie,
    which every process list (and the endpoint page) would show as still running."""
    stubborn = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)",
        ],
        start_new_session=True,
    )
    time.sleep(0.5)  # its handler is installed
    process_group_stop(stubborn.pid, grace_seconds=0.5)
    assert not psutil.pid_exists(stubborn.pid)  # gone, not a zombie: reaped by its parent


def test_a_group_someone_else_stopped_first_is_still_reaped_by_its_parent():
    """The worker's reaper and the server's supervisor may both stop one server: the parent must still
    reap the leader when it finds the group already gone."""
    leader = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
    os.kill(leader.pid, 9)  # as another process's stop would
    time.sleep(0.3)  # now a zombie: our child, not yet reaped
    assert psutil.Process(leader.pid).status() == psutil.STATUS_ZOMBIE
    process_group_stop(leader.pid, grace_seconds=1)
    assert not psutil.pid_exists(leader.pid)


def test_a_leader_whose_main_thread_ended_is_not_taken_for_gone_while_its_threads_run():
    """After SIGTERM vLLM's API server can end its main thread while others work on: the system lists it
    as a zombie, but it runs (and holds its memory) until its last thread ends. It must be killed."""
    script = (
        "import signal, threading, time, _thread\n"
        "def linger():\n    time.sleep(600)\n"
        "threading.Thread(target=linger).start()\n"
        "signal.signal(signal.SIGTERM, lambda *a: _thread.interrupt_main())\n"
        "import ctypes\n"
        "try:\n    time.sleep(600)\n"
        "except KeyboardInterrupt:\n"
        "    ctypes.CDLL(None).pthread_exit(None)\n"  # the main thread ends; the other one goes on
    )
    leader = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    time.sleep(0.5)
    process_group_stop(leader.pid, grace_seconds=1)
    assert not psutil.pid_exists(leader.pid)
