"""Warm spares: a second adapter of a base served as a merged copy in seconds, not a minute.

A merged copy needs a vLLM of its own, and a vLLM takes 40-90 s to start on a CPU. So the supervisor
of a merged copy's server (models_app/serving/runner.py) keeps one more server of the same base beside it,
started the same way (the same folder name, so vLLM's compile cache serves it) but answering to no
name a user can call. Deploying another adapter of that base takes the spare (models_app/spares.py):
its new serving job merges the adapter (about a second for the demo model), the running vLLM reloads
those weights in place and answers to the adapter's model id (models_app/ml/vllm_guard.py), and this
supervisor starts the next spare.

A spare costs memory, not CPU (an idle vLLM sleeps) nor a job slot (this job supervises it), so one is
kept only while the machine keeps `LATHE_WARM_SPARE_HEADROOM_GIB` free beside it; one per person, base and
machine. It ends with its copy: undeploy, a failure, a stop of the stack.
"""

from __future__ import annotations

import os
import secrets
import shutil
import time
from pathlib import Path

import psutil
from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from jobs.reporter import JobReporter
from lathe_common.started_processes import process_group_stop
from models_app.ml.vllm_server import VllmClient, default_dtype, pid_alive, vllm_start
from models_app.models import LIVE_SERVER_STATES, ModelServer, ServerState
from models_app.serving.folders import merged_copy_home, merged_copy_name, server_log_path
from models_app.serving_form import GIB, merged_copy_bytes
from models_app.vllm_launch import vllm_launch
from models_app.weights import model_dir_for

TEND_EVERY_SECONDS = 2.0
# A spare that failed to start this many times is not started again by this run of the job.
MAX_FAILED_STARTS = 2


def spare_folder_fill(base_dir: Path, folder: Path) -> None:
    """The spare's model folder: links to the base model's files (no copy), under the copies' name."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(base_dir, folder, copy_function=os.symlink)


class SpareKeeper:
    """Run by a merged copy's supervisor: keeps one warm spare of the copy's base on this machine."""

    def __init__(self, sponsor: ModelServer, reporter: JobReporter, node: str) -> None:
        self.sponsor = sponsor
        self.reporter = reporter
        self.node = node
        self._processes: dict[int, object] = {}  # the spares this run started (their parent reaps them)
        self._failed_starts = 0
        self._next_tend = 0.0

    @property
    def wanted(self) -> bool:
        return self.sponsor.keeps_spare and self.sponsor.adapter_id is not None and self.sponsor.managed

    def _mine(self):
        return ModelServer.objects.filter(spare_of=self.sponsor, state__in=LIVE_SERVER_STATES)

    def _mine_running(self):
        """Its spares that may still run: live, or marked stopped (by the reaper, say) with a process."""
        return ModelServer.objects.filter(spare_of=self.sponsor).filter(
            Q(state__in=LIVE_SERVER_STATES) | Q(pid__isnull=False)
        )

    def tend(self) -> None:
        """Called from the supervisor's loop while its copy is ready: start, watch or replace the spare."""
        if not self.wanted or time.monotonic() < self._next_tend:
            return
        self._next_tend = time.monotonic() + TEND_EVERY_SECONDS
        for pk, process in list(self._processes.items()):
            if process.poll() is not None:  # reaps a spare this run started and an adapter took, once it ends
                del self._processes[pk]
        spare = self._mine().first()
        if spare is None:
            if self._may_start():
                self._start()
            return
        if not pid_alive(spare.pid):
            self._failed_starts += spare.state == ServerState.STARTING
            self._end(spare, "stopped on its own")
            return
        if spare.state == ServerState.STARTING:
            if (timezone.now() - spare.created_at).total_seconds() > settings.LATHE_VLLM_START_TIMEOUT:
                self._failed_starts += 1
                self._end(spare, "did not become ready in time and was stopped")
                return
            client = VllmClient(spare.base_url, spare.secret)
            try:
                ready = client.ready(spare.served_model_name)
            finally:
                client.close()
            if ready:
                marked = self._mine().filter(pk=spare.pk, state=ServerState.STARTING)
                if marked.update(state=ServerState.READY, ready_at=timezone.now()):
                    self.reporter.log(
                        f"A warm spare of {self.sponsor.model.display_name} is ready: the next adapter of "
                        "it you deploy answers in seconds."
                    )

    def _may_start(self) -> bool:
        if self._failed_starts >= MAX_FAILED_STARTS:
            return False
        others = ModelServer.objects.filter(
            owner_id=self.sponsor.owner_id,
            model_id=self.sponsor.model_id,
            node=self.node,
            spare_of__isnull=False,
            state__in=LIVE_SERVER_STATES,
        )
        if others.exists():
            return False  # another copy of this base keeps one already
        starting = ModelServer.objects.filter(
            owner_id=self.sponsor.owner_id,
            model_id=self.sponsor.model_id,
            node=self.node,
            state=ServerState.STARTING,
        )
        if starting.exists():
            return False  # an adapter is taking the last spare: a vLLM starting now would slow its merge
        needed = merged_copy_bytes(self.sponsor.adapter)
        headroom = settings.LATHE_WARM_SPARE_HEADROOM_GIB * GIB
        return needed is not None and psutil.virtual_memory().available - needed >= headroom

    def _start(self) -> None:
        spare = ModelServer.objects.create(
            owner_id=self.sponsor.owner_id,
            model_id=self.sponsor.model_id,
            secret=secrets.token_urlsafe(32),
            max_lora_rank=0,
            spare_of=self.sponsor,
            node=self.node,
            host=settings.LATHE_VLLM_ADVERTISE_HOST,
        )
        dtype = default_dtype()
        home, name = merged_copy_home(spare.pk), merged_copy_name(self.sponsor.model, dtype)
        try:
            spare_folder_fill(model_dir_for(self.sponsor.model, self.reporter), home / name)
            launch = vllm_launch(
                model_dir=Path(name),
                cwd=home,
                served_name=spare.served_model_name,
                api_key=spare.secret,
                dtype=dtype,
            )
            process = vllm_start(launch, server_log_path(spare.pk))
        except Exception as exc:  # a spare is an extra: its failure never fails the copy it stands by
            self._failed_starts += 1
            self._end(spare, f"could not start ({exc})")
            return
        self._processes[spare.pk] = process
        ModelServer.objects.filter(pk=spare.pk).update(pid=process.pid, port=launch.port)
        self.reporter.log(
            f"Starting a warm spare of {self.sponsor.model.display_name} (process {process.pid}), so that "
            "the next adapter of it you deploy is ready in seconds."
        )

    def _end(self, spare: ModelServer, why: str) -> bool:
        """Stop a spare that is still this copy's (not taken meanwhile); True if it was."""
        stopped = (
            self._mine_running()
            .filter(pk=spare.pk)
            .update(state=ServerState.STOPPED, stopped_at=timezone.now())
        )
        if not stopped:
            return False  # an adapter took it: its own job supervises it now
        if spare.pid:
            process_group_stop(spare.pid)
        ModelServer.objects.filter(pk=spare.pk).update(pid=None)
        shutil.rmtree(merged_copy_home(spare.pk), ignore_errors=True)
        self._processes.pop(spare.pk, None)
        self.reporter.log(f"The warm spare (server {spare.pk}) {why}.")
        return True

    def stop_all(self, why: str = "stopped with its merged copy") -> None:
        for spare in list(self._mine_running()):
            self._end(spare, why)
