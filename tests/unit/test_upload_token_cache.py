"""The upload-token verifier remembers tokens it verified, and nothing else."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.errors import InvalidToken
from app.private_files import write_private_file
from app.tokens import verify as verify_module
from app.tokens.keys import KeyRing, generate_signing_key_pem, load_key_ring
from app.tokens.mint import UploadTokenMinter
from app.tokens.scopes import project_scope, publisher_scope, token_scope
from app.tokens.verify import UploadTokenVerifier, VerifiedTokens

ISSUER, AUDIENCE, NOW = "urn:trustpub:t", "urn:trustpub:upload:t", 1_700_000_000


@pytest.fixture
def keys(tmp_path: Path) -> KeyRing:
    write_private_file(tmp_path / "key.pem", generate_signing_key_pem())
    return load_key_ring(tmp_path)


@pytest.fixture
def signature_checks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = verify_module.verify_signature

    def counting(*args: object) -> None:
        calls.append(1)
        real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(verify_module, "verify_signature", counting)
    return calls


def mint(keys: KeyRing, ttl: int = 900) -> str:
    minter = UploadTokenMinter(keys, ISSUER, AUDIENCE, ttl, "pypi-")
    return minter.mint(frozenset({"demo"}), {"provider": "github"}, "epoch:1", NOW).token


def verifier(keys: KeyRing, capacity: int = 4096) -> UploadTokenVerifier:
    return UploadTokenVerifier(keys, ISSUER, AUDIENCE, "pypi-", VerifiedTokens(capacity))


def test_a_verified_token_is_checked_once_then_remembered(
    keys: KeyRing, signature_checks: list[int]
) -> None:
    token, check = mint(keys), verifier(keys)

    first, second = check.verify(token, NOW), check.verify(token, NOW + 1)

    assert first == second
    assert first.projects == ("demo",)
    assert len(signature_checks) == 1


def test_a_remembered_token_still_expires(keys: KeyRing) -> None:
    token, check = mint(keys, ttl=60), verifier(keys)
    check.verify(token, NOW)

    with pytest.raises(InvalidToken, match="expired"):
        check.verify(token, NOW + 60)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda token: token[:-2] + ("AA" if not token.endswith("AA") else "BA"),
        lambda token: token.removeprefix("pypi-"),
        lambda token: token + ".x",
    ],
    ids=["signature", "prefix", "shape"],
)
def test_a_refused_token_is_never_remembered(
    keys: KeyRing, signature_checks: list[int], tamper: object
) -> None:
    check = verifier(keys)
    bad = tamper(mint(keys))  # type: ignore[operator]

    for _ in range(2):
        with pytest.raises(InvalidToken):
            check.verify(bad, NOW)
    assert len(check.verified) == 0


def test_the_memory_is_bounded_and_forgets_the_oldest_first(
    keys: KeyRing, signature_checks: list[int]
) -> None:
    check = verifier(keys, capacity=3)
    tokens = [mint(keys) for _ in range(4)]
    for token in tokens:
        check.verify(token, NOW)
    assert len(check.verified) == 3

    check.verify(tokens[3], NOW)  # newest: remembered
    check.verify(tokens[0], NOW)  # oldest: forgotten, checked again
    assert len(signature_checks) == 5


def test_the_introspection_answer_is_rfc_7662_and_encoded_once_per_token(keys: KeyRing) -> None:
    token, check = mint(keys), verifier(keys)

    first = check.verify(token, NOW).introspection
    again = check.verify(token, NOW + 1).introspection

    assert again is first  # the remembered token carries its encoded answer
    assert json.loads(first) == {
        "active": True,
        "scope": "upload",
        "token_type": "Bearer",
        "iss": ISSUER,
        "sub": "github:",
        "aud": AUDIENCE,
        "iat": NOW,
        "nbf": NOW,
        "exp": NOW + 900,
        "jti": check.verify(token, NOW).jti,
        "projects": ["demo"],
        "publisher": {"provider": "github"},
    }
    assert first == json.dumps(json.loads(first), separators=(",", ":"), sort_keys=True)


def test_a_remembered_token_keeps_its_revocation_scopes(keys: KeyRing) -> None:
    minter = UploadTokenMinter(keys, ISSUER, AUDIENCE, 900, "pypi-")
    publisher = {"provider": "github", "issuer": "https://iss", "repository": "Octo/Demo"}
    token = minter.mint(
        frozenset({"b-pkg", "A_Pkg"}), {**publisher, "workflow": "r.yml"}, "e:1", NOW
    )
    check = verifier(keys)

    first, again = check.verify(token.token, NOW), check.verify(token.token, NOW + 1)

    # Exactly the scopes a revocation of this token, its projects, its repository or
    # its workflow is recorded under; computed once, then read from the remembered token.
    assert first.revocation_scopes == (
        token_scope(token.jti),
        project_scope("a-pkg"),
        project_scope("B_PKG"),
        publisher_scope("https://iss", "octo/demo"),
        publisher_scope("https://iss", "octo/demo", "r.yml"),
    )
    assert again.revocation_scopes is first.revocation_scopes
