"""The end-to-end demo's sizes and its closing summary (per provider: samples, duplicates, quarantine,
value share, payout).

The demo itself is wiring (``marketplace demo`` runs the Prefect flows); what lives here is what a test
can check without running it: the two sizes, where each runs (:func:`demo_settings`, :func:`require_own_pool`),
and the summary computed from the catalog and the latest pricing run.

The catalog is one market: every campaign of a database values every payable sample in it. The two
sizes therefore never share a database: the default demo runs in ``MKT_HOME``, the small one in a home
of its own, ``MKT_HOME/demo-small`` (only the model cache is shared, safe since each model folder is keyed
by its inputs). A database named by ``MKT_DATABASE_URL`` is shared by both: the demo then refuses to run
one size where the other's campaign is (docs/architecture.md, "The demo's model and stores").
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from marketplace.db import Campaign, PricingRun, Provider, Sample, Submission
from marketplace.db.eligibility import is_first_owner
from marketplace.errors import ConfigError
from marketplace.money import Money
from marketplace.reports.buyer import build_buyer_report
from marketplace.settings import Settings

__all__ = ["DEMO_SIZES", "DemoSize", "ProviderSummaryRow", "ValuationSummary", "demo_settings", "require_own_pool",
           "summarise_providers", "summarise_valuation"]


@dataclass(frozen=True)
class DemoSize:
    """How big one demo run is. ``small`` runs in about 5 minutes on 2 CPU cores from a fresh home (model
    build included), ``default`` in about 10 with the model built."""

    name: str
    campaign: str
    corpus_small: bool
    n_labels: int
    audit_n: int
    model_train_steps: int
    promotion_floor: float
    audit_threshold: float
    budget: str = "10000.00"
    currency: str = "EUR"
    # LinFiK options of the label set beyond the library defaults: none. The defaults are the design that
    # follows the fine-tuning ground truth (token weighting, value relative to the pool's mean gradient, cosine,
    # priced with provider netting; docs/valuation.md, "The default label, and why"), so the demo shows
    # what a buyer who runs `marketplace label` without options gets.
    label_config: tuple[tuple[str, object], ...] = ()


DEMO_SIZES = {
    "default": DemoSize(name="default", campaign="demo-python-docs", corpus_small=False, n_labels=2400,
                        audit_n=100, model_train_steps=200, promotion_floor=0.5, audit_threshold=0.5),
    "small": DemoSize(name="small", campaign="demo-python-docs-small", corpus_small=True, n_labels=1000,
                      audit_n=60, model_train_steps=200, promotion_floor=0.2, audit_threshold=0.2),
}


def demo_settings(cfg: Settings, size: DemoSize) -> Settings:
    """The settings the demo of ``size`` runs on: ``cfg`` for the default size; for any other, the home
    ``<home>/demo-<size>`` (its own SQLite catalog, MLflow store and artifacts) with the model cache of
    ``cfg``. Prefect runs stay in ``cfg``'s home (``$MKT_HOME/prefect``, where every command records
    them). A database or MLflow server named explicitly stays shared (see :func:`require_own_pool`)."""
    if size.name == "default":
        return cfg
    return cfg.model_copy(update={"home": cfg.home / f"demo-{size.name}", "models_dir": cfg.resolved_models_dir})


def require_own_pool(session: Session, size: DemoSize) -> None:
    """Raise ConfigError when another demo size's campaign is in this database: its providers'
    submissions would be in this size's pool (and this size's in its), mixing samples, statements and
    payouts."""
    others = [s.campaign for s in DEMO_SIZES.values() if s.name != size.name]
    present = sorted(session.scalars(select(Campaign.name).where(Campaign.name.in_(others))))
    if present:
        raise ConfigError(
            f"this database already holds the demo campaign(s) {', '.join(present)} of another size: their "
            f"providers' submissions would enter the pool of {size.campaign} (one catalog is one market); run "
            "this demo against another database (unset MKT_DATABASE_URL, or choose a new MKT_HOME)")


@dataclass(frozen=True)
class ProviderSummaryRow:
    provider: str
    samples: int
    duplicates: int
    quarantined: int
    value_share: float  # fraction of the allocated value (score units), 0..1
    payout_minor: int
    payout: str
    check: str = ""  # the pricing run's fine-tuning check: "+9.8e-04 pass", "-8.8e-04 not paid", "" (none)


def summarise_providers(session: Session, campaign: str | int, period: str | None = None) -> list[ProviderSummaryRow]:
    """One row per provider, sorted by payout (highest first), from the latest complete pricing run."""
    report = build_buyer_report(session, campaign, period, top_k=0)
    by_provider = {p.provider_id: p for p in report.providers}
    total_value = sum(p.value_total for p in report.providers) or 1.0
    counts = {
        int(pid): (int(n), int(dups or 0))
        for pid, n, dups in session.execute(
            select(
                Sample.provider_id,
                func.count(),
                func.sum(case((~is_first_owner(), 1), else_=0)),
            ).group_by(Sample.provider_id)
        )
    }
    quarantined = {
        int(pid): int(q or 0)
        for pid, q in session.execute(
            select(Submission.provider_id, func.sum(Submission.n_quarantined)).group_by(Submission.provider_id)
        )
    }
    run = session.get(PricingRun, report.pricing_run_id)
    checks = {int(c["provider_id"]): c for c in ((run.screening or {}).get("providers", []) if run else [])}
    rows = []
    for provider in session.scalars(select(Provider).order_by(Provider.id)):
        pv = by_provider.get(provider.id)
        paid = pv.amount_minor if pv else 0
        n, dups = counts.get(provider.id, (0, 0))
        rows.append(
            ProviderSummaryRow(
                provider=provider.name,
                samples=n,
                duplicates=dups,
                quarantined=quarantined.get(provider.id, 0),
                value_share=(pv.value_total / total_value) if pv else 0.0,
                payout_minor=paid,
                payout=str(Money(paid, report.currency)),
                check=_check_text(checks.get(provider.id)),
            )
        )
    return sorted(rows, key=lambda r: (-r.payout_minor, r.provider))


def _check_text(check: dict[str, object] | None) -> str:
    if not check:
        return ""
    gain = float(check["gain"])  # type: ignore[arg-type]
    return f"{gain:+.1e} {'pass' if check['passed'] else 'not paid'}"


@dataclass(frozen=True)
class ValuationSummary:
    """How far to trust the payouts, for the demo's closing lines: the exact labels the approximator
    learned from, its held-out Spearman against the baselines, the promotion gate's reason for the
    version that scored, and the audit of the scoring run (from the latest complete pricing run)."""

    n_labels: int
    heldout: dict[str, float]
    gate_decision: str
    audit: dict[str, object]


def summarise_valuation(session: Session, campaign: str | int, period: str | None = None) -> ValuationSummary:
    """The :class:`ValuationSummary` of the campaign's latest complete pricing run of ``period``."""
    report = build_buyer_report(session, campaign, period, top_k=0)
    return ValuationSummary(report.n_labels, report.heldout, report.gate_decision, report.audit)
