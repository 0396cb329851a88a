"""Process entry points for the concurrency test (kept apart so that spawned children import little)."""

from __future__ import annotations

from typing import Any


def price_worker(url: str, campaign_id: int, period: str, score_run_id: int, batch_size: int, barrier: Any) -> dict:
    from marketplace.db import create_db_engine, make_session_factory
    from marketplace.pricing import PricingPolicy
    from marketplace.pricing.runner import run_pricing

    engine = create_db_engine(url)
    factory = make_session_factory(engine)
    barrier.wait(timeout=120)
    out = run_pricing(factory, campaign_id, period, PricingPolicy(screen="none", cap_percentile=99, fee_bps=100),
                      score_run_id=score_run_id, batch_size=batch_size)
    engine.dispose()
    return {"run": out.pricing_run_id, "created": out.created, "posted": out.n_posted, "status": out.status}
