from pathlib import Path

from django.conf import settings

from models_app.ml.demo_model import DEMO_MODEL_ID, ensure_demo_model
from models_app.models import BaseModel


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
