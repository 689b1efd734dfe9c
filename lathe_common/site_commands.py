"""The command lines of Lathe's own processes, in one place: the web server and a Celery worker, as
`manage.py dev` starts them, and as the tests (tests/processes.py) and benchmarks (bench/serving/site.py)
start them to run what users run. Knows nothing of Django."""

from __future__ import annotations


def web_command(python: str, port: int, *, host: str = "127.0.0.1", log_level: str = "warning") -> list[str]:
    """uvicorn serving the ASGI application (pages, websockets, the /v1 gateway)."""
    return [
        python,
        "-m",
        "uvicorn",
        "webapp.asgi:application",
        "--host",
        host,
        "--port",
        str(port),
        "--ws",
        "websockets",
        "--log-level",
        log_level,
    ]


def worker_command(
    python: str,
    queues: list[str] | tuple[str, ...],
    concurrency: int,
    hostname: str,
    *,
    alone: bool = False,
    process_per_job: bool = False,
) -> list[str]:
    """A Celery worker of `queues` with `concurrency` job slots, taking one message at a time (a job
    may run for hours). `alone`: no gossip or mingle with other workers (tests, benchmarks).
    `process_per_job`: a fresh pool process per job, as a GPU machine's worker needs (CUDA reads the
    job's leased cards once per process: jobs/gpu_leases.py)."""
    command = [
        python,
        "-m",
        "celery",
        "-A",
        "webapp",
        "worker",
        "--queues",
        ",".join(queues),
        "--concurrency",
        str(concurrency),
        "--prefetch-multiplier",
        "1",
        "--loglevel",
        "INFO",
        "--hostname",
        hostname,
    ]
    if process_per_job:
        command += ["--max-tasks-per-child", "1"]
    return [*command, "--without-gossip", "--without-mingle"] if alone else command
