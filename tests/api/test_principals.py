"""Principals and tokens: created with a token shown once and stored only as its hash, listed, rotated and
revoked, every change in the audit trail; the CLI prints the token once and refuses bad input in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from marketplace.cli.app import app
from marketplace.db import ApiToken, AuditEvent, Principal
from marketplace.errors import ConflictError, NotFoundError, ValidationError
from marketplace.principals import (
    TOKEN_PREFIX,
    authenticate,
    create_principal,
    hash_token,
    list_principals,
    revoke_principal,
    rotate_token,
)

runner = CliRunner()


def test_tokens_are_stored_only_as_hashes_and_stop_working_when_rotated_or_revoked(
        session_factory: sessionmaker[Session]) -> None:
    with session_factory() as s, s.begin():
        issued = create_principal(s, "provider", "  acme data ")
    token = issued.token
    assert token.startswith(TOKEN_PREFIX) and len(token) == len(TOKEN_PREFIX) + 43
    assert issued.principal.name == "acme data" and issued.principal.active_tokens == 1
    with session_factory() as s:
        stored = [str(v) for row in s.execute(text("SELECT * FROM api_tokens")).all() for v in row]
        assert token not in " ".join(stored) and hash_token(token) in stored
        principal = authenticate(s, token)
        assert principal is not None and principal.name == "acme data"
        s.commit()
        assert authenticate(s, token[:-1] + ("A" if token[-1] != "A" else "B")) is None
        assert s.scalar(select(ApiToken.last_used_at)) is not None
    with session_factory() as s, s.begin():
        rotated = rotate_token(s, "acme data").token
    with session_factory() as s:
        assert authenticate(s, token) is None and authenticate(s, rotated) is not None
    with session_factory() as s, s.begin():
        info = revoke_principal(s, "acme data")
        assert not info.active and info.active_tokens == 0
    with session_factory() as s:
        assert authenticate(s, rotated) is None
        actions = list(s.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))
        assert actions == ["principal_created", "token_rotated", "principal_revoked"]
    with session_factory() as s, s.begin(), pytest.raises(ConflictError, match="revoked"):
        rotate_token(s, "acme data")


def test_bad_roles_names_and_duplicates_are_refused_and_write_nothing(session_factory: sessionmaker[Session]) -> None:
    for role, name, error in (("admin", "x", ValidationError), ("buyer", "12", ValidationError),
                              ("buyer", "a\u202eb", ValidationError), ("provider", "", ValidationError)):
        with session_factory() as s, s.begin(), pytest.raises(error):
            create_principal(s, role, name)
    with session_factory() as s, s.begin():
        create_principal(s, "buyer", "shop")
        create_principal(s, "provider", "shop")  # names are unique per role
    with session_factory() as s, s.begin(), pytest.raises(ConflictError):
        create_principal(s, "buyer", "shop")
    with session_factory() as s, s.begin(), pytest.raises(ConflictError, match="--role"):
        revoke_principal(s, "shop")
    with session_factory() as s, s.begin(), pytest.raises(NotFoundError):
        revoke_principal(s, "nobody")
    with session_factory() as s:
        assert s.scalar(select(func.count()).select_from(Principal)) == 2
        assert [p.role for p in list_principals(s)] == ["buyer", "provider"]


def test_the_cli_prints_the_token_once_and_lists_without_it(mkt_home: Path) -> None:
    created = runner.invoke(app, ["principals", "create", "--role", "buyer", "--name", "b-one", "--json"])
    assert created.exit_code == 0, created.output
    doc = json.loads(created.stdout)
    assert set(doc) == {"principal", "token"} and doc["principal"]["role"] == "buyer"
    listed = runner.invoke(app, ["principals", "list", "--json"])
    assert listed.exit_code == 0 and doc["token"] not in listed.stdout
    assert json.loads(listed.stdout)[0]["name"] == "b-one"
    rotated = runner.invoke(app, ["principals", "rotate", "b-one", "--json"])
    assert rotated.exit_code == 0 and json.loads(rotated.stdout)["token"] != doc["token"]
    revoked = runner.invoke(app, ["principals", "revoke", "b-one"])
    assert revoked.exit_code == 0 and "revoked" in revoked.output
    bad = runner.invoke(app, ["principals", "create", "--role", "admin", "--name", "x"])
    assert bad.exit_code == 2 and "Traceback" not in bad.output and "provider, buyer, operator" in bad.output


def test_campaign_creation_records_its_buyer(session_factory: sessionmaker[Session]) -> None:
    from dataclasses import dataclass

    from marketplace.campaigns import create_campaign, describe_campaign
    from marketplace.money import Money

    @dataclass(frozen=True)
    class Rec:
        text: str
        prompt_chars: int | None
        content_hash: str

    with session_factory() as s, s.begin():
        c = create_campaign(s, name="owned", target_model_path="/m", target_model_digest="0" * 64,
                            target_data_path="/t", target_records=[Rec("target text", None, "1" * 64)],
                            budget=Money(100, "EUR"), buyer=" b-one ")
        assert describe_campaign(s, c.id).buyer_name == "b-one"
    with session_factory() as s, s.begin(), pytest.raises(ValidationError):
        create_campaign(s, name="owned2", target_model_path="/m", target_model_digest="0" * 64,
                        target_data_path="/t", target_records=[Rec("target text", None, "1" * 64)],
                        budget=Money(100, "EUR"), buyer="[bad]")
    with session_factory() as s:
        event = s.scalar(select(AuditEvent).where(AuditEvent.action == "campaign_created"))
        assert event is not None and event.details["buyer"] == "b-one"


def test_a_change_of_a_campaigns_buyer_is_recorded_by_the_database(session_factory: sessionmaker[Session]) -> None:
    from tests.support.catalog import make_campaign

    with session_factory() as s, s.begin():
        camp = make_campaign(s, name="moved")
    with session_factory() as s, s.begin():
        s.execute(text("UPDATE campaigns SET buyer_name = 'b-two' WHERE id = :id"), {"id": camp.id})
    with session_factory() as s:
        event = s.scalar(select(AuditEvent).where(AuditEvent.action == "campaign_changed"))
        assert event is not None and event.details["buyer_name"] == [None, "b-two"]
