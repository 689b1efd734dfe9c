"""Helpers every part of Lathe shares, free of every app of Lathe.

The modules here do not import Django either, so that vLLM's processes, the ML core (training_app/ml,
models_app/ml) and the tools that start processes can import them: a child process's environment
(child_env), CPU and GPU facts (cpu, gpus), dependency version checks for patches (version_check), the
command lines of Lathe's own processes (site_commands) and the processes started (started_processes),
sizes as people say them (sizes), the outbound URL check (outbound), archives, the embedded Redis and
secret files. `lathe_common.web` holds the shared helpers that need Django (storage, request parameters,
database connections, OpenAI's wire format, API-key views).
"""

__version__ = "0.1.0"
