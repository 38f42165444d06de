"""Local-stage credentials, so that the quick start needs no identity provider.

On ``stage == "local"`` only, a development token issuer stands in for App ID: an RSA key pair
generated on first use and kept in ``<data_dir>/dev-issuer/`` (``private-key.pem``, mode 0600,
and ``jwks.json``, the public half, which any other service can be pointed at with
``RETAILFN_JWT_JWKS_URL=file://...``). Its tokens carry issuer :data:`DEV_ISSUER` and audience
:data:`DEV_AUDIENCE`, and ``shared.platform.auth`` trusts them automatically when no JWKS is configured.
Every entry point here refuses to run on any other stage.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from filelock import FileLock
from jwt.algorithms import RSAAlgorithm

from shared.platform.settings import DEV_ISSUER, LOCAL_STAGE, Settings, get_settings

DEV_AUDIENCE = "retailfn"
DEV_PARTNERS = ("acme", "globex", "initech")
DEV_SCOPES = ("stock:write", "catalog:write", "inventory:read")
DEV_ALGORITHM = "RS256"

_PRIVATE_KEY = "private-key.pem"
_JWKS = "jwks.json"


class DevOnlyError(RuntimeError):
    """A local-stage credential was asked for on another stage."""


@dataclass(frozen=True)
class DevIssuer:
    directory: Path
    private_key: rsa.RSAPrivateKey
    kid: str
    jwks: dict[str, Any]


_lock = threading.Lock()
_issuers: dict[Path, DevIssuer] = {}


def require_local(settings: Settings | None = None, what: str = "dev credentials") -> Settings:
    settings = settings or get_settings()
    if settings.stage != LOCAL_STAGE:
        raise DevOnlyError(f"{what} exist on the local stage only (this is {settings.stage!r})")
    return settings


def dev_issuer(settings: Settings | None = None) -> DevIssuer:
    """The local issuer's key pair, created in ``<data_dir>/dev-issuer/`` on first use."""
    settings = require_local(settings, "the dev token issuer")
    directory = settings.data_dir / "dev-issuer"
    with _lock:
        issuer = _issuers.get(directory)
        if issuer is None or not (directory / _PRIVATE_KEY).exists():
            issuer = _issuers[directory] = _load_or_create(directory)
        return issuer


def issue_dev_token(
    subject: str,
    partner_id: str | None = None,
    scopes: Iterable[str] | None = None,
    ttl: int = 3600,
    *,
    extra_claims: Mapping[str, Any] | None = None,
) -> str:
    """A signed bearer token from the local issuer, as App ID would hand out after a login.

    ``partner_id`` goes into the claim named by ``settings.jwt_partner_claim``; leave it out for
    a member (shopper) token. ``scopes`` default to :data:`DEV_SCOPES`.
    """
    settings = require_local(what="dev tokens")
    if not subject:
        raise ValueError("a token needs a subject")
    issuer = dev_issuer(settings)
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": DEV_ISSUER,
        "aud": DEV_AUDIENCE,
        "sub": subject,
        "iat": now,
        "exp": now + int(ttl),
        "jti": secrets.token_hex(8),
        "scope": " ".join(sorted(set(DEV_SCOPES if scopes is None else scopes))),
    }
    if partner_id is not None:
        claims[settings.jwt_partner_claim] = partner_id
    claims.update(extra_claims or {})
    return jwt.encode(
        claims, issuer.private_key, algorithm=DEV_ALGORITHM, headers={"kid": issuer.kid}
    )


def dev_api_key_secret(partner: str) -> str:
    """The fixed secret of a local dev API key; it is public, hence local only."""
    return f"local-dev-secret-{partner}-not-for-production"


def _load_or_create(directory: Path) -> DevIssuer:
    directory.mkdir(parents=True, exist_ok=True)
    pem_path = directory / _PRIVATE_KEY
    # Several processes (`retailfn up`, a CLI call) may start at once: one creates, all share.
    with FileLock(str(directory / ".lock"), timeout=60):
        if pem_path.exists():
            private_key = serialization.load_pem_private_key(pem_path.read_bytes(), password=None)
            if not isinstance(private_key, rsa.RSAPrivateKey):
                raise ValueError(f"{pem_path} is not an RSA private key")
        else:
            private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            pem = private_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            _write_atomically(pem_path, pem, mode=0o600)
        public_jwk = json.loads(RSAAlgorithm.to_jwk(private_key.public_key()))
        kid = _thumbprint(public_jwk)
        jwks = {"keys": [{**public_jwk, "kid": kid, "use": "sig", "alg": DEV_ALGORITHM}]}
        jwks_path = directory / _JWKS
        text = json.dumps(jwks, indent=2) + "\n"
        if not jwks_path.exists() or jwks_path.read_text(encoding="utf-8") != text:
            _write_atomically(jwks_path, text.encode(), mode=0o644)
    return DevIssuer(directory, private_key, kid, jwks)


def _thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 JWK thumbprint of an RSA key: stable, so tokens survive a restart."""
    canonical = json.dumps(
        {k: jwk[k] for k in ("e", "kty", "n")}, separators=(",", ":"), sort_keys=True
    )
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _write_atomically(path: Path, data: bytes, mode: int) -> None:
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
