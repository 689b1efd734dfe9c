"""The seed's service (bench/seed_service.py: FastAPI and a transformers pipeline), under the same load."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from bench.serving.common import REPO, prompt_text
from bench.serving.load import Target, run_phase
from bench.serving.site import answers, spawn, stop_group, wait_for


# --- 7. the seed -------------------------------------------------------------------------------------------
def seed_phase(args, merged_dir: Path, log_dir: Path) -> dict:
    from transformers import AutoTokenizer

    from lathe_common.embedded_redis import free_port

    tokenizer = AutoTokenizer.from_pretrained(merged_dir)

    def seed_prompt(index: int) -> str:
        messages = [{"role": "user", "content": prompt_text(index)}]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def seed_tokens(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False).input_ids)

    port = free_port()
    env = {**os.environ, "SEED_MODEL_DIR": str(merged_dir), "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "uvicorn", "bench.seed_service:app", "--host", "127.0.0.1"]
    process = spawn("seed", [*command, "--port", str(port), "--log-level", "warning"], log_dir, env)
    try:
        start_s = wait_for(lambda: answers(f"http://127.0.0.1:{port}/docs"), 300, "the seed service", process)
        target = Target("seed", f"http://127.0.0.1:{port}/generate", {}, seed=True)
        watch = {"seed": [process.pid]}

        async def go() -> dict:
            await run_phase(
                "warm-up",
                target,
                requests=1,
                concurrency=1,
                max_tokens=8,
                seed_prompt=seed_prompt,
                seed_tokens=seed_tokens,
            )
            return await run_phase(
                "seed",
                target,
                requests=args.seed_requests,
                concurrency=args.concurrency,
                max_tokens=args.max_tokens,
                seed_prompt=seed_prompt,
                seed_tokens=seed_tokens,
                watch=watch,
            )

        return asyncio.run(go()) | {"start_s": start_s}
    finally:
        stop_group(process)
