"""The audit trail (who ingested, created, priced, revalued, promoted, changed what) and the catalog check of
``ledger verify``: a catalog row changed after it was priced is found and named (both engines)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from marketplace.approx.publish import promote_version
from marketplace.campaigns import create_campaign
from marketplace.db import ApproximatorVersion, AuditEvent, Sample, make_session_factory
from marketplace.db.audit import current_actor, list_audit_events
from marketplace.ingest import ingest_file, read_normalised_records
from marketplace.ledger import verify_ledger
from marketplace.money import Money
from marketplace.pricing import PricingPolicy
from marketplace.pricing.runner import run_pricing
from tests.support.catalog import make_campaign, make_provider, make_score_run, make_submission


def _events(factory: sessionmaker[Session], action: str) -> list[AuditEvent]:
    with factory() as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)))


def _priced(factory: sessionmaker[Session]) -> tuple[int, list[int], int]:
    """A campaign priced for 2026-11 (two providers); returns (campaign id, sample ids, other provider id)."""
    with factory() as s, s.begin():
        camp = make_campaign(s, budget_minor=10_000)
        prov, other = make_provider(s), make_provider(s)
        _, xs = make_submission(s, prov, ["audit sample one", "audit sample two"])
        make_submission(s, other, ["someone else's text"])
        make_score_run(s, camp, {xs[0].id: 1.0, xs[1].id: 2.0})
        ids = (camp.id, [x.id for x in xs], other.id)
    run_pricing(factory, ids[0], "2026-11", PricingPolicy(screen="none", cap_percentile=100), actor="pricing-bot")
    return ids


def test_core_functions_record_who_did_what(session_factory: sessionmaker[Session], tmp_path: Path) -> None:
    data = tmp_path / "a.jsonl"
    data.write_text("".join(json.dumps({"text": f"an audited text number {i}"}) + "\n" for i in range(3)))
    with session_factory() as s, s.begin():
        report = ingest_file(s, data, "acme", actor="alice")
        ingest_file(s, data, "acme", actor="alice")  # the same bytes again: nothing written, nothing recorded
        campaign = create_campaign(
            s, name="audited", target_model_path="/m", target_model_digest="0" * 64, target_data_path=str(data),
            target_records=read_normalised_records(data), budget=Money(1000, "EUR"), actor="bob")
        cid = campaign.id
    ingested = _events(session_factory, "ingested")
    assert [(e.actor, e.submission_id, e.details["filename"]) for e in ingested] == [
        ("alice", report.submission_id, "a.jsonl")]
    created = _events(session_factory, "campaign_created")
    assert [(e.actor, e.campaign_id, e.details["name"]) for e in created] == [("bob", cid, "audited")]

    with session_factory() as s, s.begin():
        _, xs = make_submission(s, make_provider(s), ["price me please", "and me too"])
        first = make_score_run(s, campaign_row := s.get(type(campaign), cid), {xs[0].id: 1.0, xs[1].id: 1.0})
        second = make_score_run(s, campaign_row, {xs[0].id: 1.0, xs[1].id: 3.0})
    run_pricing(session_factory, cid, "2026-11", PricingPolicy(screen="none", cap_percentile=100),
                score_run_id=first.id,
                actor="carol")
    run_pricing(session_factory, cid, "2026-11", PricingPolicy(screen="none", cap_percentile=100),
                score_run_id=second.id)
    assert [e.actor for e in _events(session_factory, "priced")] == ["carol"]
    revalued = _events(session_factory, "revalued")
    assert [e.actor for e in revalued] == [current_actor()]  # no actor given: the OS user
    assert revalued[0].pricing_run_id is not None and revalued[0].details["period"] == "2026-11"

    class Registry:
        def version_for_alias(self, model_name: str, alias: str) -> str | None:
            return None

        def set_alias(self, model_name: str, alias: str, version: str) -> None:
            pass

    with session_factory() as s, s.begin():
        version = s.scalar(select(ApproximatorVersion).where(ApproximatorVersion.campaign_id == cid).limit(1))
        assert version is not None
        promote_version(s, Registry(), cid, version.model_name, version.version, "better on held-out", actor="dave")
    promoted = _events(session_factory, "promoted")
    assert [(e.actor, e.details["how"]) for e in promoted] == [("dave", "manual")]
    with session_factory() as s:
        assert {e["action"] for e in list_audit_events(s, campaign_id=cid)} >= {
            "campaign_created", "priced", "revalued", "promoted"}


def _assert_refused(factory: sessionmaker[Session], statement: str) -> None:
    """``statement`` fails naming the audit trail, and every event is still there, unchanged."""
    _priced(factory)
    with factory() as s:
        before = [(e.id, e.actor) for e in s.scalars(select(AuditEvent).order_by(AuditEvent.id))]
    assert before
    with pytest.raises(DBAPIError, match="audit"), factory() as s, s.begin():
        s.execute(text(statement))
    with factory() as s:
        assert [(e.id, e.actor) for e in s.scalars(select(AuditEvent).order_by(AuditEvent.id))] == before


_RECOPY = "SELECT id, occurred_at, 'mallory', action, details FROM audit_events"


@pytest.mark.parametrize("statement", [
    "UPDATE audit_events SET actor = 'mallory'",
    "DELETE FROM audit_events",
    f"INSERT INTO audit_events (id, occurred_at, actor, action, details) {_RECOPY} "
    "ON CONFLICT (id) DO UPDATE SET actor = excluded.actor",
])
def test_the_audit_trail_is_append_only(session_factory: sessionmaker[Session], statement: str) -> None:
    """On both engines."""
    _assert_refused(session_factory, statement)


@pytest.mark.parametrize("verb", ["REPLACE INTO", "INSERT OR REPLACE INTO"])
def test_sqlite_replace_cannot_rewrite_the_audit_trail(sqlite_engine: Engine, verb: str) -> None:
    """SQLite's own syntax: a REPLACE deletes and re-inserts without firing DELETE triggers."""
    _assert_refused(make_session_factory(sqlite_engine),
                    f"{verb} audit_events (id, occurred_at, actor, action, details) {_RECOPY}")


def test_postgres_truncate_cannot_empty_the_audit_trail(pg_session_factory: sessionmaker[Session]) -> None:
    """PostgreSQL's own syntax: TRUNCATE fires no row trigger."""
    _assert_refused(pg_session_factory, "TRUNCATE audit_events")


def test_verify_names_a_sample_whose_provider_changed_after_pricing(session_factory: sessionmaker[Session]) -> None:
    _, sample_ids, other = _priced(session_factory)
    with session_factory() as s:
        assert verify_ledger(s).ok
    with session_factory() as s, s.begin():
        s.execute(text("UPDATE samples SET provider_id = :p WHERE id = :i"), {"p": other, "i": sample_ids[0]})
    with session_factory() as s:
        report = verify_ledger(s)
    assert not report.ok and report.checks["catalog"] == 1
    (violation,) = [v for v in report.violations if v.check == "catalog"]
    assert f"sample {sample_ids[0]}:" in violation.message and "changed after it was priced" in violation.message
    changed = _events(session_factory, "catalog_changed")  # the database recorded the statement too
    assert len(changed) == 1 and changed[0].details["provider_id"][1] == other
    assert changed[0].actor  # the database user on PostgreSQL, "database" on SQLite


@pytest.mark.parametrize("change", [
    "UPDATE samples SET text = 'a different text' WHERE id = :i",
    "UPDATE samples SET content_hash = '" + "0" * 64 + "', text = 'x' WHERE id = :i",
    "UPDATE samples SET duplicate_of_id = (SELECT min(id) FROM samples WHERE id <> :i), duplicate_kind = 'near' "
    "WHERE id = :i",
    "UPDATE submissions SET provider_id = (SELECT max(id) FROM providers) "
    "WHERE id = (SELECT submission_id FROM samples WHERE id = :i)",
])
def test_verify_finds_every_kind_of_catalog_change(session_factory: sessionmaker[Session], change: str) -> None:
    _, sample_ids, _ = _priced(session_factory)
    with session_factory() as s, s.begin():
        s.execute(text(change), {"i": sample_ids[1]})
    with session_factory() as s:
        report = verify_ledger(s)
    assert not report.ok
    assert any(v.check == "catalog" and f"sample {sample_ids[1]}:" in v.message for v in report.violations)
    assert _events(session_factory, "catalog_changed")


def test_campaign_changes_are_recorded_by_the_database(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as s, s.begin():
        cid = make_campaign(s, budget_minor=500).id
    with session_factory() as s, s.begin():
        s.execute(text("UPDATE campaigns SET budget_minor = 900 WHERE id = :c"), {"c": cid})
    (event,) = _events(session_factory, "campaign_changed")
    assert event.campaign_id == cid and event.details["budget_minor"] == [500, 900]
    with session_factory() as s:
        assert s.scalar(select(Sample.id).limit(1)) is None  # nothing else was touched
