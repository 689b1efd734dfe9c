"""vLLM's OpenAI-compatible server, started with Lathe's CPU sampling patch.

    python -m models_app.ml.vllm_entry --model DIR --port P ...   (the same flags as vLLM's own)

The patch is applied at import, outside the ``__main__`` block: vLLM forks its engine process, which
inherits it, and on a CPU spawns the worker that samples, which imports this module again as its
``__mp_main__`` (so ``sys.modules["__main__"]`` must stay this module: ``alter_sys=False``).
"""

import runpy

from models_app.ml.patches.vllm import install

install()

if __name__ == "__main__":
    runpy.run_module("vllm.entrypoints.openai.api_server", run_name="__main__", alter_sys=False)
