"""One typed, frozen Settings object, read from a TOML file and the environment.

Sources, later winning: built-in defaults, the TOML file named by `TRUSTPUB_CONFIG`,
then `TRUSTPUB_*` environment variables. Everything is validated here, at start-up,
with messages that tell the operator what to change.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import limits

from app.errors import ConfigurationError

PUBLIC_GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
PUBLIC_GITLAB_ISSUER = "https://gitlab.com"
GOOGLE_ISSUER = "https://accounts.google.com"
DEV_AUDIENCE = "trustpub-dev"

# Upload tokens are bearer credentials for publishing; a long lifetime turns a leak into
# an incident. 15 minutes matches PyPI; the cap keeps a typo from minting day-long tokens.
DEFAULT_TOKEN_TTL = 900
MAX_TOKEN_TTL = 3600
MIN_TOKEN_TTL = 60

_AUDIENCE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")
_PREFIX = re.compile(r"^[a-z0-9][a-z0-9_-]{0,15}$")


@dataclass(frozen=True)
class Settings:
    audience: str
    policies_dir: Path
    # Out of the repr, as a password they may hold: a Settings printed by a debugger or a
    # log line must not carry it.
    redis_url: str | None = field(default=None, repr=False)
    # Replicas that must hold a replay claim or revocation before it is acknowledged.
    redis_min_replicas: int = 0
    signing_keys: Path | None = None
    token_ttl: int = DEFAULT_TOKEN_TTL
    token_prefix: str = "pypi-"  # noqa: S105 (a prefix, not a secret)
    github_issuers: tuple[str, ...] = (PUBLIC_GITHUB_ISSUER,)
    # gitlab.com and the external URLs of self-managed GitLab instances.
    gitlab_issuers: tuple[str, ...] = (PUBLIC_GITLAB_ISSUER,)
    # Google service accounts are off unless listed: their tokens live an hour and
    # carry no jti, so trusting them is an explicit decision of the operator.
    google_issuers: tuple[str, ...] = ()
    # Kill switches per provider. A disabled provider's issuers (custom ones included)
    # stay configured, so policies naming them still load, but its tokens are refused
    # with `not-enabled` before any key is fetched.
    disabled_providers: frozenset[str] = frozenset()
    enabled: bool = True
    # TOML file of API clients (introspection, revocation); unset: no client can call them.
    clients_file: Path | None = None
    # The key that signs, by kid; unset: the key whose file name sorts last. Pinning it
    # lets a new key be rolled out to every replica (verify-only) before it signs.
    signing_kid: str | None = None
    # Rate limits (the `limits` notation, e.g. "30/minute;300/hour"), kept in
    # `rate_limit_storage`: memory:// counts per process; a redis:// URL shares the
    # counts between replicas at the cost of a round trip per limited request.
    rate_limit_storage: str = field(default="memory://", repr=False)
    mint_rate_limit: str = "60/minute;600/hour"
    publisher_rate_limit: str = "30/minute"
    introspect_rate_limit: str = "6000/minute"
    revoke_rate_limit: str = "120/minute"
    # Publisher registrations (add, remove, declare a project): per client key and,
    # separately, per source address.
    registration_rate_limit: str = "30/minute;300/hour"
    # Publisher listings and audit reads: per client key and per source address. An
    # audit read may scan 10,000 records (~40 ms of a worker's thread).
    read_rate_limit: str = "120/minute"
    # Pending publishers are ignored, then purged, this many days after registration.
    pending_publisher_days: int = 30
    # Records kept in the audit stream (Redis trims it approximately to this length).
    audit_max_length: int = 100_000
    # How often every process checks for registration changes (milliseconds): a change
    # takes effect everywhere within about this delay.
    registrations_poll_ms: int = 1000
    # Reverse proxies in front of trustpub whose X-Forwarded-For is trusted: the client
    # address for per-address limits is taken that many hops back.
    trusted_proxies: int = 0
    # Without `redis_url`, outside development: a one-process trial that knows its replay
    # records and revocations live in that process and die with it. Asked for by name,
    # so that an empty `redis_url` never starts such a service by accident.
    in_memory_stores: bool = False
    # Development setup: trusts the local development issuer, generates a signing key
    # in `dev_dir` when none is configured. Never on unless asked for explicitly.
    dev: bool = False
    dev_dir: Path = Path(".dev")

    @property
    def provider_issuers(self) -> dict[str, tuple[str, ...]]:
        """The configured issuer URLs of every provider, by provider name."""
        return {provider: getattr(self, setting) for provider, setting in PROVIDER_ISSUERS.items()}

    @property
    def token_issuer(self) -> str:
        """`iss` of minted upload tokens: never equal to any CI issuer (RFC 8725 §3.12)."""
        return f"urn:trustpub:{self.audience}"

    @property
    def upload_audience(self) -> str:
        """`aud` of minted upload tokens: distinct from the OIDC audience on purpose."""
        return f"urn:trustpub:upload:{self.audience}"


_ENV_KEYS = {
    "TRUSTPUB_AUDIENCE": "audience",
    "TRUSTPUB_REDIS_URL": "redis_url",
    "TRUSTPUB_REDIS_MIN_REPLICAS": "redis_min_replicas",
    "TRUSTPUB_POLICIES_DIR": "policies_dir",
    "TRUSTPUB_SIGNING_KEYS": "signing_keys",
    "TRUSTPUB_TOKEN_TTL": "token_ttl",
    "TRUSTPUB_TOKEN_PREFIX": "token_prefix",
    "TRUSTPUB_GITHUB_ISSUERS": "github_issuers",
    "TRUSTPUB_GITLAB_ISSUERS": "gitlab_issuers",
    "TRUSTPUB_GOOGLE_ISSUERS": "google_issuers",
    "TRUSTPUB_DISABLED_PROVIDERS": "disabled_providers",
    "TRUSTPUB_ENABLED": "enabled",
    "TRUSTPUB_CLIENTS_FILE": "clients_file",
    "TRUSTPUB_SIGNING_KID": "signing_kid",
    "TRUSTPUB_RATE_LIMIT_STORAGE": "rate_limit_storage",
    "TRUSTPUB_MINT_RATE_LIMIT": "mint_rate_limit",
    "TRUSTPUB_PUBLISHER_RATE_LIMIT": "publisher_rate_limit",
    "TRUSTPUB_INTROSPECT_RATE_LIMIT": "introspect_rate_limit",
    "TRUSTPUB_REVOKE_RATE_LIMIT": "revoke_rate_limit",
    "TRUSTPUB_REGISTRATION_RATE_LIMIT": "registration_rate_limit",
    "TRUSTPUB_READ_RATE_LIMIT": "read_rate_limit",
    "TRUSTPUB_PENDING_PUBLISHER_DAYS": "pending_publisher_days",
    "TRUSTPUB_AUDIT_MAX_LENGTH": "audit_max_length",
    "TRUSTPUB_REGISTRATIONS_POLL_MS": "registrations_poll_ms",
    "TRUSTPUB_TRUSTED_PROXIES": "trusted_proxies",
    "TRUSTPUB_DEV": "dev",
    "TRUSTPUB_IN_MEMORY_STORES": "in_memory_stores",
    "TRUSTPUB_DEV_DIR": "dev_dir",
}
_FILE_KEYS = frozenset(_ENV_KEYS.values())

# Every provider and the setting that lists its issuers (app.publishers.providers has
# one module per name; a test keeps the two lists equal).
PROVIDER_ISSUERS = {
    "github": "github_issuers",
    "gitlab": "gitlab_issuers",
    "google": "google_issuers",
}


def load_settings(environ: Mapping[str, str], *, dev: bool | None = None) -> Settings:
    """Build Settings from `TRUSTPUB_CONFIG` (a TOML file) and `TRUSTPUB_*` variables."""
    raw: dict[str, Any] = {}
    config_path = environ.get("TRUSTPUB_CONFIG")
    if config_path:
        raw.update(_read_config_file(Path(config_path)))
    for env_name, key in _ENV_KEYS.items():
        # An empty variable counts as unset: `TRUSTPUB_ENABLED=` in a manifest must not
        # silently switch publishing off, nor `TRUSTPUB_POLICIES_DIR=` mean the cwd.
        if environ.get(env_name, "").strip():
            raw[key] = environ[env_name]
    if dev is not None:
        raw["dev"] = dev
    return _build(raw)


def _read_config_file(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigurationError(f"TRUSTPUB_CONFIG: cannot read {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"TRUSTPUB_CONFIG: {path} is not valid TOML: {exc}") from exc
    unknown = sorted(set(data) - _FILE_KEYS)
    if unknown:
        raise ConfigurationError(
            f"TRUSTPUB_CONFIG: {path}: unknown setting(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(_FILE_KEYS))}"
        )
    return data


def _build(raw: Mapping[str, Any]) -> Settings:
    dev = _as_bool("dev", raw.get("dev", False))
    audience = _as_str("audience", raw.get("audience", DEV_AUDIENCE if dev else ""))
    if not audience:
        raise ConfigurationError(
            "audience is not set: set TRUSTPUB_AUDIENCE to a value unique to this index "
            "(for example 'pypi.example.com'); CI tokens must be requested for it"
        )
    if not _AUDIENCE.fullmatch(audience):
        raise ConfigurationError(
            f"audience {audience!r} is not valid: use letters, digits and . _ : / - only"
        )
    if audience.lower() == "pypi":
        raise ConfigurationError(
            "audience 'pypi' belongs to pypi.org: a token minted for one index must not be "
            "usable at another, so give this deployment its own audience"
        )

    # Stripped before the check: a blank value would otherwise become Path("."), i.e.
    # every *.pem file in the working directory.
    signing_keys = _as_str("signing_keys", raw.get("signing_keys") or "") or None
    if signing_keys is None and not dev:
        raise ConfigurationError(
            "signing_keys is not set: set TRUSTPUB_SIGNING_KEYS to a PEM file or a directory of "
            "PEM files (create one with 'trustpub keys generate')"
        )

    token_ttl = _as_int("token_ttl", raw.get("token_ttl", DEFAULT_TOKEN_TTL))
    if not MIN_TOKEN_TTL <= token_ttl <= MAX_TOKEN_TTL:
        raise ConfigurationError(
            f"token_ttl {token_ttl} is out of range: use {MIN_TOKEN_TTL}..{MAX_TOKEN_TTL} seconds"
        )

    token_prefix = _as_str("token_prefix", raw.get("token_prefix", "pypi-"))
    if not _PREFIX.fullmatch(token_prefix):
        raise ConfigurationError(
            f"token_prefix {token_prefix!r} is not valid: 1-16 lower-case letters, digits, _ or -"
        )

    github_issuers = _as_issuers("github_issuers", raw.get("github_issuers"))
    gitlab_issuers = _as_issuers(
        "gitlab_issuers", raw.get("gitlab_issuers"), default=(PUBLIC_GITLAB_ISSUER,)
    )
    google_issuers = _as_issuers(
        "google_issuers", raw.get("google_issuers"), default=(), allow_empty=True
    )
    _require_one_provider_per_issuer(
        {"github": github_issuers, "gitlab": gitlab_issuers, "google": google_issuers}
    )

    redis_url = _as_str("redis_url", raw.get("redis_url", "")) or None
    in_memory_stores = _as_bool("in_memory_stores", raw.get("in_memory_stores", False))
    if redis_url is not None and in_memory_stores:
        raise ConfigurationError("set redis_url or in_memory_stores, not both")
    return Settings(
        audience=audience,
        policies_dir=_as_dir("policies_dir", raw.get("policies_dir", "policies")),
        redis_url=redis_url,
        redis_min_replicas=_as_count("redis_min_replicas", raw.get("redis_min_replicas", 0)),
        signing_keys=Path(signing_keys) if signing_keys else None,
        token_ttl=token_ttl,
        token_prefix=token_prefix,
        github_issuers=github_issuers,
        gitlab_issuers=gitlab_issuers,
        google_issuers=google_issuers,
        disabled_providers=_as_providers("disabled_providers", raw.get("disabled_providers")),
        enabled=_as_bool("enabled", raw.get("enabled", True)),
        clients_file=_optional_path("clients_file", raw.get("clients_file")),
        signing_kid=_as_str("signing_kid", raw.get("signing_kid", "")) or None,
        rate_limit_storage=_as_str(
            "rate_limit_storage", raw.get("rate_limit_storage", Settings.rate_limit_storage)
        ),
        mint_rate_limit=_rate_limit(raw, "mint_rate_limit"),
        publisher_rate_limit=_rate_limit(raw, "publisher_rate_limit"),
        introspect_rate_limit=_rate_limit(raw, "introspect_rate_limit"),
        revoke_rate_limit=_rate_limit(raw, "revoke_rate_limit"),
        registration_rate_limit=_rate_limit(raw, "registration_rate_limit"),
        read_rate_limit=_rate_limit(raw, "read_rate_limit"),
        pending_publisher_days=_in_range(raw, "pending_publisher_days", 1, 365),
        audit_max_length=_in_range(raw, "audit_max_length", 1000, 100_000_000),
        registrations_poll_ms=_in_range(raw, "registrations_poll_ms", 50, 60_000),
        trusted_proxies=_as_count("trusted_proxies", raw.get("trusted_proxies", 0)),
        in_memory_stores=in_memory_stores,
        dev=dev,
        dev_dir=_as_dir("dev_dir", raw.get("dev_dir", ".dev")),
    )


def _as_str(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigurationError(f"{name} must be a string, got {type(value).__name__}")
    return value.strip()


def _as_dir(name: str, value: Any) -> Path:
    text = _as_str(name, value)
    if not text:
        # An empty variable counts as unset, but a blank value in the file would become
        # Path("."): the policies (or dev keys) of whatever directory the process runs in.
        raise ConfigurationError(f"{name} is empty: name a directory, or leave it out")
    return Path(text)


def _optional_path(name: str, value: Any) -> Path | None:
    text = _as_str(name, value) if value is not None else ""
    return Path(text) if text else None


def _rate_limit(raw: Mapping[str, Any], name: str) -> str:
    text = _as_str(name, raw.get(name, getattr(Settings, name)))
    try:
        items = limits.parse_many(text)
    except ValueError:
        raise ConfigurationError(
            f"{name} {text!r} is not a rate limit: use e.g. '30/minute' or '10/second;300/hour'"
        ) from None
    if any(item.amount < 1 for item in items):
        # It would refuse every request: an outage that looks like a limit. A route is
        # switched off elsewhere (enabled, disabled_providers), not here.
        raise ConfigurationError(f"{name} {text!r}: each limit must allow at least 1 request")
    return text


def _in_range(raw: Mapping[str, Any], name: str, low: int, high: int) -> int:
    value = _as_int(name, raw.get(name, getattr(Settings, name)), unit="")
    if not low <= value <= high:
        raise ConfigurationError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _as_count(name: str, value: Any) -> int:
    count = _as_int(name, value, unit="")
    if not 0 <= count <= 16:
        raise ConfigurationError(f"{name} must be between 0 and 16, got {count}")
    return count


def _as_int(name: str, value: Any, unit: str = " of seconds") -> int:
    # `unit` is empty for counts, days and milliseconds, whose names say their unit.
    wrong = f"{name} must be a whole number{unit}"
    if isinstance(value, bool):
        raise ConfigurationError(wrong)
    if isinstance(value, int):
        return value
    if not isinstance(value, str):
        raise ConfigurationError(wrong)
    try:
        return int(_as_str(name, value))
    except ValueError:
        raise ConfigurationError(wrong) from None


_TRUE = {"1", "true", "yes", "on"}
# Not "": an empty variable never gets here (it counts as unset), and `enabled = ""` in
# the file is a template left unfilled, not a decision to switch publishing off.
_FALSE = {"0", "false", "no", "off"}


def _as_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if not isinstance(value, str):
        raise ConfigurationError(f"{name} must be true or false, got {value!r}")
    text = _as_str(name, value).lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigurationError(f"{name} must be true or false, got {value!r}")


def _as_issuers(
    name: str,
    value: Any,
    default: tuple[str, ...] = (PUBLIC_GITHUB_ISSUER,),
    *,
    allow_empty: bool = False,
) -> tuple[str, ...]:
    if value is None:
        return default
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ConfigurationError(f"{name} must be a list of issuer URLs")
    issuers = tuple(_as_str(name, item) for item in items if str(item).strip())
    if not issuers and not allow_empty:
        raise ConfigurationError(f"{name} is empty: name at least one issuer URL")
    for issuer in issuers:
        validate_issuer_url(name, issuer)
    return issuers


def _require_one_provider_per_issuer(issuers: Mapping[str, tuple[str, ...]]) -> None:
    # An issuer is looked up by its URL alone: listed under two providers, its tokens
    # would be read with the claim rules of whichever came last.
    owner: dict[str, str] = {}
    for provider, urls in issuers.items():
        for url in urls:
            first = owner.setdefault(url, provider)
            if first != provider:
                raise ConfigurationError(
                    f"{PROVIDER_ISSUERS[provider]}: issuer {url!r} is already one of "
                    f"{PROVIDER_ISSUERS[first]}; an issuer belongs to one provider"
                )


def _as_providers(name: str, value: Any) -> frozenset[str]:
    if value is None:
        return frozenset()
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ConfigurationError(f"{name} must be a list of provider names")
    names = frozenset(_as_str(name, item).lower() for item in items if str(item).strip())
    unknown = sorted(names - PROVIDER_ISSUERS.keys())
    if unknown:
        raise ConfigurationError(
            f"{name}: unknown provider(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(PROVIDER_ISSUERS))}"
        )
    return names


def validate_issuer_url(name: str, issuer: str) -> None:
    """An issuer is compared byte for byte with `iss`, and its keys come over TLS only."""
    # Anywhere in the text, not only in what a parser takes for the authority, and before
    # any message that quotes the URL (user:password@ is a secret, and start-up errors are
    # logged): a password holding "/", "?", "#", "[" or "]" moves where parsers end the
    # authority, and with it the password into a quoted "host" or path. No CI issuer has
    # an "@" in its URL.
    if "@" in issuer:
        raise ConfigurationError(
            f"{name}: an issuer URL must not contain '@' (credentials, user:password@; not shown)"
        )
    try:
        parts = urlsplit(issuer)
        parts.port  # noqa: B018 (raises ValueError for a port that is not 0-65535)
    except ValueError:
        raise ConfigurationError(f"{name}: issuer {issuer!r} is not a valid URL") from None
    # Checked on the string itself, not only the parsed URL: urlsplit lower-cases the
    # scheme, but `iss` is compared byte for byte and policies spell it "https://".
    if not issuer.startswith("https://") or not parts.hostname:
        raise ConfigurationError(f"{name}: issuer {issuer!r} must be an https:// URL")
    if any(char.isspace() for char in issuer):
        raise ConfigurationError(f"{name}: issuer {issuer!r} must not contain whitespace")
    if "\\" in issuer:
        # urlsplit and requests would read its host apart: keys are fetched by requests.
        raise ConfigurationError(f"{name}: issuer {issuer!r} must not contain a backslash")
    if parts.query or parts.fragment:
        raise ConfigurationError(f"{name}: issuer {issuer!r} must not have a query or fragment")
    if issuer.endswith("/"):
        raise ConfigurationError(
            f"{name}: issuer {issuer!r} must not end with '/': tokens carry it without one"
        )
