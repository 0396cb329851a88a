"""The pricing policy: a frozen, validated parameter object whose hash is stamped on every pricing run.

Fields and what they do (docs/pricing-and-ledger.md; the allocation itself is in :mod:`marketplace.pricing.allocation`):

- ``cap_percentile`` (0 < p <= 100): outlier guard. The cap is the *order statistic* of the eligible
  scores at rank ``ceil(p/100 * n)`` (numpy's ``inverted_cdf`` percentile), never an interpolated
  value: an order statistic is exact (no float arithmetic) and moves monotonically and by at most as
  much as any single score moves, which is what makes the allocation monotone (see allocation.py).
  ``100`` means "no cap" (the cap is the maximum score).
- ``reserve`` (>= 0, score units): values below it are paid nothing.
- ``provider_share_cap`` (0 < c <= 1, or ``None``): no provider receives more than ``floor(c * B)``
  of the budget B (exact shares; see allocation.py for rounding); the excess is redistributed over
  the others by water-filling.
- ``fee_bps`` (0..10000): the marketplace fee in basis points of each submission's allocation,
  ``floor(alloc * fee_bps / 10000)`` (rounded in the provider's favour, see
  :mod:`marketplace.ledger.fees`), credited to ``marketplace:fees``.
- ``netting`` (``"sample"`` or ``"provider"``, default ``"provider"``): ``"provider"`` nets each
  provider's negative scores against its positive ones before allocating (see allocation.py), so a
  provider whose data hurts the target as much as it helps is paid nothing; ``"sample"`` values each
  sample on its own (negatives count as 0). ``"sample"`` is left out of
  :meth:`PricingPolicy.canonical_json`: policies from before the field existed keep their hash. Why
  provider netting is the default: docs/valuation.md, "The default label".
- ``screen`` (``"finetune"`` or ``"none"``, default ``"finetune"``): the fine-tuning check
  (:mod:`marketplace.validation.screening`). With ``"finetune"`` a pricing run pays only providers whose
  data, fine-tuned on, clearly lowers the target loss; the check's result is stored on the run. Why it is
  the default: docs/valuation.md, "The fine-tuning check". ``"none"`` is left out of the hash, like
  ``netting="sample"``.

A campaign's policy (:func:`campaign_policy`) is its stored ``options["pricing"]`` over these defaults,
with a run's explicit overrides on top: ``marketplace price``, the ``price`` flow and the ``revalue``
flow all price through it, so one campaign is priced the same way from every entry point.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic import ValidationError as PydanticValidationError

from marketplace.errors import ValidationError
from marketplace.ledger.fees import fee_minor

__all__ = ["PolicyOverrides", "PricingPolicy", "campaign_policy", "parse_policy"]


class PricingPolicy(BaseModel):
    """How scores become money. Frozen; ``policy_hash`` identifies it on every pricing run."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cap_percentile: float = Field(default=99.0, gt=0.0, le=100.0, description="Outlier cap percentile.")
    reserve: float = Field(default=0.0, ge=0.0, description="Values below this (score units) earn nothing.")
    provider_share_cap: Decimal | None = Field(
        default=None, gt=0, le=1, description="Largest fraction of the budget one provider may receive."
    )
    fee_bps: int = Field(default=0, ge=0, le=10_000, description="Marketplace fee in basis points.")
    netting: Literal["sample", "provider"] = Field(
        default="provider",
        description=(
            "'sample': each sample is valued on its own, negative scores count as 0. 'provider': a provider's "
            "values are scaled to the net sum of its scores (negatives included, both tails clipped at the cap); "
            "a provider whose scores net to <= 0 earns nothing."
        ),
    )

    screen: Literal["none", "finetune"] = Field(
        default="finetune",
        description=(
            "'finetune': before allocating, fine-tune the target model on a few draws of each provider's data "
            "and pay only providers whose data clearly lowers the target loss "
            "(marketplace.validation.screening). 'none': pay on the scores alone."
        ),
    )
    provider_split: Literal["scores", "measured"] = Field(
        default="measured",
        description=(
            "How the budget is split between the providers a fine-tuning check passed (with screen='finetune' "
            "and netting='provider'; no effect otherwise). 'measured': in proportion to the check's measured "
            "gain per sample times the provider's paid samples, the scores splitting each provider's part "
            "between its samples. 'scores': in proportion to the providers' netted scores."
        ),
    )

    @property
    def measured_split(self) -> bool:
        """Whether providers are split by the check's measured gain (``provider_split`` in effect)."""
        return self.screen == "finetune" and self.netting == "provider" and self.provider_split == "measured"

    @field_validator("cap_percentile", "reserve", mode="after")
    @classmethod
    def _finite(cls, value: float) -> float:
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("must be a finite number")
        return value

    def canonical_json(self) -> str:
        """Sorted-key JSON of every field (Decimal as its exact string): what the hash covers.

        ``netting`` appears only when it is not ``"sample"``, ``screen`` only when it is not ``"none"`` and
        ``provider_split`` only when it is in effect (:attr:`measured_split`): a policy from before those
        fields existed hashes as it did then, so existing pricing runs keep their identity.
        """
        data: dict[str, Any] = {
            "cap_percentile": repr(float(self.cap_percentile)),
            "reserve": repr(float(self.reserve)),
            "provider_share_cap": None if self.provider_share_cap is None else str(self.provider_share_cap),
            "fee_bps": self.fee_bps,
            "version": 1,
        }
        if self.netting != "sample":
            data["netting"] = self.netting
        if self.screen != "none":
            data["screen"] = self.screen
        if self.measured_split:
            data["provider_split"] = self.provider_split
        return json.dumps(data, sort_keys=True, separators=(",", ":"))

    @property
    def policy_hash(self) -> str:
        """sha256 of :meth:`canonical_json` (hex, 64 chars)."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()

    def fee_minor(self, amount_minor: int) -> int:
        """The marketplace fee on ``amount_minor`` (floor, in the provider's favour); 0 <= fee <= amount."""
        return fee_minor(amount_minor, self.fee_bps)


# What callers pass to price a campaign: see campaign_policy.
PolicyOverrides: TypeAlias = PricingPolicy | Mapping[str, Any] | None


def parse_policy(data: Mapping[str, Any] | None) -> PricingPolicy:
    """Build a policy from plain data (CLI options, task arguments), with a clear error on bad values."""
    try:
        return PricingPolicy.model_validate(dict(data or {}))
    except PydanticValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ValidationError(
            f"invalid pricing policy ({problems}); valid fields: cap_percentile in (0, 100], reserve >= 0, "
            "provider_share_cap in (0, 1] or null, fee_bps in [0, 10000], netting 'sample' or 'provider', "
            "screen 'finetune' or 'none'"
        ) from exc


def campaign_policy(campaign_options: Mapping[str, Any] | None, overrides: PolicyOverrides = None) -> PricingPolicy:
    """The policy a campaign is priced with: defaults < ``campaign_options["pricing"]`` < ``overrides``.

    ``campaign_options`` is ``Campaign.options`` (a ``pricing`` entry that is not a mapping is ignored).
    ``overrides``: a mapping of policy fields (CLI options, flow parameters) replaces those fields only;
    a whole :class:`PricingPolicy` replaces every field. Raises ValidationError naming a bad field.
    """
    stored = (campaign_options or {}).get("pricing")
    merged: dict[str, Any] = dict(stored) if isinstance(stored, Mapping) else {}
    if isinstance(overrides, PricingPolicy):
        merged = overrides.model_dump(mode="json")
    elif overrides is not None:
        merged.update(overrides)
    return parse_policy(merged)
