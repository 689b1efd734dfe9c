"""vLLM's OpenAI-compatible server, started with Lathe's CPU sampling patch.

    python -m models_app.ml.vllm_entry --model DIR --port P ...   (the same flags as vLLM's own)

The patch is applied at import, outside the ``__main__`` block, so that vLLM's engine process gets
it too when it is spawned (it re-imports this module) as well as when it is forked.
"""

import runpy

from models_app.ml.vllm_cpu_sampling import install

install()

if __name__ == "__main__":
    runpy.run_module("vllm.entrypoints.openai.api_server", run_name="__main__", alter_sys=True)
