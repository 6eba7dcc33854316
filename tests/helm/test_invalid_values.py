"""Values that cannot work stop the install with a message that says what to change."""

from __future__ import annotations

from typing import Any

import helm_python as helm
import pytest

from .chart import REQUIRED, merge

NO_REDIS = {"redis": {"existingSecret": ""}}
IN_MEMORY = {"redis": {"existingSecret": "", "inMemory": True}, "replicaCount": 1}
IN_MEMORY_ONE_WORKER = merge(IN_MEMORY, {"gunicorn": {"workers": 1}})

# (values merged over the required ones, a fragment of the message)
INVALID: list[tuple[str, dict[str, Any], str]] = [
    (
        "no audience",
        {"trustpub": {"audience": ""}},
        "trustpub.audience is required: set it to a value unique to this index",
    ),
    (
        "audience pypi",
        {"trustpub": {"audience": "pypi"}},
        'trustpub.audience "pypi" belongs to pypi.org',
    ),
    (
        "audience PyPI",
        {"trustpub": {"audience": "PyPI"}},
        'trustpub.audience "PyPI" belongs to pypi.org',
    ),
    (
        "no redis",
        NO_REDIS,
        "redis: choose where replay records and revocations live",
    ),
    (
        "two redis choices",
        {"redis": {"url": "redis://redis:6379/0", "evaluation": {"enabled": True}}},
        "redis: choose exactly one of redis.url, redis.existingSecret, redis.sentinel.enabled, "
        "redis.evaluation.enabled, redis.inMemory; got url, existingSecret, evaluation",
    ),
    (
        "sentinel without hosts",
        {"redis": {"existingSecret": "", "sentinel": {"enabled": True}}},
        "redis.sentinel.hosts is empty",
    ),
    (
        "sentinel password twice",
        {
            "redis": {
                "existingSecret": "",
                "sentinel": {
                    "enabled": True,
                    "hosts": ["s"],
                    "password": "p",
                    "existingSecret": "redis-credentials",
                },
            }
        },
        "redis.sentinel: set password or existingSecret, not both",
    ),
    (
        "in-memory with replicas",
        merge(IN_MEMORY_ONE_WORKER, {"replicaCount": 3}),
        "redis.inMemory keeps replay records in one process: replicaCount 3",
    ),
    (
        "in-memory with workers",
        merge(IN_MEMORY, {"gunicorn": {"workers": 2}}),
        "redis.inMemory keeps replay records in one process: gunicorn.workers 2",
    ),
    (
        "in-memory with autoscaling",
        merge(IN_MEMORY_ONE_WORKER, {"autoscaling": {"enabled": True}}),
        "redis.inMemory keeps replay records in one process: autoscaling.enabled",
    ),
    (
        "shared rate limits with sentinel",
        {
            "redis": {"existingSecret": "", "sentinel": {"enabled": True, "hosts": ["s"]}},
            "trustpub": {"rateLimits": {"storage": "redis"}},
        },
        "trustpub.rateLimits.storage redis shares counters through a redis:// URL",
    ),
    (
        "shared rate limits in memory",
        merge(IN_MEMORY_ONE_WORKER, {"trustpub": {"rateLimits": {"storage": "redis"}}}),
        "trustpub.rateLimits.storage redis needs Redis",
    ),
    (
        "min replicas in memory",
        merge(IN_MEMORY_ONE_WORKER, {"redis": {"minReplicas": 1}}),
        "redis.minReplicas needs Redis replicas",
    ),
    (
        # SIGKILL would cut exchanges in progress short after the pre-stop wait.
        "grace period without room for the pre-stop wait",
        {"preStopSeconds": 15, "terminationGracePeriodSeconds": 30},
        "terminationGracePeriodSeconds 30 leaves requests in progress no time to finish",
    ),
    (
        "min replicas with the evaluation redis",
        {"redis": {"existingSecret": "", "evaluation": {"enabled": True}, "minReplicas": 1}},
        "redis.minReplicas needs Redis replicas",
    ),
    (
        # No password and protected mode off: only the NetworkPolicy keeps other pods out, and
        # Redis holds publisher registrations, revocations and replay records.
        "evaluation redis without network policy",
        {
            "redis": {"existingSecret": "", "evaluation": {"enabled": True}},
            "networkPolicy": {"enabled": False},
        },
        "redis.evaluation.enabled needs networkPolicy.enabled",
    ),
    (
        # A NetworkPolicy rule with an empty `from` admits every source.
        "network policy ingress from nobody",
        {"networkPolicy": {"ingressFrom": []}},
        "networkPolicy.ingressFrom is empty",
    ),
    (
        "autoscaling without a cpu request",
        {"autoscaling": {"enabled": True}, "resources": {"requests": None}},
        "autoscaling.enabled needs resources.requests.cpu",
    ),
    (
        "memory target without a memory request",
        {
            "autoscaling": {"enabled": True, "targetMemoryUtilizationPercentage": 80},
            "resources": {"requests": {"memory": None}},
        },
        "autoscaling.targetMemoryUtilizationPercentage needs resources.requests.memory",
    ),
    (
        "no signing keys",
        {"signingKeys": {"existingSecret": ""}},
        "signingKeys: set signingKeys.existingSecret to a Secret of PEM files",
    ),
    (
        "signing keys twice",
        {"signingKeys": {"files": {"a.pem": "-----BEGIN PRIVATE KEY-----"}}},
        "signingKeys: set existingSecret or files, not both",
    ),
    (
        "clients twice",
        {"clients": {"existingSecret": "c", "toml": "[[client]]"}},
        "clients: set existingSecret or toml, not both",
    ),
    (
        "policies twice",
        {"policies": {"a.toml": ""}, "existingPoliciesConfigMap": "p"},
        "policies: set policies or existingPoliciesConfigMap, not both",
    ),
    (
        "ingress without host",
        {"ingress": {"enabled": True}},
        "ingress.host is required when ingress.enabled",
    ),
    (
        "autoscaling min above max",
        {"autoscaling": {"enabled": True, "minReplicas": 5, "maxReplicas": 2}},
        "autoscaling.minReplicas 5 is above autoscaling.maxReplicas 2",
    ),
]


@pytest.mark.parametrize(
    ("override", "message"), [(o, m) for _, o, m in INVALID], ids=[i for i, _, _ in INVALID]
)
def test_invalid_combination_fails(
    chart: helm.Chart, override: dict[str, Any], message: str
) -> None:
    with pytest.raises(helm.HelmRenderError) as raised:
        chart.render(merge(REQUIRED, override), name="trustpub", namespace="pypi")
    assert message in str(raised.value)


def test_every_problem_is_listed_at_once(chart: helm.Chart) -> None:
    values = merge(REQUIRED, {"trustpub": {"audience": ""}, **NO_REDIS})
    values["signingKeys"] = {"existingSecret": ""}
    with pytest.raises(helm.HelmRenderError) as raised:
        chart.render(values, name="trustpub", namespace="pypi")
    message = str(raised.value)
    assert "The trustpub chart cannot be installed with these values:" in message
    assert message.count("\n  - ") == 3


def test_chart_defaults_alone_ask_for_the_required_values(chart: helm.Chart) -> None:
    with pytest.raises(helm.HelmRenderError) as raised:
        chart.render({}, name="trustpub", namespace="pypi")
    for required in ("trustpub.audience", "redis:", "signingKeys:"):
        assert required in str(raised.value)


# (values merged over the required ones, a fragment of Helm's schema message)
OUT_OF_SCHEMA: list[tuple[str, dict[str, Any], str]] = [
    ("unknown top-level key", {"replicas": 2}, "additional properties 'replicas' not allowed"),
    ("unknown setting", {"trustpub": {"redisUrl": "x"}}, "additional properties 'redisUrl'"),
    ("audience characters", {"trustpub": {"audience": "pypi example"}}, "/trustpub/audience"),
    ("token ttl", {"trustpub": {"tokenTTL": 7200}}, "/trustpub/tokenTTL"),
    ("token prefix", {"trustpub": {"tokenPrefix": "PyPI-"}}, "/trustpub/tokenPrefix"),
    (
        "issuer with trailing slash",
        {"trustpub": {"githubIssuers": ["https://token.actions.githubusercontent.com/"]}},
        "/trustpub/githubIssuers/0",
    ),
    ("no issuer", {"trustpub": {"githubIssuers": []}}, "/trustpub/githubIssuers"),
    (
        "unknown provider",
        {"trustpub": {"disabledProviders": ["bitbucket"]}},
        "/trustpub/disabledProviders/0",
    ),
    (
        "rate limit notation",
        {"trustpub": {"rateLimits": {"mint": "lots"}}},
        "/trustpub/rateLimits/mint",
    ),
    ("trusted proxies", {"trustpub": {"trustedProxies": 17}}, "/trustpub/trustedProxies"),
    ("workers", {"gunicorn": {"workers": 0}}, "/gunicorn/workers"),
    ("threads", {"gunicorn": {"threads": 65}}, "/gunicorn/threads"),
    ("policy file name", {"policies": {"policy.yaml": ""}}, "invalid propertyName 'policy.yaml'"),
    ("key file name", {"signingKeys": {"existingSecret": "", "files": {"k": ""}}}, "/signingKeys"),
    ("redis scheme", {"redis": {"existingSecret": "", "url": "http://x"}}, "/redis/url"),
    ("image digest", {"image": {"digest": "latest"}}, "/image/digest"),
    (
        "dev mode through extraEnv",
        {"extraEnv": [{"name": "TRUSTPUB_DEV", "value": "true"}]},
        "/extraEnv/0/name",
    ),
]


@pytest.mark.parametrize(
    ("override", "message"),
    [(o, m) for _, o, m in OUT_OF_SCHEMA],
    ids=[i for i, _, _ in OUT_OF_SCHEMA],
)
def test_values_outside_the_schema_are_refused(
    chart: helm.Chart, override: dict[str, Any], message: str
) -> None:
    with pytest.raises(helm.HelmValuesError) as raised:
        chart.render(merge(REQUIRED, override), name="trustpub", namespace="pypi")
    assert message in str(raised.value)
