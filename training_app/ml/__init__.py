"""Training core that knows nothing of Django or Celery.

Plain functions that take paths and a :class:`~training_app.ml.recipe.Recipe` and report
through a callback, so the job runner, a script and the tests all call the same
code. Entry point: :func:`training_app.ml.train.train`.
"""
