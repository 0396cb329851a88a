"""The fine-tuning check of pricing runs, on the tiny model: who passes, what is cached, what a run pays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine, func, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

import marketplace.validation.screening as screening_mod
from marketplace.db import (
    Allocation,
    Campaign,
    PricingRun,
    Provider,
    Sample,
    Submission,
    SubmissionStatus,
    TargetSample,
    make_session_factory,
)
from marketplace.errors import ConfigError
from marketplace.pricing import PricingPolicy
from marketplace.pricing.runner import run_pricing
from marketplace.pricing.runs import create_pricing_run
from marketplace.reports.buyer import build_buyer_report
from marketplace.reports.statements import build_provider_statement
from marketplace.validation import RegimeConfig
from marketplace.validation.screening import (
    ProviderCheck,
    Screening,
    ScreeningConfig,
    screen_providers,
    screener,
    screening_from_json,
)
from tests.support.catalog import make_score_run
from tests.support.models import build_tiny_model, seed_campaign, sha

FAST = ScreeningConfig(per_provider=6, seeds=(0, 1, 2), max_length=48,
                       regime=RegimeConfig(name="adamw", optimizer="adamw", weighting="token", learning_rate=1e-3,
                                           epochs=2, batch_size=3))


@pytest.fixture
def sqlite_factory(sqlite_engine: Engine) -> sessionmaker[Session]:
    """The fine-tuning itself does not depend on the engine: the measuring tests run on SQLite only."""
    return make_session_factory(sqlite_engine)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.getbasetemp())


def _garbage(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    alphabet = np.array(list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789#$%&*+/<=>?@^~"))
    return ["".join(rng.choice(alphabet, size=160)) for _ in range(n)]


def _add_provider(session: Session, name: str, texts: list[str]) -> int:
    provider = Provider(name=name)
    session.add(provider)
    session.flush()
    sub = Submission(provider_id=provider.id, filename=f"{name}.jsonl", format="jsonl", content_sha256=sha(name),
                     byte_size=100, status=SubmissionStatus.ACCEPTED, n_records=len(texts), n_accepted=len(texts),
                     n_quarantined=0)
    session.add(sub)
    session.flush()
    session.add_all(Sample(submission_id=sub.id, provider_id=provider.id, record_index=i, text=t,
                           content_hash=sha(t), n_chars=len(t)) for i, t in enumerate(texts))
    session.flush()
    return provider.id


def _market(factory: sessionmaker[Session], model_dir: Path) -> tuple[int, int, int]:
    """The tiny campaign, plus 'echo' (the target texts, reworded by nothing: pure help) and 'noise'
    (random characters: pure harm); every payable sample scored 1.0. Returns (campaign, echo, noise) ids."""
    with factory() as s, s.begin():
        camp_id = seed_campaign(s, model_dir, per_provider=(4, 4), n_target=6)
        targets = s.scalars(select(TargetSample.text).where(TargetSample.campaign_id == camp_id)).all()
        echo = _add_provider(s, "echo", [t + suffix for t in targets for suffix in ("", " ")])
        noise = _add_provider(s, "noise", _garbage(12, seed=5))
        camp = s.get(Campaign, camp_id)
        assert camp is not None
        first = s.scalars(select(Sample.id).where(Sample.duplicate_of_id.is_(None)).order_by(Sample.id)).all()
        make_score_run(s, camp, dict.fromkeys(first, 1.0))
    return camp_id, echo, noise


def test_help_passes_harm_does_not_and_the_rule_is_the_documented_one(
        sqlite_factory: sessionmaker[Session], model_dir: Path, tmp_path: Path) -> None:
    session_factory = sqlite_factory
    camp_id, echo, noise = _market(session_factory, model_dir)
    result = screen_providers(session_factory, camp_id, FAST, cache_dir=tmp_path)
    by_id = {c.provider_id: c for c in result.checks}
    assert set(by_id) >= {echo, noise}
    assert by_id[echo].passed and not by_id[noise].passed
    assert by_id[echo].gain > 0 > by_id[noise].gain
    for c in result.checks:
        assert len(c.per_seed) == 3 and c.n_used == min(6, c.n_payable)
        assert c.gain == pytest.approx(float(np.mean(c.per_seed)))
        assert c.sd == pytest.approx(float(np.std(c.per_seed, ddof=1)))
        assert c.passed == (c.gain - FAST.z * c.sd > 0)
    assert result.passed_provider_ids == frozenset(c.provider_id for c in result.checks if c.passed)
    assert screening_from_json(result.to_json()) == result
    strict = screen_providers(session_factory, camp_id, FAST.model_copy(update={"z": 10.0}), cache_dir=tmp_path)
    assert strict.passed_provider_ids <= result.passed_provider_ids  # a larger z never passes more


def test_measurements_are_reused_per_provider(sqlite_factory: sessionmaker[Session], model_dir: Path,
                                              tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    session_factory = sqlite_factory
    camp_id, _, _ = _market(session_factory, model_dir)
    measured: list[list[str]] = []
    real = screening_mod.measure_gains

    def counting(data, config, **kw):  # type: ignore[no-untyped-def]
        measured.append([p.provider_name for p in data.providers])
        return real(data, config, **kw)

    monkeypatch.setattr(screening_mod, "measure_gains", counting)
    first = screen_providers(session_factory, camp_id, FAST, cache_dir=tmp_path)
    assert len(measured) == 1 and len(measured[0]) == len(first.checks)
    again = screen_providers(session_factory, camp_id, FAST, cache_dir=tmp_path)
    assert again == first and len(measured) == 1  # nothing fine-tuned twice
    with session_factory() as s, s.begin():
        _add_provider(s, "late", _garbage(5, seed=9))
    third = screen_providers(session_factory, camp_id, FAST, cache_dir=tmp_path)
    assert measured[-1] == ["late"]  # only the newcomer is measured
    assert {c.provider_name for c in third.checks} == {c.provider_name for c in first.checks} | {"late"}
    assert [c for c in third.checks if c.provider_name != "late"] == list(first.checks)


def test_a_run_pays_only_providers_that_passed_and_keeps_the_check(
        session_factory: sessionmaker[Session], model_dir: Path, tmp_path: Path) -> None:
    camp_id, echo, noise = _market(session_factory, model_dir)
    out = run_pricing(session_factory, camp_id, "2026-11", None, screener=screener(FAST, cache_dir=tmp_path))
    assert out.screening is not None and out.policy["screen"] == "finetune"
    check = screening_from_json(out.screening)
    with session_factory() as s:
        paid = dict(s.execute(select(Allocation.provider_id, func.sum(Allocation.amount_minor))
                              .where(Allocation.pricing_run_id == out.pricing_run_id)
                              .group_by(Allocation.provider_id)).all())
        stored = s.get(PricingRun, out.pricing_run_id)
        assert stored is not None and stored.screening == out.screening
    assert set(paid) == check.passed_provider_ids and echo in paid and noise not in paid
    assert sum(paid.values()) == out.allocated_minor == out.budget_minor
    with session_factory() as s:  # the buyer report says why the noise provider got nothing
        unpaid = {u.provider_name: u.reason for u in build_buyer_report(s, camp_id, "2026-11", top_k=0).unpaid}
    assert "did not clearly lower the target loss" in unpaid["noise"] and "echo" not in unpaid
    with session_factory() as s:  # and so does the noise provider's own statement, with its own numbers
        notes = build_provider_statement(s, "noise", "2026-11").notes
        echo_notes = build_provider_statement(s, "echo", "2026-11").notes
    assert any("did not clearly lower the target loss" in n for n in notes)
    assert not any("fine-tuning" in n for n in echo_notes)
    # the same inputs price to the same run (the check comes from the same measurements)
    again = run_pricing(session_factory, camp_id, "2026-11", None, screener=screener(FAST, cache_dir=tmp_path))
    with pytest.raises(ConfigError, match="no screener"):  # a caller that forgets the check is refused
        run_pricing(session_factory, camp_id, "2026-12", None)
    assert again.pricing_run_id == out.pricing_run_id and not again.created


def test_a_given_check_decides_who_is_paid_and_a_missing_one_is_refused(
        session_factory: sessionmaker[Session], model_dir: Path) -> None:
    camp_id, echo, noise = _market(session_factory, model_dir)
    only_noise = Screening(config_hash="x", config={}, model_digest="m", checks=(
        ProviderCheck(noise, "noise", 12, 6, (1.0,), 1.0, 0.0, True),
        ProviderCheck(echo, "echo", 12, 6, (-1.0,), -1.0, 0.0, False)))
    with session_factory() as s, s.begin(), pytest.raises(ConfigError, match="fine-tuning check"):
        create_pricing_run(s, camp_id, "2026-11", {"screen": "finetune"})
    with session_factory() as s, s.begin():
        run, _ = create_pricing_run(s, camp_id, "2026-11", {"screen": "finetune"}, screening=only_noise.to_json())
        providers = set(s.scalars(select(Allocation.provider_id).where(Allocation.pricing_run_id == run.id)))
        assert providers == {noise} and run.allocated_minor == run.budget_minor
    with session_factory() as s, s.begin():  # screen="none": every payable provider, no check stored
        run, _ = create_pricing_run(s, camp_id, "2026-12", {"screen": "none"})
        providers = set(s.scalars(select(Allocation.provider_id).where(Allocation.pricing_run_id == run.id)))
        assert {echo, noise} <= providers and run.screening is None


def test_the_stored_check_never_changes(session_factory: sessionmaker[Session], model_dir: Path) -> None:
    camp_id, echo, _ = _market(session_factory, model_dir)
    check = Screening(config_hash="x", config={}, model_digest="m",
                      checks=(ProviderCheck(echo, "echo", 12, 6, (1.0,), 1.0, 0.0, True),))
    with session_factory() as s, s.begin():
        run, _ = create_pricing_run(s, camp_id, "2026-11", {"screen": "finetune"}, screening=check.to_json())
        run_id = run.id
    with session_factory() as s:
        with pytest.raises(DBAPIError, match="pricing run"), s.begin():
            s.execute(update(PricingRun).where(PricingRun.id == run_id).values(screening={"providers": []}))
        assert s.execute(text("SELECT 1")).scalar_one() == 1


def test_screen_none_keeps_old_policy_hashes() -> None:
    old = PricingPolicy(netting="sample", screen="none")
    assert "screen" not in old.canonical_json()
    assert PricingPolicy().canonical_json() != old.canonical_json()
    assert PricingPolicy(screen="finetune").policy_hash == PricingPolicy().policy_hash
