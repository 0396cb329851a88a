"""Stratified (by provider), seeded subsample of the pool to label.

Allocation is proportional to each provider's pool size, rounded by the largest-remainder method
(ties broken by provider id) so the counts add up to exactly ``n``; within a provider the samples are
drawn without replacement by a NumPy generator seeded from (seed, provider id), so a provider's draw
does not depend on which other providers exist. The result is sorted by sample id.
"""

from __future__ import annotations

import numpy as np

__all__ = ["allocate_per_stratum", "stratified_subsample"]


def allocate_per_stratum(sizes: dict[int, int], n: int) -> dict[int, int]:
    """How many to draw from each stratum: proportional, largest remainder, exact total min(n, Σ sizes)."""
    total = sum(sizes.values())
    n = min(n, total)
    if n <= 0 or total == 0:
        return {k: 0 for k in sizes}
    keys = sorted(sizes)
    quotas = {k: n * sizes[k] / total for k in keys}
    alloc = {k: int(quotas[k]) for k in keys}
    remainder = n - sum(alloc.values())
    # largest fractional part first; ties by stratum id for determinism; never above the stratum size
    order = sorted(keys, key=lambda k: (-(quotas[k] - alloc[k]), k))
    while remainder > 0:
        progressed = False
        for k in order:
            if remainder == 0:
                break
            if alloc[k] < sizes[k]:
                alloc[k] += 1
                remainder -= 1
                progressed = True
        if not progressed:  # pragma: no cover - impossible since n ≤ total
            break
    return alloc


def stratified_subsample(sample_ids: np.ndarray, strata: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Ids of the subsample, sorted. ``sample_ids`` and ``strata`` (provider ids) are aligned (N,) arrays."""
    if sample_ids.shape != strata.shape:
        raise ValueError("sample_ids and strata must have the same shape")
    order = np.argsort(sample_ids, kind="stable")
    sample_ids, strata = sample_ids[order], strata[order]
    keys, counts = np.unique(strata, return_counts=True)
    alloc = allocate_per_stratum({int(k): int(c) for k, c in zip(keys, counts, strict=True)}, n)
    chosen = []
    for k in keys.tolist():
        take = alloc[int(k)]
        if take == 0:
            continue
        members = sample_ids[strata == k]
        rng = np.random.default_rng(np.random.SeedSequence([seed, int(k) & 0xFFFFFFFF]))
        chosen.append(rng.choice(members, size=take, replace=False))
    if not chosen:
        return np.zeros(0, dtype=np.int64)
    return np.sort(np.concatenate(chosen)).astype(np.int64)
