"""Lathe's patches of dependencies' private internals, one module per dependency.

Each module declares the versions of its dependency it was written and tested against
(``SUPPORTED_VERSIONS``) and checks the installed one every time it is applied, so an upgrade stops
at the first use with an error naming the module, rather than patching code that has moved:

- :mod:`training_app.ml.patches.trl`: trl's fused LM head scores only labelled positions on a CPU too;
- :mod:`training_app.ml.patches.peft`: a cheaper LoRA dropout, and no input upcast under CPU autocast;
- :mod:`models_app.ml.patches.vllm`: top-p without sorting the vocabulary in vLLM's CPU sampler.

When a pin in pyproject.toml moves, these modules are where to look. Nothing here imports Django.
"""
