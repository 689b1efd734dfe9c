"""A local Ray cluster for the session (`ray start --head`, 2 CPUs), for the tests of jobs that run
across machines: its dashboard answers at the address the session's worker was given
(tests/processes.py `ray_test_address`). It starts only when a test asks for it and ends with the
session, every Ray process with it (`--block` keeps the head in the foreground, in its own group)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from lathe_common.embedded_redis import free_port
from tests import processes
from tests.helpers import wait_until


def _answers(address: str) -> bool:
    """The dashboard answers (401 included: it asks for the cluster's token, which the clients send)."""
    try:
        with urllib.request.urlopen(f"{address}/api/version", timeout=2):  # noqa: S310
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def ray_cluster(logs_dir):
    address = processes.ray_test_address()
    # Ray's sockets live in its temporary folder, whose path must stay short.
    temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    log_path = logs_dir / "ray.log"
    command = [
        str(Path(sys.executable).parent / "ray"),
        "start",
        "--head",
        "--block",
        "--num-cpus=2",
        "--num-gpus=0",
        f"--port={free_port()}",
        "--dashboard-host=127.0.0.1",
        f"--dashboard-port={os.environ['LATHE_TEST_RAY_PORT']}",
        f"--temp-dir={temp_dir}",
        "--object-store-memory=200000000",
        "--disable-usage-stats",
    ]
    with log_path.open("ab") as log:
        head = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until(lambda: _answers(address) or head.poll() is not None, timeout=120, message="Ray's head")
        if head.poll() is not None:
            raise RuntimeError("Ray's head exited:\n" + log_path.read_text()[-3000:])
        yield address
    finally:
        # Every Ray process of the node is in the head's group: ended at once (a clean stop drains for 30 s).
        processes.kill_group(head)
        shutil.rmtree(temp_dir, ignore_errors=True)
