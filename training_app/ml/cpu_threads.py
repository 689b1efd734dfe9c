"""Training threads sized to the cores other work leaves free, on a CPU.

PyTorch's CPU kernels split each matmul across a fixed team of OpenMP threads and wait at a barrier
for the slowest one. When another process (a data job, a model server answering) takes one of two
cores, the thread on that core runs at a fraction of its speed and every other thread waits for it:
a step took 66-90 s instead of 3 s in the issue that asked for this. Every few seconds the callback
measures how much CPU the *other* processes used since the last look and sets torch's thread count
to the cores left (at least one), so training shares the machine instead of fighting it.
"""

from __future__ import annotations

import time
from typing import Any

from transformers import TrainerCallback

from lathe_common.cpu import usable_cores

CHECK_EVERY_SECONDS = 5.0
# Other processes must use at least this share of a core to count as taking it.
BUSY_CORE_SHARE = 0.6


def threads_for(cores: int, others_busy_cores: float) -> int:
    """Threads to train with when other processes keep ``others_busy_cores`` busy."""
    taken = int(others_busy_cores + (1 - BUSY_CORE_SHARE))  # 0.6 of a core or more takes it
    return max(1, min(cores, cores - taken))


class FreeCoreThreads(TrainerCallback):
    """Re-sizes torch's CPU thread pool between steps (a CPU run only)."""

    def __init__(self, on_change: Any = None, check_every: float = CHECK_EVERY_SECONDS) -> None:
        import psutil

        self.cores = usable_cores()
        self.check_every = check_every
        self.on_change = on_change
        self._process = psutil.Process()
        self._last = self._sample()
        self.threads: int | None = None
        self._original: int | None = None

    def _sample(self) -> tuple[float, float, float]:
        import psutil

        times = psutil.cpu_times()
        busy = sum(times) - times.idle - getattr(times, "iowait", 0.0)
        own = self._process.cpu_times()
        return time.monotonic(), busy, own.user + own.system + own.children_user + own.children_system

    def on_train_begin(self, args, state, control, **kwargs):
        import torch

        self._original = torch.get_num_threads()
        self._last = self._sample()

    def on_train_end(self, args, state, control, **kwargs):
        import torch

        if self._original is not None:  # the worker's next job starts with the whole pool
            torch.set_num_threads(self._original)

    def on_step_end(self, args, state, control, **kwargs):
        now = time.monotonic()
        if now - self._last[0] < self.check_every:
            return control
        sample = self._sample()
        wall = sample[0] - self._last[0]
        others = max(0.0, (sample[1] - self._last[1]) - (sample[2] - self._last[2])) / wall
        self._last = sample
        self.resize(threads_for(self.cores, others))
        return control

    def resize(self, threads: int) -> None:
        import torch

        if threads != self.threads:
            if self.threads is not None and self.on_change:
                self.on_change(threads, self.cores)
            self.threads = threads
            torch.set_num_threads(threads)
