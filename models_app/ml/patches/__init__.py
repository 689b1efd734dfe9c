"""Lathe's patches of vLLM's private internals; the others and the version check: :mod:`jobs.ml.patches`."""
