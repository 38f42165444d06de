"""Authentication: partner API keys in the object store and OIDC bearer tokens against a JWKS."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import stat
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from shared.platform import auth, auth_dev
from shared.platform.adapters import bucket, get_store
from shared.platform.auth import (
    DevOnlyError,
    Principal,
    UnknownApiKey,
    authenticate,
    create_api_key,
    dev_api_key,
    ensure_dev_api_keys,
    issue_dev_token,
    list_api_keys,
    require_partner,
    revoke_api_key,
)
from shared.platform.problems import Problem
from shared.platform.settings import reset_settings

ISSUER = "https://us-south.appid.example/oauth/v4/tenant-1"
AUDIENCE = "retailfn-app"


@pytest.fixture(autouse=True)
def _fresh_auth() -> Iterator[None]:
    auth.reset_auth_caches()
    yield
    auth.reset_auth_caches()


def refused(status: int, call: Callable[[], Any]) -> Problem:
    with pytest.raises(Problem) as caught:
        call()
    assert caught.value.status == status, caught.value
    if status == 401:
        assert 'realm="retailfn"' in caught.value.headers["WWW-Authenticate"]
    return caught.value


def api_key_headers(key: str) -> dict[str, str]:
    return {"Authorization": f"ApiKey {key}"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- partner API keys --------------------------------------------------------------------------


def test_a_valid_api_key_gives_its_partner_scopes_and_key_id() -> None:
    key_id, key = create_api_key("acme", {"stock:write", "inventory:read"})

    principal = authenticate(api_key_headers(key), scopes={"stock:write"})

    assert principal == Principal(
        "acme", key_id, frozenset({"stock:write", "inventory:read"}), "api_key"
    )


def test_an_api_key_is_accepted_in_the_x_api_key_header_too() -> None:
    _, key = create_api_key("acme", "stock:write")

    assert authenticate({"x-api-key": key}).partner_id == "acme"


def test_only_a_hash_of_the_secret_is_stored() -> None:
    key_id, key = create_api_key("acme", "stock:write")
    secret = key.split("_", 2)[2]

    stored = get_store().get(bucket("state"), f"auth/api-keys/{key_id}.json").body

    assert secret.encode() not in stored
    assert json.loads(stored)["secret_sha256"] == hashlib.sha256(secret.encode()).hexdigest()


def test_no_credentials_is_a_401_that_offers_both_schemes() -> None:
    problem = refused(401, lambda: authenticate({}))

    assert problem.detail == "missing credentials"
    assert problem.headers["WWW-Authenticate"].startswith('Bearer realm="retailfn"')
    assert "ApiKey" in problem.headers["WWW-Authenticate"]


def test_an_unknown_key_id_is_a_401() -> None:
    _, key = create_api_key("acme", "stock:write")
    forged = key.replace(key.split("_")[1], "0123456789abcdef")

    assert refused(401, lambda: authenticate(api_key_headers(forged))).detail == "invalid API key"


def test_a_wrong_secret_is_a_401() -> None:
    _, key = create_api_key("acme", "stock:write")
    wrong = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")

    assert refused(401, lambda: authenticate(api_key_headers(wrong))).detail == "invalid API key"


def test_a_malformed_key_is_a_401() -> None:
    for junk in ("rfk_", "hello", "rfk_abc_short", "x" * 5000):
        assert (
            refused(401, lambda j=junk: authenticate({"X-API-Key": j})).detail == "invalid API key"
        )


def test_a_revoked_key_is_a_401() -> None:
    key_id, key = create_api_key("acme", "stock:write")

    revoke_api_key(key_id)

    assert refused(401, lambda: authenticate(api_key_headers(key))).detail == "API key revoked"


def test_revoking_twice_is_harmless_and_an_unknown_key_cannot_be_revoked() -> None:
    key_id, _ = create_api_key("acme", "stock:write")
    first = revoke_api_key(key_id)

    assert revoke_api_key(key_id).revoked_at == first.revoked_at
    with pytest.raises(UnknownApiKey):
        revoke_api_key("0000000000000000")


def test_an_expired_key_is_a_401(monkeypatch: pytest.MonkeyPatch) -> None:
    _, key = create_api_key("acme", "stock:write", expires_in=timedelta(days=1))
    assert authenticate(api_key_headers(key)).partner_id == "acme"
    later = auth._now() + timedelta(days=1, seconds=1)

    monkeypatch.setattr(auth, "_now", lambda: later)

    assert refused(401, lambda: authenticate(api_key_headers(key))).detail == "API key expired"


def test_two_keys_of_one_partner_both_work_until_one_is_revoked() -> None:
    old_id, old_key = create_api_key("acme", "stock:write")
    new_id, new_key = create_api_key("acme", "stock:write")

    assert authenticate(api_key_headers(old_key)).subject == old_id
    assert authenticate(api_key_headers(new_key)).subject == new_id

    revoke_api_key(old_id)

    refused(401, lambda: authenticate(api_key_headers(old_key)))
    assert authenticate(api_key_headers(new_key)).subject == new_id


def test_a_revocation_by_another_process_takes_effect_within_the_cache_ttl(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key_id, key = create_api_key("acme", "stock:write")
    clock = [1000.0]
    monkeypatch.setattr(auth, "_monotonic", lambda: clock[0])
    authenticate(api_key_headers(key))  # now cached
    # Another process revokes: the record changes in the store, not in this process's cache.
    store, name = get_store(), bucket("state")
    record = json.loads(store.get(name, f"auth/api-keys/{key_id}.json").body)
    record["revoked_at"] = "2020-01-01T00:00:00Z"
    store.put(name, f"auth/api-keys/{key_id}.json", json.dumps(record).encode())

    clock[0] += 29
    assert authenticate(api_key_headers(key)).subject == key_id
    clock[0] += 2
    refused(401, lambda: authenticate(api_key_headers(key)))


def test_keys_are_listed_per_partner_without_secrets() -> None:
    a1, _ = create_api_key("acme", "stock:write")
    a2, _ = create_api_key("acme", "inventory:read", expires_in=3600)
    g1, _ = create_api_key("globex", "stock:write")
    revoke_api_key(a1)

    acme = list_api_keys("acme")

    assert sorted(r.key_id for r in acme) == sorted([a1, a2])
    assert {r.key_id: r.status() for r in acme} == {a1: "revoked", a2: "active"}
    assert {r.key_id for r in list_api_keys()} == {a1, a2, g1}


def test_a_key_needs_a_valid_partner_and_scopes() -> None:
    with pytest.raises(ValueError):
        create_api_key("no spaces", "stock:write")
    with pytest.raises(ValueError):
        create_api_key("acme", [])
    with pytest.raises(ValueError):
        create_api_key("acme", "stock:write", expires_in=-1)


def test_conflicting_credentials_are_a_401() -> None:
    _, key = create_api_key("acme", "stock:write")

    refused(401, lambda: authenticate({"Authorization": f"ApiKey {key}", "X-API-Key": key}))


def test_an_unsupported_scheme_is_a_401() -> None:
    refused(401, lambda: authenticate({"Authorization": "Basic YWxhZGRpbjpvcGVu"}))


def test_an_unreadable_key_store_is_a_503_not_a_401(monkeypatch: pytest.MonkeyPatch) -> None:
    from shared.integration.objectstore import ObjectStoreError

    _, key = create_api_key("acme", "stock:write")
    auth.reset_auth_caches()

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ObjectStoreError("connection refused")

    monkeypatch.setattr(get_store(), "get", broken)

    assert refused(503, lambda: authenticate(api_key_headers(key))).headers["Retry-After"]


# --- scopes and partners -----------------------------------------------------------------------


def test_a_missing_scope_is_a_403() -> None:
    _, key = create_api_key("acme", "inventory:read")

    problem = refused(403, lambda: authenticate(api_key_headers(key), scopes={"stock:write"}))

    assert "stock:write" in problem.detail


def test_the_admin_scope_satisfies_every_scope() -> None:
    _, key = create_api_key("ops", "admin")

    assert authenticate(api_key_headers(key), scopes={"stock:write", "catalog:write"}).is_admin


def test_a_partner_may_not_act_for_another_partner() -> None:
    acme = Principal("acme", "k1", frozenset({"stock:write"}), "api_key")

    require_partner(acme, "acme")
    refused(403, lambda: require_partner(acme, "globex"))


@pytest.mark.parametrize("partner", ["acm\u00e9", "\u0430cme", "acme/../globex", ""])
def test_a_path_partner_that_is_no_partner_id_is_a_403_not_a_crash(partner: str) -> None:
    acme = Principal("acme", "k1", frozenset({"stock:write"}), "api_key")
    admin = Principal(None, "ops", frozenset({"admin"}), "jwt")

    refused(403, lambda: require_partner(acme, partner))
    refused(403, lambda: require_partner(admin, partner))


def test_a_member_without_a_partner_may_not_act_for_a_partner() -> None:
    member = Principal(None, "user-1", frozenset({"inventory:read"}), "jwt")

    refused(403, lambda: require_partner(member, "acme"))


def test_an_admin_may_act_for_any_partner() -> None:
    admin = Principal(None, "ops", frozenset({"admin"}), "jwt")

    require_partner(admin, "acme")
    require_partner(admin, "globex")


# --- OIDC bearer tokens ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def jwk(public_key: Any, kid: str) -> dict[str, Any]:
    algorithm = RSAAlgorithm if isinstance(public_key, rsa.RSAPublicKey) else ECAlgorithm
    return {**json.loads(algorithm.to_jwk(public_key)), "kid": kid, "use": "sig"}


@pytest.fixture
def issuer(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    rsa_key: rsa.RSAPrivateKey,
    ec_key: ec.EllipticCurvePrivateKey,
) -> Path:
    """A non-local stage that trusts an App ID-like issuer whose JWKS is a file."""
    jwks = tmp_path / "jwks.json"
    jwks.write_text(
        json.dumps({"keys": [jwk(rsa_key.public_key(), "rsa-1"), jwk(ec_key.public_key(), "ec-1")]})
    )
    monkeypatch.setenv("RETAILFN_STAGE", "test")
    monkeypatch.setenv("RETAILFN_JWT_ISSUER", ISSUER)
    monkeypatch.setenv("RETAILFN_JWT_AUDIENCE", AUDIENCE)
    monkeypatch.setenv("RETAILFN_JWT_JWKS_URL", jwks.as_uri())
    reset_settings()
    return jwks


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "user-42",
        "iat": now,
        "exp": now + 600,
        "scope": "openid inventory:read stock:write",
        "partner_id": "acme",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def sign(key: Any, kid: str = "rsa-1", alg: str = "RS256", **overrides: Any) -> str:
    return jwt.encode(claims(**overrides), key, algorithm=alg, headers={"kid": kid})


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def handmade(header: dict[str, Any], payload: dict[str, Any]) -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"


def test_a_valid_token_gives_subject_scopes_and_partner(
    issuer: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    principal = authenticate(bearer(sign(rsa_key)), scopes={"stock:write"})

    assert principal == Principal(
        "acme", "user-42", frozenset({"openid", "inventory:read", "stock:write"}), "jwt"
    )


def test_an_es256_token_is_accepted(issuer: Path, ec_key: ec.EllipticCurvePrivateKey) -> None:
    assert authenticate(bearer(sign(ec_key, "ec-1", "ES256"))).subject == "user-42"


def test_scopes_may_come_as_an_scp_list(issuer: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    token = sign(rsa_key, scope=None, scp=["catalog:write", "inventory:read"])

    assert authenticate(bearer(token)).scopes == {"catalog:write", "inventory:read"}


def test_a_member_token_without_a_partner_may_read(
    issuer: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    principal = authenticate(bearer(sign(rsa_key, partner_id=None)), scopes={"inventory:read"})

    assert principal.partner_id is None


def test_the_partner_claim_name_is_configurable(
    issuer: Path, rsa_key: rsa.RSAPrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RETAILFN_JWT_PARTNER_CLAIM", "https://retailfn.dev/partner")
    reset_settings()

    token = sign(rsa_key, partner_id=None, **{"https://retailfn.dev/partner": "globex"})

    assert authenticate(bearer(token)).partner_id == "globex"


def test_an_expired_token_is_a_401_saying_so(issuer: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    now = int(time.time())
    token = sign(rsa_key, iat=now - 3600, exp=now - 60)

    problem = refused(401, lambda: authenticate(bearer(token)))

    assert problem.detail == "token expired"
    assert 'error="invalid_token"' in problem.headers["WWW-Authenticate"]


def test_a_token_expired_within_the_leeway_is_still_accepted(
    issuer: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    assert authenticate(bearer(sign(rsa_key, exp=int(time.time()) - 10))).subject == "user-42"


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"aud": "someone-else"}, id="wrong audience"),
        pytest.param({"iss": "https://evil.example/"}, id="wrong issuer"),
        pytest.param({"exp": None}, id="no exp"),
        pytest.param({"iat": None}, id="no iat"),
        pytest.param({"sub": None}, id="no sub"),
        pytest.param({"aud": None}, id="no aud"),
        pytest.param({"partner_id": "no spaces allowed"}, id="bad partner"),
        pytest.param({"scope": 42}, id="bad scope"),
    ],
)
def test_a_token_with_bad_claims_is_a_401(
    issuer: Path, rsa_key: rsa.RSAPrivateKey, overrides: dict[str, Any]
) -> None:
    problem = refused(401, lambda: authenticate(bearer(sign(rsa_key, **overrides))))

    assert problem.detail == "invalid token"


def test_missing_bearer_credentials_is_a_401(issuer: Path) -> None:
    assert (
        refused(401, lambda: authenticate({"Authorization": "Bearer "})).detail
        == "missing credentials"
    )


def test_an_alg_none_token_is_a_401(issuer: Path) -> None:
    token = handmade({"alg": "none", "typ": "JWT", "kid": "rsa-1"}, claims()) + "."

    assert refused(401, lambda: authenticate(bearer(token))).detail == "invalid token"


def test_hs256_signed_with_the_rsa_public_key_is_a_401(
    issuer: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    # The key-confusion attack: the public key, known to everyone, used as an HMAC secret.
    public_pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = handmade({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}, claims())
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    token = f"{signing_input}.{b64(signature)}"

    assert refused(401, lambda: authenticate(bearer(token))).detail == "invalid token"


def test_an_es256_header_on_an_rsa_key_is_a_401(
    issuer: Path, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    refused(401, lambda: authenticate(bearer(sign(ec_key, "rsa-1", "ES256"))))


def test_a_tampered_payload_is_a_401(issuer: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    header, _, signature = sign(rsa_key).split(".")
    forged_payload = b64(json.dumps(claims(partner_id="globex", scope="admin")).encode())
    token = f"{header}.{forged_payload}.{signature}"

    assert refused(401, lambda: authenticate(bearer(token))).detail == "invalid token"


def test_a_token_signed_by_a_key_not_in_the_jwks_is_a_401(
    issuer: Path, other_rsa_key: rsa.RSAPrivateKey
) -> None:
    unknown_kid = sign(other_rsa_key, kid="not-published")
    known_kid_wrong_key = sign(other_rsa_key, kid="rsa-1")

    refused(401, lambda: authenticate(bearer(unknown_kid)))
    refused(401, lambda: authenticate(bearer(known_kid_wrong_key)))


def test_garbage_is_a_401(issuer: Path) -> None:
    for junk in ("abc", "a.b.c", "x" * 10_000):
        refused(401, lambda j=junk: authenticate(bearer(j)))


def test_a_token_lacking_a_scope_is_a_403_naming_the_scope(
    issuer: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    token = sign(rsa_key, scope="inventory:read")

    problem = refused(403, lambda: authenticate(bearer(token), scopes={"catalog:write"}))

    assert 'error="insufficient_scope"' in problem.headers["WWW-Authenticate"]
    assert 'scope="catalog:write"' in problem.headers["WWW-Authenticate"]


def test_a_rotated_jwks_file_is_read_again(
    issuer: Path, rsa_key: rsa.RSAPrivateKey, other_rsa_key: rsa.RSAPrivateKey
) -> None:
    authenticate(bearer(sign(rsa_key)))
    issuer.write_text(
        json.dumps(
            {"keys": [jwk(rsa_key.public_key(), "rsa-1"), jwk(other_rsa_key.public_key(), "rsa-2")]}
        )
    )
    os.utime(issuer, ns=(time.time_ns(), time.time_ns() + 1_000_000_000))

    assert authenticate(bearer(sign(other_rsa_key, kid="rsa-2"))).subject == "user-42"


def test_outside_local_without_jwt_settings_bearer_tokens_are_refused_but_keys_work(
    monkeypatch: pytest.MonkeyPatch, rsa_key: rsa.RSAPrivateKey
) -> None:
    monkeypatch.setenv("RETAILFN_STAGE", "prod")
    reset_settings()
    _, key = create_api_key("acme", "stock:write")

    refused(401, lambda: authenticate(bearer(sign(rsa_key))))
    assert (
        refused(401, lambda: authenticate({})).headers["WWW-Authenticate"]
        == 'ApiKey realm="retailfn"'
    )
    assert authenticate(api_key_headers(key)).partner_id == "acme"


# --- local-stage dev credentials ---------------------------------------------------------------


def test_a_dev_token_is_accepted_on_the_local_stage_without_any_settings() -> None:
    token = issue_dev_token("alice", partner_id="acme", scopes=["stock:write"])

    principal = authenticate(bearer(token), scopes={"stock:write"})

    assert principal == Principal("acme", "alice", frozenset({"stock:write"}), "jwt")


def test_the_dev_key_pair_is_kept_in_the_data_dir_and_survives_a_restart(tmp_path: Path) -> None:
    token = issue_dev_token("alice")
    folder = tmp_path / "retailfn-data" / "dev-issuer"
    # A new process: nothing in memory, the same folder on disk.
    auth_dev._issuers.clear()
    auth.reset_auth_caches()

    assert authenticate(bearer(token)).subject == "alice"
    assert stat.S_IMODE((folder / "private-key.pem").stat().st_mode) == 0o600
    published = json.loads((folder / "jwks.json").read_text())
    assert published["keys"][0]["kid"] == jwt.get_unverified_header(token)["kid"]
    assert "d" not in published["keys"][0]  # the public half only


def test_the_dev_api_keys_work_on_the_local_stage_without_any_setup() -> None:
    for partner in ("acme", "globex", "initech"):
        principal = authenticate(
            {"X-API-Key": dev_api_key(partner)},
            scopes={"stock:write", "catalog:write", "inventory:read"},
        )
        assert (principal.partner_id, principal.subject) == (partner, f"dev-{partner}")
    assert dev_api_key("acme") == "rfk_dev-acme_local-dev-secret-acme-not-for-production"


def test_ensuring_the_dev_keys_twice_keeps_a_revocation() -> None:
    ensure_dev_api_keys()
    revoke_api_key("dev-acme")

    ensure_dev_api_keys()

    refused(401, lambda: authenticate({"X-API-Key": dev_api_key("acme")}))


def test_dev_credentials_do_not_exist_on_other_stages(monkeypatch: pytest.MonkeyPatch) -> None:
    ensure_dev_api_keys()  # e.g. state copied from a local run
    monkeypatch.setenv("RETAILFN_STAGE", "prod")
    reset_settings()

    with pytest.raises(DevOnlyError):
        issue_dev_token("alice")
    with pytest.raises(DevOnlyError):
        ensure_dev_api_keys()
    refused(401, lambda: authenticate({"X-API-Key": dev_api_key("acme")}))
