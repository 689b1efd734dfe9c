from django.conf import settings
from django.db import models


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
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name
