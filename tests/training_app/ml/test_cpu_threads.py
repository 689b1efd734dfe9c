"""Training threads follow the cores other work leaves free."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from training_app.ml.cpu_threads import FreeCoreThreads, threads_for, usable_cores


@pytest.mark.parametrize(
    ("cores", "others", "threads"),
    [(2, 0.0, 2), (2, 0.3, 2), (2, 0.7, 1), (2, 1.0, 1), (2, 2.0, 1), (8, 2.9, 5), (1, 1.0, 1)],
)
def test_it_trains_on_the_cores_others_leave(cores, others, threads):
    assert threads_for(cores, others) == threads


@pytest.mark.skipif(usable_cores() < 2, reason="needs two cores to give one away")
def test_it_gives_a_core_to_a_process_that_keeps_it_busy():
    import torch

    before = torch.get_num_threads()
    changes = []
    governor = FreeCoreThreads(on_change=lambda threads, cores: changes.append(threads), check_every=0.5)
    governor.on_train_begin(None, None, None)
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(1.5)
        governor.on_step_end(None, None, None)
        assert governor.threads <= governor.cores - 1
    finally:
        busy.kill()
        busy.wait()
        governor.on_train_end(None, None, None)
    assert torch.get_num_threads() == before
