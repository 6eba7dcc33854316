"""`load_settings`: sources, precedence, and a helpful ConfigurationError for every bad value."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.errors import ConfigurationError
from app.settings import (
    DEFAULT_TOKEN_TTL,
    DEV_AUDIENCE,
    PUBLIC_GITHUB_ISSUER,
    Settings,
    load_settings,
)

# The smallest environment a production deployment can start with.
PRODUCTION = {
    "TRUSTPUB_AUDIENCE": "pypi.example.com",
    "TRUSTPUB_SIGNING_KEYS": "/etc/trustpub/keys",
}
DROP = object()  # marks an environment variable to leave out


def production(**changes: Any) -> dict[str, str]:
    environ = dict(PRODUCTION)
    for name, value in changes.items():
        if value is DROP:
            environ.pop(name, None)
        else:
            environ[name] = value
    return environ


def write_config(tmp_path: Path, text: str) -> dict[str, str]:
    path = tmp_path / "trustpub.toml"
    path.write_text(text, encoding="utf-8")
    return {"TRUSTPUB_CONFIG": str(path)}


def test_production_defaults() -> None:
    settings = load_settings(PRODUCTION)

    assert settings == Settings(
        audience="pypi.example.com",
        policies_dir=Path("policies"),
        redis_url=None,
        signing_keys=Path("/etc/trustpub/keys"),
        token_ttl=DEFAULT_TOKEN_TTL,
        token_prefix="pypi-",
        github_issuers=(PUBLIC_GITHUB_ISSUER,),
        enabled=True,
        dev=False,
        dev_dir=Path(".dev"),
    )
    # Minted tokens must never be mistaken for CI tokens (RFC 8725 §3.11-3.12).
    assert settings.token_issuer == "urn:trustpub:pypi.example.com"
    assert settings.upload_audience == "urn:trustpub:upload:pypi.example.com"
    assert settings.token_issuer not in settings.github_issuers


def test_the_settings_repr_holds_no_store_password() -> None:
    settings = load_settings(
        production(
            TRUSTPUB_REDIS_URL="redis://:S3CRET-redis@redis.internal:6379/0",
            TRUSTPUB_RATE_LIMIT_STORAGE="redis://:S3CRET-limits@redis.internal:6379/1",
        )
    )

    assert settings.redis_url is not None  # read, and used
    assert "S3CRET" not in repr(settings)
    assert "S3CRET" not in str(settings)


def test_dev_defaults_need_no_audience_and_no_keys() -> None:
    settings = load_settings({}, dev=True)

    assert settings.dev is True
    assert settings.audience == DEV_AUDIENCE == "trustpub-dev"
    assert settings.signing_keys is None


@pytest.mark.parametrize(
    ("environ", "dev", "expected_dev"),
    [
        ({"TRUSTPUB_DEV": "true"}, None, True),
        ({"TRUSTPUB_DEV": "1"}, None, True),
        # The command-line switch wins over the environment, in both directions.
        ({"TRUSTPUB_DEV": "true"}, False, None),
        ({"TRUSTPUB_DEV": "false"}, True, True),
    ],
    ids=["env-true", "env-1", "argument-false-wins", "argument-true-wins"],
)
def test_dev_switch(environ: dict[str, str], dev: bool | None, expected_dev: bool | None) -> None:
    if expected_dev is None:
        # dev=False means production rules: no audience set is an error.
        with pytest.raises(ConfigurationError, match="TRUSTPUB_AUDIENCE"):
            load_settings(environ, dev=dev)
    else:
        assert load_settings(environ, dev=dev).dev is expected_dev


@pytest.mark.parametrize(
    ("changes", "fragments"),
    [
        ({"TRUSTPUB_AUDIENCE": DROP}, ["audience is not set", "TRUSTPUB_AUDIENCE"]),
        ({"TRUSTPUB_AUDIENCE": ""}, ["audience is not set"]),
        ({"TRUSTPUB_AUDIENCE": "   "}, ["audience is not set"]),
        ({"TRUSTPUB_AUDIENCE": "pypi"}, ["'pypi' belongs to pypi.org", "its own audience"]),
        ({"TRUSTPUB_AUDIENCE": "PyPI"}, ["'pypi' belongs to pypi.org"]),
        ({"TRUSTPUB_AUDIENCE": "my index"}, ["'my index'", "is not valid"]),
        ({"TRUSTPUB_AUDIENCE": "-leading-dash"}, ["is not valid"]),
        ({"TRUSTPUB_AUDIENCE": "a" * 129}, ["is not valid"]),
        ({"TRUSTPUB_TOKEN_PREFIX": "PYPI-"}, ["token_prefix 'PYPI-'", "lower-case"]),
        ({"TRUSTPUB_TOKEN_PREFIX": "-pypi"}, ["token_prefix '-pypi'"]),
        ({"TRUSTPUB_TOKEN_PREFIX": "a" * 17}, ["token_prefix", "1-16"]),
        ({"TRUSTPUB_TOKEN_PREFIX": "py.pi"}, ["token_prefix 'py.pi'"]),
        ({"TRUSTPUB_TOKEN_TTL": "59"}, ["token_ttl 59 is out of range", "60..3600"]),
        ({"TRUSTPUB_TOKEN_TTL": "3601"}, ["token_ttl 3601 is out of range", "60..3600"]),
        ({"TRUSTPUB_TOKEN_TTL": "-900"}, ["out of range"]),
        ({"TRUSTPUB_TOKEN_TTL": "abc"}, ["token_ttl must be a whole number of seconds"]),
        ({"TRUSTPUB_TOKEN_TTL": "900.5"}, ["token_ttl must be a whole number"]),
        ({"TRUSTPUB_SIGNING_KEYS": DROP}, ["signing_keys is not set", "TRUSTPUB_SIGNING_KEYS"]),
        ({"TRUSTPUB_SIGNING_KEYS": ""}, ["signing_keys is not set"]),
        # Blank must not silently become Path("."), i.e. "every *.pem in the cwd".
        ({"TRUSTPUB_SIGNING_KEYS": "  "}, ["signing_keys is not set"]),
        (
            {"TRUSTPUB_GITHUB_ISSUERS": "http://token.actions.githubusercontent.com"},
            ["github_issuers", "must be an https:// URL"],
        ),
        (
            {"TRUSTPUB_GITHUB_ISSUERS": "https://token.actions.githubusercontent.com/"},
            ["must not end with '/'"],
        ),
        ({"TRUSTPUB_GITHUB_ISSUERS": "token.actions.githubusercontent.com"}, ["https://"]),
        ({"TRUSTPUB_GITHUB_ISSUERS": "https://"}, ["must be an https:// URL"]),
        ({"TRUSTPUB_GITHUB_ISSUERS": "https://ghe.example?x=1"}, ["query or fragment"]),
        ({"TRUSTPUB_GITHUB_ISSUERS": "https://ghe.example#x"}, ["query or fragment"]),
        ({"TRUSTPUB_GITHUB_ISSUERS": "https://u:p@ghe.example"}, ["credentials"]),
        # Refused before any check that quotes the URL: the password stays out of the log.
        ({"TRUSTPUB_GITHUB_ISSUERS": "http://u:hunter2@ghe.example/"}, ["credentials"]),
        # Also where urlsplit refuses the URL, or the scheme lacks a slash: both quote it.
        ({"TRUSTPUB_GITHUB_ISSUERS": "https://u:hun[ter2@ghe.example"}, ["credentials"]),
        ({"TRUSTPUB_GITHUB_ISSUERS": "https:/u:hunter2@ghe.example"}, ["credentials"]),
        # A password holding "/", "?" or "#": parsers end the authority before its "@".
        ({"TRUSTPUB_GITHUB_ISSUERS": "https://u:hun/ter2@ghe.example"}, ["credentials"]),
        ({"TRUSTPUB_GITHUB_ISSUERS": "https://u:hun?ter2@ghe.example"}, ["credentials"]),
        ({"TRUSTPUB_GITHUB_ISSUERS": "https://u:hun#ter2@ghe.example"}, ["credentials"]),
        ({"TRUSTPUB_GITHUB_ISSUERS": "https://u:hunter2:99@ghe.example/"}, ["credentials"]),
        ({"TRUSTPUB_GITHUB_ISSUERS": " , ,"}, ["github_issuers is empty"]),
        # Malformed URLs must be a ConfigurationError too, not a ValueError traceback.
        ({"TRUSTPUB_GITHUB_ISSUERS": "https://[::1"}, ["'https://[::1'"]),
        ({"TRUSTPUB_GITHUB_ISSUERS": "https://ghe.example:99999"}, ["ghe.example:99999"]),
        ({"TRUSTPUB_GITHUB_ISSUERS": "https://ghe.example:port"}, ["ghe.example:port"]),
        # `iss` is compared byte for byte: these could never equal a token's issuer.
        ({"TRUSTPUB_GITHUB_ISSUERS": "HTTPS://ghe.example"}, ["must be an https:// URL"]),
        ({"TRUSTPUB_GITHUB_ISSUERS": "https://ghe .example"}, ["must not contain whitespace"]),
        ({"TRUSTPUB_GITHUB_ISSUERS": "https://ghe.example/a\tb"}, ["whitespace"]),
        ({"TRUSTPUB_GITHUB_ISSUERS": "https://ghe.example\\evil.example"}, ["backslash"]),
        ({"TRUSTPUB_ENABLED": "maybe"}, ["enabled must be true or false", "'maybe'"]),
        ({"TRUSTPUB_DEV": "2"}, ["dev must be true or false"]),
        (
            {"TRUSTPUB_REDIS_URL": "redis://r:6379/0", "TRUSTPUB_IN_MEMORY_STORES": "true"},
            ["redis_url or in_memory_stores, not both"],
        ),
        ({"TRUSTPUB_IN_MEMORY_STORES": "maybe"}, ["in_memory_stores"]),
        ({"TRUSTPUB_MINT_RATE_LIMIT": "lots"}, ["mint_rate_limit 'lots' is not a rate limit"]),
        # A limit of nothing refuses every request: an outage, not a limit.
        ({"TRUSTPUB_INTROSPECT_RATE_LIMIT": "0/minute"}, ["introspect_rate_limit", "0/minute"]),
        ({"TRUSTPUB_READ_RATE_LIMIT": "30/minute;0 per hour"}, ["read_rate_limit", "at least 1"]),
    ],
    ids=[
        "audience-missing",
        "audience-empty",
        "audience-blank",
        "audience-pypi",
        "audience-PyPI",
        "audience-space",
        "audience-leading-dash",
        "audience-too-long",
        "prefix-upper-case",
        "prefix-leading-dash",
        "prefix-too-long",
        "prefix-dot",
        "ttl-59",
        "ttl-3601",
        "ttl-negative",
        "ttl-abc",
        "ttl-float",
        "keys-missing",
        "keys-empty",
        "keys-blank",
        "issuer-http",
        "issuer-trailing-slash",
        "issuer-no-scheme",
        "issuer-no-host",
        "issuer-query",
        "issuer-fragment",
        "issuer-credentials",
        "issuer-credentials-and-http",
        "issuer-credentials-bracket-in-password",
        "issuer-credentials-one-slash",
        "issuer-credentials-slash-in-password",
        "issuer-credentials-question-mark-in-password",
        "issuer-credentials-hash-in-password",
        "issuer-credentials-colon-in-password",
        "issuers-empty-list",
        "issuer-bad-ipv6",
        "issuer-port-out-of-range",
        "issuer-port-not-a-number",
        "issuer-upper-case-scheme",
        "issuer-space",
        "issuer-tab",
        "issuer-backslash",
        "enabled-not-bool",
        "dev-not-bool",
        "redis-and-in-memory",
        "in-memory-not-bool",
        "rate-limit-not-one",
        "rate-limit-zero",
        "rate-limit-zero-among-others",
    ],
)
def test_invalid_environment_is_a_configuration_error(
    changes: dict[str, Any], fragments: list[str]
) -> None:
    with pytest.raises(ConfigurationError) as excinfo:
        load_settings(production(**changes))

    message = str(excinfo.value)
    for fragment in fragments:
        assert fragment in message
    assert "hunter2" not in message


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("59", None),
        ("60", 60),
        ("900", 900),
        (" 1200 ", 1200),
        ("3600", 3600),
        ("3601", None),
    ],
    ids=["59", "min-60", "900", "padded", "max-3600", "3601"],
)
def test_token_ttl_bounds(value: str, expected: int | None) -> None:
    environ = production(TRUSTPUB_TOKEN_TTL=value)
    if expected is None:
        with pytest.raises(ConfigurationError, match="out of range"):
            load_settings(environ)
    else:
        assert load_settings(environ).token_ttl == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1", True),
        ("true", True),
        ("YES", True),
        (" On ", True),
        ("0", False),
        ("false", False),
        ("No", False),
        ("off", False),
    ],
    ids=["1", "true", "YES", "On-padded", "0", "false", "No", "off"],
)
def test_boolean_words(value: str, expected: bool) -> None:
    assert load_settings(production(TRUSTPUB_ENABLED=value)).enabled is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            "https://token.actions.githubusercontent.com",
            ("https://token.actions.githubusercontent.com",),
        ),
        (
            "https://token.actions.githubusercontent.com, https://token.actions.acme.ghe.com",
            ("https://token.actions.githubusercontent.com", "https://token.actions.acme.ghe.com"),
        ),
        (
            " https://token.actions.githubusercontent.com/acme ,,"
            "https://git.acme.example/_services/token, ",
            (
                "https://token.actions.githubusercontent.com/acme",
                "https://git.acme.example/_services/token",
            ),
        ),
    ],
    ids=["one", "two-with-space", "blank-items-skipped"],
)
def test_github_issuers_are_comma_separated(value: str, expected: tuple[str, ...]) -> None:
    assert load_settings(production(TRUSTPUB_GITHUB_ISSUERS=value)).github_issuers == expected


@pytest.mark.parametrize("value", ["", "   "], ids=["empty", "blank"])
def test_empty_environment_variables_count_as_unset(value: str) -> None:
    # `TRUSTPUB_ENABLED=` in a manifest must not switch publishing off, nor
    # `TRUSTPUB_POLICIES_DIR=` mean the working directory.
    names = (
        "TRUSTPUB_ENABLED",
        "TRUSTPUB_TOKEN_TTL",
        "TRUSTPUB_TOKEN_PREFIX",
        "TRUSTPUB_POLICIES_DIR",
        "TRUSTPUB_GITHUB_ISSUERS",
        "TRUSTPUB_REDIS_URL",
        "TRUSTPUB_DEV",
        "TRUSTPUB_DEV_DIR",
    )

    settings = load_settings(production(**dict.fromkeys(names, value)))

    assert settings == load_settings(PRODUCTION)
    assert settings.enabled is True
    assert settings.policies_dir == Path("policies")


def test_empty_environment_variable_keeps_the_file_value(tmp_path: Path) -> None:
    environ = write_config(tmp_path, "enabled = false\ntoken_ttl = 600\n")
    environ.update(PRODUCTION, TRUSTPUB_ENABLED="", TRUSTPUB_TOKEN_TTL=" ")

    settings = load_settings(environ)

    assert settings.enabled is False
    assert settings.token_ttl == 600


@pytest.mark.parametrize("value", ["", "   "], ids=["empty", "blank"])
def test_blank_signing_keys_in_file_is_not_set(tmp_path: Path, value: str) -> None:
    # A blank path must not become Path("."), i.e. every *.pem in the working directory.
    environ = write_config(tmp_path, f'audience = "pypi.example.com"\nsigning_keys = "{value}"\n')

    with pytest.raises(ConfigurationError, match="signing_keys is not set"):
        load_settings(environ)


def test_every_environment_variable_is_read() -> None:
    settings = load_settings(
        production(
            TRUSTPUB_REDIS_URL="redis://redis.internal:6379/2",
            TRUSTPUB_POLICIES_DIR="/srv/policies",
            TRUSTPUB_TOKEN_TTL="600",
            TRUSTPUB_TOKEN_PREFIX="idx_",
            TRUSTPUB_ENABLED="false",
            TRUSTPUB_DEV_DIR="/tmp/dev",
        )
    )
    trial = load_settings(production(TRUSTPUB_IN_MEMORY_STORES="true"))

    assert settings.redis_url == "redis://redis.internal:6379/2"
    assert settings.policies_dir == Path("/srv/policies")
    assert settings.token_ttl == 600
    assert settings.token_prefix == "idx_"
    assert settings.enabled is False
    assert settings.dev_dir == Path("/tmp/dev")
    assert (settings.in_memory_stores, trial.in_memory_stores) == (False, True)


def test_file_values_are_used(tmp_path: Path) -> None:
    environ = write_config(
        tmp_path,
        """
audience = "pypi.example.com"
signing_keys = "/keys"
token_ttl = 600
token_prefix = "idx-"
enabled = false
redis_url = "redis://localhost/1"
github_issuers = ["https://token.actions.githubusercontent.com", "https://token.actions.acme.ghe.com"]
""",
    )

    settings = load_settings(environ)

    assert settings.audience == "pypi.example.com"
    assert settings.signing_keys == Path("/keys")
    assert settings.token_ttl == 600
    assert settings.token_prefix == "idx-"
    assert settings.enabled is False
    assert settings.redis_url == "redis://localhost/1"
    assert settings.github_issuers == (
        "https://token.actions.githubusercontent.com",
        "https://token.actions.acme.ghe.com",
    )


def test_environment_overrides_file(tmp_path: Path) -> None:
    environ = write_config(
        tmp_path,
        'audience = "file.example.com"\nsigning_keys = "/file-keys"\ntoken_ttl = 600\n',
    )
    environ.update(TRUSTPUB_AUDIENCE="env.example.com", TRUSTPUB_TOKEN_TTL="1200")

    settings = load_settings(environ)

    assert settings.audience == "env.example.com"
    assert settings.token_ttl == 1200
    assert settings.signing_keys == Path("/file-keys")  # not overridden: the file's value


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        (
            'audience = "pypi.example.com"\naudiance = "typo"\n',
            ["unknown setting(s) audiance", "known:", "audience"],
        ),
        ("token-ttl = 900\nfoo = 1\n", ["unknown setting(s) foo, token-ttl"]),
        ('audience = "unterminated\n', ["is not valid TOML"]),
        ("[settings]\naudience = 'x'\n", ["unknown setting(s) settings"]),
        ("token_ttl = true\n", ["token_ttl must be a whole number of seconds"]),
        ("token_ttl = 900.5\n", ["token_ttl must be a whole number of seconds"]),
        ("token_ttl = 30\n", ["token_ttl 30 is out of range"]),
        ("audience = 5\n", ["audience must be a string, got int"]),
        ("enabled = 1\n", ["enabled must be true or false"]),
        ('enabled = "sometimes"\n', ["enabled must be true or false"]),
        ("github_issuers = 5\n", ["github_issuers must be a list of issuer URLs"]),
        ("github_issuers = []\n", ["github_issuers is empty"]),
        ('github_issuers = ["http://ghe.example"]\n', ["must be an https:// URL"]),
        # An empty variable counts as unset; a blank value in the file is no decision:
        # not "publishing off", not "the working directory".
        ('enabled = ""\n', ["enabled must be true or false"]),
        ('in_memory_stores = " "\n', ["in_memory_stores must be true or false"]),
        ('policies_dir = ""\n', ["policies_dir is empty"]),
        ('dev_dir = "  "\n', ["dev_dir is empty"]),
        # Each number's message names its own unit, not token_ttl's.
        ('trusted_proxies = "two"\n', ["trusted_proxies must be a whole number"]),
        ('pending_publisher_days = "x"\n', ["pending_publisher_days must be a whole number"]),
    ],
    ids=[
        "unknown-key",
        "unknown-keys-sorted",
        "invalid-toml",
        "table-instead-of-keys",
        "ttl-bool",
        "ttl-float",
        "ttl-too-small",
        "audience-int",
        "enabled-int",
        "enabled-word",
        "issuers-int",
        "issuers-empty",
        "issuers-http",
        "enabled-empty",
        "in-memory-blank",
        "policies-dir-empty",
        "dev-dir-blank",
        "proxies-word",
        "pending-days-word",
    ],
)
def test_invalid_config_file(tmp_path: Path, text: str, fragments: list[str]) -> None:
    environ = write_config(tmp_path, text)

    with pytest.raises(ConfigurationError) as excinfo:
        load_settings(environ, dev=True)  # dev: the file need not set audience and keys

    message = str(excinfo.value)
    for fragment in fragments:
        assert fragment in message
    if "seconds" in message:
        assert message.startswith("token_ttl")


def test_config_file_error_names_the_file(tmp_path: Path) -> None:
    environ = write_config(tmp_path, "nonsense = true\n")

    with pytest.raises(ConfigurationError, match="TRUSTPUB_CONFIG") as excinfo:
        load_settings(environ, dev=True)

    assert str(tmp_path / "trustpub.toml") in str(excinfo.value)


def test_missing_config_file(tmp_path: Path) -> None:
    missing = tmp_path / "absent.toml"

    with pytest.raises(ConfigurationError, match="cannot read") as excinfo:
        load_settings({"TRUSTPUB_CONFIG": str(missing)}, dev=True)

    assert str(missing) in str(excinfo.value)
