"""What the chart renders: hardening, probes, settings, mounts, routing, rollouts."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest

from app.auth.clients import load_clients_file
from app.publishers.policy_files import load_policy_dir
from app.settings import PUBLIC_GITHUB_ISSUER, Settings, load_settings
from app.stores.redis import connect
from app.tokens.keys import load_key_ring

from .chart import REQUIRED, Rendered, merge, render
from .conftest import SCENARIOS, SIGNING_KEY_FILE

# --- what every install gets -------------------------------------------------------------


def test_required_values_render_the_core_objects(rendered: dict[str, Rendered]) -> None:
    assert rendered["defaults"].kinds() == [
        "ConfigMap",
        "Deployment",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "Service",
        "ServiceAccount",
    ]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_pods_are_hardened(rendered: dict[str, Rendered], scenario: str) -> None:
    pod = rendered[scenario].pod
    assert pod["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "fsGroup": 10001,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    context = rendered[scenario].container["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["runAsUser"] == 10001
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["privileged"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_the_read_only_root_has_a_writable_tmp(
    rendered: dict[str, Rendered], scenario: str
) -> None:
    """gunicorn's worker heartbeat files go to the default temporary directory, /tmp."""
    mounts = {m["name"]: m for m in rendered[scenario].container["volumeMounts"]}
    volumes = {v["name"]: v for v in rendered[scenario].pod["volumes"]}
    assert mounts["tmp"]["mountPath"] == "/tmp"
    assert not mounts["tmp"].get("readOnly", False)
    assert volumes["tmp"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "64Mi"}
    writable = [m["mountPath"] for m in mounts.values() if not m.get("readOnly", False)]
    assert writable == ["/tmp"]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_resources_and_probes(rendered: dict[str, Rendered], scenario: str) -> None:
    container = rendered[scenario].container
    assert set(container["resources"]) == {"requests", "limits"}
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert "memory" in container["resources"]["limits"]
    assert container["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 30
    # The endpoints and the ingress stop sending new requests during the pre-stop wait; then
    # gunicorn's graceful_timeout (20 s) lets in-flight exchanges finish before SIGKILL.
    assert container["lifecycle"]["preStop"]["exec"]["command"] == [
        "python",
        "-c",
        "import time; time.sleep(5)",
    ]
    assert rendered[scenario].pod["terminationGracePeriodSeconds"] > 5 + 20


@pytest.mark.parametrize(("workers", "directory"), [(2, "/tmp/metrics"), (1, None)])
def test_several_workers_keep_their_metric_files_in_one_directory_under_tmp(
    chart: helm.Chart, workers: int, directory: str | None
) -> None:
    # Set, `trustpub serve` empties it at start; unset, it makes a new one at every start
    # of the container, and the emptyDir outlives the container. One worker has no files.
    out = render(chart, merge(REQUIRED, {"gunicorn": {"workers": workers}}))
    container = out.one("Deployment")["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env.get("PROMETHEUS_MULTIPROC_DIR") == directory


def test_no_pre_stop_wait_when_it_is_zero(chart: helm.Chart) -> None:
    out = render(chart, merge(REQUIRED, {"preStopSeconds": 0}))
    assert "lifecycle" not in out.one("Deployment")["spec"]["template"]["spec"]["containers"][0]


def test_the_container_runs_trustpub_serve_with_the_configured_workers(
    rendered: dict[str, Rendered], production: Rendered
) -> None:
    defaults = rendered["defaults"].container
    assert defaults["image"] == "trustpub:0.1.0"
    assert defaults["command"] == ["trustpub", "serve"]
    assert defaults["args"] == ["--bind", "0.0.0.0:8000", "--workers", "2", "--threads", "4"]
    assert production.container["args"] == [
        "--bind",
        "0.0.0.0:8000",
        "--workers",
        "4",
        "--threads",
        "8",
        "--access-log",
    ]
    assert production.container["image"] == (
        "registry.example.com/platform/trustpub@sha256:"
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    )
    assert rendered["defaults"].deployment["spec"]["replicas"] == 2


def test_the_service_account_has_no_token(rendered: dict[str, Rendered]) -> None:
    account = rendered["defaults"].one("ServiceAccount")
    assert account["automountServiceAccountToken"] is False
    assert rendered["defaults"].pod["serviceAccountName"] == "trustpub"


# --- settings: the chart's environment is what app.settings accepts -------------------------


def settings_environment(rendered: Rendered, secrets: dict[str, str]) -> dict[str, str]:
    """The container's environment as the process sees it: Secrets resolved, $(VAR) expanded."""
    environ: dict[str, str] = {}
    for name, item in rendered.env().items():
        if "value" in item:
            value = item["value"]
            for known, known_value in environ.items():
                value = value.replace(f"$({known})", known_value)
            environ[name] = value
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            environ[name] = secrets[f"{ref['name']}/{ref['key']}"]
    return environ


def test_production_settings(production: Rendered) -> None:
    environ = settings_environment(
        production,
        {"redis-credentials/password": "s3cr%40t"},
    )
    settings = load_settings(environ)
    assert settings.audience == "pypi.example.com"
    assert settings.github_issuers == (
        PUBLIC_GITHUB_ISSUER,
        "https://github.example.com/_services/token",
    )
    assert settings.gitlab_issuers == ("https://gitlab.com", "https://gitlab.example.com")
    assert settings.google_issuers == ()
    assert settings.disabled_providers == {"google"}
    assert settings.trusted_proxies == 2
    assert settings.redis_min_replicas == 1
    assert settings.mint_rate_limit == "120/minute;1200/hour"
    assert settings.rate_limit_storage == "memory://"
    assert settings.token_ttl == 600
    assert settings.token_prefix == "pypi-"
    assert settings.signing_kid == "86hTmhL7tjwjzJ9SZMWSBxakVWUOENve6c6XZJ1dR94"
    assert settings.enabled is True
    assert settings.dev is False
    assert settings.redis_url == (
        "redis+sentinel://:s3cr%40t@"
        "redis-node-0.redis-headless.redis.svc.cluster.local:26379,"
        "redis-node-1.redis-headless.redis.svc.cluster.local:26379,"
        "redis-node-2.redis-headless.redis.svc.cluster.local:26380/trustpub/2"
    )
    # trustpub's own Redis connector accepts the URL (no connection is made yet).
    pool = connect(settings.redis_url).connection_pool
    assert pool.service_name == "trustpub"
    assert pool.connection_kwargs["db"] == 2
    assert pool.connection_kwargs["password"] == "s3cr@t"
    assert str(settings.policies_dir) == "/etc/trustpub/policies"
    assert str(settings.signing_keys) == "/etc/trustpub/keys"
    assert str(settings.clients_file) == "/etc/trustpub/clients/clients.toml"
    # The password comes from the Secret, defined before the URL that refers to it.
    names = list(production.env())
    assert names.index("REDIS_PASSWORD") < names.index("TRUSTPUB_REDIS_URL")
    assert production.env()["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "redis-credentials",
        "key": "password",
    }
    assert production.env()["REQUESTS_CA_BUNDLE"]["value"] == "/etc/trustpub/ca/ca-bundle.pem"


def test_default_settings_take_the_redis_url_from_the_secret(
    rendered: dict[str, Rendered],
) -> None:
    defaults = rendered["defaults"]
    assert defaults.env()["TRUSTPUB_REDIS_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "trustpub-redis",
        "key": "redis-url",
    }
    settings = load_settings(
        settings_environment(defaults, {"trustpub-redis/redis-url": "redis://:pw@redis:6379/0"})
    )
    assert settings.redis_url == "redis://:pw@redis:6379/0"
    assert settings.github_issuers == (PUBLIC_GITHUB_ISSUER,)
    assert settings.token_ttl == 900
    assert settings.clients_file is None
    # Behind the ingress controller: one proxy appends to X-Forwarded-For.
    assert settings.trusted_proxies == 1
    assert settings.redis_min_replicas == 0
    assert "TRUSTPUB_SIGNING_KID" not in defaults.env()
    assert defaults.env()["TRUSTPUB_DEV"]["value"] == "false"


def test_a_redis_url_in_values_goes_through_a_secret(chart: helm.Chart) -> None:
    url = "rediss://:hunter2@redis.internal:6380/0"
    values = merge(REQUIRED, {"redis": {"existingSecret": "", "url": url}})
    out = render(chart, values)
    secret = out.one("Secret", "trustpub-redis-auth")
    assert base64.b64decode(secret["data"]["redis-url"]).decode() == url
    assert out.env()["TRUSTPUB_REDIS_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "trustpub-redis-auth",
        "key": "redis-url",
    }
    assert "hunter2" not in out.file("deployment.yaml")


def test_a_sentinel_password_in_values_goes_through_a_secret(chart: helm.Chart) -> None:
    values = merge(
        REQUIRED,
        {
            "redis": {
                "existingSecret": "",
                "sentinel": {"enabled": True, "hosts": ["sentinel"], "password": "hunter2"},
            }
        },
    )
    out = render(chart, values)
    secret = out.one("Secret", "trustpub-redis-auth")
    assert base64.b64decode(secret["data"]["redis-password"]) == b"hunter2"
    assert out.env()["TRUSTPUB_REDIS_URL"]["value"] == (
        "redis+sentinel://:$(REDIS_PASSWORD)@sentinel:26379/mymaster/0"
    )
    assert "hunter2" not in out.file("deployment.yaml")


def test_sentinel_without_password(chart: helm.Chart) -> None:
    values = merge(
        REQUIRED,
        {"redis": {"existingSecret": "", "sentinel": {"enabled": True, "hosts": ["a", "b:1"]}}},
    )
    out = render(chart, values)
    assert out.env()["TRUSTPUB_REDIS_URL"]["value"] == "redis+sentinel://a:26379,b:1/mymaster/0"
    tls = render(chart, merge(values, {"redis": {"sentinel": {"tls": True}}}))
    assert tls.env()["TRUSTPUB_REDIS_URL"]["value"] == "rediss+sentinel://a:26379,b:1/mymaster/0"
    assert "REDIS_PASSWORD" not in out.env()
    assert out.all("Secret") == []


def test_in_memory_trial(rendered: dict[str, Rendered]) -> None:
    trial = rendered["in-memory"]
    assert "TRUSTPUB_REDIS_URL" not in trial.env()
    # trustpub serve refuses in-memory stores outside development unless asked for by name.
    assert trial.env()["TRUSTPUB_IN_MEMORY_STORES"]["value"] == "true"
    assert trial.deployment["spec"]["replicas"] == 1
    # An old and a new pod side by side would each accept the same OIDC token.
    assert trial.deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert "--workers" in trial.container["args"]
    assert trial.container["args"][trial.container["args"].index("--workers") + 1] == "1"
    assert "NOT FOR PRODUCTION" in trial.notes


def test_rate_limit_counters_can_share_the_redis(evaluation: Rendered) -> None:
    settings = load_settings(settings_environment(evaluation, {}))
    assert settings.redis_url == "redis://trustpub-redis:6379/0"
    assert settings.rate_limit_storage == settings.redis_url


def test_the_chart_sets_every_setting_trustpub_reads(rendered: dict[str, Rendered]) -> None:
    """A setting added to app/settings.py fails here until the chart can set it."""
    known = {f"TRUSTPUB_{name.upper()}" for name in Settings.__dataclass_fields__}
    set_by_chart = {
        name for out in rendered.values() for name in out.env() if name.startswith("TRUSTPUB_")
    }
    assert set_by_chart <= known
    # Development mode's key directory has no place in a cluster.
    assert known - set_by_chart == {"TRUSTPUB_DEV_DIR"}


# --- files: policies, keys and clients reach the app in a form it loads ----------------------


def materialise(directory: Path, data: dict[str, str], *, encoded: bool, mode: int = 0o644) -> Path:
    """Write a ConfigMap's or Secret's data as the kubelet does: one file per key, with
    the volume's defaultMode."""
    directory.mkdir()
    for key, value in data.items():
        (directory / key).write_bytes(base64.b64decode(value) if encoded else value.encode())
        (directory / key).chmod(mode)
    return directory


def test_evaluation_policies_keys_and_clients_load(
    evaluation: Rendered, tmp_path: Path, signing_key_pem: str
) -> None:
    policies = evaluation.one("ConfigMap", "trustpub-policies")
    policies_dir = materialise(tmp_path / "policies", policies["data"], encoded=False)
    publishers = load_policy_dir(policies_dir, {"github": frozenset({PUBLIC_GITHUB_ISSUER})})
    assert len(publishers) == 2

    keys = evaluation.one("Secret", "trustpub-signing-keys")
    assert list(keys["data"]) == [SIGNING_KEY_FILE]
    keys_dir = materialise(tmp_path / "keys", keys["data"], encoded=True, mode=0o440)
    assert load_key_ring(keys_dir).signer.kid

    clients = evaluation.one("Secret", "trustpub-clients")
    clients_dir = materialise(tmp_path / "clients", clients["data"], encoded=True)
    assert load_clients_file(clients_dir / "clients.toml").names() == {"pypiserver"}


@pytest.mark.parametrize(
    ("scenario", "policies", "keys", "clients"),
    [
        ("defaults", "trustpub-policies", "trustpub-signing-keys", None),
        ("production", "trustpub-policies", "trustpub-signing-keys", "trustpub-clients"),
        ("evaluation", "trustpub-policies", "trustpub-signing-keys", "trustpub-clients"),
    ],
    ids=["defaults", "production", "evaluation"],
)
def test_mounts_match_the_settings_paths(
    rendered: dict[str, Rendered],
    scenario: str,
    policies: str,
    keys: str,
    clients: str | None,
) -> None:
    out = rendered[scenario]
    mounts = {m["name"]: m for m in out.container["volumeMounts"]}
    volumes = {v["name"]: v for v in out.pod["volumes"]}
    env = out.env()
    assert mounts["policies"]["mountPath"] == env["TRUSTPUB_POLICIES_DIR"]["value"]
    assert volumes["policies"]["configMap"]["name"] == policies
    assert mounts["signing-keys"]["mountPath"] == env["TRUSTPUB_SIGNING_KEYS"]["value"]
    assert volumes["signing-keys"]["secret"]["secretName"] == keys
    # Private keys: readable by the owner and the pod's fsGroup only (0440).
    assert volumes["signing-keys"]["secret"]["defaultMode"] == 0o440
    assert all(m.get("readOnly") for name, m in mounts.items() if name != "tmp")
    if clients is None:
        assert "clients" not in volumes
        assert "TRUSTPUB_CLIENTS_FILE" not in env
    else:
        secret = volumes["clients"]["secret"]
        assert secret["secretName"] == clients
        assert secret["items"] == [{"key": "clients.toml", "path": "clients.toml"}]
        assert env["TRUSTPUB_CLIENTS_FILE"]["value"] == (
            f"{mounts['clients']['mountPath']}/clients.toml"
        )


# --- rollouts ------------------------------------------------------------------------------


def checksums(out: Rendered) -> dict[str, str]:
    annotations = out.deployment["spec"]["template"]["metadata"]["annotations"]
    return {k: v for k, v in annotations.items() if k.startswith("checksum/")}


def test_checksums_are_the_hashes_of_the_rendered_objects(evaluation: Rendered) -> None:
    sums = checksums(evaluation)
    for annotation, template in {
        "checksum/policies": "configmap-policies.yaml",
        "checksum/signing-keys": "secret-signing-keys.yaml",
        "checksum/clients": "secret-clients.yaml",
        "checksum/redis": "secret-redis.yaml",
    }.items():
        expected = hashlib.sha256(evaluation.file(template).encode()).hexdigest()
        assert sums[annotation] == expected, annotation


@pytest.mark.parametrize(
    ("change", "annotation"),
    [
        ({"policies": {"demo.toml": "# no publisher yet\n"}}, "checksum/policies"),
        (
            {"signingKeys": {"files": {"z.pem": "-----BEGIN PRIVATE KEY-----\n"}}},
            "checksum/signing-keys",
        ),
        ({"clients": {"toml": "# no client\n"}}, "checksum/clients"),
    ],
    ids=["policies", "signing-keys", "clients"],
)
def test_a_content_change_rolls_the_pods(
    chart: helm.Chart,
    scenarios: dict[str, dict[str, Any]],
    evaluation: Rendered,
    change: dict[str, Any],
    annotation: str,
) -> None:
    before = checksums(evaluation)
    after = checksums(render(chart, merge(scenarios["evaluation"], change)))
    assert {k for k in before if before[k] != after[k]} == {annotation}


def test_a_redis_url_change_rolls_the_pods(chart: helm.Chart) -> None:
    values = merge(REQUIRED, {"redis": {"existingSecret": "", "url": "redis://a:6379/0"}})
    before = checksums(render(chart, values))
    after = checksums(render(chart, merge(values, {"redis": {"url": "redis://b:6379/0"}})))
    assert {k for k in before if before[k] != after[k]} == {"checksum/redis"}


# --- routing -------------------------------------------------------------------------------


def paths(ingress: dict[str, Any]) -> dict[str, dict[str, Any]]:
    (rule,) = ingress["spec"]["rules"]
    return {p["path"]: p for p in rule["http"]["paths"]}


def test_one_ingress_routes_oidc_to_trustpub_and_the_rest_to_the_index(
    production: Rendered,
) -> None:
    ingress = production.one("Ingress")
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["metadata"]["annotations"] == {"cert-manager.io/cluster-issuer": "letsencrypt"}
    assert ingress["spec"]["tls"] == [
        {"hosts": ["pypi.example.com"], "secretName": "pypi-example-com-tls"}
    ]
    assert ingress["spec"]["rules"][0]["host"] == "pypi.example.com"
    routes = paths(ingress)
    assert set(routes) == {"/_/oidc/", "/"}
    assert routes["/_/oidc/"]["pathType"] == "Prefix"
    assert routes["/_/oidc/"]["backend"] == {
        "service": {"name": "trustpub", "port": {"name": "http"}}
    }
    assert routes["/"]["pathType"] == "Prefix"
    assert routes["/"]["backend"] == {"service": {"name": "pypiserver", "port": {"name": "http"}}}
    # The named port exists on trustpub's Service.
    assert [p["name"] for p in production.one("Service")["spec"]["ports"]] == ["http"]


def test_index_port_by_number_and_extra_trustpub_paths(evaluation: Rendered) -> None:
    routes = paths(evaluation.one("Ingress"))
    assert set(routes) == {"/_/oidc/", "/oauth/revoke", "/"}
    assert routes["/oauth/revoke"]["backend"] == routes["/_/oidc/"]["backend"]
    assert routes["/"]["backend"] == {"service": {"name": "pypiserver", "port": {"number": 8080}}}
    assert "tls" not in evaluation.one("Ingress")["spec"]


def test_without_an_index_service_only_oidc_is_routed(chart: helm.Chart) -> None:
    out = render(chart, merge(REQUIRED, {"ingress": {"enabled": True, "host": "pypi.example.com"}}))
    assert set(paths(out.one("Ingress"))) == {"/_/oidc/"}
    assert "the index's own Ingress must serve / of the same host" in out.notes


# --- scaling, disruption, monitoring --------------------------------------------------------


def test_autoscaling_owns_the_replica_count(production: Rendered) -> None:
    assert "replicas" not in production.deployment["spec"]
    hpa = production.one("HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "trustpub",
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 10)
    targets = {m["resource"]["name"]: m["resource"]["target"] for m in hpa["spec"]["metrics"]}
    assert targets == {
        "cpu": {"type": "Utilization", "averageUtilization": 60},
        "memory": {"type": "Utilization", "averageUtilization": 80},
    }


def test_selectors_pick_trustpub_pods_only(evaluation: Rendered) -> None:
    """The evaluation Redis shares name and instance labels; the component keeps it apart."""
    selector = evaluation.one("Service")["spec"]["selector"]
    trustpub_labels = evaluation.deployment["spec"]["template"]["metadata"]["labels"]
    redis = evaluation.one("Deployment", "trustpub-redis")
    redis_labels = redis["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= trustpub_labels.items()
    assert not selector.items() <= redis_labels.items()
    assert evaluation.deployment["spec"]["selector"]["matchLabels"] == selector
    pdb = evaluation.one("PodDisruptionBudget")
    assert pdb["spec"] == {"maxUnavailable": 1, "selector": {"matchLabels": selector}}


def test_service_monitor_scrapes_metrics(production: Rendered) -> None:
    monitor = production.one("ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    service_labels = production.one("Service")["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service_labels.items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["pypi"]}
    assert monitor["spec"]["endpoints"] == [
        {"port": "http", "path": "/metrics", "interval": "15s", "scrapeTimeout": "10s"}
    ]


# --- network policy ------------------------------------------------------------------------


def egress_ports(policy: dict[str, Any]) -> list[set[tuple[int, str]]]:
    return [
        {(p["port"], p["protocol"]) for p in rule["ports"]} for rule in policy["spec"]["egress"]
    ]


def test_network_policy_of_production(production: Rendered) -> None:
    policy = production.one("NetworkPolicy")
    spec = policy["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert spec["podSelector"]["matchLabels"] == production.one("Service")["spec"]["selector"]
    app_ingress, metrics_ingress = spec["ingress"]
    assert [peer for peer in app_ingress["from"]][1] == {
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "pypiserver"}}
    }
    assert app_ingress["ports"] == [{"port": "http", "protocol": "TCP"}]
    assert metrics_ingress["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ]
    assert egress_ports(policy) == [
        {(53, "UDP"), (53, "TCP")},
        {(6379, "TCP"), (26379, "TCP"), (26380, "TCP")},
        {(443, "TCP")},
    ]
    dns, redis, https = spec["egress"]
    assert dns["to"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}
    ]
    assert redis["to"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "redis"}}}
    ]
    assert https["to"][0]["ipBlock"]["cidr"] == "0.0.0.0/0"


def test_network_policy_of_the_evaluation_redis(evaluation: Rendered) -> None:
    trustpub_selector = evaluation.one("Service")["spec"]["selector"]
    redis_selector = evaluation.one("Service", "trustpub-redis")["spec"]["selector"]
    egress = evaluation.one("NetworkPolicy")["spec"]["egress"]
    assert egress[1] == {
        "to": [{"podSelector": {"matchLabels": redis_selector}}],
        "ports": [{"port": 6379, "protocol": "TCP"}],
    }
    redis_policy = evaluation.one("NetworkPolicy", "trustpub-redis")["spec"]
    assert redis_policy["podSelector"]["matchLabels"] == redis_selector
    assert redis_policy["ingress"] == [
        {
            "from": [{"podSelector": {"matchLabels": trustpub_selector}}],
            "ports": [{"port": "redis", "protocol": "TCP"}],
        }
    ]
    assert redis_policy["egress"] == []


@pytest.mark.parametrize(
    ("override", "rule", "ports"),
    [
        (
            {"trustpub": {"gitlabIssuers": ["https://gitlab.com", "https://git.example.com:8443"]}},
            2,
            {(443, "TCP"), (8443, "TCP")},
        ),
        (
            {"trustpub": {"githubIssuers": ["https://ghes.example.com:4443/_services/token"]}},
            2,
            {(443, "TCP"), (4443, "TCP")},
        ),
        (
            {"redis": {"existingSecret": "", "url": "rediss://:pw@redis.example.com:6380/0"}},
            1,
            {(6379, "TCP"), (26379, "TCP"), (6380, "TCP")},
        ),
        (
            {
                "redis": {
                    "existingSecret": "",
                    "sentinel": {"enabled": True, "hosts": ["s0", "s1:26380", "s2:26381"]},
                }
            },
            1,
            {(6379, "TCP"), (26379, "TCP"), (26380, "TCP"), (26381, "TCP")},
        ),
    ],
    ids=["gitlab issuer port", "ghes issuer port", "redis url port", "sentinel ports"],
)
def test_network_policy_opens_the_ports_the_values_name(
    chart: helm.Chart, override: dict[str, Any], rule: int, ports: set[tuple[int, str]]
) -> None:
    """An issuer or Redis on a port the policy does not allow would fail every exchange."""
    out = render(chart, merge(REQUIRED, override))
    assert egress_ports(out.one("NetworkPolicy"))[rule] == ports


def test_in_memory_needs_no_redis_egress(rendered: dict[str, Rendered]) -> None:
    assert egress_ports(rendered["in-memory"].one("NetworkPolicy")) == [
        {(53, "UDP"), (53, "TCP")},
        {(443, "TCP")},
    ]


# --- the evaluation Redis ------------------------------------------------------------------


def test_evaluation_redis(evaluation: Rendered) -> None:
    deployment = evaluation.one("Deployment", "trustpub-redis")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert "not-for-production" in "".join(deployment["metadata"]["annotations"])
    pod = deployment["spec"]["template"]["spec"]
    (redis,) = pod["containers"]
    args = redis["args"]
    assert args[args.index("--appendonly") + 1] == "yes"
    assert args[args.index("--appendfsync") + 1] == "everysec"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["automountServiceAccountToken"] is False
    assert redis["securityContext"]["readOnlyRootFilesystem"] is True
    assert redis["securityContext"]["allowPrivilegeEscalation"] is False
    assert redis["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert {m["mountPath"] for m in redis["volumeMounts"]} == {"/data"}
    service = evaluation.one("Service", "trustpub-redis")
    assert service["spec"]["ports"][0]["port"] == 6379
    assert evaluation.env()["TRUSTPUB_REDIS_URL"]["value"] == "redis://trustpub-redis:6379/0"


# --- NOTES.txt -----------------------------------------------------------------------------


def test_notes_tell_the_operator_what_to_do_next(production: Rendered) -> None:
    notes = production.notes
    assert "trustpub keys generate --dir keys" in notes
    assert "kubectl -n pypi create secret generic trustpub-signing-keys --from-file=keys/" in notes
    assert "trustpub clients add my-index --scope introspect" in notes
    assert "POST http://trustpub.pypi.svc:8000/oauth/introspect" in notes
    assert "curl https://pypi.example.com/_/oidc/audience" in notes
    assert '{"audience":"pypi.example.com"}' in notes
    assert "NOT FOR PRODUCTION" not in notes


def test_notes_warn_about_the_evaluation_redis(evaluation: Rendered) -> None:
    assert "EVALUATION ONLY, NOT FOR PRODUCTION" in evaluation.notes
    assert "TLS" in evaluation.notes  # no tlsSecretName: HTTPS must be terminated in front


def test_notes_without_ingress_show_port_forward(rendered: dict[str, Rendered]) -> None:
    notes = rendered["defaults"].notes
    assert "kubectl -n pypi port-forward svc/trustpub 8000:8000" in notes
    assert "curl http://127.0.0.1:8000/_/oidc/audience" in notes
    assert "no workflow can publish" in notes
