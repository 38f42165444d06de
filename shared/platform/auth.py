"""Who is calling, and may they: partner API keys and OIDC bearer tokens (App ID).

A function authenticates its own requests (on Code Engine there is no gateway in front)::

    principal = authenticate(request, scopes={"stock:write"})
    require_partner(principal, params["partner"])

Two kinds of credentials are accepted:

* **Partner API keys**, ``rfk_<key_id>_<secret>``, sent as ``Authorization: ApiKey <key>`` or
  ``X-API-Key: <key>``. Only the SHA-256 of the secret is stored, in the ``state`` bucket at
  ``auth/api-keys/<key_id>.json``; the secret is 32 random bytes, so a fast hash is enough. A
  partner may hold several active keys, which is how keys are rotated without downtime: create
  the new one, move clients over, revoke the old one. Looked-up keys are cached in memory for
  ``settings.api_key_cache_ttl_s`` (30 s): **a revocation takes effect within that time** in every
  process (at once in the process that revoked).
* **OIDC bearer tokens**, ``Authorization: Bearer <jwt>``, signed RS256 or ES256 by a key in the
  issuer's JWKS (``settings.jwt_jwks_url``) and carrying ``exp``, ``iat``, ``iss``, ``aud`` and
  ``sub``. Scopes come from ``scope`` (space-separated) or ``scp`` (a list); the partner from the
  claim ``settings.jwt_partner_claim``. A token without a partner is a member's: fine for reads.
  Outside the local stage, bearer tokens are refused unless issuer, audience and JWKS are set.

On the local stage, the dev issuer (``shared.platform.auth_dev``) is trusted when no JWKS is set, and the
dev API keys ``rfk_dev-<partner>_local-dev-secret-<partner>-not-for-production`` for
:data:`~shared.platform.auth_dev.DEV_PARTNERS` exist from the first API-key request on.

The scope ``admin`` satisfies every scope check and may act for any partner.

Failures are problem documents: 401 with a ``WWW-Authenticate`` challenge (what was wrong is said
only as far as it helps a legitimate caller: "missing credentials", "invalid API key", "token
expired", "invalid token"; the precise reason is logged, never the credential), 403 when the
caller is known but lacks a scope or acts for another partner, 503 when the key store or the JWKS
cannot be reached.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import secrets
import threading
import time
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import unquote, urlparse

import jwt
from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.requests import HTTPConnection

from shared.integration.objectstore import (
    NoSuchBucket,
    ObjectNotFound,
    ObjectStore,
    ObjectStoreError,
    PreconditionFailed,
)
from shared.platform.adapters import bucket, get_store
from shared.platform.auth_dev import (
    DEV_AUDIENCE,
    DEV_PARTNERS,
    DEV_SCOPES,
    DevOnlyError,
    dev_api_key_secret,
    dev_issuer,
    issue_dev_token,
    require_local,
)
from shared.platform.problems import Problem, unavailable
from shared.platform.settings import DEV_ISSUER, LOCAL_STAGE, Settings, get_settings

__all__ = [
    "ALLOWED_ALGORITHMS",
    "DEFAULT_PARTNER_SCOPES",
    "DEV_AUDIENCE",
    "DEV_ISSUER",
    "DEV_PARTNERS",
    "SCOPE_ADMIN",
    "ApiKeyRecord",
    "DevOnlyError",
    "Principal",
    "UnknownApiKey",
    "authenticate",
    "create_api_key",
    "dev_api_key",
    "ensure_dev_api_keys",
    "issue_dev_token",
    "list_api_keys",
    "require_partner",
    "reset_auth_caches",
    "revoke_api_key",
]

log = logging.getLogger("retailfn.auth")

SCOPE_ADMIN = "admin"
DEFAULT_PARTNER_SCOPES = DEV_SCOPES
ALLOWED_ALGORITHMS = ("RS256", "ES256")
"""Asymmetric only: ``none`` and the HS family (and with them the HS/RS key-confusion attack,
where the public key is used as an HMAC secret) are refused before any key is looked at."""
REQUIRED_CLAIMS = ("exp", "iat", "iss", "aud", "sub")
API_KEY_PREFIX = "rfk_"
API_KEYS_FOLDER = "auth/api-keys/"
STATE_BUCKET = "state"
REALM = "retailfn"

_KEY_ID = r"[a-z0-9][a-z0-9-]{2,62}"
_API_KEY = re.compile(rf"rfk_({_KEY_ID})_([A-Za-z0-9_-]{{32,128}})")
_KEY_ID_RE = re.compile(_KEY_ID)
_PARTNER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")  # events.fields.Identifier
_SCOPE = re.compile(r"[A-Za-z][A-Za-z0-9_.:/-]{0,127}")
_MAX_CREDENTIAL_CHARS = 8192
_MAX_CACHED_KEYS = 10_000
_DUMMY_DIGEST = hashlib.sha256(b"no such key").hexdigest()

AuthMethod = Literal["api_key", "jwt"]
_monotonic = time.monotonic  # the key cache's clock; a test may move it


@dataclass(frozen=True)
class Principal:
    """An authenticated caller. ``subject`` is the token's ``sub`` or the API key's id."""

    partner_id: str | None
    subject: str
    scopes: frozenset[str]
    method: AuthMethod

    @property
    def is_admin(self) -> bool:
        return SCOPE_ADMIN in self.scopes

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes or self.is_admin


class ApiKeyRecord(BaseModel):
    """One stored API key: everything but the secret, of which only the SHA-256 is kept."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    key_id: str
    partner_id: str
    scopes: list[str]
    secret_sha256: str
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None

    def status(self, now: datetime | None = None) -> Literal["active", "revoked", "expired"]:
        now = now or _now()
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"


class UnknownApiKey(LookupError):
    def __init__(self, key_id: str) -> None:
        super().__init__(f"no API key with id {key_id!r}")
        self.key_id = key_id


# --- the one call a function makes -------------------------------------------------------------


def authenticate(
    request: HTTPConnection | Mapping[str, str], scopes: Iterable[str] | str = ()
) -> Principal:
    """The caller of ``request`` (a Starlette request or its headers), holding every scope in
    ``scopes``; otherwise a 401 or 403 :class:`Problem`.

    Synchronous: a cached key or token costs microseconds; a key-cache miss reads one object.
    """
    headers = request.headers if isinstance(request, HTTPConnection) else _lowered(request)
    required = _scope_set(scopes)
    settings = get_settings()
    kind, credential = _credential(headers, settings)
    if kind == "api_key":
        principal = _verify_api_key(credential, settings)
    else:
        principal = _verify_bearer(credential, settings)
    missing = sorted(s for s in required if not principal.has_scope(s))
    if missing:
        _log_failure(principal.method, "insufficient scope", subject=principal.subject)
        challenge = (
            f'Bearer realm="{REALM}", error="insufficient_scope", scope="{" ".join(missing)}"'
            if principal.method == "jwt"
            else None
        )
        raise Problem(
            403,
            detail=f"the credentials lack the scope {' '.join(missing)}",
            headers={"WWW-Authenticate": challenge} if challenge else None,
        )
    return principal


def require_partner(principal: Principal, partner: str) -> None:
    """403 unless ``principal`` acts for ``partner`` (or holds the ``admin`` scope).

    ``partner`` should come validated as an :data:`events.fields.Identifier` (see
    :func:`shared.platform.httpfn.path_params`); one that is not a partner id at all is refused here too,
    even for ``admin``, rather than compared."""
    if not isinstance(partner, str) or not _PARTNER.fullmatch(partner):
        _log_failure(principal.method, "not a partner id", subject=principal.subject)
        raise Problem(403, detail="the credentials do not allow acting for this partner")
    # Bytes: compare_digest refuses str with non-ASCII characters (a TypeError, so a 500).
    if principal.is_admin or (
        principal.partner_id is not None
        and hmac.compare_digest(principal.partner_id.encode(), partner.encode())
    ):
        return
    _log_failure(principal.method, "partner mismatch", subject=principal.subject)
    raise Problem(403, detail="the credentials do not allow acting for this partner")


# --- credentials on the request ----------------------------------------------------------------


def _lowered(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def _credential(headers: Mapping[str, str], settings: Settings) -> tuple[AuthMethod, str]:
    authorization = (headers.get("authorization") or "").strip()
    x_api_key = (headers.get("x-api-key") or "").strip()
    if authorization and x_api_key:
        raise _unauthorized(
            "conflicting credentials: send one of Authorization and X-API-Key", settings
        )
    if x_api_key:
        return "api_key", x_api_key
    if not authorization:
        raise _unauthorized("missing credentials", settings)
    scheme, _, value = authorization.partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer" and value:
        return "jwt", value
    if scheme.lower() == "apikey" and value:
        return "api_key", value
    if scheme.lower() in ("bearer", "apikey"):
        raise _unauthorized("missing credentials", settings)
    raise _unauthorized("unsupported authorization scheme; use Bearer or ApiKey", settings)


def _unauthorized(
    detail: str, settings: Settings, scheme: str | None = None, error: str | None = None
) -> Problem:
    if scheme == "Bearer":
        challenge = f'Bearer realm="{REALM}"'
        if error:
            challenge += f', error="{error}", error_description="{detail}"'
    elif scheme == "ApiKey":
        challenge = f'ApiKey realm="{REALM}"'
    else:  # no credential to blame: offer every scheme that could work
        challenge = f'ApiKey realm="{REALM}"'
        if _jwt_verifier(settings) is not None:
            challenge = f'Bearer realm="{REALM}", {challenge}'
    return Problem(401, detail=detail, headers={"WWW-Authenticate": challenge})


def _log_failure(method: str, reason: str, **fields: Any) -> None:
    log.info(
        "authentication refused",
        extra={
            "auth_method": method,
            "auth_reason": reason,
            **{f"auth_{k}": v for k, v in fields.items() if v is not None},
        },
    )


def _scope_set(scopes: Iterable[str] | str) -> frozenset[str]:
    if isinstance(scopes, str):
        return frozenset(scopes.replace(",", " ").split())
    return frozenset(scopes)


# --- API keys ----------------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _object_key(key_id: str) -> str:
    return f"{API_KEYS_FOLDER}{key_id}.json"


def _state() -> tuple[ObjectStore, str]:
    return get_store(), bucket(STATE_BUCKET)


def _verify_api_key(presented: str, settings: Settings) -> Principal:
    def refuse(reason: str, detail: str = "invalid API key", key_id: str | None = None) -> Problem:
        _log_failure("api_key", reason, key_id=key_id)
        return _unauthorized(detail, settings, "ApiKey")

    match = _API_KEY.fullmatch(presented) if len(presented) <= 256 else None
    if match is None:
        raise refuse("malformed key")
    key_id, secret = match.groups()
    local = settings.stage == LOCAL_STAGE
    if key_id.startswith("dev-") and not local:
        raise refuse("dev key outside the local stage", key_id=key_id)
    store, bucket_name = _state()
    try:
        if local and key_id.startswith("dev-"):
            _cache_for(store).ensure_dev_keys(bucket_name)
        record = _cache_for(store).get(store, bucket_name, key_id, settings.api_key_cache_ttl_s)
    except ObjectStoreError:
        log.exception("API keys cannot be read", extra={"auth_key_id": key_id})
        raise unavailable("Credentials cannot be checked right now; try again") from None
    digest = _digest(secret)
    if record is None:
        hmac.compare_digest(digest, _DUMMY_DIGEST)  # the same work as for a known key
        raise refuse("unknown key id", key_id=key_id)
    if not hmac.compare_digest(digest, record.secret_sha256):
        raise refuse("wrong secret", key_id=key_id)
    # Past this point the caller holds the secret, so saying why it no longer works helps only
    # the key's owner.
    status = record.status()
    if status != "active":
        raise refuse(f"key {status}", f"API key {status}", key_id=key_id)
    return Principal(record.partner_id, record.key_id, frozenset(record.scopes), "api_key")


class _KeyCache:
    """Looked-up API keys (and unknown ids) of one object store, each for a short TTL."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str], tuple[float, ApiKeyRecord | None]] = {}
        self._dev_ensured: set[str] = set()

    def get(
        self, store: ObjectStore, bucket_name: str, key_id: str, ttl: float
    ) -> ApiKeyRecord | None:
        now = _monotonic()
        hit = self._entries.get((bucket_name, key_id))
        if hit is not None and now - hit[0] < ttl:
            return hit[1]
        record = _load(store, bucket_name, key_id)
        if ttl > 0:
            with self._lock:
                if len(self._entries) >= _MAX_CACHED_KEYS:
                    self._entries.clear()  # crude, but bounds memory under a flood of bad ids
                self._entries[(bucket_name, key_id)] = (now, record)
        return record

    def forget(self, bucket_name: str, key_id: str) -> None:
        with self._lock:
            self._entries.pop((bucket_name, key_id), None)

    def ensure_dev_keys(self, bucket_name: str) -> None:
        if bucket_name in self._dev_ensured:
            return
        ensure_dev_api_keys()
        with self._lock:
            self._dev_ensured.add(bucket_name)
            self._entries = {k: v for k, v in self._entries.items() if k[0] != bucket_name}


_caches: weakref.WeakKeyDictionary[ObjectStore, _KeyCache] = weakref.WeakKeyDictionary()
_caches_lock = threading.Lock()


def _cache_for(store: ObjectStore) -> _KeyCache:
    with _caches_lock:
        cache = _caches.get(store)
        if cache is None:
            cache = _caches[store] = _KeyCache()
        return cache


def _load(store: ObjectStore, bucket_name: str, key_id: str) -> ApiKeyRecord | None:
    try:
        body = store.get(bucket_name, _object_key(key_id)).body
    except (ObjectNotFound, NoSuchBucket):
        return None
    try:
        return ApiKeyRecord.model_validate_json(body)
    except ValidationError:
        log.error("unreadable API key record; the key is refused", extra={"auth_key_id": key_id})
        return None


def _put_new(store: ObjectStore, bucket_name: str, record: ApiKeyRecord) -> None:
    body = record.model_dump_json().encode()
    key = _object_key(record.key_id)
    try:
        store.put(bucket_name, key, body, content_type="application/json", if_none_match=True)
    except NoSuchBucket:
        store.create_bucket(bucket_name)
        store.put(bucket_name, key, body, content_type="application/json", if_none_match=True)


def _check_partner(partner: str) -> str:
    if not isinstance(partner, str) or not _PARTNER.fullmatch(partner):
        raise ValueError("a partner id is 1-128 of A-Z, a-z, 0-9, '.', '_', '-'")
    return partner


def _check_scopes(scopes: Iterable[str] | str) -> list[str]:
    chosen = sorted(_scope_set(scopes))
    if not chosen:
        raise ValueError("an API key needs at least one scope")
    bad = [s for s in chosen if not _SCOPE.fullmatch(s)]
    if bad:
        raise ValueError(f"not a scope: {', '.join(bad)}")
    return chosen


def create_api_key(
    partner: str,
    scopes: Iterable[str] | str = DEFAULT_PARTNER_SCOPES,
    expires_in: timedelta | float | None = None,
) -> tuple[str, str]:
    """A new API key for ``partner``: ``(key_id, plaintext)``. The plaintext is not stored
    anywhere; show it once. ``expires_in`` is a timedelta or seconds."""
    _check_partner(partner)
    chosen = _check_scopes(scopes)
    if isinstance(expires_in, (int, float)):
        expires_in = timedelta(seconds=expires_in)
    if expires_in is not None and expires_in <= timedelta(0):
        raise ValueError("expires_in must be positive")
    store, bucket_name = _state()
    for _ in range(5):
        key_id = secrets.token_hex(8)
        secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
        created = _now()
        record = ApiKeyRecord(
            key_id=key_id,
            partner_id=partner,
            scopes=chosen,
            secret_sha256=_digest(secret),
            created_at=created,
            expires_at=created + expires_in if expires_in else None,
        )
        try:
            _put_new(store, bucket_name, record)
        except PreconditionFailed:  # 64 random bits collided; draw again
            continue
        _cache_for(store).forget(bucket_name, key_id)
        log.info("API key created", extra={"auth_key_id": key_id, "partner": partner})
        return key_id, f"{API_KEY_PREFIX}{key_id}_{secret}"
    raise RuntimeError("could not find a free API key id")


def revoke_api_key(key_id: str) -> ApiKeyRecord:
    """Mark the key revoked (idempotent); other processes notice within the cache TTL."""
    if not _KEY_ID_RE.fullmatch(key_id):
        raise UnknownApiKey(key_id)
    store, bucket_name = _state()
    while True:
        try:
            stored = store.get(bucket_name, _object_key(key_id))
        except (ObjectNotFound, NoSuchBucket):
            raise UnknownApiKey(key_id) from None
        record = ApiKeyRecord.model_validate_json(stored.body)
        if record.revoked_at is not None:
            break
        record = record.model_copy(update={"revoked_at": _now()})
        try:
            store.put(
                bucket_name,
                _object_key(key_id),
                record.model_dump_json().encode(),
                content_type="application/json",
                if_match=stored.info.etag,
            )
        except PreconditionFailed:  # changed under us (another revoke?): read it again
            continue
        log.info("API key revoked", extra={"auth_key_id": key_id, "partner": record.partner_id})
        break
    _cache_for(store).forget(bucket_name, key_id)
    return record


def list_api_keys(partner: str | None = None) -> list[ApiKeyRecord]:
    """Every stored key (active, expired and revoked), optionally of one partner."""
    store, bucket_name = _state()
    records: list[ApiKeyRecord] = []
    try:
        for info in store.list(bucket_name, API_KEYS_FOLDER):
            key_id = info.key.removeprefix(API_KEYS_FOLDER).removesuffix(".json")
            record = _load(store, bucket_name, key_id)
            if record is not None and (partner is None or record.partner_id == partner):
                records.append(record)
    except NoSuchBucket:
        return []
    return sorted(records, key=lambda r: (r.partner_id, r.created_at, r.key_id))


def dev_api_key(partner: str) -> str:
    """The plaintext of a local dev API key (``rfk_dev-acme_local-dev-secret-acme-...``)."""
    return f"{API_KEY_PREFIX}dev-{partner}_{dev_api_key_secret(partner)}"


def ensure_dev_api_keys() -> dict[str, str]:
    """Create the local dev keys of :data:`DEV_PARTNERS` if absent; ``{partner: plaintext}``.

    Local stage only (:class:`DevOnlyError` elsewhere). A dev key that was revoked stays revoked.
    """
    require_local(what="dev API keys")
    store, bucket_name = _state()
    keys: dict[str, str] = {}
    for partner in DEV_PARTNERS:
        record = ApiKeyRecord(
            key_id=f"dev-{partner}",
            partner_id=partner,
            scopes=sorted(DEV_SCOPES),
            secret_sha256=_digest(dev_api_key_secret(partner)),
            created_at=_now(),
        )
        try:
            _put_new(store, bucket_name, record)
        except PreconditionFailed:
            pass  # already there
        keys[partner] = dev_api_key(partner)
    return keys


# --- bearer tokens -----------------------------------------------------------------------------


class _KeysUnavailable(Exception):
    """The JWKS could not be fetched: not the caller's fault, so not a 401."""


class _KeySource(Protocol):
    def key_for(self, kid: str | None) -> jwt.PyJWK | None: ...


def _usable(keys: Iterable[jwt.PyJWK]) -> list[jwt.PyJWK]:
    return [
        k
        for k in keys
        if k.public_key_use in ("sig", None) and k.algorithm_name in ALLOWED_ALGORITHMS
    ]


def _pick(keys: list[jwt.PyJWK], kid: str | None) -> jwt.PyJWK | None:
    if kid is None:  # tolerated only when there is no choice to make
        return keys[0] if len(keys) == 1 else None
    return next((k for k in keys if k.key_id == kid), None)


class _FileKeys:
    """A JWKS file, read again whenever it changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._keys: list[jwt.PyJWK] = []
        self._lock = threading.Lock()

    def key_for(self, kid: str | None) -> jwt.PyJWK | None:
        try:
            st = self.path.stat()
        except OSError as exc:
            raise _KeysUnavailable(f"JWKS file {self.path}: {exc.strerror}") from None
        with self._lock:
            if self._stamp != (st.st_mtime_ns, st.st_size):
                try:
                    data = json.loads(self.path.read_text(encoding="utf-8"))
                    self._keys = _usable(jwt.PyJWKSet.from_dict(data).keys)
                except (OSError, ValueError, jwt.PyJWKSetError) as exc:
                    raise _KeysUnavailable(f"JWKS file {self.path}: {exc}") from None
                self._stamp = (st.st_mtime_ns, st.st_size)
            return _pick(self._keys, kid)


class _HttpKeys:
    """An issuer's JWKS endpoint through PyJWT's client: the set is cached for ``ttl`` seconds,
    and an unknown ``kid`` (a rotated key) refetches at most every 30 s."""

    def __init__(self, url: str, ttl: float) -> None:
        self.client = jwt.PyJWKClient(
            url, cache_jwk_set=True, lifespan=ttl, timeout=5, cooldown_duration=30
        )

    def key_for(self, kid: str | None) -> jwt.PyJWK | None:
        try:
            if kid is None:
                return _pick(_usable(self.client.get_signing_keys()), None)
            key = self.client.get_signing_key(kid)
        except jwt.PyJWKClientConnectionError as exc:
            raise _KeysUnavailable(str(exc)) from None
        except jwt.PyJWKClientError:
            return None
        return key if _usable([key]) else None


class _DevKeys:
    """The local dev issuer's public key."""

    def __init__(self) -> None:
        self._parsed: tuple[str, list[jwt.PyJWK]] | None = None

    def key_for(self, kid: str | None) -> jwt.PyJWK | None:
        issuer = dev_issuer()
        parsed = self._parsed
        if parsed is None or parsed[0] != issuer.kid:
            parsed = self._parsed = (issuer.kid, _usable(jwt.PyJWKSet.from_dict(issuer.jwks).keys))
        return _pick(parsed[1], kid)


@dataclass(frozen=True)
class _JwtVerifier:
    issuer: str
    audience: str
    keys: _KeySource
    partner_claim: str
    leeway: int


_verifier_lock = threading.Lock()
_verifiers: dict[int, tuple[Settings, _JwtVerifier | None]] = {}


def _jwt_verifier(settings: Settings) -> _JwtVerifier | None:
    """Built once per settings object, so the JWKS cache lives as long as the settings. Each
    function of a runtime has its own settings object; requests alternating between them keep
    their verifiers (and JWKS caches) rather than rebuilding one on every switch."""
    cached = _verifiers.get(id(settings))
    if cached is not None and cached[0] is settings:
        return cached[1]
    with _verifier_lock:
        cached = _verifiers.get(id(settings))
        if cached is None or cached[0] is not settings:
            if len(_verifiers) >= 64:  # settings rebuilt again and again (tests): start over
                _verifiers.clear()
            cached = _verifiers[id(settings)] = (settings, _build_verifier(settings))
        return cached[1]


def _build_verifier(settings: Settings) -> _JwtVerifier | None:
    claim, leeway = settings.jwt_partner_claim, settings.jwt_leeway_s
    url = settings.jwt_jwks_url
    if url:
        if not (settings.jwt_issuer and settings.jwt_audience):
            log.warning(
                "RETAILFN_JWT_JWKS_URL is set without RETAILFN_JWT_ISSUER and "
                "RETAILFN_JWT_AUDIENCE; bearer tokens are refused"
            )
            return None
        parsed = urlparse(url)
        keys: _KeySource
        if parsed.scheme in ("http", "https"):
            keys = _HttpKeys(url, settings.jwks_cache_ttl_s)
        elif parsed.scheme == "file":
            keys = _FileKeys(Path(unquote(parsed.path)))
        elif not parsed.scheme:
            keys = _FileKeys(Path(url))
        else:
            log.warning(
                "RETAILFN_JWT_JWKS_URL must be http(s), file:// or a path; "
                "bearer tokens are refused"
            )
            return None
        return _JwtVerifier(
            settings.jwt_issuer, settings.jwt_audience, keys, partner_claim=claim, leeway=leeway
        )
    if settings.stage == LOCAL_STAGE:
        return _JwtVerifier(
            DEV_ISSUER, DEV_AUDIENCE, _DevKeys(), partner_claim=claim, leeway=leeway
        )
    return None


def _verify_bearer(token: str, settings: Settings) -> Principal:
    def refuse(reason: str, detail: str = "invalid token", **fields: Any) -> Problem:
        _log_failure("jwt", reason, **fields)
        return _unauthorized(detail, settings, "Bearer", "invalid_token")

    verifier = _jwt_verifier(settings)
    if verifier is None:
        raise refuse("bearer tokens are not configured")
    if len(token) > _MAX_CREDENTIAL_CHARS:
        raise refuse("token too long")
    header = _unverified_header(token)
    if header is None:
        raise refuse("malformed token")
    alg, kid = header.get("alg"), header.get("kid")
    if alg not in ALLOWED_ALGORITHMS:
        raise refuse("algorithm not allowed", alg=str(alg)[:20])
    if kid is not None and not isinstance(kid, str):
        raise refuse("malformed kid")
    try:
        key = verifier.keys.key_for(kid)
    except _KeysUnavailable as exc:
        log.error("the token issuer's keys cannot be read", extra={"auth_reason": str(exc)})
        raise unavailable("Credentials cannot be checked right now; try again") from None
    if key is None:
        raise refuse("unknown signing key", kid=kid)
    if key.algorithm_name != alg:
        raise refuse("algorithm does not match the key", alg=alg, kid=kid)
    try:
        claims = jwt.decode(
            token,
            key.key,
            algorithms=[alg],
            audience=verifier.audience,
            issuer=verifier.issuer,
            leeway=verifier.leeway,
            options={"require": list(REQUIRED_CLAIMS)},
        )
    except jwt.ExpiredSignatureError:
        raise refuse("token expired", "token expired", kid=kid) from None
    except jwt.InvalidTokenError as exc:
        raise refuse(type(exc).__name__, kid=kid) from None
    subject = claims["sub"]
    if not isinstance(subject, str) or not subject:
        raise refuse("bad sub claim", kid=kid)
    scopes = _token_scopes(claims)
    partner = claims.get(verifier.partner_claim)
    if partner is not None and (not isinstance(partner, str) or not _PARTNER.fullmatch(partner)):
        raise refuse("bad partner claim", subject=subject)
    if scopes is None:
        raise refuse("bad scope claim", subject=subject)
    return Principal(partner, subject, scopes, "jwt")


def _unverified_header(token: str) -> dict[str, Any] | None:
    # Only to choose the key; jwt.decode checks the whole token again. (PyJWT's own
    # get_unverified_header costs as much as the signature check.)
    segment = token.partition(".")[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except ValueError:
        return None
    return header if isinstance(header, dict) else None


def _token_scopes(claims: Mapping[str, Any]) -> frozenset[str] | None:
    scopes: set[str] = set()
    scope, scp = claims.get("scope"), claims.get("scp")
    for value in (scope, scp):
        if value is None:
            continue
        if isinstance(value, str):
            scopes.update(value.split())
        elif isinstance(value, list) and all(isinstance(s, str) for s in value):
            scopes.update(value)
        else:
            return None
    return frozenset(scopes)


def reset_auth_caches() -> None:
    """Forget cached API keys and JWKS clients (tests; after changing settings at run time)."""
    with _caches_lock:
        _caches.clear()
    with _verifier_lock:
        _verifiers.clear()
