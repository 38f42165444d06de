"""The state database's CA as infra/ hands it to the apps: RETAILFN_DATABASE_CA_PEM (the PEM in an
environment variable, from the Code Engine secret) goes to a private file that the URL's
``sslrootcert`` names, since libpq reads a CA from a file only."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from sqlalchemy import make_url

from shared.platform.settings import Settings, SettingsError, build_settings

PEM = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUZm9yIHRlc3RzIG9ubHk=\n-----END CERTIFICATE-----\n"
URL = "postgresql+psycopg://app:pw@db.example:31000/ibmclouddb?sslmode=verify-full"


def settings(url: str, pem: str = PEM) -> Settings:
    return build_settings({"RETAILFN_DATABASE_URL": url, "RETAILFN_DATABASE_CA_PEM": pem})


def test_the_ca_goes_to_a_private_file_that_the_url_names() -> None:
    url = make_url(settings(URL).effective_database_url())

    ca = Path(str(url.query["sslrootcert"]))
    assert ca.read_text(encoding="utf-8") == PEM
    assert stat.S_IMODE(ca.stat().st_mode) == 0o600
    assert url.query["sslmode"] == "verify-full"
    assert (url.username, url.password, url.host, url.port, url.database) == (
        "app",
        "pw",
        "db.example",
        31000,
        "ibmclouddb",
    )


def test_the_process_engine_gets_the_ca_without_connecting(monkeypatch: pytest.MonkeyPatch) -> None:
    from shared.platform.adapters import get_state_engine

    monkeypatch.setenv("RETAILFN_DATABASE_URL", URL)
    monkeypatch.setenv("RETAILFN_DATABASE_CA_PEM", PEM)

    query = get_state_engine().url.query

    assert Path(str(query["sslrootcert"])).read_text(encoding="utf-8") == PEM
    assert query["sslmode"] == "verify-full"


def test_one_file_per_certificate_however_often_the_url_is_asked_for() -> None:
    first = settings(URL).effective_database_url()

    assert settings(URL).effective_database_url() == first


def test_a_url_without_sslmode_gets_verify_full() -> None:
    url = make_url(
        settings("postgres://app:pw@db.example:31000/ibmclouddb").effective_database_url()
    )

    assert url.query["sslmode"] == "verify-full"
    assert Path(str(url.query["sslrootcert"])).read_text(encoding="utf-8") == PEM


def test_the_urls_own_sslrootcert_and_sslmode_win(tmp_path: Path) -> None:
    own = f"{URL.replace('verify-full', 'verify-ca')}&sslrootcert={tmp_path / 'ca.crt'}"

    assert settings(own).effective_database_url() == own


def test_a_sqlite_database_ignores_the_ca(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"

    assert settings(url).effective_database_url() == url


def test_without_a_ca_the_url_is_unchanged() -> None:
    assert settings(URL, pem="").effective_database_url() == URL


def test_a_ca_that_is_not_a_pem_certificate_is_refused_naming_the_variable() -> None:
    with pytest.raises(SettingsError) as err:
        settings(URL, pem="LS0tLS1CRUdJTi...base64, not decoded")

    assert str(err.value).startswith("RETAILFN_DATABASE_CA_PEM=")
    assert "not a PEM certificate (no -----BEGIN CERTIFICATE----- line)" in str(err.value)
