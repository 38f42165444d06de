"""One settings model for the whole service, read lazily from the environment.

Nothing here runs at import time: call :func:`get_settings` where a value is needed, so that a
test (or the runtime, after reading ``serverless.yaml``) can set the environment first.
Secrets are ``SecretStr`` so that they never show up in logs, reprs or error messages.

There are two levels. The *process* settings (the environment, overlaid by the stage's
``serverless.yaml`` environment once the CLI or runtime has read it) choose the adapters. While a
function runs, the runtime makes that function's own settings *current* (the same, overlaid by
its ``environment``), so that two functions in one process each see their own values.
:func:`get_settings` returns the current function's settings, else the process's.
"""

from __future__ import annotations

import atexit
import os
import tempfile
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, quote, urlencode, urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "RETAILFN_"


LOCAL_STAGE = "local"
"""The one stage that may run on the embedded adapters and trust the dev issuer."""
DEV_ISSUER = "http://127.0.0.1/dev-issuer"
"""The local dev token issuer (:mod:`shared.platform.auth_dev`); never trusted outside ``local``."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RETAILFN_", extra="ignore", frozen=True)

    stage: str = Field("local", pattern=r"^[a-z][a-z0-9-]{0,31}$")
    data_dir: Path = Path(".retailfn")
    """Root of the embedded adapters' state (event log, object folder). Durable across restarts."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    stock_batch_limit: int = Field(1000, ge=1, le=100_000)
    """Lines per ``POST /v1/partners/{partner}/stock`` at most; more is a 413."""
    stock_max_future_skew_s: float = Field(300, ge=0, le=86_400)
    """How far past the time it is received a stock report's ``reported_at`` may be (the
    sender's clock running fast); later is refused (422 over HTTP, dead letter otherwise), since
    the view keeps the newest report per location and one from the future would hide the rest."""
    crosssell_min_support: float = Field(0.002, ge=0, le=1)
    crosssell_min_count: int = Field(2, ge=1)
    crosssell_min_lift: float = Field(1.0, ge=0)
    crosssell_half_life_days: float | None = Field(None, gt=0)
    """Baskets lose half their weight in this many days (unset: no decay, exact counts)."""
    """A pair bought together no more often than chance (lift <= 1) is no cross-sell."""
    recommend_stock_ttl_s: float = Field(1.0, ge=0, le=60)
    """How old a stock figure ``recommend`` may reuse (0: read the view on every request)."""
    experiments: str = ""
    """A/B experiments for ``recommend``, as JSON or YAML (see shared/crosssell/rules/experiments.py)."""
    archive_max_records: int = Field(10_000, ge=1, le=1_000_000)
    """Records per event-archive object at most; files also roll when the record hour changes."""

    # Event bus
    bus: Literal["embedded", "kafka"] = "embedded"
    kafka_bootstrap_servers: str | None = None
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    kafka_sasl_username: str = "token"
    """IBM Event Streams takes the literal user ``token`` and the API key as the password."""
    kafka_api_key: SecretStr | None = None
    kafka_client_id: str = "retailfn"
    kafka_ssl_cafile: Path | None = None
    kafka_session_timeout_ms: int = Field(45_000, ge=1_000)
    kafka_heartbeat_interval_ms: int = Field(3_000, ge=100)
    kafka_commit_interval_ms: int = Field(1_000, ge=0, le=60_000)
    """How often a Kafka trigger commits the offsets it finished (0: after every poll)."""
    kafka_max_poll_interval_ms: int = Field(300_000, ge=1_000)
    """A consumer that takes longer than this between polls leaves its group; keep it above the
    slowest function times the batch size."""
    kafka_request_timeout_ms: int = Field(30_000, ge=1_000)
    """How long one request to a broker may take before the client gives up on it."""
    kafka_connect_timeout_ms: int = Field(10_000, ge=100)
    """How long to wait for a broker at all: the first connection (``bootstrap_timeout_ms``) and,
    in ``send``, the topic's metadata (``max_block_ms``). A publish to an unreachable broker
    fails with ``BusUnavailable`` after about this long."""

    # Object store
    objectstore: Literal["local", "cos"] = "local"
    cos_endpoint: str | None = None
    cos_region: str = "us-south"
    cos_api_key: SecretStr | None = None
    cos_instance_crn: str | None = None
    cos_auth_endpoint: str = "https://iam.cloud.ibm.com/identity/token"
    cos_hmac_access_key_id: SecretStr | None = None
    cos_hmac_secret_access_key: SecretStr | None = None
    bucket_prefix: str = Field("", pattern=r"^[a-z0-9-]{0,20}$")
    """Prepended to every logical bucket name, so that stages can share one COS instance."""

    # Auth (shared/platform/auth.py): partner API keys always; OIDC bearer tokens when a JWKS is known
    jwt_issuer: str | None = None
    """The ``iss`` bearer tokens must carry, e.g. App ID's
    ``https://<region>.appid.cloud.ibm.com/oauth/v4/<tenant-id>``."""
    jwt_audience: str | None = None
    """The ``aud`` bearer tokens must carry (App ID: the application's client id)."""
    jwt_jwks_url: str | None = None
    """The issuer's public keys: an http(s) URL (App ID: ``<issuer>/publickeys``), a ``file://``
    URL or a path. Outside the local stage, bearer tokens are refused unless this, the issuer and
    the audience are all set; on local, unset means the dev issuer's keys."""
    jwt_partner_claim: str = Field("partner_id", min_length=1)
    """The token claim that names the partner a token acts for; absent for members."""
    jwt_leeway_s: int = Field(30, ge=0, le=300)
    """Clock skew tolerated on ``exp``, ``iat`` and ``nbf``."""
    jwks_cache_ttl_s: int = Field(300, ge=10)
    """How long fetched JWKS keys are trusted before they are fetched again."""
    api_key_cache_ttl_s: float = Field(30.0, ge=0, le=600)
    """How long a looked-up API key is kept in memory; a revocation takes effect within it."""

    allow_embedded: bool = False
    """Let a stage other than ``local`` run on the embedded bus or the folder store (a staging
    box without Kafka, say). Without it such a stage refuses to start (``retailfn --allow-embedded``
    sets it too). Dev credentials stay refused outside ``local`` either way."""
    metrics_created: bool = False
    """Also expose the ``*_created`` series of counters and histograms on ``/metrics``."""

    @field_validator("crosssell_half_life_days", mode="before")
    @classmethod
    def _empty_is_unset(cls, v: object) -> object:
        return None if isinstance(v, str) and not v.strip() else v

    @model_validator(mode="after")
    def _real_adapters_are_configured(self) -> Settings:
        if self.bus == "kafka" and not self.kafka_bootstrap_servers:
            raise ValueError("RETAILFN_BUS=kafka needs RETAILFN_KAFKA_BOOTSTRAP_SERVERS")
        if self.kafka_security_protocol.startswith("SASL") and self.kafka_api_key is None:
            raise ValueError(f"{self.kafka_security_protocol} needs RETAILFN_KAFKA_API_KEY")
        if self.objectstore == "cos":
            if not self.cos_endpoint:
                raise ValueError("RETAILFN_OBJECTSTORE=cos needs RETAILFN_COS_ENDPOINT")
            hmac = (self.cos_hmac_access_key_id, self.cos_hmac_secret_access_key)
            if self.cos_api_key is None and None in hmac:
                raise ValueError(
                    "RETAILFN_OBJECTSTORE=cos needs RETAILFN_COS_API_KEY (IAM) or both "
                    "RETAILFN_COS_HMAC_ACCESS_KEY_ID and RETAILFN_COS_HMAC_SECRET_ACCESS_KEY"
                )
        return self

    def bucket(self, logical_name: str) -> str:
        """The physical bucket name for a logical one (``state`` -> ``prod-state``)."""
        return f"{self.bucket_prefix}-{logical_name}" if self.bucket_prefix else logical_name

    # State database (shared/integration/state): SQLite under data_dir unless a URL is given
    database_url: SecretStr | None = None
    """``postgresql://user:password@host:port/db?sslmode=verify-full&sslrootcert=/path/ca.crt``
    (``postgres://`` as IBM Cloud Databases writes it, too), or ``sqlite:///path``. Unset: the
    SQLite file ``{data_dir}/state.db``. A secret: it carries the password."""
    database_pool_size: int = Field(5, ge=1, le=100)
    """Connections one process keeps to the database at most (no overflow above it)."""
    database_connect_timeout_s: float = Field(5, gt=0, le=120)
    """How long to wait for a connection, before the database counts as unavailable."""
    database_statement_timeout_ms: int = Field(10_000, ge=1, le=3_600_000)
    """How long one statement may run (PostgreSQL ``statement_timeout``; SQLite's busy timeout)."""

    database_ca_pem: str | None = Field(None, repr=False)
    """The PostgreSQL server's CA certificate, PEM text (IBM Cloud Databases: the instance's CA,
    as ``infra/`` puts it into the apps' database secret). Code Engine hands a secret's keys to an
    app as environment variables, and libpq reads a CA only from a file, so it is written to a
    private temporary file (mode 0600) once per process, and ``sslrootcert=<that file>`` (and
    ``sslmode=verify-full`` if the URL names no ``sslmode``) is added to a PostgreSQL URL that
    names no ``sslrootcert`` of its own. Ignored for SQLite."""

    @field_validator("database_ca_pem", mode="after")
    @classmethod
    def _a_pem_certificate(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        if "-----BEGIN CERTIFICATE-----" not in v:
            raise ValueError("not a PEM certificate (no -----BEGIN CERTIFICATE----- line)")
        return v

    def effective_database_url(self) -> str:
        """The state database's URL, with its password: pass it to the engine, never log it."""
        if self.database_url is not None:
            url = self.database_url.get_secret_value()
            if self.database_ca_pem is not None:
                url = with_root_certificate(url, self.database_ca_pem)
            return url
        return f"sqlite:///{self.data_dir.resolve() / 'state.db'}"


class SettingsError(ValueError):
    """A ``RETAILFN_*`` value is wrong. The message is one line naming each variable, where it
    came from and what is allowed (never the value of a secret)."""


def build_settings(
    overlay: Mapping[str, str] | None = None, *, source: str = "serverless.yaml"
) -> Settings:
    """Settings from the process environment with ``overlay`` (``RETAILFN_*`` names, e.g. a
    function's environment in ``serverless.yaml``) on top; other names in it are ignored."""
    # Raw strings, which pydantic coerces to each field's type as it does environment values.
    values: dict[str, Any] = {}
    for name, value in (overlay or {}).items():
        field = name[len(ENV_PREFIX) :].lower() if name.upper().startswith(ENV_PREFIX) else ""
        if field in Settings.model_fields:
            values[field] = value
    try:
        # Init values win over the environment in pydantic-settings, so this is the overlay.
        return Settings(**values)
    except ValidationError as exc:
        raise SettingsError(_describe(exc, set(values), source)) from None


def _describe(exc: ValidationError, overlaid: set[str], source: str) -> str:
    problems = []
    for err in exc.errors(include_url=False):
        msg = err["msg"].removeprefix("Value error, ")
        if not err["loc"]:  # a rule across fields; its message names the variables
            problems.append(msg)
            continue
        field = str(err["loc"][0])
        where = source if field in overlaid else "the environment"
        secret = (
            "SecretStr" in str(Settings.model_fields[field].annotation)
            if field in Settings.model_fields
            else False
        )
        shown = "" if secret or "input" not in err else f"={err['input']!s:.80}"
        problems.append(f"{ENV_PREFIX}{field.upper()}{shown} (from {where}): {msg}")
    return "; ".join(problems)


_lock = threading.Lock()
_process: Settings | None = None
_current: ContextVar[Settings | None] = ContextVar("retailfn_settings", default=None)


def process_settings() -> Settings:
    """The process's settings (built from the environment on first use): what the adapters use."""
    settings = _process
    if settings is None:
        with _lock:
            settings = _process
            if settings is None:
                settings = build_settings()
                _set_process(settings)
    return settings


def _set_process(settings: Settings | None) -> None:
    global _process
    _process = settings


def install_process_settings(settings: Settings) -> None:
    """Make ``settings`` the process's (the runtime does, once the stage environment is known)."""
    with _lock:
        _set_process(settings)


def get_settings() -> Settings:
    """The settings of the function running now, else the process's."""
    current = _current.get()
    return current if current is not None else process_settings()


def enter_settings(settings: Settings) -> Token[Settings | None]:
    """Make ``settings`` current in this context (a request, an event delivery)."""
    return _current.set(settings)


def exit_settings(token: Token[Settings | None]) -> None:
    _current.reset(token)


@contextmanager
def using_settings(settings: Settings) -> Iterator[Settings]:
    """:func:`get_settings` returns ``settings`` inside the block."""
    token = enter_settings(settings)
    try:
        yield settings
    finally:
        exit_settings(token)


def reset_settings() -> None:
    """Forget the process settings; the next :func:`get_settings` reads the environment again."""
    with _lock:
        _set_process(None)


# --- the state database's CA certificate (RETAILFN_DATABASE_CA_PEM) ------------------------------

_ca_lock = threading.Lock()
_ca_files: dict[str, Path] = {}


def _remove_ca_files() -> None:
    for path in _ca_files.values():
        path.unlink(missing_ok=True)


def database_ca_file(pem: str) -> Path:
    """A private file (mode 0600, under the temporary folder) holding ``pem``; one per process
    and certificate, removed when the process exits."""
    with _ca_lock:
        path = _ca_files.get(pem)
        if path is None or not path.is_file():
            fd, name = tempfile.mkstemp(prefix="retailfn-database-ca-", suffix=".pem")
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(pem if pem.endswith("\n") else pem + "\n")
            if not _ca_files:
                atexit.register(_remove_ca_files)
            path = _ca_files[pem] = Path(name)
        return path


def with_root_certificate(url: str, pem: str) -> str:
    """``url`` with ``sslrootcert`` naming a file that holds ``pem`` (and ``sslmode=verify-full``
    if it names no ``sslmode``), for a PostgreSQL URL without an ``sslrootcert`` of its own;
    any other URL unchanged."""
    scheme = url.partition(":")[0].partition("+")[0].lower()
    query = parse_qs(urlsplit(url).query)
    if scheme not in ("postgresql", "postgres") or "sslrootcert" in query:
        return url
    added = {"sslrootcert": str(database_ca_file(pem))}
    if "sslmode" not in query:
        added["sslmode"] = "verify-full"
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}{urlencode(added, quote_via=quote, safe='/')}"
