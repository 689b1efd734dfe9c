"""Model work that knows nothing of Django or Celery: plain functions on paths."""
