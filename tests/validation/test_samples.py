"""Sample choice and payouts read from the database (SQLite and PostgreSQL)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from marketplace.db import Campaign, DuplicateKind, Sample, TargetSample
from marketplace.errors import NotFoundError
from marketplace.pricing import PricingPolicy
from marketplace.pricing.runner import run_pricing
from marketplace.validation import ValidationConfig, draw_samples, load_payouts, load_validation_data
from tests.support.catalog import (
    make_campaign,
    make_copy_submission,
    make_provider,
    make_score_run,
    make_submission,
)


@dataclass(frozen=True)
class World:
    camp: int
    a: int
    first_a: list[int]
    own_b: list[int]
    c_ids: list[int]


def _world(factory: sessionmaker[Session]) -> World:
    """Provider a: 12 first owners + 1 near duplicate; b: a copy of a's file (all duplicates) + 3 own;
    c: 2 samples. The campaign has 2 target texts."""
    with factory() as s, s.begin():
        camp = make_campaign(s, name="val-camp")
        a, b, c = make_provider(s, "a"), make_provider(s, "b"), make_provider(s, "c")
        sub_a, xa = make_submission(s, a, [f"text of a number {i}" for i in range(12)])
        make_copy_submission(s, b, sub_a, xa)
        _, xb = make_submission(s, b, [f"text of b number {i}" for i in range(3)])
        _, xc = make_submission(s, c, ["first text of c", "second text of c"])
        _, (near,) = make_submission(s, a, ["text of a number 0 (near copy)"])
        near.duplicate_of_id, near.duplicate_kind = xa[0].id, DuplicateKind.NEAR
        s.add_all(TargetSample(campaign_id=camp.id, record_index=i, text=t, prompt_chars=p, content_hash=f"h{i}")
                  for i, (t, p) in enumerate([("question? answer", 9), ("plain target", None)]))
        return World(camp.id, a.id, [x.id for x in xa], [x.id for x in xb], [x.id for x in xc])


def test_draw_excludes_duplicates_and_is_seeded(session_factory: sessionmaker[Session]) -> None:
    w = _world(session_factory)
    cfg = ValidationConfig(per_provider=4, seeds=(0, 1, 2))
    with session_factory() as s:
        data = load_validation_data(s, "val-camp", cfg)
        again = load_validation_data(s, w.camp, cfg)
        duplicate_ids = set(s.scalars(select(Sample.id).where(Sample.duplicate_of_id.is_not(None))))
    assert data == again  # same database, same config: the same draw
    by_name = {p.provider_name: p for p in data.providers}
    assert set(by_name) == {"a", "b", "c"}
    a, b, c = by_name["a"], by_name["b"], by_name["c"]
    assert (a.n_payable, b.n_payable, c.n_payable) == (12, 3, 2)
    assert (a.n_used, b.n_used, c.n_used) == (4, 3, 2)  # K = 4, or all a provider has
    drawn = {sid for p in data.providers for d in p.draws for sid in d}
    assert drawn.isdisjoint(duplicate_ids) and len(duplicate_ids) == 13  # 12 copies by b + 1 near copy by a
    assert set(b.draws[0]) == set(w.own_b) and set(c.draws[0]) == set(w.c_ids)
    assert len(set(a.draws)) > 1  # the seed changes the draw
    assert all(set(d) <= set(w.first_a) for d in a.draws)
    assert set(data.texts) == drawn
    assert data.target_texts == ("question? answer", "plain target") and data.target_prompt_chars == (9, None)
    assert draw_samples(list(reversed(w.first_a)), 4, 1, w.a) == a.draws[1]  # input order does not matter


def test_campaign_without_target_samples(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as s, s.begin():
        make_campaign(s, name="no-targets")
    with session_factory() as s, pytest.raises(NotFoundError, match="no target samples"):
        load_validation_data(s, "no-targets", ValidationConfig())


def test_payouts_need_a_pricing_run(session_factory: sessionmaker[Session]) -> None:
    w = _world(session_factory)
    with session_factory() as s, pytest.raises(NotFoundError, match="marketplace price"):
        load_payouts(s, "val-camp")
    with session_factory() as s, s.begin():
        camp = s.get(Campaign, w.camp)
        assert camp is not None
        scores = {sid: 1.0 for sid in w.first_a[:3]} | {sid: 0.0 for sid in w.own_b} | {w.c_ids[0]: 2.0}
        make_score_run(s, camp, scores)
    run_pricing(session_factory, w.camp, "2026-10", PricingPolicy(screen="none", cap_percentile=100))
    with session_factory() as s:
        payouts = load_payouts(s, "val-camp")
    assert payouts.allocated_minor == 100_000 and payouts.period == "2026-10"
    got = {p.provider_name: (p.n_paid, p.amount_minor) for p in payouts.providers}
    assert got == {"a": (3, 60_000), "b": (0, 0), "c": (1, 40_000)}  # b: valued at 0, still listed
