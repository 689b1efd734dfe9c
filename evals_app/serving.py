"""Where an evaluation's answers come from: the user's running vLLM server of a model, or one of its own.

A server already deployed and ready is used as it is (nothing to start); an adapter not deployed on it
is loaded under a private name for the evaluation and unloaded afterwards. Without such a server the
job starts vLLM for itself on this worker, as a serving job would, and stops it when done, so
evaluating never needs a Deploy first and never leaves a model running: the generator's `finally`
stops it on success, failure and cancel; a worker's SIGTERM and the next worker after a hard kill
stop it through its record (lathe_common/started_processes.py, jobs/worker_lifecycle.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from evals_app.models import Evaluation
from jobs.gpu_leases import cards_held_by
from jobs.registry import JobCancelled, JobFailure
from jobs.reporter import JobReporter
from lathe_common.started_processes import machine_records, process_group_stop
from models_app.ml.vllm_server import (
    VllmClient,
    VllmError,
    log_tail,
    lora_rank_ceiling,
    vllm_start,
    wait_until_ready,
)
from models_app.models import Adapter, BaseModel, Endpoint, ModelServer, ServerState
from models_app.serving.runner import EXPECTED_START_SECONDS
from models_app.vllm_launch import vllm_launch
from models_app.weights import model_dir_for


@dataclass
class Contender:
    """One side of the comparison: a model as served, with an adapter on it or not."""

    label: str
    model: BaseModel
    adapter: Adapter | None

    @property
    def display_name(self) -> str:
        return self.adapter.name if self.adapter else self.model.display_name


@dataclass
class Target:
    contender: Contender
    base_url: str
    api_key: str
    model_name: str


def evaluation_log_path(evaluation_id: int) -> Path:
    return settings.DATA_DIR / "evaluations" / f"evaluation-{evaluation_id}-vllm.log"


def _ready_server(evaluation: Evaluation, model: BaseModel) -> ModelServer | None:
    # Not a merged copy's server: it answers for its one adapter, not for the base.
    server = ModelServer.objects.of_base_models().filter(
        owner_id=evaluation.owner_id, model=model, state=ServerState.READY
    )
    return server.order_by("-ready_at").first()


def _servable_by(server: ModelServer, contender: Contender) -> bool:
    """The base model always; an adapter when its rank fits the server's LoRA slots."""
    return contender.adapter is None or lora_rank_ceiling(contender.adapter.rank) <= server.max_lora_rank


def _on_running_server(
    evaluation: Evaluation, server: ModelServer, group: list[Contender], reporter: JobReporter
) -> Iterator[Target]:
    reporter.log(f"Using your running server of {server.model.display_name} (nothing to start).")
    client = VllmClient(server.base_url, server.secret)
    loaded: list[str] = []
    try:
        for contender in group:
            name = server.served_model_name
            if contender.adapter is not None:
                endpoint = Endpoint.objects.filter(
                    server=server, adapter=contender.adapter, state=ServerState.READY
                ).first()
                if endpoint is not None:
                    name = endpoint.served_name
                else:
                    name = f"eval-{evaluation.pk}-adapter-{contender.adapter.pk}"
                    client.adapter_load(name, Path(contender.adapter.path))
                    loaded.append(name)
            yield Target(contender, server.base_url, server.secret, name)
    except VllmError as exc:
        raise JobFailure("adapter_load_failed", str(exc), "Check the adapter's files.") from exc
    finally:
        for name in loaded:
            try:
                client.adapter_unload(name)
            except (VllmError, OSError):
                reporter.log(f"Could not unload {name} from the server.", "warning")
        client.close()


def _on_own_server(
    evaluation: Evaluation, model: BaseModel, group: list[Contender], reporter: JobReporter
) -> Iterator[Target]:
    ranks = [lora_rank_ceiling(contender.adapter.rank) for contender in group if contender.adapter]
    launch = vllm_launch(
        model_dir=model_dir_for(model, reporter),
        served_name=model.hf_id,
        lora_rank=max(ranks, default=0),
        tensor_parallel_size=len(cards_held_by(evaluation.job)) or 1 if evaluation.job else 1,
    )
    log_path = evaluation_log_path(evaluation.pk)
    reporter.stage(f"Starting vLLM for {model.display_name} (no running server of it to use)")
    process = vllm_start(launch, log_path)
    # Its own session outlives this process: written down so the next worker stops it if we die hard.
    records = machine_records(settings.DATA_DIR)
    records.record(process.pid, label=f"vLLM of evaluation {evaluation.pk}")
    base_url = f"http://{settings.LATHE_VLLM_ADVERTISE_HOST}:{launch.port}"
    client = VllmClient(base_url, launch.api_key)
    try:
        waited = [0]

        def should_stop() -> bool:
            waited[0] += 1
            reporter.progress(min(waited[0], int(EXPECTED_START_SECONDS)), int(EXPECTED_START_SECONDS))
            return reporter.cancelled()

        ready = wait_until_ready(
            client,
            launch.served_name,
            alive=lambda: process.poll() is None,
            timeout=settings.LATHE_VLLM_START_TIMEOUT,
            should_stop=should_stop,
            poll=1.0,
        )
        if not ready:
            if reporter.cancelled():
                raise JobCancelled()
            raise JobFailure(
                "server_failed",
                f"vLLM could not start {model.display_name} for the evaluation.",
                "Read the end of its log below; out of memory is the usual cause.",
                details={"log_tail": log_tail(log_path)[-2000:]},
            )
        reporter.log(f"vLLM is ready with {model.display_name}.")
        for contender in group:
            name = launch.served_name
            if contender.adapter is not None:
                name = f"eval-{evaluation.pk}-adapter-{contender.adapter.pk}"
                try:
                    client.adapter_load(name, Path(contender.adapter.path))
                except VllmError as exc:
                    raise JobFailure("adapter_load_failed", str(exc), "Check the adapter's files.") from exc
            yield Target(contender, base_url, launch.api_key, name)
    finally:
        client.close()
        process_group_stop(process.pid)
        records.forget(process.pid)
        reporter.log(f"Stopped the evaluation's vLLM server of {model.display_name}.")


def served_contenders(
    evaluation: Evaluation, contenders: list[Contender], reporter: JobReporter
) -> Iterator[Target]:
    """Each contender with where to ask it; one model's server at a time, released before the next."""
    groups: dict[int, list[Contender]] = {}
    for contender in contenders:
        groups.setdefault(contender.model.pk, []).append(contender)
    for group in groups.values():
        model = group[0].model
        server = _ready_server(evaluation, model)
        on_running = [contender for contender in group if server and _servable_by(server, contender)]
        if server is not None and on_running:
            yield from _on_running_server(evaluation, server, on_running, reporter)
        # Only what the running server can't hold (an adapter of a larger rank) needs a server of its own.
        rest = [contender for contender in group if contender not in on_running]
        if rest:
            yield from _on_own_server(evaluation, model, rest, reporter)


def evaluation_cards(job) -> int:
    """JobSpec.cards of an evaluation: what a vLLM of the evaluated model takes on this machine (the
    generation phase starts one where no deployed server can be used; the judge phase runs on the data
    queue and takes none)."""
    from models_app.serving_cards import cards_here_for

    evaluation = Evaluation.objects.filter(job=job).select_related("model", "adapter__base_model").first()
    if evaluation is None:
        return 1
    return cards_here_for(evaluation.adapter.base_model if evaluation.adapter else evaluation.model)
