# The tiny model of the training-core tests, shared with the worker tests here.
from tests.jobs.ml.conftest import tiny_model_dir  # noqa: F401
