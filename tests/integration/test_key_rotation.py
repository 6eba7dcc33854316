"""Signing-key rotation without downtime: both keys verify, the new one signs, the old retires."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import jwt
import pytest
from flask import Flask

from app.errors import ConfigurationError
from app.private_files import write_private_file
from app.tokens.keys import generate_signing_key_pem, load_key_ring, new_key_file_name

from .conftest import MakeApp, MakeToken
from .exchange_api import assert_minted, mint
from .oauth_api import Clients, is_active


def write_key(directory: Path, year: int) -> str:
    path = directory / new_key_file_name(datetime(year, 1, 1, tzinfo=UTC))
    write_private_file(path, generate_signing_key_pem())
    return load_key_ring(path).signer.kid


def kid_of(token: str) -> str:
    kid: str = jwt.get_unverified_header(token.removeprefix("pypi-"))["kid"]
    return kid


@pytest.fixture
def clients(tmp_path: Path) -> Clients:
    return Clients(tmp_path / "clients.toml")


def test_rotation_new_key_signs_both_verify_removed_key_retires(
    tmp_path: Path, make_app: MakeApp, make_token: MakeToken, clients: Clients
) -> None:
    old_dir, both_dir, new_dir = (tmp_path / name for name in ("old", "both", "new"))
    old_kid = write_key(old_dir, 2025)
    shutil.copytree(old_dir, both_dir)
    new_kid = write_key(both_dir, 2026)
    shutil.copytree(both_dir, new_dir)
    next(new_dir.glob("*2025*")).unlink()

    def app_with(keys: Path, **settings: object) -> Flask:
        return make_app(signing_keys=keys, clients_file=clients.path, **settings)

    before = app_with(old_dir).test_client()
    during = app_with(both_dir).test_client()
    after = app_with(new_dir).test_client()
    old_token = assert_minted(mint(before, make_token()))["token"]
    new_token = assert_minted(mint(during, make_token()))["token"]

    assert kid_of(old_token) == old_kid
    assert kid_of(new_token) == new_kid
    published = {key["kid"] for key in during.get("/.well-known/jwks.json").get_json()["keys"]}
    assert published == {old_kid, new_kid}
    index = clients.basic("index")
    assert is_active(during, old_token, index)
    assert is_active(during, new_token, index)
    # Once the old key is removed, what it signed is no longer vouched for.
    assert not is_active(after, old_token, index)
    assert is_active(after, new_token, index)
    published_after = after.get("/.well-known/jwks.json").get_json()["keys"]
    assert [key["kid"] for key in published_after] == [new_kid]


def test_signing_kid_pins_the_old_key_while_the_new_one_rolls_out(
    tmp_path: Path, make_app: MakeApp, make_token: MakeToken
) -> None:
    old_kid = write_key(tmp_path, 2025)
    new_kid = write_key(tmp_path, 2026)

    client = make_app(signing_keys=tmp_path, signing_kid=old_kid).test_client()
    token = assert_minted(mint(client, make_token()))["token"]

    assert kid_of(token) == old_kid
    published = {key["kid"] for key in client.get("/.well-known/jwks.json").get_json()["keys"]}
    assert published == {old_kid, new_kid}


def test_unknown_signing_kid_stops_start_up(tmp_path: Path, make_app: MakeApp) -> None:
    write_key(tmp_path, 2025)

    with pytest.raises(ConfigurationError, match="signing_kid 'nope' is not among the keys"):
        make_app(signing_keys=tmp_path, signing_kid="nope")


def test_signing_kid_names_the_generated_key_in_dev_mode_too(
    tmp_path: Path, make_app: MakeApp, make_token: MakeToken
) -> None:
    dev = {"dev": True, "dev_dir": tmp_path / "dev", "signing_keys": None}

    with pytest.raises(ConfigurationError, match="signing_kid 'nope' is not among the keys"):
        make_app(signing_kid="nope", **dev)
    generated_kid = load_key_ring(tmp_path / "dev" / "signing-keys").signer.kid
    client = make_app(signing_kid=generated_kid, **dev).test_client()
    assert kid_of(assert_minted(mint(client, make_token()))["token"]) == generated_kid
