"""Builders for the API tests: an app on a test database, principals with tokens, a priced market with two
providers and two buyers, and helpers to look for leaks in a response."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from marketplace import runtime
from marketplace.api import ApiLimits, create_app
from marketplace.api.runs import BackgroundRevalue
from marketplace.db import Campaign, Provider, Sample, Submission
from marketplace.pricing import PricingPolicy
from marketplace.pricing.runner import run_pricing
from marketplace.principals import create_principal
from marketplace.settings import Settings, get_settings
from tests.support.catalog import make_campaign, make_copy_submission, make_provider, make_score_run, make_submission

__all__ = [
    "Market", "api_client", "api_settings", "bearer", "build_market", "campaign_names", "echo_launcher", "jsonl",
    "leaks", "make_token", "rows_of",
]


def api_settings(tmp_path: Path, db_url: str, **overrides: Any) -> Settings:
    """Settings on ``db_url`` with a home under ``tmp_path`` (models and artifacts folders inside it)."""
    return get_settings(home=tmp_path / "home", database_url=db_url, **overrides)


def echo_launcher() -> BackgroundRevalue:
    """A background launcher whose 'revaluation' prints a small JSON summary and exits (no flow runs)."""
    return BackgroundRevalue(command=lambda ref, period, force: [
        sys.executable, "-c", f"import json; print(json.dumps({{'campaign': {ref!r}, 'period': {period!r}}}))"])


@contextmanager
def api_client(settings: Settings, *, limits: ApiLimits | None = None,
               launcher: Any = None) -> Iterator[TestClient]:
    """A TestClient on a fresh app; engines are disposed afterwards."""
    app = create_app(settings, limits=limits, revalue_launcher=launcher if launcher is not None else echo_launcher())
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            yield client
    finally:
        runtime.reset()


def make_token(factory: sessionmaker[Session], role: str, name: str) -> str:
    with factory() as s, s.begin():
        return create_principal(s, role, name).token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Market:
    """Two providers (alice, bob; carol copied alice's file), two buyers (b-one owns camp-one, b-two owns
    camp-two), an operator; camp-one priced for 2026-11. ``tokens`` by principal name."""

    tokens: dict[str, str]
    campaign_ids: dict[str, int]
    provider_ids: dict[str, int]
    submission_ids: dict[str, list[int]]
    texts: dict[str, list[str]] = field(default_factory=dict)

    def headers(self, who: str) -> dict[str, str]:
        return bearer(self.tokens[who])


ALICE_TEXTS = ["alice writes about the ledger and its balanced entries", "alice on idempotent postings and keys",
               "alice explains first owners of a duplicated sample", "alice's notes on statements per period"]
BOB_TEXTS = ["bob describes campaigns and their target data", "bob on the budget of a pricing period"]


def build_market(factory: sessionmaker[Session]) -> Market:
    with factory() as s, s.begin():
        camp1 = make_campaign(s, name="camp-one", budget_minor=100_000)
        camp1.buyer_name = "b-one"
        camp2 = make_campaign(s, name="camp-two", budget_minor=50_000)
        camp2.buyer_name = "b-two"
        alice, bob, carol = (make_provider(s, n) for n in ("alice", "bob", "carol"))
        sub_a, xa = make_submission(s, alice, ALICE_TEXTS, filename="alice-data.jsonl")
        sub_b, xb = make_submission(s, bob, BOB_TEXTS, filename="bob-data.jsonl")
        sub_c, _ = make_copy_submission(s, carol, sub_a, xa)
        make_score_run(s, camp1, {x.id: float(i + 1) for i, x in enumerate([*xa, *xb])})
        ids = Market(tokens={}, campaign_ids={"camp-one": camp1.id, "camp-two": camp2.id},
                     provider_ids={"alice": alice.id, "bob": bob.id, "carol": carol.id},
                     submission_ids={"alice": [sub_a.id], "bob": [sub_b.id], "carol": [sub_c.id]},
                     texts={"alice": ALICE_TEXTS, "bob": BOB_TEXTS})
    run_pricing(factory, ids.campaign_ids["camp-one"], "2026-11", PricingPolicy(screen="none", fee_bps=0))
    for role, name in (("provider", "alice"), ("provider", "bob"), ("provider", "carol"), ("buyer", "b-one"),
                       ("buyer", "b-two"), ("operator", "ops")):
        ids.tokens[name] = make_token(factory, role, name)
    return ids


def rows_of(factory: sessionmaker[Session], provider: str) -> dict[str, list[tuple[Any, ...]]]:
    """A provider's catalog rows without ids or times: submissions and samples, comparable across stores."""
    with factory() as s:
        prov = s.scalar(select(Provider).where(Provider.name == provider))
        assert prov is not None
        subs = [(x.filename, x.format, x.content_sha256, x.byte_size, x.status.value, x.n_records, x.n_accepted,
                 x.n_quarantined) for x in s.scalars(select(Submission).where(Submission.provider_id == prov.id)
                                                     .order_by(Submission.id))]
        samples = [(x.record_index, x.text, x.content_hash, x.n_chars, x.prompt_chars,
                    x.duplicate_kind.value if x.duplicate_kind else None)
                   for x in s.scalars(select(Sample).where(Sample.provider_id == prov.id).order_by(Sample.id))]
        return {"submissions": subs, "samples": samples}


def leaks(body: str | bytes, secrets: Sequence[str]) -> list[str]:
    """Which of ``secrets`` (names, texts, amounts) appear in a response body."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    return [s for s in secrets if s in text]


def campaign_names(factory: sessionmaker[Session]) -> list[str]:
    with factory() as s:
        return list(s.scalars(select(Campaign.name)))


def jsonl(records: Sequence[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode("utf-8")
