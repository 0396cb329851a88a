"""Scores → exact integer payouts: cap, reserve, provider share cap, largest-remainder rounding.

Pure functions, no database. Money is integer minor units; no float ever touches an amount.

**Pipeline** (docs/pricing-and-ledger.md), for eligible samples i with scores s_i and a budget of B minor units:

1. ``v_i = clip(s_i, 0, cap)``: ``cap`` is an order statistic of the scores (see
   :class:`~marketplace.pricing.policy.PricingPolicy`); then ``v_i = 0`` where ``v_i < reserve``.
2. Every finite float64 is an exact dyadic rational, so ``w_i = v_i * 2**k`` (one shared k) is an exact
   Python int: the *common scaled integer representation* of the values. From here on the arithmetic
   is exact (ints and, for comparisons across groups, fractions), so float rounding can never make
   the sum differ from B, for any B (tested up to 10^12) and any value range (1e-300..1e300).
3. Exact quotas ``q_i = B * w_i / W`` (W = sum of w). With a provider share cap c, quotas come from
   water-filling: ``C = floor(c * B)``; while some provider p would get ``lam * V_p > C`` (lam = budget
   left / value left), p is fixed at C and removed; the others share what is left in proportion to w.
   When *every* provider with value is capped (possible only when (number of providers) * c < 1),
   each gets exactly C and ``B - k * C`` stays unallocated in the campaign budget account
   (``AllocationResult.unallocated_minor``, reported on the pricing run).
4. Hamilton (largest-remainder) rounding: everyone gets ``floor(q_i)``; the R = target - sum of floors
   leftover units go one each to the largest fractional parts, ties broken by ascending sample id.
   When every v is 0 (or B = 0) nothing is paid and the whole budget stays unallocated.

**Provider netting** (``policy.netting == "provider"``; tests/pricing/test_netting.py): between steps 1
and 3, each provider p's values are scaled to its *net* value ``N_p = sum_{i in p} v_i - sum_{i in p,
s_i < 0} min(-s_i, cap)``: its negative scores, clipped at the same cap, are netted against its paid
values (so a positive score below the reserve adds nothing, as it earns nothing). ``N_p <= 0`` values
every sample of p at 0; otherwise ``v_i' = v_i * N_p / sum_{j in p} v_j``, so netting only ever lowers a
value. The debits share the values' common scale, so ``N_p`` and ``sum v_j`` are exact ints and the
quota of sample i is the exact fraction ``B * N_p * w_i / (sum_p w * sum_q N_q)`` (with the share cap,
water-filling runs over the N_p). Allocation then proceeds as below. Netting is per account: splitting
a provider's samples over two accounts can only raise their exact total share (a netted-out account
no longer drags the other down), exactly as with the share cap. With ``cap_percentile < 100`` adding
low-scoring samples can lower the cap (an order statistic), in both modes, which shrinks everyone's
capped values; the tests therefore check "adding negative samples never gains" with the cap at 100.

**Measured split** (``provider_gains`` given, with provider netting; the pricing default when the run has a
fine-tuning check, ``policy.provider_split == "measured"``): ``N_p`` above is replaced by
``gain_p * n_p``, the check's measured gain per sample of provider p times its number of samples with a
positive value, for every provider whose ``N_p`` is positive (0 for the others). The sample weights within
p are unchanged, so the scores still split p's part between its samples; only the split between providers
follows the measured fine-tuning gain. Gains are floats, i.e. exact binary fractions, so the weights are
exact ints after one power-of-two scale (:func:`measured_provider_weights`).

**Memory** (docs/pricing-and-ledger.md, "At scale"): the inputs and outputs are NumPy columns (about 50
bytes per sample in all); the Python ints of steps 2-4 exist for ``chunk_size`` samples at a time
(:data:`CHUNK_SAMPLES`), computed twice (once for the sums, once for the quotas) rather than kept. Step 4
keeps each sample's floor (int64) and fractional part (float64, correctly rounded from the exact one),
finds the threshold of the R largest with a partition, and compares exactly only the samples whose float
ties the threshold. Integer sums do not depend on grouping and every per-sample quantity depends only on
that sample and the global sums, so the result is the same for every chunk size (tested, and pinned by
tests/pricing/golden/allocations.json, written by the former all-at-once implementation).

**Properties** (tests/pricing/test_allocation.py checks each with Hypothesis):

- the amounts sum to exactly B (or B - unallocated, with the share cap), none is negative;
- the result depends on the set of (sample id, score) pairs, not on input order;
- *monotonicity*: raising one sample's score never lowers its payout. Why it holds: Hamilton rounding
  with a fixed total never lowers a party whose quota rises while every other quota weakly falls
  (the others' remainders only fall; each other whose floor drops frees exactly the one unit it may
  take). Raising s_j with the cap fixed is that case. The cap is an order statistic, so it moves only
  when j crosses it, and then j ends *at* the cap: split the move into (a) j rises to the old cap, cap
  fixed, and (b) the cap rises with j and every capped sample moving together, identical in value;
  in (b) that group's common quota rises and every uncapped quota falls, so the number of leftover
  units the group can win never drops and j's place inside it (by id) is fixed. An interpolated
  percentile would break this (its float arithmetic is not monotone to the last bit). With the share
  cap, quotas are still exact, but a capped provider's samples share a fixed C: the property is
  tested for that case too.
- gaming: payouts depend on (sample id, value) only, not on which account owns a sample, so splitting
  one provider's data over k accounts earns exactly the single-account payout when there is no share
  cap. A per-provider share cap is *not* Sybil-proof: splitting a capped provider over k accounts can
  lift its total towards k * C (never above what the same samples would earn with no cap when nobody
  else is capped). Copies never earn: a duplicate is not eligible (see marketplace.db.eligibility).
- with the share cap, a capped provider's *rounded* total may exceed C by fewer units than it has
  samples (at most one leftover unit per sample); exact shares never exceed C.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
from numpy.typing import ArrayLike, NDArray

from marketplace.errors import ValidationError
from marketplace.pricing.policy import PricingPolicy

__all__ = [
    "CHUNK_SAMPLES",
    "AllocationResult",
    "ExactQuotas",
    "allocate_budget",
    "apportion_largest_remainder",
    "compute_cap",
    "compute_values",
    "exact_weights",
    "net_provider_weights",
    "validate_scores",
    "weight_exponent",
]

log = logging.getLogger(__name__)

MAX_BUDGET_MINOR = 2**63 - 1  # BIGINT
#: Samples whose exact Python-int arithmetic is held at once (module docstring, "Memory").
CHUNK_SAMPLES = 65_536


@dataclass(frozen=True)
class AllocationResult:
    """Per-sample payouts (arrays sorted by ascending sample id) and their totals.

    ``sample_ids``, ``submission_ids``, ``provider_ids``: (N,) int64; ``scores``, ``values``: (N,)
    float64 (score units; under provider netting ``values`` are the netted v', rounded to float64 for
    the record, while the allocation itself used them exactly); ``amounts_minor``: (N,) int64 minor
    units, exact.
    """

    budget_minor: int
    sample_ids: NDArray[np.int64]
    submission_ids: NDArray[np.int64]
    provider_ids: NDArray[np.int64]
    scores: NDArray[np.float64]
    values: NDArray[np.float64]
    amounts_minor: NDArray[np.int64]
    cap_value: float | None
    unallocated_minor: int
    capped_provider_ids: tuple[int, ...] = ()
    per_submission: dict[int, int] = field(default_factory=dict)
    per_provider: dict[int, int] = field(default_factory=dict)

    @property
    def allocated_minor(self) -> int:
        return self.budget_minor - self.unallocated_minor

    def amount_by_sample(self) -> dict[int, int]:
        """sample id -> minor units (Python ints)."""
        return dict(zip(self.sample_ids.tolist(), self.amounts_minor.tolist(), strict=True))


def validate_scores(sample_ids: NDArray[np.int64], scores: NDArray[np.float64]) -> None:
    """Refuse NaN/inf scores and repeated sample ids, naming the samples."""
    bad = ~np.isfinite(scores)
    if bad.any():
        ids = sample_ids[bad][:5].tolist()
        raise ValidationError(
            f"{int(bad.sum())} score(s) are NaN or infinite (sample ids {ids}{'...' if bad.sum() > 5 else ''}); "
            "rescore these samples or drop them from the score run before pricing"
        )
    if np.unique(sample_ids).size != sample_ids.size:
        uniq, counts = np.unique(sample_ids, return_counts=True)
        raise ValidationError(
            f"sample ids {uniq[counts > 1][:5].tolist()} appear more than once; each sample has one score per run"
        )


def compute_cap(scores: NDArray[np.float64], cap_percentile: float) -> float:
    """The outlier cap: the order statistic at rank ceil(p/100 * n) (1-based) of ``scores`` (N,)."""
    n = int(scores.size)
    if n == 0:
        raise ValidationError("cannot compute a cap over zero scores")
    rank = math.ceil(Fraction(cap_percentile) * n / 100)  # exact: no float rounding of the rank
    rank = min(max(rank, 1), n)
    return float(np.partition(scores, rank - 1)[rank - 1])


def compute_values(scores: NDArray[np.float64], policy: PricingPolicy) -> tuple[NDArray[np.float64], float]:
    """Values v (N,) = clip(score, 0, cap), zeroed below the reserve; returns (v, cap). Exact (no arithmetic)."""
    cap = compute_cap(scores, policy.cap_percentile)
    values = np.minimum(np.maximum(scores, 0.0), max(cap, 0.0))
    values = np.where(values < policy.reserve, 0.0, values)
    values = np.where(values > 0.0, values, 0.0)  # normalise -0.0
    return values.astype(np.float64), cap


def _mantissas(values: NDArray[np.float64]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """``values`` (K,), all > 0, as ``m * 2**e`` with odd int64 mantissas m (K,) and exponents e (K,). Exact."""
    mant, exp = np.frexp(values)  # mant in [0.5, 1)
    m = (mant * 2.0**53).astype(np.int64)  # exact: 53 significant bits
    e = exp.astype(np.int64) - 53
    low_bit = m & -m
    trailing = np.frexp(low_bit.astype(np.float64))[1].astype(np.int64) - 1  # exact for powers of two
    return m >> trailing, e + trailing


def weight_exponent(values: NDArray[np.float64]) -> int | None:
    """The common power of two of :func:`exact_weights`: the least exponent of the positive ``values`` (N,)
    written as odd mantissa times a power of two; None when none is positive."""
    positive = values[values > 0]
    if positive.size == 0:
        return None
    return int(_mantissas(positive)[1].min())


def exact_weights(values: NDArray[np.float64], exponent: int | None = None) -> NDArray[np.object_]:
    """Exact integer weights (N,) (Python ints) proportional to ``values`` (N,), all >= 0.

    ``v = m * 2**e`` with a 53-bit integer m; every weight is ``m << (e - exponent)``, ``exponent`` being the
    common power of two stripped from all of them (default: :func:`weight_exponent` of ``values``). Ratios
    are exact and typical score ranges stay around 60-100 bits. A chunk of a larger array passes the whole
    array's exponent, so its weights are those the whole array would get.
    """
    weights = np.zeros(values.shape, dtype=object)
    positive = values > 0
    if not positive.any():
        return weights
    m, e = _mantissas(values[positive])
    base = int(e.min()) if exponent is None else exponent
    weights[positive] = np.left_shift(m.astype(object), (e - base).astype(object))
    return weights


def _chunks(n: int, chunk_size: int) -> Iterator[slice]:
    for start in range(0, n, chunk_size):
        yield slice(start, min(start + chunk_size, n))


def _chunked_group_sums(values: NDArray[np.float64], exponent: int | None, group_index: NDArray[np.int64],
                        n_groups: int, chunk_size: int) -> list[int]:
    """Exact per-group sums of the weights of ``values`` (N,) on the common scale ``exponent``, chunk by chunk."""
    sums = [0] * n_groups
    if exponent is None:
        return sums
    for part in _chunks(values.size, chunk_size):
        for g, total in enumerate(_group_sums(exact_weights(values[part], exponent), group_index[part], n_groups)):
            sums[g] += total
    return sums


def net_provider_weights(
    values: NDArray[np.float64], scores: NDArray[np.float64], cap: float, provider_index: NDArray[np.int64],
    n_providers: int, *, chunk_size: int | None = None,
) -> tuple[int | None, list[int], list[int]]:
    """Exact inputs of provider netting: (common exponent, per-provider sum of weights, per-provider net).

    ``values`` (N,) from :func:`compute_values`, ``scores`` (N,) and ``cap`` as it returned them,
    ``provider_index`` (N,) in 0..n_providers-1. A negative score's debit is ``min(-s, max(cap, 0))``;
    weights and debits share one power of two (the exponent returned; None when neither has a positive
    entry), so both per-provider lists are exact ints: net = max(sum of weights - sum of debits, 0).
    The sample weights are ``exact_weights(values, exponent)``.
    """
    size = chunk_size or max(values.size, 1)
    debits = np.where(scores < 0.0, np.minimum(-scores, max(cap, 0.0)), 0.0)  # exact: negation and min
    exponents = [e for e in (weight_exponent(values), weight_exponent(debits)) if e is not None]
    exponent = min(exponents) if exponents else None
    sums = _chunked_group_sums(values, exponent, provider_index, n_providers, size)
    debit_sums = _chunked_group_sums(debits, exponent, provider_index, n_providers, size)
    nets = [s - d if s > d else 0 for s, d in zip(sums, debit_sums, strict=True)]
    return exponent, sums, nets


def measured_provider_weights(gains: Sequence[float], paid_counts: Sequence[int]) -> list[int]:
    """Exact integer weights proportional to ``gain * paid_count`` per provider (0 where the gain is <= 0 or
    not finite): each float gain is an exact binary fraction, so one power-of-two scale makes every product
    an int without rounding."""
    fractions = [Fraction(g) * c if math.isfinite(g) and g > 0.0 and c > 0 else Fraction(0)
                 for g, c in zip(gains, paid_counts, strict=True)]
    scale = math.lcm(*(f.denominator for f in fractions)) if fractions else 1
    return [int(f * scale) for f in fractions]


def _group_sums(weights: NDArray[np.object_], group_index: NDArray[np.int64], n_groups: int) -> list[int]:
    """Exact per-group sums of Python-int ``weights`` (N,) by ``group_index`` (N,) in 0..n_groups-1 (0 when absent)."""
    out = [0] * n_groups
    if weights.size == 0:
        return out
    order = np.argsort(group_index, kind="stable")
    sorted_groups = group_index[order]
    starts = np.flatnonzero(np.r_[True, sorted_groups[1:] != sorted_groups[:-1]])
    sums = np.add.reduceat(weights[order], starts)  # object dtype: exact Python-int additions
    for g, total in zip(sorted_groups[starts].tolist(), sums.tolist(), strict=True):
        out[g] = int(total)
    return out


def _water_fill(
    provider_values: list[int], budget_minor: int, cap_minor: int
) -> tuple[list[bool], int, int, int]:
    """Water-filling over providers. Returns (capped flags, budget left, value left, target total)."""
    capped = [False] * len(provider_values)
    active = [p for p, v in enumerate(provider_values) if v > 0]
    left = budget_minor
    while active:
        value_left = sum(provider_values[p] for p in active)
        over = [p for p in active if left * provider_values[p] > cap_minor * value_left]
        if not over:
            return capped, left, value_left, budget_minor
        for p in over:
            capped[p] = True
            left -= cap_minor
        active = [p for p in active if not capped[p]]
    n_capped = sum(capped)
    return capped, 0, 0, n_capped * cap_minor


@dataclass(frozen=True)
class ExactQuotas:
    """Exact quotas ``q_i = num[g_i] * w_i / den[g_i]`` with the weights ``w = exact_weights(values, exponent)``:
    ``values`` (N,) float64, ``group_index`` (N,) in 0..G-1, ``num`` and ``den`` (G,) Python ints (den > 0)."""

    values: NDArray[np.float64]
    exponent: int | None
    group_index: NDArray[np.int64]
    num: list[int]
    den: list[int]

    def parts(self, at: slice | NDArray[np.int64]) -> tuple[NDArray[np.object_], NDArray[np.object_]]:
        """(num * w, den) (K,) of the samples ``at`` selects."""
        groups = self.group_index[at]
        weights = exact_weights(self.values[at], self.exponent)
        return np.array(self.num, dtype=object)[groups] * weights, np.array(self.den, dtype=object)[groups]


def apportion_largest_remainder(quotas: ExactQuotas, target: int, chunk_size: int) -> NDArray[np.int64]:
    """Hamilton rounding of exact ``quotas`` (N samples), ``chunk_size`` samples of Python ints at a time.

    ``sum(q) == target`` must hold exactly. Samples are in ascending sample-id order, which is the
    tie-break: among equal fractional parts the smaller sample id gets the leftover unit first.
    Memory: int64 floors and float64 fractional parts (N,) plus one chunk of Python ints; only the
    samples whose float fractional part ties the last winning one are compared exactly, all at once.
    """
    n = quotas.group_index.size
    amounts = np.zeros(n, dtype=np.int64)
    if n == 0 or target == 0:
        return amounts
    fracs = np.empty(n, dtype=np.float64)
    floor_total = 0
    for part in _chunks(n, chunk_size):
        scaled, denominators = quotas.parts(part)
        floors = scaled // denominators
        floor_list = floors.tolist()
        floor_total += sum(floor_list)
        amounts[part] = np.array(floor_list, dtype=np.int64)
        # correctly rounded int division: the float order is a coarsening of the exact one
        fracs[part] = np.array(((scaled - floors * denominators) / denominators).tolist(), dtype=np.float64)
    seats = target - floor_total
    if not 0 <= seats <= n:
        raise AssertionError(f"internal error: {seats} leftover units for {n} samples")  # quotas don't sum up
    if seats == 0:
        return amounts
    threshold = np.partition(fracs, n - seats)[n - seats]  # the seats-th largest fractional part
    above = np.flatnonzero(fracs > threshold)
    boundary = np.flatnonzero(fracs == threshold)  # ascending sample id
    need = seats - above.size
    scaled, denominators = quotas.parts(boundary)
    rems = scaled - amounts[boundary].astype(object) * denominators
    if len(set(denominators.tolist())) == 1:
        keyed = sorted(range(boundary.size), key=lambda j: -rems[j])  # stable: ascending id on ties
    else:
        keyed = sorted(range(boundary.size), key=lambda j: -Fraction(int(rems[j]), int(denominators[j])))
    winners = np.concatenate([above, boundary[np.array(keyed[:need], dtype=np.int64)]])
    amounts[winners] += 1
    return amounts


def _as_int64(name: str, data: ArrayLike, n: int | None = None) -> NDArray[np.int64]:
    arr = np.asarray(data)
    if arr.ndim != 1 or (n is not None and arr.size != n):
        raise ValidationError(f"{name} must be a 1-D sequence of {n} ids, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValidationError(f"{name} must hold integer ids, got dtype {arr.dtype}")
    return arr.astype(np.int64)


def _allocate_netted(
    budget_minor: int, scores: NDArray[np.float64], providers: NDArray[np.int64], values: NDArray[np.float64],
    cap: float, policy: PricingPolicy, chunk_size: int, provider_gains: Mapping[int, float] | None = None,
) -> tuple[NDArray[np.int64], int, tuple[int, ...], NDArray[np.float64]]:
    """Provider netting (module docstring): (amounts (N,), target total, capped provider ids, netted values (N,))."""
    uniq_prov, prov_index = np.unique(providers, return_inverse=True)
    n_prov = uniq_prov.size
    exponent, sums, nets = net_provider_weights(values, scores, cap, prov_index, n_prov, chunk_size=chunk_size)
    ratio = np.array([nets[p] / sums[p] if sums[p] else 0.0 for p in range(n_prov)], dtype=np.float64)
    netted = values * ratio[prov_index]  # for the record only (score units); the quotas below are exact
    netted = np.where(netted > 0.0, netted, 0.0)
    if provider_gains is not None:  # measured split: the providers' weights come from the check
        paid = np.bincount(prov_index, weights=(values > 0.0), minlength=n_prov)
        nets = measured_provider_weights(
            [provider_gains.get(int(p), 0.0) if nets[i] > 0 else 0.0 for i, p in enumerate(uniq_prov.tolist())],
            [int(c) for c in paid.tolist()])
        netted = np.where(np.array([n > 0 for n in nets])[prov_index], netted, 0.0)
    # A positive exact net can round to a float ratio of 0 (a net of a few subnormal units over a large sum):
    # the recorded value of a sample that shares in a positive net stays positive, the least float at least.
    sharing = (values > 0.0) & np.array([n > 0 for n in nets], dtype=bool)[prov_index]
    netted = np.where(sharing, np.maximum(netted, np.nextafter(0.0, 1.0)), 0.0)
    total_net = sum(nets)
    if total_net == 0:
        return np.zeros(values.size, dtype=np.int64), 0, (), netted
    capped_ids: tuple[int, ...] = ()
    if policy.provider_share_cap is None:
        target = budget_minor
        group_num = [budget_minor * nets[p] for p in range(n_prov)]
        group_den = [sums[p] * total_net for p in range(n_prov)]
    else:
        cap_minor = math.floor(Fraction(policy.provider_share_cap) * budget_minor)
        capped, left, value_left, target = _water_fill(nets, budget_minor, cap_minor)
        group_num = [cap_minor if capped[p] else left * nets[p] for p in range(n_prov)]
        group_den = [sums[p] if capped[p] else value_left * sums[p] for p in range(n_prov)]
        capped_ids = tuple(int(uniq_prov[p]) for p in range(n_prov) if capped[p])
    group_den = [d if d > 0 else 1 for d in group_den]  # providers netted to 0: numerator 0 anyway
    quotas = ExactQuotas(values, exponent, prov_index.astype(np.int64), group_num, group_den)
    return apportion_largest_remainder(quotas, target, chunk_size), target, capped_ids, netted


def _allocate_per_sample(
    budget_minor: int, providers: NDArray[np.int64], values: NDArray[np.float64], policy: PricingPolicy,
    chunk_size: int,
) -> tuple[NDArray[np.int64], int, tuple[int, ...]]:
    """Each sample valued alone (``netting == "sample"``): (amounts (N,), target total, capped provider ids)."""
    n = values.size
    exponent = weight_exponent(values)
    if exponent is None or budget_minor == 0:
        return np.zeros(n, dtype=np.int64), 0, ()
    if policy.provider_share_cap is None:
        total_weight = _chunked_group_sums(values, exponent, np.zeros(n, dtype=np.int64), 1, chunk_size)[0]
        quotas = ExactQuotas(values, exponent, np.zeros(n, dtype=np.int64), [budget_minor], [total_weight])
        return apportion_largest_remainder(quotas, budget_minor, chunk_size), budget_minor, ()
    cap_minor = math.floor(Fraction(policy.provider_share_cap) * budget_minor)
    uniq_prov, prov_index = np.unique(providers, return_inverse=True)
    prov_index = prov_index.astype(np.int64)
    provider_values = _chunked_group_sums(values, exponent, prov_index, uniq_prov.size, chunk_size)
    capped, left, value_left, target = _water_fill(provider_values, budget_minor, cap_minor)
    group_num = [cap_minor if capped[p] else left for p in range(uniq_prov.size)]
    group_den = [provider_values[p] if capped[p] else value_left for p in range(uniq_prov.size)]
    group_den = [d if d > 0 else 1 for d in group_den]  # providers with zero value: weight 0 anyway
    quotas = ExactQuotas(values, exponent, prov_index, group_num, group_den)
    capped_ids = tuple(int(uniq_prov[p]) for p in range(uniq_prov.size) if capped[p])
    return apportion_largest_remainder(quotas, target, chunk_size), target, capped_ids


def allocate_budget(
    budget_minor: int,
    sample_ids: Sequence[int] | NDArray[np.int64],
    scores: Sequence[float] | NDArray[np.float64],
    submission_ids: Sequence[int] | NDArray[np.int64],
    provider_ids: Sequence[int] | NDArray[np.int64],
    policy: PricingPolicy | None = None,
    *,
    chunk_size: int | None = None,
    provider_gains: Mapping[int, float] | None = None,
) -> AllocationResult:
    """Allocate ``budget_minor`` over eligible samples (all inputs (N,), any order) under ``policy``.

    ``provider_gains`` (provider id -> measured gain per sample, from the fine-tuning check), with provider
    netting: each provider whose scores net positive is weighted by its gain times its number of samples
    with a positive value, instead of by its net score (module docstring, "Measured split"); a provider
    missing from it, or with a gain <= 0, earns nothing.

    Returns amounts in ascending sample-id order. Raises ValidationError for a bad budget, NaN/inf
    scores (naming the samples) or repeated sample ids. The exact integer arithmetic runs ``chunk_size``
    samples at a time (default :data:`CHUNK_SAMPLES`; module docstring, "Memory"); the result does not
    depend on it.
    """
    policy = policy or PricingPolicy()
    if isinstance(budget_minor, bool) or not isinstance(budget_minor, int | np.integer):
        raise ValidationError(f"budget_minor must be an int number of minor units, got {budget_minor!r}")
    budget_minor = int(budget_minor)
    if not 0 <= budget_minor <= MAX_BUDGET_MINOR:
        raise ValidationError(f"budget_minor {budget_minor} must be between 0 and 2**63-1 minor units")
    chunk_size = CHUNK_SAMPLES if chunk_size is None else chunk_size
    if chunk_size < 1:
        raise ValidationError(f"chunk_size must be a positive number of samples, got {chunk_size}")
    sid = _as_int64("sample_ids", sample_ids)
    n = sid.size
    sub = _as_int64("submission_ids", submission_ids, n)
    prov = _as_int64("provider_ids", provider_ids, n)
    sc = np.asarray(scores, dtype=np.float64)
    if sc.shape != (n,):
        raise ValidationError(f"scores must be a 1-D sequence of {n} floats, got shape {sc.shape}")
    validate_scores(sid, sc)

    if not (n < 2 or bool(np.all(sid[1:] > sid[:-1]))):  # readers hand them over sorted already
        order = np.argsort(sid, kind="stable")
        sid, sub, prov, sc = sid[order], sub[order], prov[order], sc[order]
    if n == 0:
        empty_f = np.zeros(0, dtype=np.float64)
        return AllocationResult(budget_minor, sid, sub, prov, empty_f, empty_f, np.zeros(0, np.int64), None,
                                budget_minor)
    values, cap = compute_values(sc, policy)
    if policy.netting == "provider":
        amounts, target, capped_ids, values = _allocate_netted(budget_minor, sc, prov, values, cap, policy,
                                                               chunk_size, provider_gains)
    else:
        amounts, target, capped_ids = _allocate_per_sample(budget_minor, prov, values, policy, chunk_size)

    unallocated = budget_minor - target
    result = AllocationResult(
        budget_minor=budget_minor,
        sample_ids=sid,
        submission_ids=sub,
        provider_ids=prov,
        scores=sc,
        values=values,
        amounts_minor=amounts,
        cap_value=cap,
        unallocated_minor=unallocated,
        capped_provider_ids=capped_ids,
        per_submission=_totals(sub, amounts),
        per_provider=_totals(prov, amounts),
    )
    log.debug("allocated %d of %d minor units over %d samples (cap %.6g, unallocated %d)",
              target, budget_minor, n, cap, unallocated)
    return result


def _totals(keys: NDArray[np.int64], amounts: NDArray[np.int64]) -> dict[int, int]:
    """Sum ``amounts`` (N,) per key (N,); every key appears, with 0 when it earned nothing."""
    uniq, index = np.unique(keys, return_inverse=True)
    sums = np.zeros(uniq.size, dtype=np.int64)
    np.add.at(sums, index, amounts)
    return dict(zip(uniq.tolist(), sums.tolist(), strict=True))
