"""Helpers every part of Lathe shares, free of Django and of every app, so that vLLM's processes, the
ML core (training_app/ml, models_app/ml) and the tools that start processes can import them: a child
process's environment (child_env), CPU and GPU facts (cpu, gpus), dependency version checks for patches
(version_check), the command lines of Lathe's own processes (site_commands)."""
