from django.conf import settings
from django.db import models

# What jobs on these rows are about (Job.subject_type): the one spelling.
SUBJECT_ADAPTER = "adapter"
SUBJECT_SERVER = "model_server"


class BaseModel(models.Model):
    """A model that can be fine-tuned. `owner` is empty for models every user may pick."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="base_models"
    )
    hf_id = models.CharField(max_length=200, help_text="Hugging Face id, e.g. Qwen/Qwen2.5-7B-Instruct.")
    display_name = models.CharField(max_length=200)
    local_dir = models.CharField(
        max_length=500, blank=True, help_text="Folder holding the weights, once present."
    )
    is_demo = models.BooleanField(default=False)
    # Set on a standalone model made by merging this adapter into its base.
    merged_from = models.OneToOneField(
        "Adapter", null=True, blank=True, on_delete=models.SET_NULL, related_name="merged_model"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-is_demo", "display_name"]
        constraints = [models.UniqueConstraint(fields=["owner", "hf_id"], name="unique_base_model_per_owner")]

    def __str__(self) -> str:
        return self.display_name

    @property
    def is_available(self) -> bool:
        return bool(self.local_dir)


class Adapter(models.Model):
    """A trained LoRA (or IA³) adapter: safetensors plus adapter_config.json in `path`."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="adapters")
    base_model = models.ForeignKey(BaseModel, on_delete=models.PROTECT, related_name="adapters")
    job = models.OneToOneField(
        "jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="adapter"
    )
    name = models.CharField(max_length=200)
    path = models.CharField(max_length=500)
    method = models.CharField(max_length=16, default="lora")
    rank = models.PositiveIntegerField(null=True, blank=True)
    # The user's word for it in served model ids (OpenAI's `suffix`), e.g. "support-bot".
    suffix = models.CharField(max_length=40, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name

    @property
    def served_name(self) -> str:
        """The model id clients send, shaped like OpenAI's: ft:<base>:<suffix>:<id>."""
        return f"ft:{self.base_model.hf_id}:{self.suffix or 'lathe'}:{self.pk}"


class ServerState(models.TextChoices):
    STARTING = "starting", "Starting"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"
    STOPPED = "stopped", "Stopped"


LIVE_SERVER_STATES = (ServerState.STARTING, ServerState.READY)


class DesiredState(models.TextChoices):
    """What the user chose (Deploy, Undeploy); `state` is what Lathe observes of the server."""

    DEPLOYED = "deployed", "Deployed"
    UNDEPLOYED = "undeployed", "Undeployed"


def spare_served_name(server_id: int) -> str:
    """What a warm spare answers to: no user's model id, so the gateway routes nothing to it."""
    return f"spare-{server_id}"


class ModelServerQuerySet(models.QuerySet):
    def of_base_models(self) -> "ModelServerQuerySet":
        """Servers that answer for their base model: not a merged copy's (it answers for its one adapter)
        and not a warm spare (it answers for nothing until an adapter takes it)."""
        return self.filter(adapter__isnull=True, spare_of__isnull=True)


class ModelServer(models.Model):
    """One vLLM process serving one model (a base or a merged model) and, at run time, its adapters.

    Users reach it only through their Endpoints.
    The serving job that supervises the process is `job`; while it runs, the server runs.
    A warm spare (`spare_of` set) is a server of a base model with no name users can call, kept ready
    by a merged copy's supervisor for the next adapter of that base (models_app/serving/spare.py).
    """

    # Each user's adapters share that user's server of their base: logs and GPU use stay theirs.
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="model_servers"
    )
    model = models.ForeignKey(BaseModel, on_delete=models.PROTECT, related_name="servers")
    state = models.CharField(max_length=16, choices=ServerState.choices, default=ServerState.STARTING)
    job = models.ForeignKey("jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    node = models.CharField(max_length=200, blank=True, help_text="Machine the process runs on.")
    host = models.CharField(max_length=200, blank=True, help_text="Address the gateway reaches vLLM at.")
    port = models.PositiveIntegerField(null=True, blank=True)
    pid = models.PositiveIntegerField(null=True, blank=True)
    # vLLM's own API key: only the gateway and the supervisor know it.
    secret = models.CharField(max_length=64)
    max_lora_rank = models.PositiveIntegerField(default=16)  # 0: started without LoRA
    # Set on a server of a merged copy: it serves this one adapter merged into its base, under the
    # adapter's own model id (models_app/serving_form.py decides when).
    adapter = models.ForeignKey(
        "Adapter", null=True, blank=True, on_delete=models.CASCADE, related_name="merged_servers"
    )
    # Set on a warm spare: the merged copy's server whose supervisor started and watches it.
    spare_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="spares"
    )
    # Set on a merged copy's server when deployed: keep a warm spare of its base beside it.
    keeps_spare = models.BooleanField(default=False)
    # False for a vLLM server run outside Lathe (its own image, another host): Lathe checks its
    # health and loads adapters into it, but never starts or stops it.
    managed = models.BooleanField(default=True)
    restarts = models.PositiveIntegerField(default=0)
    error = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    ready_at = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    # When a stop of the stack (not of the endpoint) stopped the process; cleared once it answers again.
    interrupted_at = models.DateTimeField(null=True, blank=True)

    objects = ModelServerQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"vLLM server {self.pk} ({self.model}, {self.state})"

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def served_model_name(self) -> str:
        if self.spare_of_id:
            return spare_served_name(self.pk)
        return self.adapter.served_name if self.adapter_id else self.model.hf_id


class Endpoint(models.Model):
    """A user's deployed model: an adapter loaded into its base's server, or a merged model's server."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="endpoints")
    server = models.ForeignKey(ModelServer, on_delete=models.CASCADE, related_name="endpoints")
    adapter = models.ForeignKey(
        Adapter, null=True, blank=True, on_delete=models.CASCADE, related_name="endpoints"
    )
    served_name = models.CharField(max_length=300)
    # Deployed until the user undeploys it: restarts of the stack or of a worker do not change it.
    desired = models.CharField(max_length=16, choices=DesiredState.choices, default=DesiredState.DEPLOYED)
    state = models.CharField(max_length=16, choices=ServerState.choices, default=ServerState.STARTING)
    error = models.JSONField(null=True, blank=True)
    # How it is served, in words, when that is not the usual way (a merged copy did not fit, say).
    note = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    ready_at = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.served_name

    @property
    def serving_form(self) -> str:
        """ "merged copy" (an adapter merged into its own server), "adapter" (loaded into its base's
        shared server at run time) or "model" (a base or merged model on its own server)."""
        if self.adapter_id is None:
            return "model"
        return "merged copy" if self.server.adapter_id else "adapter"

    @property
    def model_label(self) -> str:
        return self.adapter.name if self.adapter_id else self.server.model.display_name
