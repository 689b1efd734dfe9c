"""The serving job: start one vLLM server, keep it (and its adapters) as users asked, until undeployed.

The job stays running while the server runs, so a GPU worker serving a model
takes no training job; undeploying cancels the job and frees the card. vLLM runs
in its own process group: if the worker dies, the job is requeued and the next
run adopts the still-healthy server on this machine instead of starting another.
When the stack stops, the worker stops vLLM and puts the job back in the queue
(models_app/server_restarts.py): this run then ends without undeploying anything.
"""

from __future__ import annotations

import logging
import shlex
import shutil
import socket
import time
import traceback
from pathlib import Path

from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from jobs.gpu_leases import cards_held_by
from jobs.models import Job
from jobs.registry import JobCancelled, JobFailure
from jobs.reporter import JobReporter
from jobs.selectors import job_run_owned
from jobs.states import JobState
from lathe_common.started_processes import process_group_stop
from models_app.merging.runner import merge_into
from models_app.ml.vllm_server import (
    VllmClient,
    VllmError,
    VllmLaunch,
    default_dtype,
    log_tail,
    pid_alive,
    vllm_start,
    wait_until_ready,
)
from models_app.models import (
    LIVE_SERVER_STATES,
    DesiredState,
    Endpoint,
    ModelServer,
    ServerState,
    spare_served_name,
)
from models_app.server_restarts import server_is_vllm
from models_app.serving.folders import merged_copy_home, merged_copy_name, server_log_path
from models_app.serving.spare import SpareKeeper
from models_app.vllm_launch import vllm_launch
from models_app.weights import model_dir_for

logger = logging.getLogger(__name__)
POLL_SECONDS = 0.5
# What a start usually takes on 2 CPU cores (50-85 s for the demo model), for the progress bar's ETA.
EXPECTED_START_SECONDS = 90.0


class _LogPump:
    """Forwards new lines of the vLLM log to the job's event log.

    Every line while the server starts (the user watches the start-up); afterwards
    only warnings and errors, so a server running for weeks does not fill the database.
    """

    def __init__(self, reporter: JobReporter, path: Path) -> None:
        self.reporter = reporter
        self.path = path
        self.offset = path.stat().st_size if path.exists() else 0
        self.verbose = True

    def pump(self) -> None:
        try:
            with open(self.path, "rb") as log:
                log.seek(self.offset)
                chunk = log.read(256 * 1024)
        except FileNotFoundError:
            return
        end = chunk.rfind(b"\n")
        if end < 0:
            return
        self.offset += end + 1
        for raw in chunk[: end + 1].decode("utf-8", "replace").splitlines():
            line = raw.rstrip()
            if not line:
                continue
            level = "error" if ("ERROR" in line or "Traceback" in line) else "info"
            level = "warning" if "WARNING" in line else level
            if self.verbose or level != "info":
                self.reporter.log(line[:2000], level)


class _Supervisor:
    def __init__(self, job: Job, server: ModelServer, reporter: JobReporter) -> None:
        self.job = job
        self.server = server
        self.reporter = reporter
        self.log_path = server_log_path(server.pk)
        self.pump = _LogPump(reporter, self.log_path)
        self.process = None
        self.client: VllmClient | None = None
        self.loaded: set[str] = set()
        self.node = socket.gethostname()
        self.spare = SpareKeeper(server, reporter, self.node)

    # --- the process ---------------------------------------------------------
    def _launch(self) -> VllmLaunch:
        dtype = default_dtype()
        adapter = self.server.adapter
        if adapter is None:
            model_dir = model_dir_for(self.server.model, self.reporter)
            return vllm_launch(
                model_dir=model_dir,
                served_name=self.server.served_model_name,
                api_key=self.server.secret,
                lora_rank=self.server.max_lora_rank,
                dtype=dtype,
                tensor_parallel_size=len(cards_held_by(self.job)) or 1,
            )
        # A merged copy, in the dtype vLLM computes in here (float32 on most CPUs): the same numbers as
        # the adapter applied at run time, at the base's speed. Kept across restarts of vLLM.
        home, name = merged_copy_home(self.server.pk), merged_copy_name(adapter.base_model, dtype)
        merge_into(adapter, home / name, self.reporter, dtype=dtype)
        return vllm_launch(
            model_dir=Path(name),
            cwd=home,
            served_name=self.server.served_model_name,
            api_key=self.server.secret,
            dtype=dtype,
        )

    def _alive(self) -> bool:
        if not self.server.managed:
            return True  # not ours to watch: health decides
        return pid_alive(self.server.pid)

    def _start(self) -> None:
        launch = self._launch()
        self.reporter.stage(f"Starting vLLM for {self.server.model.display_name}")
        self.reporter.log("Command: " + shlex.join(launch.argv()))
        self.pump.verbose = True
        self.process = vllm_start(launch, self.log_path)
        self.loaded.clear()
        self.server.pid, self.server.port, self.server.node = self.process.pid, launch.port, self.node
        self.server.host = settings.LATHE_VLLM_ADVERTISE_HOST
        ModelServer.objects.filter(pk=self.server.pk).update(
            pid=self.server.pid, port=launch.port, node=self.node, host=self.server.host, ready_at=None
        )
        self._set_state(ServerState.STARTING)
        self._connect()

    def _connect(self) -> None:
        if self.client is not None:
            self.client.close()
        self.client = VllmClient(self.server.base_url, self.server.secret)

    def _adopt(self) -> bool:
        """After a worker restart: keep a healthy server this machine still runs."""
        if not self.server.managed:
            self._connect()
            self.reporter.log(f"Using the vLLM server at {self.server.base_url}, which runs outside Lathe.")
            self._set_state(ServerState.STARTING)
            return True
        if self.server.node != self.node or not self._alive() or not self.server.port:
            return False
        self._connect()
        if self.server.adapter_id is not None and self.client.ready(spare_served_name(self.server.pk)):
            return self._take_spare()
        if not self.client.ready(self.server.served_model_name):
            if server_is_vllm(self.server):  # after a reboot the number may belong to another process
                process_group_stop(self.server.pid)
            return False
        self.reporter.log(f"Found the vLLM server (process {self.server.pid}) still running; keeping it.")
        self.loaded = self.client.model_names() - {self.server.served_model_name}
        self._set_ready()
        return True

    def _take_spare(self) -> bool:
        """This server was a warm spare of the base, running and idle: give it this adapter's merged
        weights and model id in place (models_app/serving/spare.py). False, with vLLM stopped, if that fails:
        the server then starts the usual way."""
        started = time.monotonic()
        adapter = self.server.adapter
        self.reporter.stage(f"Giving {adapter.name} the warm spare of {adapter.base_model.display_name}")
        dtype = default_dtype()
        name = merged_copy_name(adapter.base_model, dtype)
        try:
            merge_into(adapter, merged_copy_home(self.server.pk) / name, self.reporter, dtype=dtype)
            self.client.swap_weights(Path(name), self.server.served_model_name)
        except (JobFailure, VllmError) as exc:
            self.reporter.log(
                f"The warm spare could not take the adapter ({exc}); starting a server.", "warning"
            )
            process_group_stop(self.server.pid)
            return False
        self.reporter.log(
            f"{adapter.name} took the warm spare (process {self.server.pid}): merged and served in "
            f"{time.monotonic() - started:.1f} s, without starting vLLM."
        )
        self._set_ready()
        return True

    def _wait_ready(self) -> bool:
        started = time.monotonic()

        def should_stop() -> bool:
            self.pump.pump()
            elapsed = time.monotonic() - started
            self.reporter.progress(
                int(min(elapsed, EXPECTED_START_SECONDS * 0.95)), int(EXPECTED_START_SECONDS)
            )
            return self.reporter.cancelled()

        return wait_until_ready(
            self.client,
            self.server.served_model_name,
            alive=self._alive,
            timeout=settings.LATHE_VLLM_START_TIMEOUT,
            should_stop=should_stop,
        )

    # --- states ---------------------------------------------------------------
    def _set_state(self, state: str, error: dict | None = None) -> None:
        self.server.state = state
        ModelServer.objects.filter(pk=self.server.pk).update(state=state, error=error)

    def _set_ready(self) -> None:
        now = timezone.now()
        self.server.state = ServerState.READY
        # Only while this run owns the job: a stop of the stack may have just taken it back.
        owned = ModelServer.objects.filter(
            pk=self.server.pk, job_id__in=job_run_owned(self.job.pk, self.reporter.attempt).values("pk")
        ).update(state=ServerState.READY, ready_at=now, error=None, interrupted_at=None)
        if not owned:
            return
        # A model's endpoint is ready with its server; an adapter's once loaded, unless merged in.
        served_with_server = Endpoint.objects.filter(server=self.server, state=ServerState.STARTING)
        if self.server.adapter_id is None:
            served_with_server = served_with_server.filter(adapter__isnull=True)
        served_with_server.update(state=ServerState.READY, ready_at=now)
        self.pump.pump()
        self.pump.verbose = False
        self.reporter.progress(1, 1, force=True)
        self.reporter.log(f"Ready: {self.server.model.display_name} answers at the /v1 gateway.")

    def _fail(self, code: str, message: str, hint: str) -> JobFailure:
        tail = log_tail(self.log_path)
        error = {"code": code, "message": message, "hint": hint}
        self._set_state(ServerState.FAILED, error)
        Endpoint.objects.filter(server=self.server, state__in=LIVE_SERVER_STATES).update(
            state=ServerState.FAILED, error=error
        )
        if self.server.managed:
            process_group_stop(self.server.pid)
        self.spare.stop_all()
        return JobFailure(code, message, hint, details={"log_tail": tail[-2000:]})

    def crashed(self) -> JobFailure:
        """Lathe's own code failed while supervising: log the trace, stop vLLM, fail the endpoints."""
        logger.exception("the supervisor of server %s failed", self.server.pk)
        message = "Lathe stopped watching this model server because of an internal error."
        try:
            handed_over = self._handed_over()
        except Exception:  # the database itself may be what failed
            handed_over = False
        if handed_over:
            return JobFailure("supervisor_failed", message, "Its next run watches it again.")
        if self.server.managed:
            process_group_stop(self.server.pid)  # before any write, which may fail as well
        self.reporter.log(traceback.format_exc()[-4000:], "error")
        return self._fail(
            "supervisor_failed",
            message + " It stopped the server rather than leave it unwatched.",
            "Deploy again. If it happens again, download the log and send it to your administrator.",
        )

    # --- adapters -------------------------------------------------------------
    def _sync_adapters(self) -> bool:
        """Load wanted adapters, unload stopped ones. False when vLLM must restart for a larger rank."""
        if self.server.adapter_id is not None:
            return True  # a merged copy: its adapter is in the weights
        rank = ModelServer.objects.values_list("max_lora_rank", flat=True).get(pk=self.server.pk)
        if rank != self.server.max_lora_rank and self.server.managed:
            self.reporter.log(f"An adapter needs LoRA rank {rank}; restarting vLLM to allow it.")
            self.server.max_lora_rank = rank
            return False
        endpoints = Endpoint.objects.filter(server=self.server, adapter__isnull=False).select_related(
            "adapter"
        )
        wanted = {
            e.served_name: e
            for e in endpoints
            if e.state in LIVE_SERVER_STATES and e.desired == DesiredState.DEPLOYED
        }
        for name, endpoint in wanted.items():
            if name in self.loaded and endpoint.state == ServerState.READY:
                continue
            started = time.monotonic()
            try:
                self.client.adapter_load(name, Path(endpoint.adapter.path))
            except (VllmError, OSError) as exc:
                if not self._alive():
                    return True  # it died meanwhile: the loop's crash branch restarts it
                error = {
                    "code": "adapter_load_failed",
                    "message": str(exc),
                    "hint": "Check the adapter files.",
                }
                Endpoint.objects.filter(pk=endpoint.pk).update(state=ServerState.FAILED, error=error)
                self.reporter.log(f"Could not load {name}: {exc}", "error")
                continue
            self.loaded.add(name)
            Endpoint.objects.filter(pk=endpoint.pk).update(state=ServerState.READY, ready_at=timezone.now())
            self.reporter.log(f"Loaded adapter {name} in {time.monotonic() - started:.1f} s.")
        for name in sorted(self.loaded - set(wanted)):
            try:
                self.client.adapter_unload(name)
            except (VllmError, OSError) as exc:
                self.reporter.log(f"Could not unload {name}: {exc}", "warning")
            self.loaded.discard(name)
            self.reporter.log(f"Unloaded adapter {name}.")
        return True

    # --- the loop -------------------------------------------------------------
    def run(self) -> dict:
        self.spare.stop_all("of an earlier run of this job was stopped")  # this run starts its own
        if not self._adopt():
            self._start()
        while True:
            close_old_connections()
            if self.reporter.cancelled():
                return self._leave()
            self.pump.pump()
            if not self._alive():
                self._restart_after_crash()
                continue
            if self.server.state == ServerState.STARTING:
                if not self._wait_ready():
                    if self.reporter.cancelled():
                        return self._leave()
                    if self._alive():  # timed out while running
                        raise self._fail(
                            "start_timeout",
                            "vLLM did not become ready in time.",
                            "Read the log below; a larger model may need LATHE_VLLM_START_TIMEOUT raised.",
                        )
                    continue  # it died while starting: the crash branch decides
                self._set_ready()
            if not self._sync_adapters():
                process_group_stop(self.server.pid)
                self._start()
                continue
            self.spare.tend()
            time.sleep(POLL_SECONDS)

    def _restart_after_crash(self) -> None:
        if self.reporter.cancelled():
            return  # stopped on purpose (undeployed, or the stack stops): the loop ends this run
        restarts = self.server.restarts + 1
        if restarts > settings.LATHE_VLLM_MAX_RESTARTS:
            raise self._fail(
                "server_crashed",
                f"vLLM stopped {restarts} times and was not restarted again.",
                "Read the end of its log below. Out of memory is the usual cause: deploy a smaller model or "
                "free the GPU, then deploy again.",
            )
        self.server.restarts = restarts
        ModelServer.objects.filter(pk=self.server.pk).update(restarts=restarts)
        Endpoint.objects.filter(server=self.server, state=ServerState.READY).update(
            state=ServerState.STARTING
        )
        self.pump.pump()
        self.reporter.log(
            f"vLLM stopped unexpectedly; restarting it ({restarts} of {settings.LATHE_VLLM_MAX_RESTARTS}).",
            "warning",
        )
        self._start()

    def _handed_over(self) -> bool:
        """Another run took the job over (a stop of the stack, a missed heartbeat): vLLM is its now."""
        if not self.reporter.cancelled():
            return False
        state = Job.objects.filter(pk=self.job.pk).values_list("state", flat=True).first()
        return state in (JobState.QUEUED, JobState.RUNNING)

    def _leave(self) -> dict:
        """This run lost the job: cancelled by the user (undeploy), or put back in the queue, when the
        stack stops or after a missed heartbeat; then whoever took it back owns vLLM and the states."""
        if not self._handed_over():
            return self._shutdown()
        self.spare.stop_all("stopped: the next run of this job starts another")
        self.reporter.log("This run of the job ends here; its next run takes the server over.")
        return {"handed_over": True}

    def _shutdown(self) -> dict:
        if not self.server.managed:
            for name in sorted(self.loaded):
                try:
                    self.client.adapter_unload(name)
                except (VllmError, OSError):
                    pass
            return {"stopped": True}
        process_group_stop(self.server.pid)
        self.spare.stop_all()
        if self.server.adapter_id is not None:
            shutil.rmtree(merged_copy_home(self.server.pk), ignore_errors=True)  # the disk it used, too
        ModelServer.objects.filter(pk=self.server.pk).update(
            state=ServerState.STOPPED, stopped_at=timezone.now(), pid=None
        )
        # Cancelling the serving job (from the jobs page too) is undeploying what it served.
        Endpoint.objects.filter(server=self.server, state__in=LIVE_SERVER_STATES).update(
            desired=DesiredState.UNDEPLOYED, state=ServerState.STOPPED, stopped_at=timezone.now()
        )
        self.reporter.log("Undeployed: the vLLM server stopped and its memory is free.")
        return {"stopped": True}


def run_serving(job: Job, reporter: JobReporter) -> dict:
    server = (
        ModelServer.objects.select_related("model", "adapter__base_model").filter(pk=job.subject_id).first()
    )
    if server is None or server.state not in LIVE_SERVER_STATES:
        reporter.log("Nothing to serve: the endpoint was undeployed before the server started.")
        return {"stopped": True}
    supervisor = _Supervisor(job, server, reporter)
    try:
        return supervisor.run()
    except (JobFailure, JobCancelled):
        raise
    except Exception:
        # The job ends failed: no vLLM may outlive its supervisor, or Undeploy could not stop it.
        raise supervisor.crashed() from None
    finally:
        if supervisor.client is not None:
            supervisor.client.close()
