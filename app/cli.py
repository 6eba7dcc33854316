"""The `trustpub` command: serve, check policies, manage keys, development helpers."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import click

from app.errors import ConfigurationError
from app.settings import Settings, load_settings


def main() -> None:
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
    from app import create_app
    from app.metrics import enable_multiprocess
    from app.observability import configure_logging
    from app.serving import GunicornApplication

    configure_logging(json_lines=(log_format or ("text" if dev else "json")) == "json")
    settings = _settings(dev)
    if settings.redis_url is None and workers > 1:
        # Each worker would keep its own replay records: one OIDC token could then be
        # exchanged once per worker.
        raise click.ClickException(
            "in-memory stores hold state per process: use --workers 1 or set TRUSTPUB_REDIS_URL"
        )
    if workers > 1:
        # Before the app (and so any metric) exists: every worker then counts into its
        # own files, which /metrics sums.
        directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(
            prefix="trustpub-metrics-"
        )
        for stale in Path(directory).glob("*.db"):
            stale.unlink()  # counts of an earlier run of this service
        enable_multiprocess(Path(directory))
    try:
        app = create_app(settings)
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from exc
    options: dict[str, Any] = {
        "bind": bind,
        "workers": workers,
        "threads": threads,
        "accesslog": "-" if access_log else None,
    }
    GunicornApplication(app, options).run()


@cli.command("check-policies")
@click.argument("directory", required=False, type=click.Path(path_type=Path))
@click.option("--dev", is_flag=True, help="Also accept publishers of the local dev issuer.")
def check_policies(directory: Path | None, dev: bool) -> None:
    """Validate policy files; exit non-zero listing every error with file and key."""
    from app import build_trusted_issuers
    from app.publishers.policy_files import load_policy_dir
    from app.publishers.providers import PROVIDERS

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
    and the policies); nothing is minted and its jti is not used up. Exits 0 when the
    exchange would mint, 1 otherwise.
    """
    import json

    from app import build_trusted_issuers
    from app.errors import TrustpubError
    from app.explain import TokenExplainer
    from app.publishers.policy_files import load_policy_dir
    from app.publishers.providers import PROVIDERS
    from app.publishers.registry import PublisherRegistry

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
    """Settings for commands that verify CI tokens but never sign: the real audience."""
    environ = dict(os.environ)
    environ.setdefault("TRUSTPUB_SIGNING_KEYS", "unused")
    try:
        return load_settings(environ, dev=dev or None)
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from exc


def _issuer_settings(dev: bool) -> Settings:
    """Settings for commands that need only issuers: no audience or keys required."""
    environ = dict(os.environ)
    environ.setdefault("TRUSTPUB_AUDIENCE", "check-only")
    environ.setdefault("TRUSTPUB_SIGNING_KEYS", "unused")
    try:
        return load_settings(environ, dev=dev or None)
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from exc


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
    from app.oidc.dev_issuer import dev_github_token, load_or_create_dev_issuer_key

    settings = _settings(dev=True)
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
    """API clients of introspection and revocation (TRUSTPUB_CLIENTS_FILE)."""


@clients.command("add")
@click.argument("name")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    required=True,
    type=click.Choice(["introspect", "revoke", "admin"]),
    help="Repeat for several scopes.",
)
@click.option(
    "--file",
    "path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Clients file; default TRUSTPUB_CLIENTS_FILE.",
)
def clients_add(name: str, scopes: tuple[str, ...], path: Path | None) -> None:
    """Add a client and print its secret once; only its hash is stored."""
    from app.auth.clients import add_client

    path = path or (
        Path(os.environ["TRUSTPUB_CLIENTS_FILE"]) if "TRUSTPUB_CLIENTS_FILE" in os.environ else None
    )
    if path is None:
        raise click.ClickException("name the clients file with --file or TRUSTPUB_CLIENTS_FILE")
    try:
        secret = add_client(path, name, scopes)
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
@click.option("--before", type=int, default=None, help="Unix seconds; default now.")
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
    from app import build_revoker
    from app.errors import TrustpubError
    from app.settings import PUBLIC_GITHUB_ISSUER

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
    settings = _settings(dev=None)
    if settings.redis_url is None:
        raise click.ClickException(
            "set TRUSTPUB_REDIS_URL: revocations live in the service's Redis"
        )
    revoker = build_revoker(settings)
    try:
        if token_file is not None:
            revocation = revoker.revoke_token(token_file.read().strip())
            if revocation is None:
                raise click.ClickException("not an active upload token minted with these keys")
        elif jti:
            revocation = revoker.revoke_jti(jti)
        elif project:
            revocation = revoker.revoke_project(project, before)
        else:
            revocation = revoker.revoke_publisher(
                issuer or PUBLIC_GITHUB_ISSUER, repository or "", workflow, before
            )
    except TrustpubError as exc:
        raise click.ClickException(exc.description) from exc
    click.echo(
        f"revoked {chosen[0][2:]}: tokens issued at or before {revocation.before}; "
        f"entry kept until {revocation.expires_at}"
    )
