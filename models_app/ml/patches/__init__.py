"""Lathe's patches of vLLM's private internals; trl's and peft's are in :mod:`training_app.ml.patches`, the
version check in :mod:`lathe_common.version_check`."""
