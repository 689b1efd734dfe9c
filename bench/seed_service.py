"""The seed guide's inference service (section 4.2), copied for bench/serve_bench.py.

    SEED_MODEL_DIR=<merged model folder> .venv/bin/python -m uvicorn bench.seed_service:app --port 8000

The guide's code, as written there (its one-line listing reflowed):

    from fastapi import FastAPI
    from transformers import pipeline
    import torch
    app = FastAPI()
    # 加载合并后模型
    pipe = pipeline(
        "text-generation",
        model="./merged_qwen25_7b_domain",
        tokenizer=tokenizer,
        model_kwargs={"torch_dtype": torch.float16},
        device_map="auto"
    )
    @app.post("/generate")
    async def generate_text(data: dict):
        prompt = data["prompt"]
        outputs = pipe(
            prompt,
            max_new_tokens=512,
            do_sample=True,
            temperature=0.7,
            top_p=0.9
        )
        return {"response": outputs[0]["generated_text"]}

Where this copy differs, and why (everything else is as written, including the `async def` handler
that runs the blocking pipeline on the event loop, so requests are served one at a time):

1. `model` is the folder in SEED_MODEL_DIR (the same merged demo model the other contenders serve),
   not "./merged_qwen25_7b_domain".
2. `tokenizer` is loaded from that folder. The guide passes a `tokenizer` it made in its training
   section (`AutoTokenizer.from_pretrained(<base>)`) and never defines here; the merge saved that
   same tokenizer into the merged folder.
3. `max_new_tokens` is taken from the request (the guide's 512 when absent), so that every contender
   generates the benchmark's 128 tokens; and `min_new_tokens` likewise (absent: not passed), the
   pipeline's counterpart of vLLM's `ignore_eos`, so that every request generates exactly that many
   tokens instead of stopping at an end-of-sequence token.
"""

import os

import torch
from fastapi import FastAPI
from transformers import AutoTokenizer, pipeline

MODEL_DIR = os.environ["SEED_MODEL_DIR"]  # difference 1
tokenizer = AutoTokenizer.from_pretrained(MODEL_DIR)  # difference 2

app = FastAPI()
# 加载合并后模型
pipe = pipeline(
    "text-generation",
    model=MODEL_DIR,
    tokenizer=tokenizer,
    model_kwargs={"torch_dtype": torch.float16},
    device_map="auto",
)


@app.post("/generate")
async def generate_text(data: dict):
    prompt = data["prompt"]
    lengths = {"max_new_tokens": data.get("max_new_tokens", 512)}  # difference 3
    if "min_new_tokens" in data:
        lengths["min_new_tokens"] = data["min_new_tokens"]
    outputs = pipe(prompt, **lengths, do_sample=True, temperature=0.7, top_p=0.9)
    return {"response": outputs[0]["generated_text"]}
