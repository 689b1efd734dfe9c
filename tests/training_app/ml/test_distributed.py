"""The product's training path on two processes (torchrun, gloo on the CPU): the same loss curve as one
process with the same global batch, one adapter saved by rank 0, and a killed rank ends every rank."""

from __future__ import annotations

import os
import signal
import threading
import time

import psutil
import pytest

from tests.training_app.ml.conftest import TINY_RECIPE, recorder
from training_app.ml.distributed import per_process_batch, run_distributed
from training_app.ml.errors import TrainingError, TrainingNotRunnable

# Four micro-batches of one conversation per step: two per process on two processes.
RECIPE = TINY_RECIPE.replace(grad_accum=4, max_steps=3, eval_steps=100, save_steps=100, logging_steps=1)
# Float sums in another order (each process sums its half, then gloo averages): far below a step's change.
LOSS_TOLERANCE = 2e-3


def _losses(events: list[dict]) -> dict[int, float]:
    return {event["step"]: event["loss"] for event in events if event["type"] == "metrics" and event["loss"]}


def test_two_processes_follow_the_one_process_loss_curve(tiny_model_dir, canonical_files, tmp_path):
    from training_app.ml.train import train

    train_path, validation_path = canonical_files
    alone: list[dict] = []
    train(
        base_model_dir=tiny_model_dir,
        train_path=train_path,
        validation_path=None,
        output_dir=tmp_path / "one",
        recipe=RECIPE,
        on_event=recorder(alone),
    )
    shared: list[dict] = []
    result = run_distributed(
        processes=2,
        base_model_dir=tiny_model_dir,
        train_path=train_path,
        validation_path=None,
        output_dir=tmp_path / "two",
        recipe=RECIPE,
        on_event=recorder(shared),
        env={"OMP_NUM_THREADS": "1"},
    )
    one, two = _losses(alone), _losses(shared)
    assert sorted(one) == sorted(two) == [1, 2, 3]
    assert max(abs(one[step] - two[step]) for step in one) < LOSS_TOLERANCE, (one, two)
    assert result["final_step"] == 3 and not result["stopped"]
    adapter = tmp_path / "two" / "adapter"
    assert (adapter / "adapter_config.json").is_file() and (adapter / "adapter_model.safetensors").is_file()
    assert result["adapter_dir"] == str(adapter)


def test_a_batch_the_processes_cannot_share_is_refused_before_anything_starts():
    assert per_process_batch(RECIPE, 2) == (1, 2)
    assert per_process_batch(RECIPE.replace(grad_accum=1, batch_size=4), 2) == (2, 1)
    with pytest.raises(TrainingNotRunnable, match="multiple of 2"):
        per_process_batch(RECIPE.replace(grad_accum=3, batch_size=1), 2)


def _children_with_commands() -> list[tuple[psutil.Process, str]]:
    """This test process's descendants with their command lines; one that has just ended (a zombie not
    yet reaped, or gone) has none to read and is left out."""
    found = []
    for process in psutil.Process(os.getpid()).children(recursive=True):
        try:
            found.append((process, " ".join(process.cmdline())))
        except (psutil.ZombieProcess, psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def test_a_killed_rank_ends_every_rank_and_the_run_says_so(tiny_model_dir, canonical_files, tmp_path):
    train_path, _ = canonical_files
    events: list[dict] = []
    outcome: dict = {}
    launched = threading.Event()

    def on_event(event: dict) -> None:
        events.append(event)
        if event["type"] == "progress":
            launched.set()

    def run() -> None:
        try:
            run_distributed(
                processes=2,
                base_model_dir=tiny_model_dir,
                train_path=train_path,
                validation_path=None,
                output_dir=tmp_path,
                recipe=RECIPE.replace(max_steps=10_000),
                on_event=on_event,
                env={"OMP_NUM_THREADS": "1"},
            )
        except TrainingError as error:
            outcome["error"] = error

    # A daemon, and the launcher killed if the test fails on the way: a 10,000-step run must never
    # outlive it and hold the session open.
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        assert launched.wait(180), "the run never started training"
        ranks = [
            process
            for process, command in _children_with_commands()
            if "distributed_entry" in command and "torch.distributed.run" not in command
        ]
        assert len(ranks) == 2
        ranks[1].send_signal(signal.SIGKILL)
        thread.join(120)
    finally:
        if thread.is_alive():
            for process, command in _children_with_commands():
                if "distributed" in command:
                    process.kill()
            thread.join(30)
    assert not thread.is_alive()
    assert "ended unexpectedly" in outcome["error"].message
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(
        rank.is_running() and rank.status() != "zombie" for rank in ranks
    ):
        time.sleep(0.2)
    assert not any(rank.is_running() and rank.status() != "zombie" for rank in ranks)


def test_the_ranks_get_the_allowlisted_environment_not_the_workers_secrets(monkeypatch):
    from training_app.ml.distributed import rank_env

    monkeypatch.setenv("SECRET_KEY", "site-secret")
    monkeypatch.setenv("DATABASE_URL", "postgres://lathe:pw@db/lathe")
    monkeypatch.setenv("HF_HOME", "/data/hf")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    env = rank_env(sharded=True, extra={"OMP_NUM_THREADS": "1"})
    assert "SECRET_KEY" not in env and "DATABASE_URL" not in env
    assert (env["HF_HOME"], env["CUDA_VISIBLE_DEVICES"], env["OMP_NUM_THREADS"]) == ("/data/hf", "2,3", "1")
    assert env["LATHE_SHARDED"] == "1"
