"""One typed settings object, built at start-up and passed down.

Nothing else in tether reads the environment. Values come from an optional dotenv-style
config file (``KEY=value`` lines, ``--config`` on the CLI), ``TETHER_*`` environment variables,
and explicit keyword arguments (the CLI's flags), in that order of increasing precedence.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from tether.errors import ConfigurationError

DEFAULT_DATA_DIR = Path(".tether")
DEFAULT_MEMBER_TOKEN_TTL = 900
DEFAULT_LAUNCH_TTL = 600
DEFAULT_SDK_REFRESH_TTL = 30 * 86400
MAX_SDK_REFRESH_TTL = 90 * 86400
DEFAULT_SIGNING_KEY_ACTIVATION_DELAY = 3600
DEFAULT_SIGNING_KEY_GRACE_PERIOD = 86400
DEFAULT_PUBLIC_BASE_URL = "http://127.0.0.1:8000"
KEYS_FILE = "keys.json"
ORIGIN_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://[^/?#\s]+$")


class Settings(BaseSettings):
    """tether's configuration. Secrets are ``SecretStr`` so they print masked."""

    model_config = SettingsConfigDict(
        env_prefix="TETHER_",
        extra="ignore",
    )

    data_dir: Path = DEFAULT_DATA_DIR
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default: SQLite file tether.db in data_dir"
    )
    queue_url: str | None = Field(
        default=None,
        description="huey queue: redis://… or sqlite path; default: SQLite in data_dir",
    )
    public_base_url: str = DEFAULT_PUBLIC_BASE_URL
    secret_key: SecretStr | None = Field(
        default=None, description="signs member tokens and hashes API keys"
    )
    vault_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="token-encryption keys, newest first (base64url, 32 bytes each)",
    )
    directory_file: Path | None = Field(
        default=None, description="data-source directory (YAML or JSON); default: bundled"
    )
    member_token_ttl: int = Field(default=DEFAULT_MEMBER_TOKEN_TTL, ge=30, le=86400)
    launch_ttl: int = Field(default=DEFAULT_LAUNCH_TTL, ge=30, le=3600)
    expiring_notice_days: int = Field(
        default=14,
        ge=0,
        le=365,
        description="days before a grant ends at its source that connection.expiring is sent",
    )
    sdk_refresh_ttl: int = Field(
        default=DEFAULT_SDK_REFRESH_TTL,
        ge=300,
        le=MAX_SDK_REFRESH_TTL,
        description="seconds an SDK refresh token lives, from getToken (not sliding)",
    )
    graphql_cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["*"],
        description="origins allowed to call /graphql from a browser (comma-separated; "
        "* for any, empty for none)",
    )
    http_timeout: float = Field(
        default=30.0, gt=0, le=600, description="seconds for any outbound HTTP read"
    )
    metrics_token: SecretStr | None = Field(
        default=None,
        description="bearer secret that opens GET /metrics on the API port (unset: /metrics "
        "answers 404)",
    )
    metrics_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="also serve this process's metrics, unauthenticated, on this port "
        "(for `tether worker`; bind it to a private address)",
    )
    metrics_host: str = Field(default="127.0.0.1", description="address for metrics_port")
    otlp_endpoint: str | None = Field(
        default=None,
        description="OTLP/HTTP collector base URL (e.g. http://collector:4318); unset: no tracing",
    )
    otel_service_name: str = "tether"
    rate_limit_api_key: int = Field(
        default=1200, ge=0, description="requests a minute per API key (0: no limit)"
    )
    rate_limit_member: int = Field(
        default=300, ge=0, description="requests a minute per member token (0: no limit)"
    )
    rate_limit_anonymous: int = Field(
        default=300,
        ge=0,
        description="requests a minute per client address without a credential: OAuth pages, "
        "member page entry, console sign-in (0: no limit)",
    )
    rate_limit_url: str | None = Field(
        default=None,
        description="where rate-limit counts and data sources' request budgets live (redis://…, "
        "shared by every process); default: the queue's Redis when TETHER_QUEUE_URL is "
        "redis://, else this process's memory",
    )
    sync_concurrency: int = Field(
        default=200,
        ge=1,
        le=5000,
        description="syncs a worker process keeps in flight at once (they wait on the sources: "
        "I/O, not CPU)",
    )
    sync_processes: int = Field(
        default=0,
        ge=0,
        le=64,
        description="child processes a worker parses, checks and serialises its syncs' pages in, "
        "beside the process doing the I/O (0: in its database threads; worth it only with cores "
        "to spare: docs/benchmarks.md)",
    )
    sync_store_process: bool = Field(
        default=True,
        description="on SQLite, a worker writes its syncs' pages from a store process of its own, "
        "off the interpreter lock of the process doing the I/O (docs/benchmarks.md, Sync); false: "
        "from its database threads. On PostgreSQL the threads always write: it takes many syncs' "
        "writes at once",
    )
    worker_nice: int = Field(
        default=10,
        ge=0,
        le=19,
        description="the scheduling niceness `tether worker` runs at (never lowered): on a host "
        "it shares with the API, the API's requests get the CPU first (docs/benchmarks.md, Fleet)",
    )
    sync_db_threads: int = Field(
        default=8,
        ge=1,
        le=64,
        description="threads a worker process's syncs use for the database (claims, page writes, "
        "outcomes); keep below the database's connection pool",
    )
    events_retention_days: int = Field(
        default=30, ge=1, le=3650, description="days the event log (GET /v1/events) keeps events"
    )
    webhook_timeout: float = Field(
        default=15.0, gt=0, le=120, description="seconds a webhook endpoint has to answer"
    )
    webhooks_allow_private: bool = Field(
        default=False,
        description="allow webhook URLs on loopback, private and link-local addresses, and "
        "plain http (on in `tether demo`; keep off in production: SSRF)",
    )
    signing_key_activation_delay: int = Field(
        default=DEFAULT_SIGNING_KEY_ACTIVATION_DELAY,
        ge=0,
        le=30 * 86400,
        description="seconds a new signing key (`tether keys signing rotate`) is published in "
        "the JWKS before tether signs with it, so sources that cache the JWKS can fetch it",
    )
    signing_key_grace_period: int = Field(
        default=DEFAULT_SIGNING_KEY_GRACE_PERIOD,
        ge=300,
        le=365 * 86400,
        description="seconds a replaced signing key stays in the JWKS after it stops signing",
    )
    export_ttl_hours: int = Field(
        default=24, ge=1, le=24 * 30, description="hours a Bulk Data export's files are kept"
    )
    export_file_bytes: int = Field(
        default=256 * 1024 * 1024,
        ge=1024,
        description="an export's NDJSON file is split once it passes this many bytes",
    )
    export_storage_url: str | None = Field(
        default=None,
        pattern=r"^s3://[a-z0-9][a-z0-9.\-]{1,62}(/[^?#]*)?$",
        description="where export files are kept: unset for data_dir/exports, or "
        "s3://bucket/prefix (S3-compatible object storage; endpoint and keys from the "
        "usual AWS_* variables, e.g. AWS_ENDPOINT_URL)",
    )
    sandbox_enabled: bool = True
    sandbox_admin_secret: SecretStr | None = None
    log_level: str = "INFO"
    log_json: bool = True
    demo: bool = False

    @field_validator("public_base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("public_base_url must be an absolute http(s) URL")
        return value.rstrip("/")

    @field_validator("vault_keys", "graphql_cors_origins", mode="before")
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("graphql_cors_origins")
    @classmethod
    def _check_origins(cls, value: list[str]) -> list[str]:
        """Each entry is ``*`` or a browser origin, ``scheme://host[:port]`` (any scheme, so
        that webviews' ``capacitor://localhost`` works too). A trailing slash is dropped:
        browsers never send one, so the entry would match nothing."""
        origins = []
        for entry in value:
            origin = entry.strip().rstrip("/")
            if origin != "*" and not ORIGIN_RE.match(origin):
                raise ValueError(
                    f"graphql_cors_origins: {entry!r} is not * or an origin "
                    "(scheme://host[:port], no path)"
                )
            origins.append(origin)
        return origins

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'tether.db').resolve()}"

    @property
    def resolved_queue_url(self) -> str:
        if self.queue_url:
            return self.queue_url
        return f"sqlite:///{(self.data_dir / 'queue.db').resolve()}"

    @property
    def shared_state_url(self) -> str | None:
        """The Redis every process shares rate-limit counts and source budgets through: the
        rate-limit URL, or the queue's when it is Redis; None (this process only) otherwise."""
        if self.rate_limit_url:
            return self.rate_limit_url
        queue = self.resolved_queue_url
        return queue if queue.startswith(("redis://", "rediss://")) else None

    @property
    def sandbox_url(self) -> str:
        return f"{self.public_base_url}/sandbox"

    @property
    def callback_url(self) -> str:
        return f"{self.public_base_url}/oauth/callback"

    @property
    def jwks_url(self) -> str:
        """tether's public signing keys (register this URL at a health system)."""
        return f"{self.public_base_url}/.well-known/jwks.json"

    def require_secrets(self) -> None:
        """Fail start-up clearly when a production key is missing."""
        missing = []
        if self.secret_key is None:
            missing.append("TETHER_SECRET_KEY")
        if not self.vault_keys:
            missing.append("TETHER_VAULT_KEYS")
        if missing:
            raise ConfigurationError(
                "missing required secrets: "
                + ", ".join(missing)
                + " (run `tether demo` for a self-configuring local instance)"
            )

    def with_demo_keys(self) -> Settings:
        """Return settings whose missing keys are filled from data_dir/keys.json.

        The file is created on first use with fresh random keys and mode 0600.
        """
        self.data_dir.mkdir(parents=True, exist_ok=True)
        path = self.data_dir / KEYS_FILE
        if path.exists():
            stored = json.loads(path.read_text())
        else:
            from tether.vault import generate_key

            stored = {
                "secret_key": secrets.token_urlsafe(32),
                "vault_keys": [generate_key()],
                "sandbox_admin_secret": secrets.token_urlsafe(16),
            }
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                json.dump(stored, handle)
        update: dict[str, Any] = {}
        if self.secret_key is None:
            update["secret_key"] = SecretStr(stored["secret_key"])
        if not self.vault_keys:
            update["vault_keys"] = [SecretStr(k) for k in stored["vault_keys"]]
        if self.sandbox_admin_secret is None:
            update["sandbox_admin_secret"] = SecretStr(stored["sandbox_admin_secret"])
        return self.model_copy(update=update)


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings from a config file, the environment and explicit overrides."""
    clean = {k: v for k, v in overrides.items() if v is not None}
    if config_file is not None and not config_file.exists():
        raise ConfigurationError(f"config file not found: {config_file}")
    return Settings(_env_file=config_file, **clean)


def add_demo_vault_key(settings: Settings) -> None:
    """Prepend a fresh vault key to a demo instance's keys file (for ``keys rotate``)."""
    from tether.vault import generate_key

    path = settings.data_dir / KEYS_FILE
    if not path.exists():
        raise ConfigurationError(f"{path} does not exist: --generate is for demo instances")
    stored = json.loads(path.read_text())
    stored["vault_keys"] = [generate_key(), *stored["vault_keys"]]
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(stored, handle)
    os.replace(tmp, path)
