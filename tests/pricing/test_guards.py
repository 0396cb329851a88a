"""Guards of a payout: a passed audit (or a recorded override), one period granularity in a sane range,
and a budget the books can post for every period (both engines)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from marketplace.campaigns import create_campaign
from marketplace.db import PricingRun
from marketplace.errors import AuditFailedError, ConflictError, ValidationError
from marketplace.ledger import verify_ledger
from marketplace.ledger.limits import MAX_BUDGET_MINOR, MAX_STORED_MINOR, check_budget_minor
from marketplace.money import Money
from marketplace.pricing import PricingPolicy
from marketplace.pricing.period import period_granularity, validate_period
from marketplace.pricing.runner import run_pricing
from tests.support.catalog import make_campaign, make_provider, make_score_run, make_submission

POLICY = PricingPolicy(screen="none", cap_percentile=100)


def _campaign(factory: sessionmaker[Session], audit: dict[str, object] | None = None, threshold: float = 0.9,
              budget_minor: int = 1000, tag: str = "") -> int:
    with factory() as s, s.begin():
        camp = make_campaign(s, audit_threshold=threshold, budget_minor=budget_minor)
        _, xs = make_submission(s, make_provider(s), [f"guard a{tag}", f"guard b{tag}"])
        make_score_run(s, camp, {xs[0].id: 1.0, xs[1].id: 2.0}, audit=audit)
        return camp.id


def _runs(factory: sessionmaker[Session]) -> int:
    with factory() as s:
        return s.scalar(select(func.count()).select_from(PricingRun)) or 0


@pytest.mark.parametrize("audit", [{}, {"passed": None, "reason": "audit skipped: only 2 samples"},
                                   {"passed": None, "spearman": None}])
def test_a_run_without_a_passed_audit_is_not_paid_without_an_override(session_factory: sessionmaker[Session],
                                                                      audit: dict[str, object]) -> None:
    cid = _campaign(session_factory, audit)
    with pytest.raises(AuditFailedError, match=r"no passed audit.*--override-audit"):
        run_pricing(session_factory, cid, "2026-11", POLICY)
    assert _runs(session_factory) == 0
    with pytest.raises(AuditFailedError):  # a blank reason is no override
        run_pricing(session_factory, cid, "2026-11", POLICY, audit_override="  ")
    out = run_pricing(session_factory, cid, "2026-11", POLICY, audit_override="ops: audit labeler down, ticket ok")
    assert out.status == "complete" and out.audit_override == "ops: audit labeler down, ticket ok"
    with session_factory() as s:
        run = s.get(PricingRun, out.pricing_run_id)
        assert run is not None and run.audit_override == "ops: audit labeler down, ticket ok"
        assert verify_ledger(s).ok


@pytest.mark.parametrize("audit", [{"passed": False, "spearman": 0.95}, {"passed": True, "spearman": 0.5},
                                   {"spearman": 0.2}])
def test_a_failed_audit_is_never_paid_even_with_an_override(session_factory: sessionmaker[Session],
                                                            audit: dict[str, object]) -> None:
    cid = _campaign(session_factory, audit, threshold=0.9)
    with pytest.raises(AuditFailedError, match="failed its audit"):
        run_pricing(session_factory, cid, "2026-11", POLICY, audit_override="pay anyway")
    assert _runs(session_factory) == 0


def test_a_passed_audit_records_no_override(session_factory: sessionmaker[Session]) -> None:
    cid = _campaign(session_factory, {"passed": True, "spearman": 0.95})
    out = run_pricing(session_factory, cid, "2026-11", POLICY, audit_override="not needed")
    assert out.status == "complete" and out.audit_override is None


@pytest.mark.parametrize("bad", ["0000", "9999-12-31", "1999-12", "2101", "2026-13", "2026-W47", ""])
def test_periods_outside_the_range_or_form_are_refused(bad: str) -> None:
    with pytest.raises(ValidationError, match=r"YYYY|outside 2000-2100") as info:
        validate_period(bad)
    assert "\n" not in str(info.value)


def test_granularity_and_edges() -> None:
    assert [period_granularity(p) for p in ("2000", "2100-12", "2026-02-28")] == ["year", "month", "day"]


@pytest.mark.parametrize(("first", "second"), [("2026-11", "2026"), ("2026", "2026-11"), ("2026-11", "2026-11-05"),
                                               ("2026-11-05", "2027-01")])
def test_one_granularity_per_campaign(session_factory: sessionmaker[Session], first: str, second: str) -> None:
    cid = _campaign(session_factory)
    run_pricing(session_factory, cid, first, POLICY)
    with pytest.raises(ConflictError, match="overlap") as info:
        run_pricing(session_factory, cid, second, POLICY)
    assert "\n" not in str(info.value)
    assert _runs(session_factory) == 1
    other = _campaign(session_factory, tag="other")  # another campaign picks its own granularity
    assert run_pricing(session_factory, other, second, POLICY).status == "complete"


def test_budget_limit_is_what_every_period_can_post() -> None:
    check_budget_minor(MAX_BUDGET_MINOR, "EUR")
    assert MAX_BUDGET_MINOR * 36890 <= MAX_STORED_MINOR
    for too_big in (MAX_BUDGET_MINOR + 1, 10**20 * 100, 10**40):
        with pytest.raises(ValidationError, match="too large") as info:
            check_budget_minor(too_big, "EUR")
        assert "\n" not in str(info.value)


class _Rec:
    text = "target text"
    prompt_chars = None
    content_hash = "0" * 64


@pytest.mark.parametrize("budget", [10**20 * 100, MAX_BUDGET_MINOR + 1])
def test_a_campaign_with_a_budget_too_large_is_refused_up_front(session_factory: sessionmaker[Session],
                                                                budget: int) -> None:
    with pytest.raises(ValidationError, match="too large"), session_factory() as s, s.begin():
        create_campaign(s, name="huge", target_model_path="m", target_model_digest="d", target_data_path="t",
                        target_records=[_Rec()], budget=Money(budget, "EUR"))


def test_pricing_refuses_a_stored_budget_too_large(session_factory: sessionmaker[Session]) -> None:
    cid = _campaign(session_factory, budget_minor=MAX_BUDGET_MINOR + 1)  # stored before the limit existed
    with pytest.raises(ValidationError, match="too large"):
        run_pricing(session_factory, cid, "2026-11", POLICY)
    assert _runs(session_factory) == 0
