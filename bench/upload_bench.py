"""Upload of a large file through the real web server: the web process's peak RSS, wall time, MB/s.

    .venv/bin/python bench/upload_bench.py --size-mb 1024      # about a minute; Redis on 127.0.0.1:6379

Sets up a fresh site under bench/out/upload-*/ (LATHE_DATA_DIR; ``manage.py migrate``; a user and an
API token made with ``manage.py shell -c``), starts uvicorn on ``webapp.asgi:application`` as
``make dev`` does (one process), and sends a small warm-up upload so the idle figure includes the
code an upload loads. Then it POSTs make_data.py's file (the one with bad lines) to
``/api/datasets/upload/`` as multipart field ``file`` with ``Authorization: Bearer``, the envelope
built by hand and the body streamed from disk in 1 MiB chunks with http.client (the client never
holds the file), while psutil samples the uvicorn process's RSS every 50 ms.

Redis database 14 (``--redis-url``) is the broker: no Celery worker runs, so the validation job stays
queued, and the database is flushed at the end. The site folder (with its stored copy of the file) is
deleted unless ``--keep``. Wall time is from the first byte sent to the response read. MB means MiB.
To try a settings change without editing webapp/settings.py, put a module that star-imports it under
bench/out/ and run with ``PYTHONPATH=bench/out DJANGO_SETTINGS_MODULE=<module>``.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psutil
from _measure import MB, REPO, RssPoller, machine, table
from make_data import OUT, ensure

TARGET_MB = 150
SETUP_SCRIPT = """
from django.contrib.auth import get_user_model
from accounts.services import api_token_create
user = get_user_model().objects.create_user(username="bench", password=None)
print("TOKEN", api_token_create(user=user, name="bench")[1])
"""


def manage(env: dict, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode:
        raise SystemExit(f"manage.py {args[0]} failed:\n{done.stderr[-2000:]}")
    return done.stdout


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_ready(port: int, server: subprocess.Popen, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"uvicorn exited with {server.returncode}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/api/datasets/")
            connection.getresponse().read()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("uvicorn did not answer within a minute")


def upload(port: int, token: str, path: Path) -> dict:
    """Stream ``path`` as a multipart upload; returns the status, the JSON answer and timings."""
    boundary = f"lathe-bench-{uuid.uuid4().hex}"
    head = (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{path.name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    size = path.stat().st_size
    digest = hashlib.sha256()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1800)
    started = time.perf_counter()
    connection.putrequest("POST", "/api/datasets/upload/")
    connection.putheader("Authorization", f"Bearer {token}")
    connection.putheader("Content-Type", f"multipart/form-data; boundary={boundary}")
    connection.putheader("Content-Length", str(len(head) + size + len(tail)))
    connection.endheaders()
    connection.send(head)
    with open(path, "rb") as handle:
        while chunk := handle.read(MB):
            connection.send(chunk)
            digest.update(chunk)
    connection.send(tail)
    sent_s = time.perf_counter() - started
    response = connection.getresponse()
    body = response.read()
    wall_s = time.perf_counter() - started
    connection.close()
    try:
        answer = json.loads(body)
    except ValueError:
        answer = {"raw": body[:500].decode(errors="replace")}
    return {
        "status": response.status,
        "answer": answer,
        "sha256": digest.hexdigest(),
        "bytes": size,
        "sent_s": sent_s,
        "wall_s": wall_s,
    }


def flush_redis(url: str) -> None:
    import redis

    redis.Redis.from_url(url).flushdb()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mb", type=int, default=1024, help="size of the uploaded file in MiB")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14", help="flushed at the end")
    parser.add_argument("--keep", action="store_true", help="keep the site folder under bench/out/")
    args = parser.parse_args()
    print(f"Machine: {machine()}\n", flush=True)
    path = ensure(args.size_mb, clean=False)
    site = Path(tempfile.mkdtemp(prefix="upload-", dir=OUT))
    env = os.environ | {
        "LATHE_DATA_DIR": str(site),
        "REDIS_URL": args.redis_url,
        "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "webapp.settings"),
    }
    server = None
    try:
        manage(env, "migrate", "--noinput")
        token = next(
            line.split()[1]
            for line in manage(env, "shell", "-c", SETUP_SCRIPT).splitlines()
            if line.startswith("TOKEN ")
        )
        port = free_port()
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            "webapp.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
        ]
        log = open(site / "uvicorn.log", "wb")  # noqa: SIM115 - lives as long as the server
        server = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        wait_ready(port, server)
        warm = site / "warm-up.jsonl"
        warm.write_bytes(b'{"instruction": "Say hi.", "output": "Hi."}\n')
        warm_status = upload(port, token, warm)["status"]
        poller = RssPoller(server.pid, 0.05, kill_on_low_memory=True)
        idle_mb = poller.sample() / MB
        load_before = os.getloadavg()[0]
        poller.start()
        result = upload(port, token, path)
        time.sleep(0.5)  # anything the server does right after answering
        poller.stop()
        stored = result["answer"].get("sha256") == result["sha256"]
        after_mb = psutil.Process(server.pid).memory_info().rss / MB
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
        flush_redis(args.redis_url)
        if not args.keep:
            shutil.rmtree(site, ignore_errors=True)
    peak_mb = poller.peak_bytes / MB
    megabytes = result["bytes"] / MB
    record = {
        **result,
        "idle_rss_mb": idle_mb,
        "peak_rss_mb": peak_mb,
        "after_rss_mb": after_mb,
        "warm_up_status": warm_status,
        "load": [load_before, os.getloadavg()[0]],
        "low_memory_kill": poller.low_memory,
    }
    with open(OUT / "upload.jsonl", "a") as handle:
        handle.write(json.dumps(record) + "\n")
    outcome = f"HTTP {result['status']}" + (
        ", stored, SHA-256 matches" if stored else f": {result['answer']}"
    )
    headers = (
        "file|outcome|wall s|MB/s|web RSS idle MB|web RSS peak MB|peak − idle MB|RSS after MB|load (1 min)"
    )
    print(
        table(
            headers.split("|"),
            [
                [
                    f"{path.name} ({megabytes:.0f} MB)",
                    outcome,
                    f"{result['wall_s']:.1f}",
                    f"{megabytes / result['wall_s']:.0f}",
                    f"{idle_mb:.0f}",
                    f"{peak_mb:.0f}",
                    f"{peak_mb - idle_mb:.0f}",
                    f"{after_mb:.0f}",
                    f"{record['load'][0]:.2f} → {record['load'][1]:.2f}",
                ]
            ],
        )
    )
    verdict = "met" if peak_mb < TARGET_MB and stored else "NOT met"
    print(
        f"\n- upload of {megabytes:.0f} MB with the web process's peak RSS under {TARGET_MB} MB: "
        f"{peak_mb:.0f} MB ({verdict}, {peak_mb / TARGET_MB:.1f}× the target)"
    )


if __name__ == "__main__":
    main()
