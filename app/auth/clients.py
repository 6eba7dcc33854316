"""API clients: named credentials with scopes, kept as hashes in a TOML file.

The file (`TRUSTPUB_CLIENTS_FILE`, mounted from a secret in production) holds
`[[client]]` tables with `name`, `scopes` and `secret_sha256`, and for a project-scoped
management key (scope `manage`) the `projects` it may manage. Secrets are 256-bit
random values, so a plain SHA-256 is the right hash: a slow password hash would add
milliseconds to every introspection and protect nothing more. Comparisons are
constant-time, and an unknown client name costs the same as a wrong secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from app.errors import ConfigurationError
from app.publishers.model import normalize_project_name

# manage: the trusted publishers of its `projects` only (a maintainer's key);
# pending: register pending publishers for projects that do not exist yet (the index,
# acting for a logged-in user); admin: everything, every project.
SCOPES = frozenset({"introspect", "revoke", "manage", "pending", "admin"})
SECRET_PREFIX = "tpc_"  # noqa: S105 (recognisable by secret scanners)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_HEX_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_PROJECT = re.compile(r"^([A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9._-]{0,198}[A-Za-z0-9])$")
# SHA-256 of the empty string: what `printf %s "$SECRET" | sha256sum` writes when SECRET
# is unset. Such an entry would let a bare `Authorization: Bearer` in.
_EMPTY_SECRET_DIGEST = hashlib.sha256(b"").hexdigest()


@dataclass(frozen=True)
class Client:
    name: str
    scopes: frozenset[str]
    # PEP 503-normalised projects a `manage` client may manage; admin manages all.
    projects: frozenset[str] = frozenset()

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes

    def manages(self, project: str) -> bool:
        """May this client change the publishers of `project` (normalised)?"""
        return "admin" in self.scopes or ("manage" in self.scopes and project in self.projects)


@dataclass(frozen=True)
class _Credential:
    client: Client
    digest: bytes


def hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


def new_client_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


class ClientRegistry:
    def __init__(self, credentials: Iterable[tuple[Client, bytes]] = ()) -> None:
        self._by_name = {client.name: _Credential(client, digest) for client, digest in credentials}
        self._dummy = hash_secret(new_client_secret())

    def names(self) -> frozenset[str]:
        return frozenset(self._by_name)

    def authenticate(self, authorization: str | None) -> Client | None:
        """The client named by an `Authorization` header (Basic or Bearer), or None."""
        presented = presented_credential(authorization)
        if presented is None:
            return None
        name, secret = presented
        return self._bearer(secret) if name is None else self._basic(name, secret)

    def _basic(self, name: str, secret: str) -> Client | None:
        credential = self._by_name.get(name)
        expected = credential.digest if credential else self._dummy
        matches = hmac.compare_digest(hash_secret(secret), expected)
        return credential.client if credential and matches else None

    def _bearer(self, secret: str) -> Client | None:
        # Clients are few: compare against every one, in constant time each, and keep
        # going after a match so the time does not depend on which client it was.
        presented = hash_secret(secret)
        found = None
        for credential in self._by_name.values():
            if hmac.compare_digest(presented, credential.digest):
                found = credential.client
        return found


def presented_credential(authorization: str | None) -> tuple[str | None, str] | None:
    """(client name, secret) of an `Authorization` header: Basic carries both, Bearer the
    secret alone (name None); None for a header that carries neither. The one reading of
    the header: whatever keys on a credential (rate limits) reads it as authentication does."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer":
        # No secret is no credential, whatever hash a clients file holds.
        return (None, value.strip()) if value.strip() else None
    if scheme != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    name, colon, secret = decoded.partition(":")
    return (name, secret) if colon and secret else None


def load_clients_file(path: Path) -> ClientRegistry:
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigurationError(f"clients_file: cannot read {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"clients_file: {path} is not valid TOML: {exc}") from exc
    entries = document.get("client", [])
    if set(document) - {"client"} or not isinstance(entries, list):
        raise ConfigurationError(f"clients_file: {path}: expected only [[client]] tables")
    credentials = []
    for index, entry in enumerate(entries):
        where = f"clients_file: {path}: client[{index}]"
        required = {"name", "scopes", "secret_sha256"}
        if not isinstance(entry, dict) or not required <= set(entry) <= required | {"projects"}:
            raise ConfigurationError(
                f"{where}: needs exactly name, scopes and secret_sha256 (and projects for manage)"
            )
        name, scopes, digest = entry["name"], entry["scopes"], entry["secret_sha256"]
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ConfigurationError(f"{where}.name: letters, digits, . _ - (at most 64)")
        if (
            not isinstance(scopes, list)
            or not scopes
            or not all(isinstance(scope, str) and scope in SCOPES for scope in scopes)
        ):
            raise ConfigurationError(f"{where}.scopes: a non-empty list of {sorted(SCOPES)}")
        if not isinstance(digest, str) or not _HEX_DIGEST.fullmatch(digest):
            raise ConfigurationError(f"{where}.secret_sha256: 64 lower-case hex digits")
        if digest == _EMPTY_SECRET_DIGEST:
            raise ConfigurationError(
                f"{where}.secret_sha256 is the hash of an empty secret: "
                "create the client with 'trustpub clients add'"
            )
        projects = _projects(f"{where}.projects", scopes, entry.get("projects"))
        credentials.append((Client(name, frozenset(scopes), projects), bytes.fromhex(digest)))
    names = [client.name for client, _ in credentials]
    if len(set(names)) != len(names):
        raise ConfigurationError(f"clients_file: {path}: client names must be unique")
    first_with: dict[bytes, int] = {}
    for index, (_, digest) in enumerate(credentials):
        # A bearer secret names its client by the hash alone: two clients with one hash
        # would leave which of them (and which scopes) a caller gets to the file's order.
        earlier = first_with.setdefault(digest, index)
        if earlier != index:
            raise ConfigurationError(
                f"clients_file: {path}: client[{index}].secret_sha256 is client[{earlier}]'s: "
                "each client needs its own secret ('trustpub clients add')"
            )
    return ClientRegistry(credentials)


def _projects(field: str, scopes: list[str], value: object) -> frozenset[str]:
    """`field` names where the projects came from: a file's key, or the CLI's option."""
    if value is None:
        if "manage" in scopes:
            raise ConfigurationError(f"{field}: a manage client needs its projects")
        return frozenset()
    if "manage" not in scopes:
        raise ConfigurationError(f"{field}: only a manage client has projects")
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(p, str) and _PROJECT.fullmatch(p) for p in value)
    ):
        raise ConfigurationError(f"{field}: a non-empty list of project names")
    return frozenset(normalize_project_name(p) for p in value)


def add_client(path: Path, name: str, scopes: Iterable[str], projects: Iterable[str] = ()) -> str:
    """Append a client to the file and return its secret, which is stored nowhere else."""
    scopes = sorted(set(scopes))
    projects = sorted({normalize_project_name(p) for p in projects})
    if not _NAME.fullmatch(name):
        raise ConfigurationError("client name: letters, digits, . _ - (at most 64)")
    if not scopes or not set(scopes) <= SCOPES:
        raise ConfigurationError(f"scopes: choose from {sorted(SCOPES)}")
    _projects("--project", scopes, projects or None)
    if path.exists():
        registry = load_clients_file(path)
        if name in registry.names():
            raise ConfigurationError(f"client {name!r} exists already in {path}")
    secret = new_client_secret()
    entry = (
        "\n[[client]]\n"
        f'name = "{name}"\n'
        f"scopes = {json.dumps(scopes)}\n"
        + (f"projects = {json.dumps(projects)}\n" if projects else "")
        + f'secret_sha256 = "{hash_secret(secret).hex()}"\n'
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(entry)
    path.chmod(0o600)
    return secret
