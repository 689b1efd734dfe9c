"""Run one benchmark step in a process of its own and measure it; shared by the bench scripts.

The parent starts ``python <script> --worker ...``, polls the child's RSS (and its descendants') with
psutil, and kills it on timeout or when the machine runs low on memory (other work may share it). The
child does the work and ends with :func:`child_report`, one ``RESULT {json}`` line on stdout that adds
its own VmHWM (the kernel's high-water mark of its RSS) and CPU seconds, so a short spike
between two polls is not missed.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
MB = 1024 * 1024  # MiB: every "MB" the benchmarks print is 2**20 bytes
LOW_MEMORY_BYTES = 1536 * MB


@dataclass
class Measured:
    ok: bool
    result: dict = field(default_factory=dict)  # what the child reported
    error: str = ""
    peak_polled_mb: float = 0.0
    process_wall_s: float = 0.0  # interpreter start and imports included
    load_before: float = 0.0
    load_after: float = 0.0

    @property
    def peak_rss_mb(self) -> float:
        return max(self.peak_polled_mb, self.result.get("hwm_mb", 0.0))

    def as_dict(self) -> dict:
        """Flat, for a JSON line: the child's fields plus the parent's measurements."""
        return {
            **self.result,
            "ok": self.ok,
            "error": self.error,
            "peak_rss_mb": self.peak_rss_mb,
            "peak_polled_mb": self.peak_polled_mb,
            "process_wall_s": self.process_wall_s,
            "load": [self.load_before, self.load_after],
        }


def run_child(
    script: str | Path, args: list[str], *, timeout_s: float, poll_s: float = 0.05, env: dict | None = None
) -> Measured:
    command = [sys.executable, str(script), *args]
    measured = Measured(ok=False, load_before=os.getloadavg()[0])
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    poller = RssPoller(child.pid, poll_s, kill_on_low_memory=True)
    poller.start()
    try:
        stdout, stderr = child.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        child.kill()
        stdout, stderr = child.communicate()
        measured.error = f"timed out after {timeout_s:.0f} s"
    poller.stop()
    measured.process_wall_s = time.perf_counter() - started
    measured.peak_polled_mb = poller.peak_bytes / MB
    measured.load_after = os.getloadavg()[0]
    for line in stdout.decode(errors="replace").splitlines():
        if line.startswith("RESULT "):
            measured.result = json.loads(line[len("RESULT ") :])
    if poller.low_memory:
        measured.error = "killed: the machine ran low on memory"
    elif not measured.error and child.returncode != 0:
        tail = stderr.decode(errors="replace").strip().splitlines()
        measured.error = f"exit {child.returncode}: {tail[-1] if tail else 'no message'}"
    measured.ok = not measured.error and bool(measured.result) and "error" not in measured.result
    if not measured.error and "error" in measured.result:
        measured.error = measured.result["error"]
    return measured


class RssPoller(threading.Thread):
    """Largest RSS of a process plus its descendants, sampled every ``poll_s`` seconds."""

    def __init__(self, pid: int, poll_s: float, *, kill_on_low_memory: bool = False) -> None:
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.poll_s = poll_s
        self.kill_on_low_memory = kill_on_low_memory
        self.peak_bytes = 0
        self.low_memory = False
        self._stop_event = threading.Event()

    def sample(self) -> int:
        total = 0
        try:
            for process in (self.process, *self.process.children(recursive=True)):
                total += process.memory_info().rss
        except psutil.Error:
            pass  # it or a child just exited
        return total

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.peak_bytes = max(self.peak_bytes, self.sample())
            if self.kill_on_low_memory and psutil.virtual_memory().available < LOW_MEMORY_BYTES:
                self.low_memory = True
                self.process.kill()
                return
            self._stop_event.wait(self.poll_s)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


class Stopwatch:
    """``with Stopwatch() as watch:``, then ``watch.wall_s`` and ``watch.cpu_s`` (all threads)."""

    def __enter__(self) -> Stopwatch:
        self.wall_s, self.cpu_s = -time.perf_counter(), -_cpu_seconds()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.wall_s += time.perf_counter()
        self.cpu_s += _cpu_seconds()


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child_report(**fields: object) -> None:
    """The child's last word: its results plus its own peak RSS.

    The peak is VmHWM from /proc, not ``ru_maxrss``: Linux carries ``ru_maxrss`` over ``execve``, so a
    child started from a large parent would report the parent's size.
    """
    status = Path("/proc/self/status").read_text()
    hwm_kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
    fields["hwm_mb"] = hwm_kb / 1024
    print("RESULT " + json.dumps(fields), flush=True)


def run_work(work: Callable[[dict], None]) -> None:
    """In the child: time ``work(found)``, which fills ``found`` (rows...), and report.

    An exception is a result too (say, a library refusing a bad line): it is reported, not raised.
    Call this after the imports, so that they are neither timed nor counted in "RSS after imports".
    """
    found: dict = {"base_rss_mb": rss_mb()}
    watch = Stopwatch()
    try:
        with watch:
            work(found)
    except Exception as error:  # noqa: BLE001 - the failure is the result
        text = str(error).strip().splitlines()
        found["error"] = f"{type(error).__name__}: {text[0][:160] if text else ''}".replace("|", "/")
    child_report(wall_s=watch.wall_s, cpu_s=watch.cpu_s, **found)


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / MB


def machine() -> str:
    """One line about the machine, for the top of a results table."""
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown CPU",
    )
    memory = psutil.virtual_memory()
    return (
        f"{os.cpu_count()} cores ({model}), {memory.total / 1024**3:.1f} GiB RAM "
        f"({memory.available / 1024**3:.1f} available), Python {sys.version.split()[0]}, "
        f"load average {os.getloadavg()[0]:.2f}"
    )


def table(headers: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def git_state(paths: list[str]) -> dict:
    """The commit measured, and which of `paths` (the code under test) had uncommitted changes."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", *paths], cwd=REPO, capture_output=True, text=True
    )
    return {
        "commit": head.stdout.strip(),
        "dirty_paths": dirty.stdout.split("\n")[:20] if dirty.stdout else [],
    }


def versions(names: list[str]) -> dict:
    from importlib.metadata import version

    return {name: version(name) for name in names}


def result_append(path: Path, **fields: object) -> None:
    """One JSON line of a benchmark's results, with when, on what machine and at which commit."""
    import json
    import time

    record = {"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": machine(), **git_state([])}
    record.pop("dirty_paths")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        handle.write(json.dumps({**record, **fields}) + "\n")
