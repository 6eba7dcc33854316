"""`string_claims` reads many claims at once exactly as `string_claim` reads them one by one.

Its common case is checked with builtins; these cases hold it to the claim-by-claim
reading, in the values it returns and in the error it raises (the same claim named,
the same description), for every JSON type a claim can hold, present or absent.
"""

from __future__ import annotations

from typing import Any

import pytest

from app.errors import InvalidPublisher
from app.publishers import github, gitlab, google
from app.publishers.model import string_claim, string_claims

REQUIRED = ("repository", "sha", "ref")
OPTIONAL = ("environment", "actor")
VALID = {"repository": "octo/demo", "sha": "0" * 40, "ref": "", "environment": "pypi", "actor": "a"}
# Every type a JSON value decodes to, and absence.
OTHERS: tuple[Any, ...] = (None, 0, 1.5, True, False, [], ["x"], {}, {"a": "b"})
ABSENT = object()


def one_by_one(
    claims: dict[str, Any], required: tuple[str, ...], optional: tuple[str, ...]
) -> tuple[dict[str, str], dict[str, str | None]]:
    """The reading `string_claims` must equal: each claim through `string_claim`, in order."""
    return (
        {name: string_claim(claims, name, required=True) or "" for name in required},
        {name: string_claim(claims, name, required=False) for name in optional},
    )


def outcome(read: Any, claims: dict[str, Any], required: Any, optional: Any) -> tuple[Any, ...]:
    try:
        return ("values", read(claims, required, optional))
    except InvalidPublisher as exc:
        return ("refused", str(exc), exc.mismatches)


def with_claim(name: str, value: Any, base: dict[str, Any] = VALID) -> dict[str, Any]:
    claims = dict(base)
    if value is ABSENT:
        claims.pop(name)
    else:
        claims[name] = value
    return claims


CASES = [
    pytest.param(VALID, id="all-strings"),
    pytest.param({**VALID, "unrelated": 5, "aud": ["x"]}, id="other-claims-ignored"),
    *(
        pytest.param(with_claim(name, value), id=f"{name}={value!r}")
        for name in REQUIRED + OPTIONAL
        for value in (*OTHERS, ABSENT, "")
    ),
    # Two offending claims: the first in reading order is named.
    pytest.param(with_claim("ref", 3, with_claim("sha", ABSENT)), id="two-required-wrong"),
    pytest.param(
        with_claim("environment", 3, with_claim("ref", [])), id="required-before-optional"
    ),
    pytest.param(with_claim("actor", {}, with_claim("environment", 1)), id="two-optional-wrong"),
]


@pytest.mark.parametrize("claims", CASES)
def test_reads_as_string_claim_does(claims: dict[str, Any]) -> None:
    expected = outcome(one_by_one, claims, REQUIRED, OPTIONAL)
    assert outcome(string_claims, claims, REQUIRED, OPTIONAL) == expected


@pytest.mark.parametrize(
    ("claims", "refused"),
    [
        (with_claim("sha", ABSENT), "sha"),
        (with_claim("sha", None), "sha"),
        (with_claim("ref", 0), "ref"),
        (with_claim("actor", True), "actor"),
    ],
)
def test_refuses_naming_the_claim(claims: dict[str, Any], refused: str) -> None:
    with pytest.raises(InvalidPublisher) as caught:
        string_claims(claims, REQUIRED, OPTIONAL)

    assert [mismatch.claim for mismatch in caught.value.mismatches] == [refused]


@pytest.mark.parametrize("provider", [github, gitlab, google])
def test_each_providers_claim_lists_read_alike(provider: Any) -> None:
    required, optional = provider.REQUIRED_CLAIMS, provider.OPTIONAL_CLAIMS
    claims = {name: f"value-{name}" for name in required + optional}
    assert string_claims(claims, required, optional) == one_by_one(claims, required, optional)
    for name in required + optional:
        broken = {**claims, name: 7}
        assert outcome(string_claims, broken, required, optional) == outcome(
            one_by_one, broken, required, optional
        )
