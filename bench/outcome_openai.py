"""The outcome a user gets: OpenAI's client, no hyperparameters, held-out questions to the deployed model.

    .venv/bin/python bench/outcome_openai.py --sets clinic_en,policy_zh

What the held-out check of issue 12 does, end to end through the product as users run it:
``manage.py dev`` (web, workers, the embedded or local Redis, SQLite) in a fresh data folder under
bench/out/outcome-site/, then with the ``openai`` client: upload a set of ``bench/domain_sets.py`` as
a fine-tuning file, ``fine_tuning.jobs.create`` with no hyperparameters ("auto"), wait for it, let
auto-deploy load the adapter into the demo model's vLLM server, and ask each held-out question
(worded unlike any training row) through ``/v1/chat/completions`` (temperature 0, 64 tokens). An
answer counts when it contains the fact (``domain_sets.answer_is_right``). Training time is the
job's own (``started_at`` to ``finished_at``, the held-out check after training included).
One line per set is appended to bench/out/outcome_openai.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
import domain_sets  # noqa: E402

SITE = REPO / "bench" / "out" / "outcome-site"
RESULTS = REPO / "bench" / "out" / "outcome_openai.jsonl"
PORT = 8123


def _django(env: dict) -> None:
    os.environ.update(env)
    sys.path.insert(0, str(REPO))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
    import django

    django.setup()


def _api_key() -> str:
    from django.contrib.auth import get_user_model

    from accounts.services import api_token_create

    user = get_user_model().objects.get(username="admin")
    return api_token_create(user=user, name="outcome bench")[1]


def _wait_for_site(url: str, process: subprocess.Popen, timeout: float = 600) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("manage.py dev stopped")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(2)
    raise RuntimeError("the site did not answer")


def run_set(client, set_name: str, model: str) -> dict:
    from jobs.models import Job

    train_file, tests_file = domain_sets.build(set_name)
    tests = [json.loads(line) for line in tests_file.open(encoding="utf-8")]
    uploaded = client.files.create(file=(f"{set_name}.jsonl", train_file.read_bytes()), purpose="fine-tune")
    created = client.fine_tuning.jobs.create(training_file=uploaded.id, model=model, suffix=set_name[:20])
    while (job := client.fine_tuning.jobs.retrieve(created.id)).status not in (
        "succeeded",
        "failed",
        "cancelled",
    ):
        time.sleep(5)
    row = Job.objects.get(pk=int(created.id.removeprefix("ftjob-")))
    line = {
        "set": set_name,
        "job": created.id,
        "status": job.status,
        "hyperparameters": job.hyperparameters.model_dump(),
        "reason": row.params.get("recipe_reason"),
        "train_seconds": (row.finished_at - row.started_at).total_seconds() if row.started_at else None,
        "verdict": {
            k: (row.result or {}).get("verdict", {}).get(k) for k in ("right", "base_right", "total")
        },
    }
    if job.status == "succeeded":
        for _ in range(120):  # auto-deploy: the adapter is loaded once the server is ready
            if job.fine_tuned_model in {m.id for m in client.models.list()}:
                break
            time.sleep(5)
        right = base_right = 0
        answers = []
        for test in tests:
            messages = [{"role": "user", "content": test["question"]}]
            tuned = client.chat.completions.create(
                model=job.fine_tuned_model, messages=messages, temperature=0, max_tokens=64
            )
            base = client.chat.completions.create(
                model=model, messages=messages, temperature=0, max_tokens=64
            )
            right += domain_sets.answer_is_right(tuned.choices[0].message.content or "", test)
            base_right += domain_sets.answer_is_right(base.choices[0].message.content or "", test)
            answers.append(tuned.choices[0].message.content)
        line.update(tests=len(tests), right=right, base_right=base_right, answers=answers[:4])
    line["at"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(line, ensure_ascii=False) + "\n")
    return line


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sets", default="clinic_en,policy_zh")
    args = parser.parse_args()
    env = {"LATHE_DATA_DIR": str(SITE), "LATHE_REDIS_NAMESPACE": "outcome-bench-"}
    SITE.mkdir(parents=True, exist_ok=True)
    site = subprocess.Popen(  # noqa: S603
        [sys.executable, "manage.py", "dev", "--port", str(PORT)],
        cwd=REPO,
        env={**os.environ, **env},
        start_new_session=True,
        stdout=open(SITE / "dev.log", "ab"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{PORT}"
        _wait_for_site(url, site)
        _django(env)
        from openai import OpenAI

        from models_app.ml.demo_model import DEMO_MODEL_ID

        client = OpenAI(base_url=f"{url}/v1", api_key=_api_key(), timeout=120, max_retries=2)
        for set_name in args.sets.split(","):
            line = run_set(client, set_name, DEMO_MODEL_ID)
            print(
                f"{set_name:11} {line['status']} in {line['train_seconds']:.0f}s: {line.get('right')}/"
                f"{line.get('tests')} right (base {line.get('base_right')}); {line['hyperparameters']}",
                flush=True,
            )
    finally:
        os.killpg(site.pid, signal.SIGINT)
        site.wait(timeout=60)


if __name__ == "__main__":
    main()
