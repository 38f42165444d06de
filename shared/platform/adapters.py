"""The process's adapters, built lazily from settings on first use, and the factories that turn
settings into an adapter (the adapters themselves, in :mod:`shared.integration`, know no settings).

Functions call :func:`get_bus`, :func:`get_store` and :func:`get_claim_store`; nothing is
connected at import time, so a cold start pays only for what the function touches and tests can
set the environment first.
They are built from the *process* settings (the stage's), never from the settings of whichever
function happens to touch them first.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from shared.integration.bus import BusError, EventBus
from shared.integration.objectstore import ObjectStore
from shared.platform.settings import Settings, get_settings, process_settings

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from shared.integration.bus.kafka import KafkaBus
    from shared.integration.objectstore.cos import CosStore
    from shared.integration.state.claims import SqlClaimStore


def event_bus_from_settings(settings: Settings | None = None) -> EventBus:
    """The bus the settings choose: the embedded log under ``data_dir/bus``, or Kafka."""
    settings = settings or get_settings()
    if settings.bus == "kafka":
        return kafka_bus_from_settings(settings)
    from shared.integration.bus.embedded import EmbeddedBus

    return EmbeddedBus(settings.data_dir / "bus")


def kafka_bus_from_settings(settings: Settings, **overrides: Any) -> KafkaBus:
    """A :class:`~shared.integration.bus.kafka.KafkaBus` on the brokers and credentials of
    ``settings``; ``overrides`` go to the kafka-python clients."""
    from shared.integration.bus.kafka import KafkaBus

    if not settings.kafka_bootstrap_servers:
        raise BusError("the Kafka bus needs kafka_bootstrap_servers")
    key = settings.kafka_api_key.get_secret_value() if settings.kafka_api_key else None
    return KafkaBus(
        settings.kafka_bootstrap_servers,
        security_protocol=settings.kafka_security_protocol,
        sasl_mechanism=settings.kafka_sasl_mechanism,
        sasl_username=settings.kafka_sasl_username,
        sasl_password=key,
        ssl_cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None,
        client_id=settings.kafka_client_id,
        **{
            "session_timeout_ms": settings.kafka_session_timeout_ms,
            "heartbeat_interval_ms": settings.kafka_heartbeat_interval_ms,
            "max_poll_interval_ms": settings.kafka_max_poll_interval_ms,
            "request_timeout_ms": settings.kafka_request_timeout_ms,
            "connect_timeout_ms": settings.kafka_connect_timeout_ms,
            **overrides,
        },
    )


def object_store_from_settings(settings: Settings | None = None) -> ObjectStore:
    """The adapter ``settings.objectstore`` names; the SDK is imported only when COS is chosen."""
    settings = settings or get_settings()
    if settings.objectstore == "cos":
        return cos_store_from_settings(settings)
    from shared.integration.objectstore.local import LocalFolderStore

    return LocalFolderStore(settings.data_dir / "objects")


def cos_store_from_settings(settings: Settings) -> CosStore:
    """A :class:`~shared.integration.objectstore.cos.CosStore` on the endpoint and credentials
    of ``settings``: an IAM API key, or an HMAC key pair."""
    from shared.integration.objectstore.cos import CosStore

    if not settings.cos_endpoint:
        raise ValueError("the COS adapter needs RETAILFN_COS_ENDPOINT")
    if settings.cos_api_key is not None:
        return CosStore(
            settings.cos_endpoint,
            settings.cos_region,
            ibm_api_key_id=settings.cos_api_key.get_secret_value(),
            ibm_service_instance_id=settings.cos_instance_crn,
            ibm_auth_endpoint=settings.cos_auth_endpoint,
        )
    if settings.cos_hmac_access_key_id is None or settings.cos_hmac_secret_access_key is None:
        raise ValueError("the COS adapter needs an IAM API key or both HMAC keys")
    return CosStore(
        settings.cos_endpoint,
        settings.cos_region,
        aws_access_key_id=settings.cos_hmac_access_key_id.get_secret_value(),
        aws_secret_access_key=settings.cos_hmac_secret_access_key.get_secret_value(),
    )


_lock = threading.Lock()
_bus: EventBus | None = None
_store: ObjectStore | None = None


def get_bus() -> EventBus:
    global _bus
    if _bus is None:
        with _lock:
            if _bus is None:
                _bus = event_bus_from_settings(process_settings())
    return _bus


def get_store() -> ObjectStore:
    global _store
    if _store is None:
        with _lock:
            if _store is None:
                _store = object_store_from_settings(process_settings())
    return _store


def bucket(logical_name: str) -> str:
    """The physical name of a logical bucket (``state``, ``events-archive``, ...)."""
    return process_settings().bucket(logical_name)


def reset_adapters() -> None:
    """Close and forget the adapters; the next call builds them from the settings again."""
    global _bus, _store, _state_engine
    with _lock:
        if _bus is not None:
            _bus.close()
        if _store is not None:
            _store.close()
        if _state_engine is not None:
            _state_engine.dispose()
        _bus = _store = _state_engine = None


# --- the state database ------------------------------------------------------------------------

_state_engine: Engine | None = None


def state_engine_from_settings(settings: Settings | None = None) -> Engine:
    """An engine on the database the settings name (default: SQLite under ``data_dir``), with
    their pool size and timeouts. Nothing connects until first use."""
    from shared.integration.state.engine import create_state_engine

    settings = settings or get_settings()
    return create_state_engine(
        settings.effective_database_url(),
        pool_size=settings.database_pool_size,
        connect_timeout_s=settings.database_connect_timeout_s,
        statement_timeout_ms=settings.database_statement_timeout_ms,
    )


def get_state_engine() -> Engine:
    """The process's state engine, built on first use; :func:`reset_adapters` disposes of it.

    On SQLite (the embedded default, which needs no set-up) the first use also brings the schema
    to the newest revision, once per process. PostgreSQL's schema is the deploy's (``retailfn db
    upgrade``, which ``retailfn deploy`` runs): a process finding it missing raises
    :class:`~shared.integration.state.SchemaMissing`, saying so."""
    global _state_engine
    if _state_engine is None:
        with _lock:
            if _state_engine is None:
                engine = state_engine_from_settings(process_settings())
                if engine.dialect.name == "sqlite":
                    from shared.integration.state.migrate import upgrade

                    try:
                        upgrade(engine)  # idempotent; other processes serialize on the file
                    except BaseException:
                        engine.dispose()  # not kept: the next use tries again
                        raise
                _state_engine = engine
    return _state_engine


def get_claim_store(ttl: timedelta | None = None) -> SqlClaimStore:
    """Dedup and idempotency claims in the process's state database; ``ttl``: how long a claim
    lives after it was last written (default: a week)."""
    from shared.integration.state.claims import DEFAULT_TTL, SqlClaimStore

    return SqlClaimStore(get_state_engine(), DEFAULT_TTL if ttl is None else ttl)
