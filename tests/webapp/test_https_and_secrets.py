"""HTTPS deployments get secure cookies, a redirect and HSTS; secrets are private from their first byte."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading

from lathe_common.secret_files import secret_file_read_or_create, secret_file_write
from tests.processes import REPO

DEPLOY_WARNINGS = ("security.W004", "security.W008", "security.W012", "security.W016")


def _settings_env(tmp_path, **extra) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("LATHE_HTTPS")}
    env.pop("LATHE_PROXY_SSL_HEADER", None)
    return {**env, "LATHE_DATA_DIR": str(tmp_path), "SECRET_KEY": "k" * 60, **extra}


def _deploy_check(env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.stdout + done.stderr


def test_https_turns_on_secure_cookies_redirect_and_hsts(tmp_path):
    report = _deploy_check(_settings_env(tmp_path, LATHE_HTTPS="true"))
    assert not [warning for warning in DEPLOY_WARNINGS if warning in report], report


def test_a_proxy_header_alone_means_https(tmp_path):
    report = _deploy_check(_settings_env(tmp_path, LATHE_PROXY_SSL_HEADER="X-Forwarded-Proto"))
    assert not [warning for warning in DEPLOY_WARNINGS if warning in report], report


def test_a_laptop_over_plain_http_keeps_cookies_that_work_without_tls(tmp_path):
    report = _deploy_check(_settings_env(tmp_path))
    assert "security.W012" in report  # session cookie not limited to HTTPS: http://localhost works


def test_the_generated_secret_key_is_private_from_the_start(tmp_path):
    env = _settings_env(tmp_path)
    env.pop("SECRET_KEY")
    subprocess.run(
        [sys.executable, "-c", "import webapp.settings"], cwd=REPO, env=env, check=True, timeout=60
    )
    key_file = tmp_path / "secret_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(key_file.read_text().strip()) > 40


def test_processes_racing_to_make_a_secret_all_read_the_same_one(tmp_path):
    path = tmp_path / "secret"
    made = []

    def make() -> str:
        made.append(1)
        return f"secret-{len(made)}"

    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(secret_file_read_or_create(path, make)))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(results)) == 1
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".")]


def test_a_secret_is_never_replaced_unless_asked(tmp_path):
    path = tmp_path / "admin_password"
    assert secret_file_write(path, "first")
    assert not secret_file_write(path, "second")
    assert path.read_text() == "first"
    assert secret_file_write(path, "third", replace=True)
    assert path.read_text() == "third" and stat.S_IMODE(path.stat().st_mode) == 0o600
