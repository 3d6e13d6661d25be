"""Settings for a CyberMesh node, read from the environment (12-factor).

Defaults are safe on a laptop (SQLite file, DEBUG off unless asked, in-memory channel layer).
Production mode (``CYBERMESH_ENV=production``) refuses unsafe values at start-up through the
system checks in ``cybermesh/checks.py``: one line per problem, non-zero exit.
Every key is documented once in ``docs/configuration.md``.
"""

from __future__ import annotations

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
# Any key can also be given as <KEY>_FILE naming a file that holds the value (Docker secrets).
env = environ.FileAwareEnv()

# --- Mode -------------------------------------------------------------------------------
CYBERMESH_ENV = env.str("CYBERMESH_ENV", default="development")
PRODUCTION = CYBERMESH_ENV == "production"
DEVELOPMENT_SECRET_KEY = "insecure-development-key-do-not-use-in-production"  # noqa: S105
SECRET_KEY = env.str("SECRET_KEY", default=DEVELOPMENT_SECRET_KEY).strip()
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=[] if PRODUCTION else ["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
DATA_DIR = Path(env.str("CYBERMESH_DATA_DIR", default=str(BASE_DIR / "var")))

# --- Node identity and topology -----------------------------------------------------------
NODE_ID = env.str("NODE_ID", default="node-0")
NODE_TYPE = env.str("NODE_TYPE", default="validator")  # validator | observer
NODE_KEY_PATH = env.str("NODE_KEY_PATH", default="")
# Path of the genesis file: chain id, validators (id, key, power, address), consensus parameters.
CLUSTER_TOPOLOGY = env.str("CLUSTER_TOPOLOGY", default="")
# Optional cross-check: when set it must equal the quorum power the genesis validator set implies.
QUORUM_SIZE = env.int("QUORUM_SIZE", default=0)

# --- Peer-to-peer -----------------------------------------------------------------------
P2P_LISTEN_HOST = env.str("P2P_LISTEN_HOST", default="127.0.0.1")
P2P_LISTEN_PORT = env.int("P2P_LISTEN_PORT", default=7000)
P2P_TOPICS = env.dict("P2P_TOPICS", default={
    "proposal": "consensus/proposal",
    "vote": "consensus/vote",
    "viewchange": "consensus/viewchange",
    "newview": "consensus/newview",
    "heartbeat": "consensus/heartbeat",
    "evidence": "consensus/evidence",
    "blocksync": "consensus/blocksync",
})
P2P_MAX_MESSAGE_SIZE = env.int("P2P_MAX_MESSAGE_SIZE", default=4 * 1024 * 1024)
# Dial peers from this local address (multi-homed hosts; the partition tests use 127.0.0.x).
P2P_DIAL_SOURCE_HOST = env.str("P2P_DIAL_SOURCE_HOST", default="")
# Behind by more than this many blocks: catch up through the ledger instead of consensus sync.
NODE_CATCHUP_LAG = env.int("NODE_CATCHUP_LAG", default=16)
# Tests only: a file where the worker journals every verified vote it receives.
NODE_VOTE_JOURNAL = env.str("NODE_VOTE_JOURNAL", default="")
ALLOWED_IPS = env.list("ALLOWED_IPS", default=[] if PRODUCTION else ["127.0.0.1/32", "::1/128"])
TRUSTED_P2P_PEERS = env.list("TRUSTED_P2P_PEERS", default=[])
# Observers the validators accept for block sync only: "id:<64 hex public key>" entries.
P2P_OBSERVERS = env.list("P2P_OBSERVERS", default=[])

# --- Consensus (integers only: milliseconds, basis points) -------------------------------
CONSENSUS_BASE_TIMEOUT_MS = env.int("CONSENSUS_BASE_TIMEOUT_MS", default=1000)
CONSENSUS_MIN_TIMEOUT_MS = env.int("CONSENSUS_MIN_TIMEOUT_MS", default=250)
CONSENSUS_MAX_TIMEOUT_MS = env.int("CONSENSUS_MAX_TIMEOUT_MS", default=30000)
CONSENSUS_TIMEOUT_INCREASE_BPS = env.int("CONSENSUS_TIMEOUT_INCREASE_BPS", default=15000)
CONSENSUS_TIMEOUT_DECREASE_MS = env.int("CONSENSUS_TIMEOUT_DECREASE_MS", default=50)
CONSENSUS_HEARTBEAT_INTERVAL_MS = env.int("CONSENSUS_HEARTBEAT_INTERVAL_MS", default=500)
CONSENSUS_MAX_BLOCK_TXS = env.int("CONSENSUS_MAX_BLOCK_TXS", default=2000)
CONSENSUS_MAX_BLOCK_BYTES = env.int("CONSENSUS_MAX_BLOCK_BYTES", default=2 * 1024 * 1024)
CONSENSUS_MAX_CLOCK_SKEW_MS = env.int("CONSENSUS_MAX_CLOCK_SKEW_MS", default=5000)
CONSENSUS_REPLAY_WINDOW_MS = env.int("CONSENSUS_REPLAY_WINDOW_MS", default=300000)
CONSENSUS_MESSAGE_CACHE_SIZE = env.int("CONSENSUS_MESSAGE_CACHE_SIZE", default=100000)

# --- Mempool -------------------------------------------------------------------------------
# JSON allowlist of producer keys, the kinds each may submit and their rate limits.
MEMPOOL_PRODUCERS_PATH = env.str("MEMPOOL_PRODUCERS_PATH", default="")
MEMPOOL_MAX_TXS = env.int("MEMPOOL_MAX_TXS", default=100_000)
MEMPOOL_TTL_MS = env.int("MEMPOOL_TTL_MS", default=30 * 60 * 1000)
MEMPOOL_CHAIN_ID = env.str("MEMPOOL_CHAIN_ID", default="")
if not MEMPOOL_CHAIN_ID and CLUSTER_TOPOLOGY:
    # Transactions are signed for one chain; take its id from genesis (checks report a bad file).
    import json as _json

    try:
        MEMPOOL_CHAIN_ID = str(_json.loads(Path(CLUSTER_TOPOLOGY).read_text()).get("chain_id", ""))
    except (OSError, ValueError, AttributeError):
        MEMPOOL_CHAIN_ID = ""

# --- Encryption at rest ---------------------------------------------------------------------
# AES-256-GCM key files (manage.py keygen --kind aead), current first, then older keys that
# still decrypt until `manage.py reencrypt` has moved every row to the current one.
AT_REST_KEYS = env.list("AT_REST_KEYS", default=[])

# --- Analyst console -----------------------------------------------------------------------
# Analyst actions that change shared state are signed policy transactions: the web process
# signs them with this producer key (allowlisted in MEMPOOL_PRODUCERS_PATH, kind "policy").
CONSOLE_SIGNING_KEY_PATH = env.str("CONSOLE_SIGNING_KEY_PATH", default="")
CONSOLE_PRODUCER_ID = env.str("CONSOLE_PRODUCER_ID", default="soc-console")
CONSOLE_SLA_HOURS = env.dict("CONSOLE_SLA_HOURS", cast={"value": int}, default={})
CONSOLE_CASE_MIN_SEVERITY = env.int("CONSOLE_CASE_MIN_SEVERITY", default=7)
CONSOLE_QUARANTINE_HOURS = env.int("CONSOLE_QUARANTINE_HOURS", default=24)
CONSOLE_SYNC_BATCH_BLOCKS = env.int("CONSOLE_SYNC_BATCH_BLOCKS", default=500)
CONSOLE_SYNC_ON_VIEW = env.bool("CONSOLE_SYNC_ON_VIEW", default=True)
CONSOLE_LIVE_POLL_MS = env.int("CONSOLE_LIVE_POLL_MS", default=1000)
CONSOLE_REQUIRE_2FA = env.bool("CONSOLE_REQUIRE_2FA", default=False)

# --- Ledger and state ---------------------------------------------------------------------
STATE_SNAPSHOT_INTERVAL = env.int("STATE_SNAPSHOT_INTERVAL", default=100)
HTTP_PORT = env.int("HTTP_PORT", default=8000)

# --- Audit and logging ------------------------------------------------------------------
AUDIT_LOG_PATH = env.str("AUDIT_LOG_PATH", default="")  # optional JSON-lines mirror of the DB chain
AUDIT_SIGNING_KEY = env.str("AUDIT_SIGNING_KEY", default="")  # path of the HMAC keyring file
AUDIT_HEAD_INTERVAL = env.int("AUDIT_HEAD_INTERVAL", default=100)  # entries between signed heads
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO").upper()
LOG_FORMAT = env.str("LOG_FORMAT", default="json")  # json | console

# --- Kafka ------------------------------------------------------------------------------
KAFKA_BOOTSTRAP_SERVERS = env.str("KAFKA_BOOTSTRAP_SERVERS", default="")
KAFKA_SECURITY_PROTOCOL = env.str("KAFKA_SECURITY_PROTOCOL", default="PLAINTEXT")
KAFKA_SASL_MECHANISM = env.str("KAFKA_SASL_MECHANISM", default="")
KAFKA_SASL_USERNAME = env.str("KAFKA_SASL_USERNAME", default="")
KAFKA_SASL_PASSWORD = env.str("KAFKA_SASL_PASSWORD", default="").strip()
KAFKA_SSL_CA_LOCATION = env.str("KAFKA_SSL_CA_LOCATION", default="")
KAFKA_SSL_CERTIFICATE_LOCATION = env.str("KAFKA_SSL_CERTIFICATE_LOCATION", default="")
KAFKA_SSL_KEY_LOCATION = env.str("KAFKA_SSL_KEY_LOCATION", default="")
KAFKA_CONSUMER_GROUP = env.str("KAFKA_CONSUMER_GROUP", default=f"cybermesh-{NODE_ID}")
KAFKA_SESSION_TIMEOUT_MS = env.int("KAFKA_SESSION_TIMEOUT_MS", default=45000)
KAFKA_MAX_POLL_INTERVAL_MS = env.int("KAFKA_MAX_POLL_INTERVAL_MS", default=300000)
KAFKA_CLIENT_ID = env.str("KAFKA_CLIENT_ID", default=f"cybermesh-{NODE_ID}")
KAFKA_SSL_KEY_PASSWORD = env.str("KAFKA_SSL_KEY_PASSWORD", default="").strip()
KAFKA_SSL_ENDPOINT_IDENTIFICATION = env.str("KAFKA_SSL_ENDPOINT_IDENTIFICATION", default="https")
INGEST_BATCH_SIZE = env.int("INGEST_BATCH_SIZE", default=500)
INGEST_POLL_TIMEOUT_MS = env.int("INGEST_POLL_TIMEOUT_MS", default=500)
INGEST_PAUSE_MS = env.int("INGEST_PAUSE_MS", default=1000)
INGEST_RETRY_BASE_S = env.float("INGEST_RETRY_BASE_S", default=0.2)
INGEST_RETRY_MAX_S = env.float("INGEST_RETRY_MAX_S", default=10.0)
INGEST_DLQ_TIMEOUT_S = env.float("INGEST_DLQ_TIMEOUT_S", default=30.0)
NOTIFICATIONS_QUEUE = env.str("NOTIFICATIONS_QUEUE", default="")
NOTIFICATIONS_BATCH_SIZE = env.int("NOTIFICATIONS_BATCH_SIZE", default=2000)
NOTIFICATIONS_MESSAGE_TIMEOUT_MS = env.int("NOTIFICATIONS_MESSAGE_TIMEOUT_MS", default=30000)
NOTIFICATIONS_MAX_RETRIES = env.int("NOTIFICATIONS_MAX_RETRIES", default=8)
NOTIFICATIONS_RETRY_BASE_S = env.float("NOTIFICATIONS_RETRY_BASE_S", default=1.0)
NOTIFICATIONS_RETRY_MAX_S = env.float("NOTIFICATIONS_RETRY_MAX_S", default=60.0)
NOTIFICATIONS_DRAIN_BUDGET_S = env.float("NOTIFICATIONS_DRAIN_BUDGET_S", default=20.0)
NOTIFICATIONS_SWEEP_INTERVAL_S = env.float("NOTIFICATIONS_SWEEP_INTERVAL_S", default=5.0)
NOTIFICATIONS_LOCK_TIMEOUT_S = env.float("NOTIFICATIONS_LOCK_TIMEOUT_S", default=300.0)
KAFKA_TOPICS = {
    "anomalies": env.str("KAFKA_TOPIC_ANOMALIES", default="ai.anomalies.v1"),
    "evidence": env.str("KAFKA_TOPIC_EVIDENCE", default="ai.evidence.v1"),
    "policy": env.str("KAFKA_TOPIC_POLICY", default="ai.policy.v1"),
    "commits": env.str("KAFKA_TOPIC_COMMITS", default="control.commits.v1"),
    "reputation": env.str("KAFKA_TOPIC_REPUTATION", default="control.reputation.v1"),
    "policy_updates": env.str("KAFKA_TOPIC_POLICY_UPDATES", default="control.policy.v1"),
    "evidence_updates": env.str("KAFKA_TOPIC_EVIDENCE_UPDATES", default="control.evidence.v1"),
}

# --- Django -----------------------------------------------------------------------------
INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "cybermesh.apps.CyberMeshConfig",
    "apps.audit",
    "apps.keys",
    "apps.validators",
    "apps.ledger",
    "apps.state",
    "apps.evidence",
    "apps.mempool",
    "apps.node",
    "apps.governance",
    "apps.ingest",
    "apps.notifications",
    "apps.console",
    "apps.api",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "cybermesh.urls"
WSGI_APPLICATION = "cybermesh.wsgi.application"
ASGI_APPLICATION = "cybermesh.asgi.application"

TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "DIRS": [BASE_DIR / "templates"],
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": [
        "django.template.context_processors.request",
        "django.contrib.auth.context_processors.auth",
        "django.contrib.messages.context_processors.messages",
    ]},
}]

DATABASES = {"default": env.db_url(
    "DATABASE_URL", default=f"sqlite:///{DATA_DIR / f'{NODE_ID}.sqlite3'}")}
_ENGINE = DATABASES["default"]["ENGINE"]
if _ENGINE in ("django.db.backends.postgresql", "django_cockroachdb"):
    # Every consensus-critical write relies on SERIALIZABLE; CockroachDB only offers it by
    # default, PostgreSQL must be asked. Serialization failures are retried by the caller.
    from psycopg import IsolationLevel

    DATABASES["default"].setdefault("OPTIONS", {})["isolation_level"] = IsolationLevel.SERIALIZABLE
    # A client that dies idle inside a serializable transaction would otherwise hold its
    # predicate locks (shared server memory) until TCP notices; bound it.
    _idle_ms = env.int("DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS", default=60_000)
    if _idle_ms:
        DATABASES["default"]["OPTIONS"]["options"] = (
            f"-c idle_in_transaction_session_timeout={_idle_ms}")
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
elif _ENGINE == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"transaction_mode": "IMMEDIATE", "timeout": 20,
         "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"})

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Serve assets straight from the apps in development; production serves collectstatic output.
WHITENOISE_USE_FINDERS = not PRODUCTION
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=1024 * 1024)

# --- Redis, channels, celery ------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
REDIS_PASSWORD = env.str("REDIS_PASSWORD", default="").strip()
if REDIS_URL and REDIS_PASSWORD:
    # Kept out of the URL in the environment so the password can come from a secrets file.
    from urllib.parse import quote

    _scheme, _rest = REDIS_URL.split("://", 1)
    REDIS_URL = f"{_scheme}://:{quote(REDIS_PASSWORD, safe='')}@{_rest.split('@')[-1]}"
if REDIS_URL:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer",
                                  "CONFIG": {"hosts": [REDIS_URL]}}}
    # Throttle counters and permission caches shared by every web process of the node.
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                          "LOCATION": REDIS_URL}}
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL or "memory://")
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)

# --- REST API ---------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apps.api.tokens.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "EXCEPTION_HANDLER": "apps.api.errors.problem_exception_handler",
}
# Per-client rates by bucket ("read", "write", "anon"), e.g. API_THROTTLE_RATES=read=600/min
API_THROTTLE_RATES = env.dict("API_THROTTLE_RATES", default={})
API_PERMISSION_CACHE_SECONDS = env.int("API_PERMISSION_CACHE_SECONDS", default=5)
# Optional mutual TLS through a TLS-terminating proxy (docs/api.md): the proxies whose client-
# certificate headers are believed (empty: off), the headers, and subject -> username (JSON).
API_MTLS_TRUSTED_PROXIES = env.list("API_MTLS_TRUSTED_PROXIES", default=[])
API_MTLS_SUBJECT_HEADER = env.str("API_MTLS_SUBJECT_HEADER", default="X-SSL-Client-S-DN")
API_MTLS_VERIFY_HEADER = env.str("API_MTLS_VERIFY_HEADER", default="X-SSL-Client-Verify")
API_MTLS_CLIENTS = env.json("API_MTLS_CLIENTS", default={})
READY_MAX_STATUS_AGE_SECONDS = env.int("READY_MAX_STATUS_AGE_SECONDS", default=30)
METRICS_ALLOWED_NETWORKS = env.list("METRICS_ALLOWED_NETWORKS",
                                    default=["127.0.0.0/8", "::1/128"])
SPECTACULAR_SETTINGS = {
    "TITLE": "CyberMesh control plane API",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Production hardening (only switched on in production mode) ---------------------------
if PRODUCTION:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

from cybermesh.logging import build_logging_config  # noqa: E402

LOGGING = build_logging_config(level=LOG_LEVEL, fmt=LOG_FORMAT)
