"""Token counters for base models (lengths in cleaning and statistics), loaded once per process."""

from functools import lru_cache

from datasets_app.core.tokens import HfTokenCounter
from models_app.models import BaseModel


@lru_cache(maxsize=4)
def _counter_for_dir(local_dir: str) -> HfTokenCounter:
    return HfTokenCounter.from_dir(local_dir)


def token_counter_for(base_model: BaseModel) -> HfTokenCounter:
    return _counter_for_dir(base_model.local_dir)
