from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser

from models_app.ml.demo_model import DEMO_MODEL_ID, ensure_demo_model
from models_app.models import BaseModel
from models_app.presets import PRESETS


class ModelRegistrationError(ValueError):
    pass


def demo_model_install(*, target_dir: Path | None = None, progress=None) -> BaseModel:
    """Convert the bundled demo model once and register it for every user. Idempotent."""
    target = Path(target_dir or settings.LATHE_MODELS_DIR / "SmolLM2-135M-Instruct")
    ensure_demo_model(target, progress=progress)
    model, _ = BaseModel.objects.update_or_create(
        owner=None,
        hf_id=DEMO_MODEL_ID,
        defaults={
            "display_name": "SmolLM2 135M Instruct (demo, runs on a CPU)",
            "local_dir": str(target),
            "is_demo": True,
        },
    )
    return model


def base_model_presets_sync() -> int:
    """Register the known models (the Qwen2.5 family...) for every user. Weights download on first use."""
    created = 0
    for preset in PRESETS:
        if preset.hf_id == DEMO_MODEL_ID:
            continue  # registered with its folder by demo_model_install
        _, was_created = BaseModel.objects.get_or_create(
            owner=None, hf_id=preset.hf_id, defaults={"display_name": preset.display_name}
        )
        created += was_created
    return created


def base_model_register(*, owner: AbstractBaseUser, hf_id: str = "", local_dir: str = "") -> BaseModel:
    """Add a model by Hugging Face id (anyone) or by a folder on the workers' disk (administrators only)."""
    if local_dir:
        if not owner.is_staff:
            raise ModelRegistrationError("Only an administrator can register a folder on the server.")
        folder = Path(local_dir)
        if not (folder.is_absolute() and (folder / "config.json").is_file()):
            raise ModelRegistrationError(
                "That folder has no config.json. Give the absolute path of a Hugging Face model folder."
            )
        name = hf_id.strip() or folder.name
        model, _ = BaseModel.objects.update_or_create(
            owner=owner, hf_id=name, defaults={"display_name": name, "local_dir": str(folder)}
        )
        return model
    hf_id = hf_id.strip()
    parts = hf_id.split("/")
    if len(parts) != 2 or not all(
        part and part.replace("-", "").replace("_", "").replace(".", "").isalnum() for part in parts
    ):
        raise ModelRegistrationError(
            "A Hugging Face id looks like 'organisation/model-name', e.g. Qwen/Qwen2.5-7B."
        )
    model, _ = BaseModel.objects.get_or_create(owner=owner, hf_id=hf_id, defaults={"display_name": hf_id})
    return model
