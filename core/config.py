"""Settings, read once from the environment.

Every environment variable opqueue understands is read here and nowhere else.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from urllib.parse import urlsplit

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
REDIS_MODES = ("standalone", "sentinel", "cluster")
DAY = 24 * 60 * 60


@dataclass(frozen=True)
class Settings:
    """Everything configurable about one opqueue deployment."""

    redis_url: str = DEFAULT_REDIS_URL  # with sentinels: only its user, password and db count;
    # in cluster mode any one node of the cluster (the others are discovered)
    redis_mode: str = "standalone"  # "sentinel": the primary is found through sentinels;
    # "cluster": the store is a Redis Cluster, each project on one shard
    sentinels: tuple[str, ...] = ()  # host:port of each sentinel (sentinel mode)
    sentinel_master: str = ""  # the name the sentinels monitor the primary by
    store_min_replicas: int = 0  # every acknowledged write waits until this many replicas have it
    store_replication_timeout_seconds: float = 1.0  # how long a write waits for them
    store_outage_seconds: float = 30.0  # workers retry an unreachable store this long (failover)
    broker_url: str = ""  # empty: use the store's Redis (required in cluster mode)
    key_prefix: str = "opqueue"
    queue: str = "opqueue"
    retention_seconds: int = 30 * DAY
    max_wait_seconds: float = 60.0
    default_page_size: int = 50
    max_page_size: int = 1000
    list_scan_limit: int = 5000  # operations a filtered ListOperations call examines at most
    max_request_bytes: int = 1024 * 1024
    cancel_grace_seconds: float = 10.0
    supervise_interval_seconds: float = 0.5  # how often a worker checks the jobs it runs
    lease_seconds: float = 10.0  # a job whose worker stops renewing this long is taken over
    max_redeliveries: int = 3  # runs after a lost worker before the operation ends ABORTED
    broker_visibility_timeout_seconds: int = 3600  # Redis broker: unacked messages come back
    outbox_relay_after_seconds: float = 2.0  # a task message the API did not publish: relayed
    broker_delivery_limit: int = 20  # RabbitMQ: deliveries of one message before it is dropped
    job_modules: tuple[str, ...] = ("core.demo_jobs",)
    job_path: str = ""  # where job modules are found besides installed packages; "": cwd
    host: str = "127.0.0.1"
    port: int = 8000
    web_processes: int = 2
    web_threads: int = 128
    grpc_port: int = 50051  # the gRPC server (`python -m rpc`); it binds `host` too
    grpc_processes: int = 2  # gRPC server processes sharing grpc_port (SO_REUSEPORT)
    grpc_threads: int = 64  # concurrent gRPC calls per process (a parked WaitOperation holds one)
    log_level: str = "INFO"
    log_format: str = "text"  # or "json": one JSON object a line, with operation and job
    metrics_dir: str = ""  # prometheus-client's multiprocess directory (web/server.py sets one)
    api_keys_file: str = ""  # JSON keys file; see app/api_keys.py
    api_keys: str = ""  # the same JSON inline, where files are awkward
    insecure_allow_anonymous: bool = False  # no keys configured: serve anyone (development)
    rate_limit_per_second: int = 100  # per API key, across all API instances; 0: none
    refused_per_second: int = 10  # refused or anonymous calls a client address may make
    max_long_requests_per_key: int = 16  # :wait and :watch calls one key holds at once
    max_long_requests: int = 64  # ... all keys together; keep below web_threads
    long_request_lease_seconds: float = 30.0  # a slot a killed process held frees after this
    max_json_depth: int = 32
    max_input_bytes: int = 256 * 1024
    max_labels: int = 64
    max_queued_per_project: int = 100_000  # operations not yet done, per project; 0: none
    event_stream_max_length: int = 10_000  # entries kept per project's change stream
    max_watch_seconds: float = 300.0  # a :watch stream ends then; clients resume
    webhook_secrets: str = ""  # JSON {"project": "secret", "*": "default"}
    webhook_secrets_file: str = ""  # the same JSON in a file
    webhook_allowed_networks: tuple[str, ...] = ()  # private CIDRs webhooks may still reach
    webhook_timeout_seconds: float = 5.0  # total per delivery: connect, send, answer
    webhook_max_attempts: int = 8  # with exponential backoff from 1 s, capped at 5 minutes
    webhook_threads: int = 4  # concurrent deliveries per worker node
    data_dir: str = "var"  # where `make run` keeps the embedded Redis's data
    embedded_redis_port: int = 16379  # `make run`'s embedded Redis, unless it is taken

    def __post_init__(self) -> None:
        if self.redis_mode not in REDIS_MODES:
            raise ValueError(f"OPQUEUE_REDIS_MODE={self.redis_mode!r} is not one of "
                             f"{', '.join(REDIS_MODES)}")
        if self.redis_mode == "sentinel" and not (self.sentinels and self.sentinel_master):
            raise ValueError("OPQUEUE_REDIS_MODE=sentinel needs OPQUEUE_SENTINELS "
                             "(host:port,host:port,...) and OPQUEUE_SENTINEL_MASTER (the name "
                             "the sentinels monitor the primary by)")
        if self.redis_mode == "cluster" and self.broker_url in ("", self.redis_url):
            raise ValueError("OPQUEUE_REDIS_MODE=cluster needs OPQUEUE_BROKER_URL: Celery's "
                             "Redis transport cannot use a Redis Cluster, so name a RabbitMQ "
                             "(amqp://...) or a standalone Redis (redis://...) as the broker")
        if self.store_min_replicas < 0:
            raise ValueError("OPQUEUE_STORE_MIN_REPLICAS must be 0 or more")
        if "{" in self.key_prefix or "}" in self.key_prefix:
            raise ValueError("OPQUEUE_KEY_PREFIX must not contain braces: opqueue's keys use "
                             "them as each project's cluster hash tag")

    @property
    def effective_broker_url(self) -> str:
        """The Celery broker URL: the explicit one, or the Redis store's (through the
        sentinels in sentinel mode, as kombu's `sentinel://` URLs)."""
        if self.broker_url:
            return self.broker_url
        if self.redis_mode == "sentinel":
            parts = urlsplit(self.redis_url)
            credentials = parts.netloc.rpartition("@")[0]
            userinfo = f"{credentials}@" if credentials else ""
            return ";".join(f"sentinel://{userinfo}{address}{parts.path}"
                            for address in self.sentinels)
        return self.redis_url

    @property
    def redis_broker(self) -> bool:
        """True when the Celery broker is a Redis (`redis://`, `rediss://`, or the primary
        behind sentinels, `sentinel://`)."""
        return urlsplit(self.effective_broker_url).scheme in ("redis", "rediss", "sentinel")

    @property
    def broker_shares_store(self) -> bool:
        """True when the Celery broker is the store's own Redis."""
        return self.redis_broker and self.broker_url in ("", self.redis_url)

    @property
    def rabbitmq_broker(self) -> bool:
        """True when the broker is RabbitMQ (an AMQP 0-9-1 URL)."""
        return urlsplit(self.effective_broker_url).scheme in ("amqp", "amqps", "pyamqp")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from `OPQUEUE_*` variables plus `REDIS_URL` and `PORT`."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for spec in fields(cls):
            raw = env.get(_ENV_NAMES.get(spec.name, "OPQUEUE_" + spec.name.upper()))
            if raw is None or raw == "":
                continue
            values[spec.name] = _parse(spec.name, raw, type(getattr(_DEFAULTS, spec.name)))
        return cls(**values)  # type: ignore[arg-type]


_ENV_NAMES = {"redis_url": "REDIS_URL", "port": "PORT", "grpc_port": "GRPC_PORT",
              "metrics_dir": "PROMETHEUS_MULTIPROC_DIR"}


def redis_configured(environ: Mapping[str, str] | None = None) -> bool:
    """True when `REDIS_URL` names a Redis to use (else `make run` embeds one)."""
    env = os.environ if environ is None else environ
    return bool(env.get(_ENV_NAMES["redis_url"]))
_DEFAULTS = Settings()


def env_name(setting: str) -> str:
    """The environment variable that sets `setting`."""
    return _ENV_NAMES.get(setting, "OPQUEUE_" + setting.upper())


def _parse(name: str, raw: str, kind: type) -> object:
    try:
        if kind is tuple:
            return tuple(part.strip() for part in raw.split(",") if part.strip())
        if kind is bool:
            return raw.strip().lower() in {"1", "true", "yes", "on"}
        return kind(raw)
    except ValueError:
        raise ValueError(f"{env_name(name)}={raw!r} is not a valid {kind.__name__}") from None
