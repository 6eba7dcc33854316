"""The `trustpub` command: serve, check policies, manage keys, development helpers."""

from __future__ import annotations

import gc
import getpass
import ipaddress
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click

from app.errors import ConfigurationError
from app.settings import Settings, load_settings


def main() -> None:
    # A PROMETHEUS_MULTIPROC_DIR set for the service (by its operator) must exist before
    # any command counts a metric, or prometheus-client fails on its first write.
    if directory := os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        Path(directory).mkdir(parents=True, exist_ok=True)
    cli(prog_name="trustpub")


@click.group()
def cli() -> None:
    """trustpub: exchange CI identity tokens for short-lived upload tokens."""


def _settings(dev: bool | None) -> Settings:
    try:
        return load_settings(os.environ, dev=dev or None)
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from exc


@cli.command()
@click.option("--bind", default="127.0.0.1:8000", show_default=True, help="HOST:PORT to listen on.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64))
@click.option("--threads", default=4, show_default=True, type=click.IntRange(1, 64))
@click.option("--dev", is_flag=True, help="Development setup: trust the local dev issuer.")
@click.option("--access-log/--no-access-log", default=False, show_default=True)
@click.option(
    "--log-format",
    type=click.Choice(["json", "text"]),
    default=None,
    help="Default: json, or text with --dev.",
)
def serve(
    bind: str, workers: int, threads: int, dev: bool, access_log: bool, log_format: str | None
) -> None:
    """Run the service under gunicorn."""
    from app.metrics import enable_multiprocess
    from app.observability import configure_logging
    from app.serving import GunicornApplication
    from app.wiring import create_app

    configure_logging(json_lines=(log_format or ("text" if dev else "json")) == "json")
    settings = _settings(dev)
    if settings.redis_url is None and not (settings.dev or settings.in_memory_stores):
        # In-memory stores forget replay records and revocations on restart, and each
        # replica keeps its own: an empty secret must not quietly start such a service.
        raise click.ClickException(
            "no Redis: set TRUSTPUB_REDIS_URL (or, for a one-process trial whose replay "
            "records and revocations die with it, TRUSTPUB_IN_MEMORY_STORES=true)"
        )
    if settings.redis_url is None and workers > 1:
        # Each worker would keep its own replay records: one OIDC token could then be
        # exchanged once per worker.
        raise click.ClickException(
            "in-memory stores hold state per process: use --workers 1 or set TRUSTPUB_REDIS_URL"
        )
    made_directory: Path | None = None
    if workers > 1:
        # Before the app (and so any metric) exists: every worker then counts into its
        # own files, which /metrics sums.
        given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        directory = Path(given) if given else Path(tempfile.mkdtemp(prefix="trustpub-metrics-"))
        made_directory = None if given else directory
        for stale in directory.glob("*.db"):
            stale.unlink()  # counts of an earlier run of this service
        enable_multiprocess(directory)
    try:
        app = create_app(settings)
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from exc
    # Everything built so far (policies, registrations snapshot, keys) lives as long as
    # the process: out of the collector's sight, so that no collection in a worker walks
    # (and, after the fork, copies) 100,000 publishers.
    gc.collect()
    gc.freeze()
    options: dict[str, Any] = {
        "bind": bind,
        "workers": workers,
        "threads": threads,
        "accesslog": "-" if access_log else None,
    }
    master = os.getpid()
    try:
        GunicornApplication(app, options).run()
    finally:
        # The master's exit only: a worker that exits (replaced, or at shutdown) leaves
        # through this frame too, forked from inside run().
        if made_directory is not None and os.getpid() == master:
            shutil.rmtree(made_directory, ignore_errors=True)


@cli.command("check-policies")
@click.argument("directory", required=False, type=click.Path(path_type=Path))
@click.option("--dev", is_flag=True, help="Also accept publishers of the local dev issuer.")
def check_policies(directory: Path | None, dev: bool) -> None:
    """Validate policy files; exit non-zero listing every error with file and key."""
    from app.publishers.policy_files import load_policy_dir
    from app.publishers.providers import PROVIDERS
    from app.wiring import build_trusted_issuers

    settings = _issuer_settings(dev)
    issuers = build_trusted_issuers(settings)
    directory = directory or settings.policies_dir
    try:
        publishers = load_policy_dir(directory, {name: issuers.urls(name) for name in PROVIDERS})
    except ConfigurationError as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    click.echo(f"{directory}: {len(publishers)} publisher(s) OK")


@cli.command()
@click.argument("token", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the JSON of POST /_/oidc/explain.")
@click.option("--dev", is_flag=True, help="Also trust the local dev issuer.")
def explain(token: str | None, as_json: bool, dev: bool) -> None:
    """Say which publishers a CI token matches, check by check, without exchanging it.

    TOKEN is the raw OIDC token; omit it (or pass '-') to read it from stdin. The
    token is verified with this deployment's settings (TRUSTPUB_AUDIENCE, the issuers
    and the policy files); nothing is minted and its jti is not used up. Publishers
    registered through the API live in the service's Redis and are not seen here: ask the
    service (POST /_/oidc/explain) for those. Exits 0 when the exchange would mint, 1
    otherwise.
    """
    import json

    from app.errors import TrustpubError
    from app.explain import TokenExplainer
    from app.publishers.policy_files import load_policy_dir
    from app.publishers.providers import PROVIDERS
    from app.publishers.registry import PublisherRegistry
    from app.wiring import build_trusted_issuers

    read_stdin = token is None or token.strip() == "-"
    raw = sys.stdin.read() if read_stdin or token is None else token
    settings = _settings_without_keys(dev)
    issuers = build_trusted_issuers(settings)
    try:
        publishers = load_policy_dir(
            settings.policies_dir, {name: issuers.urls(name) for name in PROVIDERS}
        )
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from exc
    explainer = TokenExplainer(
        issuers=issuers,
        providers=PROVIDERS,
        publishers=PublisherRegistry(publishers),
        audience=settings.audience,
        enabled=settings.enabled,
        clock=time.time,
    )
    try:
        report = explainer.explain((raw or "").strip()).as_dict()
    except TrustpubError as exc:
        click.echo(f"{exc.code}: {exc.description}", err=True)
        sys.exit(1)
    click.echo(json.dumps(report, indent=2) if as_json else _render_explanation(report))
    sys.exit(0 if report["would_mint"] else 1)


def _render_explanation(report: dict[str, Any]) -> str:
    lines = [
        f"issuer:    {report['issuer']} ({report['provider']})",
        f"identity:  {report['lookup_key']}",
    ]
    if report["would_mint"]:
        lines.append(f"result:    would mint an upload token for {', '.join(report['projects'])}")
    else:
        lines.append(f"result:    refused: {report['reason']}")
    for publisher in report["publishers"]:
        state = "matches" if publisher["matches"] else "does not match"
        if publisher["selected"]:
            state += " (selected)"
        lines += [
            "",
            f"{publisher['source']}: {state}; projects {', '.join(publisher['projects'])}",
        ]
        for check in publisher["checks"]:
            received = "missing" if check["received"] is None else repr(check["received"])
            mark = "ok  " if check["ok"] else "FAIL"
            lines.append(
                f"  {mark} {check['claim']}: expected {check['expected']}, received {received}"
            )
    return "\n".join(lines)


def _settings_without_keys(dev: bool) -> Settings:
    """Settings for commands that never sign (they verify CI tokens, or revoke without
    a token): the real audience."""
    environ = dict(os.environ)
    _default(environ, "TRUSTPUB_SIGNING_KEYS", "unused")
    try:
        return load_settings(environ, dev=dev or None)
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from exc


def _issuer_settings(dev: bool) -> Settings:
    """Settings for commands that need only issuers: no audience or keys required."""
    environ = dict(os.environ)
    _default(environ, "TRUSTPUB_AUDIENCE", "check-only")
    _default(environ, "TRUSTPUB_SIGNING_KEYS", "unused")
    try:
        return load_settings(environ, dev=dev or None)
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from exc


def _default(environ: dict[str, str], name: str, value: str) -> None:
    # Not setdefault: an empty variable counts as unset (app.settings), so it would not
    # be replaced here and then be missed there.
    if not environ.get(name, "").strip():
        environ[name] = value


@cli.group()
def keys() -> None:
    """Upload-token signing keys."""


@keys.command("generate")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("keys"),
    show_default=True,
    help="Directory of signing keys (TRUSTPUB_SIGNING_KEYS).",
)
def keys_generate(directory: Path) -> None:
    """Write a new Ed25519 signing key; once loaded, it signs and older keys only verify."""
    from app.private_files import write_private_file
    from app.tokens.keys import generate_signing_key_pem, load_key_ring, new_key_file_name

    path = directory / new_key_file_name()
    if not write_private_file(path, generate_signing_key_pem()):
        raise click.ClickException(f"{path} exists already; try again in a second")
    kid = load_key_ring(path).signer.kid
    click.echo(f"wrote {path} (kid {kid})")


@cli.group()
def dev() -> None:
    """Development helpers; only a service started with --dev trusts what they make."""


@dev.command("oidc-token")
@click.option("--repository", required=True, help="owner/name")
@click.option("--workflow", required=True, help="Workflow file name, e.g. release.yml")
@click.option("--environment", default=None)
@click.option("--owner-id", default="65", show_default=True)
@click.option("--repository-id", default="74", show_default=True)
@click.option("--ref", default="refs/heads/main", show_default=True)
def dev_oidc_token(
    repository: str,
    workflow: str,
    environment: str | None,
    owner_id: str,
    repository_id: str,
    ref: str,
) -> None:
    """Print a GitHub-shaped OIDC token signed by the local development issuer."""
    from app.oidc.dev_issuer import (
        dev_github_token,
        dev_issuer_key_path,
        load_or_create_dev_issuer_key,
    )

    settings = _settings(dev=True)
    if not dev_issuer_key_path(settings.dev_dir).exists():
        # Run from another directory than `make run`, this makes a key that service
        # does not know, and its mint fails with a signature error that does not say why.
        click.echo(
            f"created a new development issuer key in {settings.dev_dir}: only a service "
            "started with this dev directory (TRUSTPUB_DEV_DIR, or ./.dev where it runs) "
            "trusts these tokens",
            err=True,
        )
    key = load_or_create_dev_issuer_key(settings.dev_dir)
    click.echo(
        dev_github_token(
            key,
            audience=settings.audience,
            repository=repository,
            workflow=workflow,
            owner_id=owner_id,
            repository_id=repository_id,
            environment=environment,
            ref=ref,
        )
    )


@cli.group()
def clients() -> None:
    """API clients: the index (introspection, revocation) and the management API's
    maintainers and operators (TRUSTPUB_CLIENTS_FILE)."""


@clients.command("add")
@click.argument("name")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    required=True,
    type=click.Choice(["introspect", "revoke", "manage", "pending", "admin"]),
    help="Repeat for several scopes.",
)
@click.option(
    "--project",
    "projects",
    multiple=True,
    help="With --scope manage: a project this key manages (repeat for several).",
)
@click.option(
    "--file",
    "path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Clients file; default TRUSTPUB_CLIENTS_FILE.",
)
def clients_add(
    name: str, scopes: tuple[str, ...], projects: tuple[str, ...], path: Path | None
) -> None:
    """Add a client and print its secret once; only its hash is stored."""
    from app.auth.clients import add_client

    path = path or (
        Path(os.environ["TRUSTPUB_CLIENTS_FILE"]) if "TRUSTPUB_CLIENTS_FILE" in os.environ else None
    )
    if path is None:
        raise click.ClickException("name the clients file with --file or TRUSTPUB_CLIENTS_FILE")
    try:
        secret = add_client(path, name, scopes, projects)
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"added client {name!r} to {path}; its secret (shown once):", err=True)
    click.echo(secret)


@cli.group()
def tokens() -> None:
    """Upload tokens: revoke them in the store this deployment uses."""


@tokens.command("revoke")
@click.option(
    "--token", "token_file", type=click.File("r"), help="File holding the token ('-': stdin)."
)
@click.option("--jti", help="One token by its jti.")
@click.option("--project", help="Every token minted for this project.")
@click.option("--repository", help="Every token minted for this repository (owner/name).")
@click.option("--workflow", help="With --repository: only this workflow file.")
@click.option(
    "--issuer", default=None, help="With --repository: the CI issuer (default github.com)."
)
@click.option(
    "--before",
    type=int,
    default=None,
    help="Unix seconds; default now plus 30 s, the clock skew allowed between replicas.",
)
def tokens_revoke(
    token_file: Any,
    jti: str | None,
    project: str | None,
    repository: str | None,
    workflow: str | None,
    issuer: str | None,
    before: int | None,
) -> None:
    """Revoke one token, or every token of a project or publisher minted before a moment."""
    from app.errors import TrustpubError
    from app.settings import PUBLIC_GITHUB_ISSUER
    from app.wiring import build_revoker

    chosen = [
        flag
        for flag, value in (
            ("--token", token_file),
            ("--jti", jti),
            ("--project", project),
            ("--repository", repository),
        )
        if value
    ]
    if len(chosen) != 1:
        raise click.UsageError("give exactly one of --token, --jti, --project, --repository")
    # Refused where they do not apply, not ignored: a --workflow dropped in silence
    # would revoke a whole project.
    if (workflow or issuer) and not repository:
        raise click.UsageError("--workflow and --issuer go with --repository")
    if before is not None and (token_file is not None or jti):
        raise click.UsageError("--before goes with --project or --repository")
    # Only a token needs the keys (to verify it); a project, a publisher or a jti is
    # revoked with Redis alone, so the operator's machine need not hold private keys.
    with_keys = token_file is not None
    settings = _settings(dev=None) if with_keys else _settings_without_keys(dev=False)
    if settings.redis_url is None:
        raise click.ClickException(
            "set TRUSTPUB_REDIS_URL: revocations live in the service's Redis"
        )
    revoker = build_revoker(settings, verify_tokens=with_keys)
    actor = _cli_actor()
    try:
        if token_file is not None:
            revocation = revoker.revoke_token(token_file.read().strip(), actor=actor)
            if revocation is None:
                raise click.ClickException("not an active upload token minted with these keys")
        elif jti:
            revocation = revoker.revoke_jti(jti, actor=actor)
        elif project:
            revocation = revoker.revoke_project(project, before, actor=actor)
        else:
            revocation = revoker.revoke_publisher(
                issuer or PUBLIC_GITHUB_ISSUER, repository or "", workflow, before, actor=actor
            )
    except TrustpubError as exc:
        raise click.ClickException(exc.description) from exc
    click.echo(
        f"revoked {chosen[0][2:]}: tokens issued at or before {revocation.before}; "
        f"entry kept until {revocation.expires_at}"
    )


def _cli_actor() -> str:
    """Who the audit trail names for a revocation made here: the CLI talks to Redis
    directly, so the operating-system user who ran it is all there is to name."""
    try:
        return "cli:" + getpass.getuser()
    except (KeyError, OSError):  # no user name for this uid (a bare container)
        return "cli"


# -- the management API, as a client ------------------------------------------------------


class _Api:
    """trustpub's management API at TRUSTPUB_URL, with TRUSTPUB_CLIENT_SECRET (Bearer).

    Both may instead come from `~/.config/trustpub/client.toml` (`url = ...`,
    `secret = ...`; $XDG_CONFIG_HOME is honoured); the environment wins.
    """

    def __init__(self) -> None:
        import tomllib

        config_home = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
        path = config_home / "trustpub" / "client.toml"
        config: dict[str, Any] = {}
        if path.is_file():
            try:
                config = tomllib.loads(path.read_text(encoding="utf-8"))
            except (OSError, tomllib.TOMLDecodeError) as exc:
                raise click.ClickException(f"{path}: {exc}") from exc
        url = os.environ.get("TRUSTPUB_URL") or config.get("url")
        secret = os.environ.get("TRUSTPUB_CLIENT_SECRET") or config.get("secret")
        if not isinstance(url, str) or not url:
            raise click.ClickException(f"set TRUSTPUB_URL (or url in {path})")
        if not isinstance(secret, str) or not secret.strip():
            raise click.ClickException(f"set TRUSTPUB_CLIENT_SECRET (or secret in {path})")
        secret = secret.strip()  # a secret file written with `echo` ends in a line break
        if not (secret.isascii() and secret.isprintable()) or " " in secret:
            # Said without the secret: requests and http.client quote a header value they
            # refuse in their errors, which would print it.
            raise click.ClickException(
                f"TRUSTPUB_CLIENT_SECRET (or secret in {path}) holds a space, a control or a "
                "non-ASCII character: copy the secret again"
            )
        self.url = _management_url(url.rstrip("/"), f"TRUSTPUB_URL (or url in {path})")
        self._headers = {"Authorization": f"Bearer {secret}"}

    def call(
        self, method: str, path: str, *, wait_when_limited: bool = False, **kwargs: Any
    ) -> dict[str, Any]:
        import requests

        waits = 0
        while True:
            try:
                response = requests.request(
                    method, self.url + path, headers=self._headers, timeout=30, **kwargs
                )
            except requests.RequestException as exc:
                raise click.ClickException(f"cannot reach {self.url}: {exc}") from exc
            wait = _retry_after(response.headers.get("Retry-After", ""))
            if not (
                wait_when_limited
                and response.status_code == 429
                and wait is not None
                and waits < _MAX_WAITS
            ):
                break
            # A long run of calls (a bulk declaration) goes on where the limit stopped it:
            # run again, it would spend the budget on what was done already. Bounded, and
            # never without a pause: a limit that never lifts must end the command.
            waits += 1
            click.echo(f"rate limited; going on in {wait} s", err=True)
            time.sleep(wait)
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code >= 400:
            error = body.get("error") if isinstance(body, dict) else None
            if isinstance(error, dict):
                raise click.ClickException(f"{error.get('code')}: {error.get('description')}")
            raise click.ClickException(f"HTTP {response.status_code} from {self.url}{path}")
        if not isinstance(body, dict):
            # Say, an index answering the paths it does not route to trustpub.
            raise click.ClickException(
                f"HTTP {response.status_code} from {self.url}{path} is no answer of trustpub's: "
                "does TRUSTPUB_URL name the service?"
            )
        return body


def _management_url(url: str, named: str) -> str:
    """`url`, unless the bearer secret would cross a network unencrypted to reach it."""
    if "@" in url:
        # Not quoted: the part before "@" would be a password, and every error names the URL.
        raise click.ClickException(
            f"{named} holds credentials (user:password@, not shown): the secret goes in "
            "TRUSTPUB_CLIENT_SECRET"
        )
    not_a_url = click.ClickException(
        f"{named} must be an https:// URL (http:// only to this machine)"
    )
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError for a port that is not 0-65535)
    except ValueError:  # "[::1" unclosed, a port out of range: a traceback before
        raise not_a_url from None
    if not parts.hostname or parts.scheme not in ("https", "http"):
        raise not_a_url
    if parts.scheme == "https" or os.environ.get("TRUSTPUB_ALLOW_PLAIN_HTTP") == "1":
        return url
    try:
        loopback = parts.hostname == "localhost" or ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:  # a name: it may resolve anywhere
        loopback = False
    if not loopback:
        raise click.ClickException(
            f"{named} is plain http:// to {parts.hostname}: the client secret would cross the "
            "network unencrypted. Use https://, or reach the service through this machine "
            "(kubectl port-forward, an SSH tunnel); set TRUSTPUB_ALLOW_PLAIN_HTTP=1 only "
            "where the network itself is protected"
        )
    return url


# Waits of one call on 429 (at most _LONGEST_WAIT each): more than an hour's limit
# window, then the limit is reported like any error.
_MAX_WAITS = 20
_LONGEST_WAIT = 300


def _retry_after(value: str) -> int | None:
    """Retry-After's delay in seconds, 1 to _LONGEST_WAIT; None if it is no number of
    seconds (an HTTP date, or digits of another script, which int() refuses)."""
    value = value.strip()
    if not (value.isascii() and value.isdigit()):
        return None
    # More digits than any wait kept here (int() refuses some 4,300): the longest.
    return _LONGEST_WAIT if len(value) > 9 else min(max(int(value), 1), _LONGEST_WAIT)


@cli.group()
def publishers() -> None:
    """Trusted publishers of a project, through the management API (TRUSTPUB_URL)."""


# Per provider: the options `publishers add` takes, each with the policy key it fills,
# and those it requires. Another provider's option is refused, not ignored: an `--owner-id`
# dropped in silence would register a publisher its maintainer believes pinned.
_PROVIDER_OPTIONS: dict[str, tuple[dict[str, str], tuple[str, ...]]] = {
    "github": (
        {
            "repository": "repository",
            "workflow": "workflow",
            "owner_id": "repository_owner_id",
            "repository_id": "repository_id",
            "environment": "environment",
            "issuer": "issuer",
        },
        ("repository", "workflow"),
    ),
    "gitlab": (
        {
            "repository": "project_path",
            "workflow": "workflow_filepath",
            "namespace_id": "namespace_id",
            "project_id": "project_id",
            "environment": "environment",
            "issuer": "issuer",
        },
        ("repository", "workflow"),
    ),
    "google": ({"email": "email", "subject": "sub", "issuer": "issuer"}, ("email",)),
}


def publisher_entry(provider: str, options: dict[str, str | None]) -> dict[str, Any]:
    """The policy entry `publishers add` registers for `provider`, from its options."""
    keys, required = _PROVIDER_OPTIONS[provider]
    given = {name: value for name, value in options.items() if value}
    if foreign := [name for name in given if name not in keys]:
        raise click.UsageError(f"{provider} takes no {_flags(foreign)}")
    if missing := [name for name in required if name not in given]:
        raise click.UsageError(f"{provider} needs {_flags(missing)}")
    return {"provider": provider} | {keys[name]: value for name, value in given.items()}


def _flags(names: list[str]) -> str:
    return ", ".join("--" + name.replace("_", "-") for name in names)


@publishers.command("add")
@click.argument("project")
@click.option("--provider", type=click.Choice(sorted(_PROVIDER_OPTIONS)), default="github")
@click.option("--repository", help="GitHub owner/name (or GitLab group/project).")
@click.option("--owner-id", help="GitHub: the owner's numeric ID (looked up if omitted).")
@click.option("--repository-id", help="GitHub: pin the repository's numeric ID.")
@click.option("--namespace-id", help="GitLab: pin the group's numeric ID.")
@click.option("--project-id", help="GitLab: pin the project's numeric ID.")
@click.option("--workflow", help="GitHub: workflow file name (release.yml); GitLab: CI file path.")
@click.option("--environment", help="Optional deployment environment.")
@click.option("--email", help="Google: the service account's e-mail.")
@click.option("--subject", help="Google: pin the service account's numeric ID (sub).")
@click.option("--issuer", help="The CI issuer, when not the provider's public one.")
@click.option("--pending", is_flag=True, help="For a project that does not exist yet.")
def publishers_add(project: str, provider: str, pending: bool, **options: str | None) -> None:
    """Register a trusted publisher for PROJECT and print its id."""
    api = _Api()
    entry = publisher_entry(provider, options)
    if provider == "github" and "repository_owner_id" not in entry:
        entry["repository_owner_id"] = _github_owner_id(entry["repository"])
    if provider == "gitlab" and not {"namespace_id", "project_id"} & entry.keys():
        click.echo(
            "note: without --namespace-id or --project-id, the first token this publisher "
            "matches pins both",
            err=True,
        )
    if pending:
        entry["pending"] = True
    added = api.call("POST", f"/api/v1/projects/{project}/publishers", json=entry)
    state = f"pending until {added['expires_at']}" if added["pending"] else "active"
    click.echo(f"{added['id']}\t{added['project']}\t{state}")


def _github_owner_id(repository: str) -> str:
    """The owner's immutable ID from the GitHub API; optional convenience, never required."""
    import requests

    owner = repository.partition("/")[0]
    base = os.environ.get("TRUSTPUB_GITHUB_API", "https://api.github.com").rstrip("/")
    hint = (
        f"pass --owner-id (the 'id' of {base}/users/{owner}, "
        "or the repository_owner_id claim of a workflow run)"
    )
    try:
        response = requests.get(f"{base}/users/{owner}", timeout=10)
        owner_id = response.json().get("id") if response.status_code == 200 else None
    except (requests.RequestException, ValueError) as exc:
        raise click.ClickException(f"cannot look up {owner!r} on GitHub ({exc}): {hint}") from exc
    if not isinstance(owner_id, int):
        raise click.ClickException(f"GitHub does not know {owner!r}: {hint}")
    return str(owner_id)


@publishers.command("list")
@click.argument("project")
@click.option("--json", "as_json", is_flag=True)
def publishers_list(project: str, as_json: bool) -> None:
    """The trusted publishers of PROJECT: policy files (read-only) and registered."""
    import json

    listed = _Api().call("GET", f"/api/v1/projects/{project}/publishers")["publishers"]
    if as_json:
        click.echo(json.dumps(listed, indent=2))
        return
    for item in listed:
        click.echo(listing_line(item))


def listing_line(item: dict[str, Any]) -> str:
    """One publisher of `publishers list`: id, state, provider, identity, workflow, and
    the IDs it pinned from its first token (empty if none)."""
    publisher = item["publisher"]
    identity = (
        publisher.get("identity")
        or publisher.get("repository")
        or publisher.get("project_path")
        or publisher.get("email")
        or ""
    )
    workflow = publisher.get("workflow") or publisher.get("workflow_filepath") or ""
    state = "ignored" if item.get("ignored") else "pending" if item["pending"] else item["source"]
    pins = ",".join(
        f"{claim}={value}" for claim, value in (item.get("pinned_on_first_use") or {}).items()
    )
    return "\t".join((item["id"], state, publisher["provider"], identity, workflow, pins))


@publishers.command("remove")
@click.argument("project")
@click.argument("publisher_id")
def publishers_remove(project: str, publisher_id: str) -> None:
    """Remove the registered publisher PUBLISHER_ID of PROJECT."""
    _Api().call("DELETE", f"/api/v1/projects/{project}/publishers/{publisher_id}")
    click.echo(f"removed {publisher_id} from {project}")


@cli.group()
def projects() -> None:
    """The index's projects, through the management API (an 'admin' client)."""


@projects.command("declare")
@click.argument("names", nargs=-1)
@click.option(
    "--from-file",
    type=click.File("r", encoding="utf-8"),
    help="Also the names in this file, one per line ('-': standard input).",
)
@click.option(
    "--confirm",
    is_flag=True,
    help="Then confirm that these are every project of the index (`projects confirm`).",
)
def projects_declare(names: tuple[str, ...], from_file: Any, confirm: bool) -> None:
    """Declare that the projects NAMES exist on the index: no pending publisher may then
    claim them. Prints the store's epoch, which `projects confirm` names."""
    from app.registrations import MAX_DECLARED_PROJECTS

    listed = list(names)
    if from_file is not None:
        listed += [line.strip() for line in from_file if line.strip()]
    if not listed:
        raise click.UsageError("name at least one project, or give --from-file")
    api = _Api()
    created = 0
    epochs: list[str] = []
    for start in range(0, len(listed), MAX_DECLARED_PROJECTS):
        batch = listed[start : start + MAX_DECLARED_PROJECTS]
        answer = api.call(
            "POST", "/api/v1/projects", wait_when_limited=True, json={"projects": batch}
        )
        created += answer["created"]
        epochs.append(answer["epoch"])
    if len(set(epochs)) > 1:
        # The names declared before the loss are gone with it: a confirmation now would
        # vouch for a set without them.
        raise click.ClickException(
            "the store lost its data while the names were declared: run this again"
        )
    click.echo(f"declared {len(listed)} names; {created} projects were new (epoch {epochs[0]})")
    if confirm:
        _confirm(api, epochs[0])


@projects.command("confirm")
@click.option(
    "--epoch",
    required=True,
    help="The epoch `projects declare` printed (`projects status`, for an index without projects).",
)
def projects_confirm(epoch: str) -> None:
    """Confirm that every project of the index is declared, which pending publishers wait
    for (once per store epoch: again after a data loss). Refused if the store lost its
    data since EPOCH: declare again."""
    _confirm(_Api(), epoch)


@projects.command("status")
def projects_status() -> None:
    """The store's epoch, and whether the index's projects are confirmed in it."""
    answer = _Api().call("GET", "/api/v1/projects")
    state = "confirmed" if answer["confirmed"] else "not confirmed"
    click.echo(f"epoch {answer['epoch']}: {state}")


def _confirm(api: _Api, epoch: str) -> None:
    answer = api.call("PUT", "/api/v1/projects", wait_when_limited=True, json={"epoch": epoch})
    changed = answer["changed"]
    click.echo("confirmed" if changed else "confirmed already")


@cli.command("audit")
@click.option("--project")
@click.option("--repository")
@click.option("--since", type=int, help="Unix seconds.")
@click.option("--until", type=int, help="Unix seconds.")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@click.option("--refusals", is_flag=True, help="Refused mints (their own trail; admin only).")
def audit_command(
    project: str | None,
    repository: str | None,
    since: int | None,
    until: int | None,
    limit: int,
    refusals: bool,
) -> None:
    """Print the audit trail, newest first, one JSON record per line."""
    import json

    query: dict[str, str | int] = {
        key: value
        for key, value in (
            ("project", project),
            ("repository", repository),
            ("since", since),
            ("until", until),
            ("refusals", "true" if refusals else None),
        )
        if value is not None
    }
    api = _Api()
    remaining = limit
    while remaining:
        # One answer looks at a bounded part of the trail: go on where it stopped.
        page = api.call("GET", "/api/v1/audit", params={**query, "limit": remaining})
        for record in page["records"]:
            click.echo(json.dumps(record, sort_keys=True))
        remaining -= len(page["records"])
        if not page.get("next_before"):
            break
        query["before"] = page["next_before"]


if __name__ == "__main__":
    main()
