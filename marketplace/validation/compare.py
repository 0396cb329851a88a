"""Payouts against the measured gains: how much of the budget went to the wrong providers.

Per provider: the measured gain per sample (each regime), its payout share, its paid samples and its
ideal share (proportional to max(gain, 0) x payable samples: the gain is measured on a random draw of
the provider's payable samples, so each is valued at its provider's average). The volume is what the
pricing *could* pay (accepted first owners), never what the run chose to pay: a helpful provider left
unpaid must count as misallocated, not drop out of the ideal split. Per regime:
the *misallocated share* (total variation distance between payout and ideal shares) and the *harmful
share* (the part of the amount paid that went to providers whose gain is negative). The arithmetic
lives in :mod:`marketplace.validation.shares`.

Headline: the regime named by ``ValidationConfig.headline`` (AdamW on the token loss by default, the
fine-tuning a buyer actually runs); every other regime (plain SGD, the update LinFiK linearises) is
reported next to it. A gap under SGD is the valuation's own error (first order, approximator); a gap
only under AdamW comes from the buyer training otherwise than the step LinFiK linearises.

Gains within one standard deviation of 0 (over seeds) are used at their mean, like every other gain:
the mean is the best estimate, and a small noisy gain earns only a small ideal share anyway. They are
*flagged* (``within_noise``) and each verdict says how much was paid to them (``uncertain_share``) and
the harmful share counting only gains below minus one standard deviation (``clearly_harmful_share``),
so a reader sees how much of the headline rests on noise.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from marketplace.validation.config import ValidationConfig
from marketplace.validation.gains import GainMeasurement
from marketplace.validation.payouts import PayoutSnapshot
from marketplace.validation.shares import harmful_share, ideal_shares, payout_shares, total_variation, within_noise

__all__ = ["PayoutValidation", "ProviderComparison", "RegimeVerdict", "compare_with_payouts"]


@dataclass(frozen=True)
class ProviderComparison:
    """One provider's row. Gains are per sample in nats/token; None where the provider was not measured
    (it was paid but has no payable sample now). Shares are fractions of the amount paid, 0..1."""

    provider_id: int
    provider_name: str
    n_payable: int
    n_used: int
    n_paid: int
    amount_minor: int
    payout_share: float | None  # None when the pricing run paid nothing
    gain: dict[str, float | None]
    gain_sd: dict[str, float | None]
    ideal_share: dict[str, float | None]  # None when the regime's ideal split is undefined
    within_noise: dict[str, bool]
    check_passed: bool | None = None  # the pricing run's fine-tuning check; None when the run had none


@dataclass(frozen=True)
class RegimeVerdict:
    """The numbers of one regime. ``misallocated_share`` is None when the ideal split is undefined
    (every gain <= 0) or nothing was paid; ``note`` then says which."""

    regime: str
    description: str
    ideal_defined: bool
    misallocated_share: float | None
    harmful_share: float
    clearly_harmful_share: float
    uncertain_share: float
    unmeasured_share: float
    note: str


@dataclass(frozen=True)
class PayoutValidation:
    """The whole result; JSON-able through :meth:`to_dict`."""

    campaign_id: int
    campaign_name: str
    pricing_run_id: int
    period: str
    currency: str
    budget_minor: int
    allocated_minor: int
    headline: str  # the regime whose verdict is the headline
    providers: tuple[ProviderComparison, ...]
    verdicts: tuple[RegimeVerdict, ...]
    loss_before: float  # L_Y of the target model, nats/token
    n_target: int
    config_hash: str
    config: dict[str, Any]
    model_digest: str
    device: str
    seconds: float

    @property
    def headline_verdict(self) -> RegimeVerdict:
        return next(v for v in self.verdicts if v.regime == self.headline)

    def to_dict(self) -> dict[str, Any]:
        """Plain dicts, lists, numbers, strings and None (``json.dumps`` takes it as is)."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class _RegimeArrays:
    """One regime's per-provider arrays, all (P,) in row order; NaN where a provider was not measured."""

    gain: np.ndarray
    sd: np.ndarray
    ideal: np.ndarray | None
    noisy: np.ndarray  # bool


def _rows(measurement: GainMeasurement, payouts: PayoutSnapshot) -> list[tuple[int, str]]:
    """Every provider measured or paid (or valued at 0), by id."""
    names = {p.provider_id: p.provider_name for p in payouts.providers}
    names.update({p.provider_id: p.provider_name for p in measurement.providers})
    return sorted(names.items())


def compare_with_payouts(measurement: GainMeasurement, payouts: PayoutSnapshot) -> PayoutValidation:
    """Join gains and payouts per provider and compute every regime's verdict (see the module doc)."""
    rows = _rows(measurement, payouts)
    gained = {p.provider_id: p for p in measurement.providers}
    paid = {p.provider_id: p for p in payouts.providers}
    config = ValidationConfig.model_validate(measurement.config)
    amounts = np.asarray([paid[pid].amount_minor if pid in paid else 0 for pid, _ in rows], dtype=np.int64)
    n_paid = np.asarray([paid[pid].n_paid if pid in paid else 0 for pid, _ in rows], dtype=np.int64)
    n_payable = np.asarray([gained[pid].n_payable if pid in gained else 0 for pid, _ in rows], dtype=np.int64)
    p_shares = payout_shares(amounts)
    shares_or_zero = p_shares if p_shares is not None else np.zeros(len(rows))

    arrays: dict[str, _RegimeArrays] = {}
    verdicts: list[RegimeVerdict] = []
    for regime in config.regimes:
        name = regime.name
        gains = np.asarray([gained[pid].regimes[name].mean if pid in gained else np.nan for pid, _ in rows])
        sds = np.asarray([gained[pid].regimes[name].sd if pid in gained else np.nan for pid, _ in rows])
        a = arrays[name] = _RegimeArrays(gains, sds, ideal_shares(gains, n_payable), within_noise(gains, sds))
        verdicts.append(_verdict(name, regime.describe(), p_shares, shares_or_zero, a))

    providers = tuple(
        ProviderComparison(
            provider_id=pid, provider_name=pname,
            n_payable=gained[pid].n_payable if pid in gained else 0,
            n_used=gained[pid].n_used if pid in gained else 0,
            n_paid=int(n_paid[i]), amount_minor=int(amounts[i]),
            payout_share=float(p_shares[i]) if p_shares is not None else None,
            gain={r: _opt(a.gain, i) for r, a in arrays.items()},
            gain_sd={r: _opt(a.sd, i) for r, a in arrays.items()},
            ideal_share={r: _opt(a.ideal, i) for r, a in arrays.items()},
            within_noise={r: bool(a.noisy[i]) for r, a in arrays.items()},
            check_passed=payouts.checked.get(pid) if payouts.checked else None,
        )
        for i, (pid, pname) in enumerate(rows)
    )
    return PayoutValidation(
        campaign_id=measurement.campaign_id, campaign_name=measurement.campaign_name,
        pricing_run_id=payouts.pricing_run_id, period=payouts.period, currency=payouts.currency,
        budget_minor=payouts.budget_minor, allocated_minor=payouts.allocated_minor,
        config_hash=measurement.config_hash, config=dict(measurement.config), model_digest=measurement.model_digest,
        device=measurement.device, loss_before=measurement.loss_before, n_target=measurement.n_target,
        seconds=measurement.seconds, headline=config.headline, providers=providers,
        verdicts=tuple(verdicts),
    )


def _opt(values: np.ndarray | None, i: int) -> float | None:
    if values is None or np.isnan(values[i]):
        return None
    return float(values[i])


def _verdict(name: str, description: str, p_shares: np.ndarray | None, shares: np.ndarray,
             a: _RegimeArrays) -> RegimeVerdict:
    notes = []
    if p_shares is None:
        notes.append("the pricing run paid nothing, so there are no payout shares to check")
    if a.ideal is None:
        notes.append(f"no provider's paid data lowered the target loss in the {name} regime (every gain <= 0 or "
                     "unpaid): the ideal split is undefined, so the misallocated share is not computed")
    misallocated = total_variation(p_shares, a.ideal) if p_shares is not None and a.ideal is not None else None
    return RegimeVerdict(
        regime=name, description=description, ideal_defined=a.ideal is not None, misallocated_share=misallocated,
        harmful_share=harmful_share(shares, a.gain), clearly_harmful_share=harmful_share(shares, a.gain, a.sd),
        uncertain_share=float(shares[a.noisy].sum()), unmeasured_share=float(shares[np.isnan(a.gain)].sum()),
        note="; ".join(notes),
    )
