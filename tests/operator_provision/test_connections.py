"""The connections file and the env-based `default` connection: valid forms and errors that name the field."""

from __future__ import annotations

from pathlib import Path

import pytest
from sentryroute_operator.connections import (
    Connection,
    ConnectionsError,
    FileToken,
    StaticToken,
    connection_allows,
    load_connections,
    token_source,
)

CANARY = "sntrys_CANARY_connections_0123456789"


def _write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "connections.yaml"
    path.write_text(text)
    return str(path)


async def test_file_with_two_connections(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
connections:
  - name: default
    url: https://sentry.io/
    orgSlug: acme
    tokenSecret: {name: sentry-token, key: auth}
  - name: selfhosted
    url: http://sentry.local:9000/sentry
    orgSlug: Acme-Labs
    tokenFile: /var/run/sentry/token
    allowedNamespaces: [shop, "team-*"]
""",
    )
    conns = load_connections(path, {"SENTRY_ORG_SLUG": "ignored"})
    assert conns["default"] == Connection(
        name="default", url="https://sentry.io", org_slug="acme", token_secret="sentry-token", token_secret_key="auth"
    )
    hosted = conns["selfhosted"]
    assert hosted.url == "http://sentry.local:9000/sentry" and hosted.token_file == "/var/run/sentry/token"
    assert connection_allows(hosted, "shop") and connection_allows(hosted, "team-a")
    assert not connection_allows(hosted, "kube-system")
    assert connection_allows(conns["default"], "anything")  # allowedNamespaces omitted: every namespace
    assert isinstance(token_source(hosted), FileToken)
    with pytest.raises(ConnectionsError, match="Kubernetes client"):
        token_source(conns["default"])


async def test_env_default_connection_hides_the_token(tmp_path: Path) -> None:
    conns = load_connections(None, {"SENTRY_ORG_SLUG": "acme", "SENTRY_AUTH_TOKEN": CANARY + "\n"})
    conn = conns["default"]
    assert conn.url == "https://sentry.io" and conn.org_slug == "acme"
    assert CANARY not in repr(conn) and CANARY not in str(conn) and CANARY not in repr(conn.token)
    source = token_source(conn)
    assert isinstance(source, StaticToken) and await source.get() == CANARY
    assert CANARY not in repr(source)

    token_file = tmp_path / "token"
    token_file.write_text(CANARY)
    env = {"SENTRY_URL": "http://127.0.0.1:9000", "SENTRY_ORG_SLUG": "acme", "SENTRY_AUTH_TOKEN_FILE": str(token_file)}
    source = token_source(load_connections(None, env)["default"])
    assert await source.get() == CANARY
    assert load_connections(None, {}) == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("connections: [", "not valid YAML at line"),
        ("- a", "a 'connections' list"),
        ("connections: []\nextra: 1", "unknown top-level field 'extra'"),
        ("connections: [{url: 'https://x', orgSlug: a, tokenFile: /t}]", r"connections\[0\]\.name: required"),
        (
            "connections: [{name: Bad_Name, url: 'https://x', orgSlug: a, tokenFile: /t}]",
            r"\.name: 'Bad_Name' must be a DNS",
        ),
        (
            "connections: [{name: a, url: 'ftp://x', orgSlug: a, tokenFile: /t}]",
            r"\(a\)\.url: 'ftp://x' must be an http",
        ),
        (
            "connections: [{name: a, url: 'https://u:p@x', orgSlug: a, tokenFile: /t}]",
            r"\.url: must not carry credentials",
        ),
        ("connections: [{name: a, url: 'https://x:99999', orgSlug: a, tokenFile: /t}]", r"\.url: .* invalid port"),
        ("connections: [{name: a, url: 'https://x', orgSlug: '../x', tokenFile: /t}]", r"\.orgSlug: '\.\./x' is not"),
        ("connections: [{name: a, url: 'https://x', orgSlug: '123', tokenFile: /t}]", r"\.orgSlug"),
        ("connections: [{name: a, url: 'https://x', orgSlug: a}]", "exactly one of tokenSecret and tokenFile"),
        ("connections: [{name: a, url: 'https://x', orgSlug: a, tokenFile: /t, tokenSecret: s}]", "exactly one of"),
        ("connections: [{name: a, url: 'https://x', orgSlug: a, tokenSecret: {name: 'S!'}}]", r"\.tokenSecret\.name"),
        (
            "connections: [{name: a, url: 'https://x', orgSlug: a, tokenSecret: {name: s, key: 'a/b'}}]",
            r"tokenSecret\.key",
        ),
        (
            "connections: [{name: a, url: 'https://x', orgSlug: a, tokenFile: /t, allowedNamespaces: []}]",
            "allowedNamespaces: a non-empty list",
        ),
        (
            "connections: [{name: a, url: 'https://x', orgSlug: a, tokenFile: /t, allowedNamespaces: ['A B']}]",
            "is not a namespace",
        ),
        ("connections: [{name: a, url: 'https://x', orgslug: a, tokenFile: /t}]", "unknown field 'orgslug'"),
        (
            "connections: [{name: a, url: 'https://x', orgSlug: a, tokenFile: /t},"
            " {name: a, url: 'https://y', orgSlug: b, tokenFile: /t}]",
            r"connections\[1\]\.name 'a' is used twice",
        ),
    ],
)
def test_file_errors_name_the_field(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConnectionsError, match=message):
        load_connections(_write(tmp_path, text), {})


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConnectionsError, match="cannot read it"):
        load_connections(str(tmp_path / "absent.yaml"), {})


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SENTRY_AUTH_TOKEN": CANARY}, "SENTRY_ORG_SLUG is required"),
        ({"SENTRY_ORG_SLUG": "acme"}, "exactly one of SENTRY_AUTH_TOKEN"),
        ({"SENTRY_ORG_SLUG": "acme", "SENTRY_AUTH_TOKEN": CANARY, "SENTRY_AUTH_TOKEN_FILE": "/t"}, "exactly one of"),
        ({"SENTRY_ORG_SLUG": "acme", "SENTRY_URL": "sentry.io", "SENTRY_AUTH_TOKEN": CANARY}, "SENTRY_URL"),
        ({"SENTRY_ORG_SLUG": "a/b", "SENTRY_AUTH_TOKEN": CANARY}, "SENTRY_ORG_SLUG"),
        ({"SENTRY_ORG_SLUG": "acme", "SENTRY_AUTH_TOKEN": CANARY + " x"}, "SENTRY_AUTH_TOKEN"),
    ],
)
def test_env_errors(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConnectionsError, match=message) as info:
        load_connections(None, env)
    assert CANARY not in str(info.value)
