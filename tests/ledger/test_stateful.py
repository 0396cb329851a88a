"""A Hypothesis state machine over the ledger: price, retry, conflicting retry, revalue up/down/to zero, verify.

Runs on SQLite and PostgreSQL. The model is the pure allocation: after every step each submission's net
credits for each period must equal the allocation of the latest pricing run, and ``verify`` must pass.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from marketplace.db import AccountKind, EntrySide, JournalEntry, JournalTransaction
from marketplace.errors import ConflictError
from marketplace.ledger import EntryRequest, TransactionRequest, post_transactions, verify_ledger
from marketplace.ledger.accounts import budget_account, payable_account
from marketplace.ledger.balances import credited_by_submission
from marketplace.pricing import PricingPolicy, allocate_budget
from marketplace.pricing.runner import run_pricing
from tests.support.catalog import make_campaign, make_provider, make_score_run, make_submission

PERIODS = ("2026-10", "2026-11")
score_values = st.one_of(st.floats(-5, 100, allow_nan=False), st.sampled_from([0.0, 1.0, 50.0]))


def _machine(factory: sessionmaker[Session]) -> type[RuleBasedStateMachine]:
    class LedgerMachine(RuleBasedStateMachine):
        @initialize(budget=st.integers(0, 10**9), fee_bps=st.sampled_from([0, 250]),
                    sizes=st.lists(st.integers(1, 3), min_size=2, max_size=4))
        def setup(self, budget: int, fee_bps: int, sizes: list[int]) -> None:
            self.policy = PricingPolicy(screen="none", cap_percentile=100, fee_bps=fee_bps)
            self.budget = budget
            with factory() as s, s.begin():
                camp = make_campaign(s, budget_minor=budget)
                provs = [make_provider(s) for _ in range(2)]
                self.samples: list[tuple[int, int, int]] = []
                for i, n in enumerate(sizes):
                    sub, samples = make_submission(s, provs[i % 2], [f"text {camp.id}-{i}-{j}" for j in range(n)])
                    self.samples += [(x.id, sub.id, x.provider_id) for x in samples]
                self.campaign_id = camp.id
            self.scores = [1.0] * len(self.samples)
            self.expected: dict[str, dict[int, int]] = {}
            self.last: tuple[int, str] | None = None  # (score run id, period) last priced

        def _price(self, scores: list[float], period: str) -> None:
            with factory() as s, s.begin():
                from marketplace.db import Campaign

                camp = s.get(Campaign, self.campaign_id)
                assert camp is not None
                run = make_score_run(s, camp, {sid: sc for (sid, _, _), sc in zip(self.samples, scores, strict=True)})
                score_run_id = run.id
            out = run_pricing(factory, self.campaign_id, period, self.policy, batch_size=2)
            assert out.status == "complete"
            alloc = allocate_budget(self.budget, [x[0] for x in self.samples], scores, [x[1] for x in self.samples],
                                    [x[2] for x in self.samples], self.policy)
            self.scores = scores
            self.expected[period] = dict(alloc.per_submission)
            self.last = (score_run_id, period)

        @rule(data=st.data(), period=st.sampled_from(PERIODS))
        def price_new_scores(self, data: st.DataObject, period: str) -> None:
            self._price(data.draw(st.lists(score_values, min_size=len(self.samples), max_size=len(self.samples))),
                        period)

        @rule(index=st.integers(0, 10), factor=st.sampled_from([0.0, 0.25, 3.0, 20.0]),
              period=st.sampled_from(PERIODS))
        def revalue_one_submission(self, index: int, factor: float, period: str) -> None:
            """Up (x3, x20), down (x0.25) or to zero (x0) for one submission's samples."""
            target_sub = self.samples[index % len(self.samples)][1]
            new = [sc * factor if sub == target_sub else sc for (_, sub, _), sc in zip(self.samples, self.scores,
                                                                                       strict=True)]
            self._price(new, period)

        @precondition(lambda self: self.last is not None)
        @rule()
        def retry_is_a_noop(self) -> None:
            assert self.last is not None
            before = self._counts()
            score_run_id, period = self.last
            out = run_pricing(factory, self.campaign_id, period, self.policy, score_run_id=score_run_id)
            assert not out.created and out.n_posted == 0
            assert self._counts() == before

        @precondition(lambda self: self.last is not None)
        @rule(delta=st.integers(1, 5))
        def conflicting_retry_is_refused(self, delta: int) -> None:
            with factory() as s:
                row = s.execute(select(JournalTransaction.idempotency_key, JournalTransaction.provider_id)
                                .where(JournalTransaction.campaign_id == self.campaign_id)
                                .order_by(JournalTransaction.id.desc()).limit(1)).first()
            if row is None:
                return
            key, prov = row
            req = TransactionRequest(key, "EUR", (
                EntryRequest(budget_account(self.campaign_id, "EUR"), EntrySide.DEBIT, delta),
                EntryRequest(payable_account(prov, "EUR"), EntrySide.CREDIT, delta)))
            before = self._counts()
            try:
                with factory() as s, s.begin():
                    post_transactions(s, [req])
            except ConflictError:
                pass
            else:
                raise AssertionError("a conflicting body under an existing key was accepted")
            assert self._counts() == before

        def _counts(self) -> tuple[int, int]:
            with factory() as s:
                return (s.scalar(select(func.count()).select_from(JournalTransaction)) or 0,
                        s.scalar(select(func.count()).select_from(JournalEntry)) or 0)

        @invariant()
        def books_match_the_model(self) -> None:
            if not hasattr(self, "campaign_id"):
                return
            with factory() as s:
                report = verify_ledger(s)
                assert report.ok, report.violations
                for period, expected in self.expected.items():
                    credited = credited_by_submission(s, self.campaign_id, period)
                    for sub, amount in expected.items():
                        got = credited.get(sub, {})
                        assert got.get(AccountKind.CAMPAIGN_BUDGET, 0) == amount
                        fee = self.policy.fee_minor(amount)
                        assert got.get(AccountKind.PROVIDER_PAYABLE, 0) == amount - fee
                        assert got.get(AccountKind.MARKETPLACE_FEES, 0) == fee

    return LedgerMachine


@pytest.mark.slow
def test_ledger_state_machine(session_factory: sessionmaker[Session]) -> None:
    run_state_machine_as_test(
        _machine(session_factory),
        settings=settings(max_examples=12, stateful_step_count=8, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]),
    )
