"""`load_clients_file`: every bad entry stops start-up with a ConfigurationError, and no
entry lets a caller in without a secret."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest

from app.auth.clients import (
    Client,
    ClientRegistry,
    hash_secret,
    load_clients_file,
    new_client_secret,
)
from app.errors import ConfigurationError

SECRET = new_client_secret()
DIGEST = hash_secret(SECRET).hex()
EMPTY_DIGEST = hashlib.sha256(b"").hexdigest()


def write_clients(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "clients.toml"
    path.write_text(text, encoding="utf-8")
    return path


def client_entry(scopes: str = '["introspect"]', digest: str = DIGEST, name: str = "idx") -> str:
    return f'[[client]]\nname = "{name}"\nscopes = {scopes}\nsecret_sha256 = "{digest}"\n'


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        (client_entry(scopes="[]"), ["client[0].scopes", "non-empty list"]),
        (client_entry(scopes='["root"]'), ["client[0].scopes"]),
        # Not a TypeError traceback at start-up (a list or table is unhashable).
        (client_entry(scopes='[["admin"]]'), ["client[0].scopes"]),
        (client_entry(scopes="[{ scope = 'admin' }]"), ["client[0].scopes"]),
        (client_entry(digest=DIGEST.upper()), ["secret_sha256", "lower-case hex"]),
        # What a hand-made hash of an unset variable gives: any empty secret would match.
        (client_entry(digest=EMPTY_DIGEST), ["secret_sha256", "empty secret"]),
        (client_entry() + client_entry(), ["client names must be unique"]),
        # A bearer secret would name whichever came last: an entry copied to grant more
        # scopes would take over the other's callers, or the other way round.
        (
            client_entry() + client_entry(scopes='["admin"]', name="ops"),
            ["client[1].secret_sha256", "client[0]", "its own secret"],
        ),
    ],
    ids=[
        "scopes-empty",
        "scope-unknown",
        "scope-list",
        "scope-table",
        "digest-upper-case",
        "digest-of-empty-secret",
        "name-twice",
        "secret-twice",
    ],
)
def test_invalid_clients_file(tmp_path: Path, text: str, fragments: list[str]) -> None:
    path = write_clients(tmp_path, text)

    with pytest.raises(ConfigurationError) as excinfo:
        load_clients_file(path)

    message = str(excinfo.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer",
        "Bearer ",
        "bearer    ",
        "Basic " + base64.b64encode(b"idx:").decode(),
    ],
    ids=["bearer-alone", "bearer-space", "bearer-spaces", "basic-empty-secret"],
)
def test_an_empty_secret_is_no_credential(authorization: str) -> None:
    # Even if a hash of the empty secret got into the registry some other way.
    registry = ClientRegistry([(Client("idx", frozenset({"admin"})), bytes.fromhex(EMPTY_DIGEST))])

    assert registry.authenticate(authorization) is None


def test_a_valid_client_authenticates(tmp_path: Path) -> None:
    registry = load_clients_file(write_clients(tmp_path, client_entry()))
    basic = base64.b64encode(f"idx:{SECRET}".encode()).decode()

    for authorization in (f"Bearer {SECRET}", f"Basic {basic}"):
        client = registry.authenticate(authorization)
        assert client is not None
        assert client.name == "idx"
