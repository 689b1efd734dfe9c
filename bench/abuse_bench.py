"""What each kind of abuse costs the site before it is refused (bodies also against an earlier commit).

    .venv/bin/python bench/abuse_bench.py --base 19c7aac      # about 3 minutes, on a quiet machine

1. Request bodies, through the real site (uvicorn, SQLite, the machine's Redis): a 96 MiB chunked
   body from someone with no account to a page, to the completions route and to the upload route,
   and from a key holder to the completions route. For each: the answer, the body bytes the client
   got into the connection before it, the bytes the web process read and wrote through system calls
   meanwhile (its socket reads, and its spool file on disk), and the seconds. The same requests go to
   the earlier commit's site in the same run.
2. A YAML recipe of 400 bytes whose aliases expand to billions of values: time and peak Python memory
   until refused (`training_app.ml.recipe.load_plain_yaml`).
3. A gzip upload of a few MB that unpacks to 1 GiB of bad lines, checked with the site's default limits
   (`datasets_app.core.validate.validate_file`): seconds, rows and bytes read, error records written.
4. Judge addresses inside the network, in ten spellings, with a server listening on 127.0.0.1: time to
   refuse, and connections that reached the listener.

Prints a table and appends a JSON line to bench/results/abuse.jsonl.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.gateway_overhead import OUT, site_start, stub_start, tree_for  # noqa: E402
from tests.http_bodies import stream_body  # noqa: E402

RESULTS = REPO / "bench" / "results" / "abuse.jsonl"
MiB = 1024**2
ATTEMPT = 96 * MiB


def _io_of(pid: int) -> tuple[int, int]:
    """Bytes the process has read and written through system calls (sockets and files alike)."""
    counters = psutil.Process(pid).io_counters()
    return counters.read_chars, counters.write_chars


def bodies(base_rev: str) -> dict:
    stub_port = stub_start()
    found: dict = {}
    for label, tree, port in (("base", tree_for(base_rev), 18741), ("head", REPO, 18742)):
        web, key = site_start(f"abuse-{label}", tree, stub_port, port)
        url = f"http://127.0.0.1:{port}"
        cases = {
            "PUT /healthz, no account": dict(method="PUT", path="/healthz"),
            "POST /accounts/login/, no account": dict(path="/accounts/login/"),
            "POST /v1/chat/completions, no key": dict(path="/v1/chat/completions"),
            "POST /datasets/upload/, no account": dict(
                path="/datasets/upload/", headers={"Content-Type": "multipart/form-data; boundary=x"}
            ),
            "POST /v1/chat/completions, a valid key": dict(
                path="/v1/chat/completions", headers={"Authorization": f"Bearer {key}"}
            ),
        }
        try:
            for name, request in cases.items():
                read_before, written_before = _io_of(web.pid)
                started = time.perf_counter()
                outcome = stream_body(url, total=ATTEMPT, **request)
                seconds = time.perf_counter() - started
                time.sleep(0.5)  # what the server still reads after answering counts too
                read_after, written_after = _io_of(web.pid)
                found.setdefault(name, {})[label] = {
                    "status": outcome.status,
                    "client_sent_mib": round(outcome.sent / MiB, 1),
                    "server_read_mib": round((read_after - read_before) / MiB, 1),
                    "server_wrote_mib": round((written_after - written_before) / MiB, 1),
                    "seconds": round(seconds, 2),
                }
        finally:
            os.killpg(web.pid, signal.SIGTERM)
            web.wait(30)
    return found


def yaml_bomb() -> dict:
    from training_app.ml.recipe import load_plain_yaml

    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
    text = "\n".join(lines) + "\n"
    tracemalloc.start()
    started = time.perf_counter()
    try:
        load_plain_yaml(text)
        refused = ""
    except ValueError as error:
        refused = str(error)
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "bytes": len(text.encode()),
        "expands_to_values": 9**10,
        "seconds": round(seconds, 4),
        "peak_python_kib": round(peak / 1024, 1),
        "refused": refused[:160],
    }


def gzip_bomb() -> dict:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
    import django

    django.setup()
    from datasets_app.core.validate import validate_file
    from datasets_app.read_limits import ReadLimits

    limits = ReadLimits.from_settings()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bomb.jsonl.gz"
        block = b"this line is not json\n" * (MiB // 22)
        buffer = io.BytesIO()
        with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=9) as handle:
            for _ in range(1024):
                handle.write(block)
        path.write_bytes(buffer.getvalue())
        started = time.perf_counter()
        report = validate_file(
            path,
            canonical_out=Path(folder) / "rows.jsonl",
            errors_out=Path(folder) / "errors.jsonl",
            options=limits.validation_options({}),
        )
        seconds = time.perf_counter() - started
        errors_size = (Path(folder) / "errors.jsonl").stat().st_size
        compressed = path.stat().st_size
    return {
        "compressed_mib": round(compressed / MiB, 2),
        "unpacks_to_mib": 1024,
        "limits": {"max_rows": limits.max_rows, "max_error_records": limits.max_error_records},
        "seconds": round(seconds, 1),
        "rows_read": report.rows,
        "error_records_written": report.errors_listed,
        "errors_file_kib": round(errors_size / 1024, 1),
        "stopped_by": report.limit_hit,
    }


def judge_addresses() -> dict:
    from lathe_common.outbound import OutboundError, OutboundPolicy, outbound_request

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.05)
    port = listener.getsockname()[1]
    accepted = [0]
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
                accepted[0] += 1
                connection.close()
            except TimeoutError:
                continue

    threading.Thread(target=accept, daemon=True).start()
    spellings = [
        f"http://127.0.0.1:{port}/v1",
        f"http://localhost:{port}/v1",
        f"http://[::1]:{port}/v1",
        f"http://2130706433:{port}/v1",
        f"http://0177.0.0.1:{port}/v1",
        f"http://0x7f.1:{port}/v1",
        f"http://127.1:{port}/v1",
        f"http://[::ffff:127.0.0.1]:{port}/v1",
        "http://169.254.169.254/latest/meta-data/",
        f"http://127.0.0.1:{port}/v1?x=",
    ]
    policy = OutboundPolicy(timeout_seconds=5)
    times, refused = [], 0
    for url in spellings:
        started = time.perf_counter()
        try:
            outbound_request("POST", url + "/chat/completions", policy=policy, json={})
        except OutboundError:
            refused += 1
        times.append(1e6 * (time.perf_counter() - started))
    stop.set()
    listener.close()
    return {
        "spellings": len(spellings),
        "refused": refused,
        "connections_reached_listener": accepted[0],
        "median_us": round(sorted(times)[len(times) // 2], 1),
        "max_us": round(max(times), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the earlier commit whose site takes the same bodies")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    base_rev = subprocess.run(
        ["git", "rev-parse", "--short", args.base], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()
    found = {
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "base": base_rev,
        "bodies": bodies(base_rev),
        "yaml_bomb": yaml_bomb(),
        "gzip_bomb": gzip_bomb(),
        "judge_addresses": judge_addresses(),
    }
    print(json.dumps(found, indent=2))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a") as results:
        results.write(json.dumps(found) + "\n")


if __name__ == "__main__":
    main()
