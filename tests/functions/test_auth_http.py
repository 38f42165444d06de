"""Functions that authenticate their own requests, served by the runtime's HTTP front."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from shared.platform import auth
from shared.platform.auth import create_api_key, dev_api_key, issue_dev_token
from shared.platform.settings import reset_settings
from shared.runtime.config import ServiceConfig, parse_service
from shared.runtime.http import HttpApp
from tests.functions.test_http_server import Reply, build, call, is_problem

SERVICE_YAML = """
service: retailfn-auth-test
functions:
  report_stock:
    handler: tests.support.auth_functions:report_stock
    events:
      - http: {path: "/v1/partners/{partner}/stock", method: post}
  read_inventory:
    handler: tests.support.auth_functions:read_inventory
    events:
      - http: {path: /v1/inventory, method: get}
"""

STOCK = {"lines": [{"sku": "A-1", "quantity": 3}]}


@pytest.fixture(autouse=True)
def _fresh_auth() -> Iterator[None]:
    auth.reset_auth_caches()
    yield
    auth.reset_auth_caches()


@pytest.fixture(scope="module")
def app() -> HttpApp:
    service: ServiceConfig = parse_service(SERVICE_YAML, env={})
    return build(service)


def post_stock(app: HttpApp, partner: str, headers: dict[str, str]) -> Reply:
    return call(app, "POST", f"/v1/partners/{partner}/stock", json_body=STOCK, headers=headers)


def unauthorized(reply: Reply) -> dict[str, Any]:
    doc = is_problem(reply, 401)
    assert 'realm="retailfn"' in reply.headers["www-authenticate"]
    return doc


def test_a_request_without_credentials_is_a_401_problem_with_a_challenge(app: HttpApp) -> None:
    reply = post_stock(app, "acme", {})

    assert unauthorized(reply)["detail"] == "missing credentials"
    assert "Bearer" in reply.headers["www-authenticate"]
    assert "ApiKey" in reply.headers["www-authenticate"]


def test_a_wrong_api_key_is_a_401_that_does_not_echo_the_key(app: HttpApp) -> None:
    key = dev_api_key("acme").replace("local", "lokal")

    reply = post_stock(app, "acme", {"X-API-Key": key})

    assert unauthorized(reply)["detail"] == "invalid API key"
    assert reply.headers["www-authenticate"] == 'ApiKey realm="retailfn"'
    assert key.encode() not in reply.body
    assert b"lokal" not in reply.body


def test_an_expired_token_is_a_401_that_does_not_echo_the_token(app: HttpApp) -> None:
    token = issue_dev_token("alice", "acme", ttl=-120)

    reply = post_stock(app, "acme", {"Authorization": f"Bearer {token}"})

    assert unauthorized(reply)["detail"] == "token expired"
    assert 'error="invalid_token"' in reply.headers["www-authenticate"]
    assert token.encode() not in reply.body
    assert token.split(".")[1].encode() not in reply.body


def test_the_right_partner_is_accepted_with_its_api_key(app: HttpApp) -> None:
    reply = post_stock(app, "acme", {"Authorization": f"ApiKey {dev_api_key('acme')}"})

    assert reply.status == 202, reply.body
    assert reply.json() == {"partner": "acme", "by": "dev-acme", "via": "api_key"}
    assert b"local-dev-secret" not in reply.body


def test_the_right_partner_is_accepted_with_its_token(app: HttpApp) -> None:
    token = issue_dev_token("alice", partner_id="globex")

    reply = post_stock(app, "globex", {"Authorization": f"Bearer {token}"})

    assert reply.status == 202, reply.body
    assert reply.json() == {"partner": "globex", "by": "alice", "via": "jwt"}
    assert token.encode() not in reply.body


def test_a_partner_writing_another_partners_path_is_a_403(app: HttpApp) -> None:
    reply = post_stock(app, "globex", {"X-API-Key": dev_api_key("acme")})

    doc = is_problem(reply, 403)
    assert "partner" in doc["detail"]
    assert b"local-dev-secret" not in reply.body


@pytest.mark.parametrize("caller", ["partner", "admin"])
def test_a_partner_in_the_path_that_is_no_partner_id_is_a_404_problem(
    app: HttpApp, caller: str
) -> None:
    headers = (
        {"X-API-Key": dev_api_key("acme")}
        if caller == "partner"
        else {"Authorization": f"Bearer {issue_dev_token('ops', scopes=['admin'])}"}
    )

    reply = post_stock(app, "acm\u00e9", headers)

    assert "{partner}" in is_problem(reply, 404)["detail"]


def test_a_key_without_the_write_scope_is_a_403(app: HttpApp) -> None:
    _, key = create_api_key("acme", "inventory:read")

    reply = post_stock(app, "acme", {"X-API-Key": key})

    assert "stock:write" in is_problem(reply, 403)["detail"]
    assert key.encode() not in reply.body


def test_an_admin_token_may_write_for_any_partner(app: HttpApp) -> None:
    token = issue_dev_token("ops", scopes=["admin"])

    assert post_stock(app, "initech", {"Authorization": f"Bearer {token}"}).status == 202


def test_a_member_token_may_read_but_not_write(app: HttpApp) -> None:
    token = issue_dev_token("shopper-7", scopes=["inventory:read"])
    headers = {"Authorization": f"Bearer {token}"}

    read = call(app, "GET", "/v1/inventory", headers=headers)
    write = post_stock(app, "acme", headers)

    assert read.status == 200
    assert read.json() == {"subject": "shopper-7", "partner": None}
    is_problem(write, 403)
    assert 'error="insufficient_scope"' in write.headers["www-authenticate"]


# --- an issuer's JWKS over HTTP (as App ID publishes it) --------------------------------------

ISSUER = "https://us-south.appid.example/oauth/v4/tenant-1"
AUDIENCE = "retailfn-app"


class _JwksServer:
    def __init__(self, jwks: dict[str, Any]) -> None:
        body = json.dumps(jwks).encode()
        self.fetches = 0
        server_self = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server_self.fetches += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/publickeys"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def jwks_server(signing_key: rsa.RSAPrivateKey) -> Iterator[_JwksServer]:
    public = {**json.loads(RSAAlgorithm.to_jwk(signing_key.public_key())), "kid": "appid-1"}
    server = _JwksServer({"keys": [public]})
    yield server
    server.stop()


def use_issuer(monkeypatch: pytest.MonkeyPatch, jwks_url: str) -> None:
    monkeypatch.setenv("RETAILFN_STAGE", "test")
    monkeypatch.setenv("RETAILFN_JWT_ISSUER", ISSUER)
    monkeypatch.setenv("RETAILFN_JWT_AUDIENCE", AUDIENCE)
    monkeypatch.setenv("RETAILFN_JWT_JWKS_URL", jwks_url)
    reset_settings()


def appid_token(key: rsa.RSAPrivateKey, **claims: Any) -> str:
    now = int(time.time())
    body = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "member-1",
        "iat": now,
        "exp": now + 300,
        "scope": "openid inventory:read",
        **claims,
    }
    return jwt.encode(body, key, algorithm="RS256", headers={"kid": "appid-1"})


def test_a_token_is_checked_against_the_issuers_jwks_url_fetched_once(
    app: HttpApp,
    jwks_server: _JwksServer,
    signing_key: rsa.RSAPrivateKey,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    use_issuer(monkeypatch, jwks_server.url)
    headers = {"Authorization": f"Bearer {appid_token(signing_key)}"}

    replies = [call(app, "GET", "/v1/inventory", headers=headers) for _ in range(3)]

    assert [r.status for r in replies] == [200, 200, 200]
    assert replies[0].json() == {"subject": "member-1", "partner": None}
    assert jwks_server.fetches == 1


def test_an_unreachable_jwks_is_a_503_not_a_401(
    app: HttpApp, signing_key: rsa.RSAPrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    use_issuer(monkeypatch, f"http://127.0.0.1:{port}/publickeys")

    reply = call(
        app, "GET", "/v1/inventory", headers={"Authorization": f"Bearer {appid_token(signing_key)}"}
    )

    is_problem(reply, 503)
    assert reply.headers["retry-after"]


# --- the command line --------------------------------------------------------------------------


def retailfn(monkeypatch: pytest.MonkeyPatch, *args: str) -> Any:
    from click.testing import CliRunner

    import shared.tools.cli

    # configure_logging binds the stream it is first given; leave it alone under CliRunner.
    monkeypatch.setattr(shared.tools.cli, "configure_logging", lambda *a, **k: None)
    return CliRunner().invoke(shared.tools.cli.main, list(args), catch_exceptions=False)


def test_a_key_made_with_the_cli_works_until_revoked_with_the_cli(
    app: HttpApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = retailfn(
        monkeypatch,
        "keys",
        "create",
        "--partner",
        "acme",
        "--scopes",
        "stock:write",
        "--expires-in-days",
        "30",
    )
    assert created.exit_code == 0, created.output
    key = created.stdout.strip()
    key_id = key.split("_")[1]

    assert post_stock(app, "acme", {"X-API-Key": key}).status == 202
    listing = retailfn(monkeypatch, "keys", "list", "--partner", "acme", "--json")
    [listed] = [json.loads(line) for line in listing.stdout.splitlines()]
    assert (listed["key_id"], listed["status"]) == (key_id, "active")
    assert "secret_sha256" not in listed and key.split("_", 2)[2] not in listing.stdout

    assert retailfn(monkeypatch, "keys", "revoke", key_id).exit_code == 0
    unauthorized(post_stock(app, "acme", {"X-API-Key": key}))


def test_the_cli_prints_a_dev_token_on_the_local_stage_only(
    app: HttpApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    issued = retailfn(
        monkeypatch,
        "token",
        "--subject",
        "alice",
        "--partner",
        "initech",
        "--scopes",
        "stock:write",
    )
    assert issued.exit_code == 0, issued.output
    reply = post_stock(app, "initech", {"Authorization": f"Bearer {issued.stdout.strip()}"})
    assert reply.status == 202

    monkeypatch.setenv("RETAILFN_STAGE", "prod")
    reset_settings()
    refused = retailfn(monkeypatch, "token", "--subject", "alice")
    assert refused.exit_code != 0
    assert "local stage only" in refused.output


def test_the_cli_prints_the_dev_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    printed = retailfn(monkeypatch, "keys", "dev")

    assert printed.exit_code == 0, printed.output
    assert printed.stdout.splitlines() == [
        f"{p} {dev_api_key(p)}" for p in ("acme", "globex", "initech")
    ]
