"""Label designs against the fine-tuning ground truth, on the exact gradients of a finished label run.

For a campaign with a complete label set and a payout validation (``marketplace validate CAMPAIGN
--json > gt.json``), every design below is computed from the *stored* projected gradients of the
label run (train samples (N, D), target texts (M, D)), turned into provider payouts as a perfect
approximator would pay them, and compared with the measured gains:

    per sample:  payout_p ∝ n_payable_p × mean over p's labeled samples of clip(v(x), 0, cap)   (cap: 99th pct)
    netted:      payout_p ∝ n_payable_p × max(mean over p's labeled samples of v(x), 0)
                 (a provider's samples add up, negative ones included, as a fine-tuning step on them would)
    + check:     netted, and only providers that passed the latest pricing run's fine-tuning check
                 (``pricing_runs.screening``; its own seeds and draws, not the ground truth's)
    + measured split (the pricing default): among providers that passed the check and whose netted
                 mean is positive, payout_p ∝ check gain_p × n_payable_p × (fraction of p's labeled
                 samples with a positive value), the design deciding only who nets to zero
    misallocated = TV(payout shares, ideal shares ∝ max(gain_p, 0) × n_payable_p)
    harmful      = payout share of providers whose measured gain is negative

Designs (g = g(x) the projected gradient of x's mean token loss, ȳ = mean target gradient, η = the
label set's step, w = T(x)/L the token factor, ḡ_pool = mean train gradient):

    plain              η ⟨ȳ, g⟩                      (per sample, and × w: the first default)
    cosine             η ⟨ȳ, g⟩ / ‖g‖
    rel-pool           η ⟨ȳ − ḡ_pool, g⟩             (value beyond what the average pool sample gets)
    rel-pool cosine    η ⟨ȳ − ḡ_pool, g⟩ / ‖g‖       (× w: the library default)
    perp-pool          η ⟨ȳ − (ȳ·ĉ)ĉ, g⟩, ĉ = ḡ_pool/‖ḡ_pool‖   (the common direction projected out)
    fisher             η ⟨F⁻¹ ȳ, g⟩ per block, F = mean g gᵀ + λI, λ = 0.1 × mean eigenvalue
    2nd-order iso c    η ⟨ȳ, g⟩ − (c η²/2) ‖g‖²         (one-step loss change with H = c I)
    2nd-order GN c     η ⟨ȳ, g⟩ − ((c η)²/2) mean_y ⟨g_y, g⟩²   (Gauss–Newton of the target loss)
    fisher rel-pool    η ⟨F⁻¹ (ȳ − ḡ_pool), g⟩ per block
    adam-diag          η ⟨ȳ ⊘ √(s + 0.1 mean s), g⟩, s = mean g² per coordinate (Adam's normalisation)
    adam-diag rel-pool the same on ȳ − ḡ_pool
    2nd-order iso, pool-calibrated κ   η (⟨ȳ, g⟩ − κ ‖g‖²), κ = mean⟨ȳ,g⟩ / mean‖g‖² (no tuned knob)
    rel-pool − pool-calibrated ‖g‖²    the same correction on top of rel-pool
    ... − pool qNN     the design minus its NN-th percentile over the pool (a reserve)

Run:  python benchmarks/label_designs.py --home MKT_HOME --campaign NAME --ground-truth gt.json
Writes benchmarks/results/label_designs_<campaign>.md.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import torch
from _common import ROOT, add_demo_home_args, publish_report

BLOCK_ROWS = 4096  # rows of G per matmul (bounded memory)


def _load(home: Path, campaign: str) -> dict[str, object]:
    os.environ["MKT_HOME"] = str(home)
    import pandas as pd
    from safetensors.torch import load_file
    from sqlalchemy import func, select

    from marketplace.campaigns import get_campaign
    from marketplace.db import Label, Sample, Submission
    from marketplace.db.eligibility import is_payable
    from marketplace.db.label_sets import require_latest_label_set
    from marketplace.runtime import session_factory
    from marketplace.valuation.config import LinFiKConfig

    with session_factory()() as s:
        camp = get_campaign(s, campaign)
        label_set = require_latest_label_set(s, camp.id)
        stored = dict(s.execute(select(Label.sample_id, Label.score).where(Label.label_set_id == label_set.id)).all())
        n_payable = dict(s.execute(
            select(Sample.provider_id, func.count()).join(Submission, Submission.id == Sample.submission_id)
            .where(is_payable()).group_by(Sample.provider_id)).all())
        run_dir = Path(label_set.store_uri)
        config = LinFiKConfig.from_stored(label_set.config)
    plan = json.loads((run_dir / "plan.json").read_text())
    if len(plan["checkpoints"]) != 1:
        raise SystemExit("this benchmark reads single-checkpoint label runs only")
    shards = [load_file(p) for p in sorted((run_dir / "c0" / "train").glob("shard-*.safetensors"))]
    grads = torch.cat([sh["grads"].double() for sh in shards])
    ids = torch.cat([sh["sample_ids"] for sh in shards]).numpy()
    target = torch.cat([load_file(p)["grads"].double()
                        for p in sorted((run_dir / "c0" / "target").glob("shard-*.safetensors"))])
    samples = pd.read_parquet(run_dir / "samples.parquet").set_index("sample_id")
    return {"G": grads, "ids": ids, "Y": target, "providers": samples.loc[ids, "provider_id"].to_numpy(),
            "stored": np.array([stored[int(i)] for i in ids]), "eta": float(plan["checkpoints"][0]["eta"]),
            "n_payable": n_payable, "label_set_id": label_set.id, "n_target": int(target.shape[0]),
            "reference": config.reference, "cosine": config.cosine}


def _designs(d: dict[str, object]) -> dict[str, np.ndarray]:
    G, Y, eta = d["G"], d["Y"], d["eta"]
    assert isinstance(G, torch.Tensor) and isinstance(Y, torch.Tensor) and isinstance(eta, float)
    ybar, pool = Y.mean(0), G.mean(0)
    dot, dot_pool = (G @ ybar).numpy(), (G @ pool).numpy()
    gn2 = (G * G).sum(1).numpy()
    gn_quad = np.concatenate([((G[i:i + BLOCK_ROWS] @ Y.T) ** 2).mean(1).numpy()
                              for i in range(0, G.shape[0], BLOCK_ROWS)])
    plain = eta * dot
    stored = np.asarray(d["stored"])
    # the stored labels are base × w, base the label set's own design (plain or relative to the pool,
    # divided by ‖g‖ with cosine), w = T(x)/L when the label set weights tokens (w = 1 otherwise)
    base = eta * (dot - dot_pool) if d["reference"] == "pool" else plain
    if d["cosine"]:
        base = base / np.sqrt(np.maximum(gn2, 1e-300))
    w = np.divide(stored, base, out=np.ones_like(plain), where=np.abs(base) > 1e-15)
    c_hat = pool / pool.norm()
    perp = (G @ (ybar - (ybar @ c_hat) * c_hat)).numpy()
    fisher_q = torch.zeros_like(ybar)
    n_blocks = 16 if G.shape[1] % 16 == 0 else 1
    size = G.shape[1] // n_blocks
    for b in range(n_blocks):
        sl = slice(b * size, (b + 1) * size)
        F = G[:, sl].T @ G[:, sl] / G.shape[0]
        lam = 0.1 * torch.diagonal(F).mean()
        fisher_q[sl] = torch.linalg.solve(F + lam * torch.eye(size, dtype=F.dtype), ybar[sl])
    # The same per-block Fisher solve on the pool-relative target direction, at several dampings
    # (λ = ratio × mean eigenvalue; 0.1 is LoGra's and the project's default).
    fisher_rel_q = {ratio: torch.zeros_like(ybar) for ratio in (0.03, 0.1, 0.3, 1.0)}
    for b in range(n_blocks):
        sl = slice(b * size, (b + 1) * size)
        F = G[:, sl].T @ G[:, sl] / G.shape[0]
        for ratio, q in fisher_rel_q.items():
            lam = ratio * torch.diagonal(F).mean()
            q[sl] = torch.linalg.solve(F + lam * torch.eye(size, dtype=F.dtype), (ybar - pool)[sl])
    # Adam-like: each coordinate scaled by 1/sqrt of the pool's second moment (what Adam's v does to a
    # step), damped like the Fisher (0.1 × the mean second moment).
    second = (G * G).mean(0)
    adam_scale = 1.0 / torch.sqrt(second + 0.1 * second.mean())
    adam = (G @ (ybar * adam_scale)).numpy()
    adam_rel = (G @ ((ybar - pool) * adam_scale)).numpy()
    # Second order with the curvature set by the pool, not tuned: κ makes the pool's mean predicted
    # one-step change zero, i.e. η(⟨ȳ,g⟩ − κ‖g‖²) with κ = mean⟨ȳ,g⟩ / mean‖g‖².
    kappa = float(dot.mean() / gn2.mean())
    out: dict[str, np.ndarray] = {
        "plain (per sample)": plain,
        "plain × w (the demo's design before)": plain * w,
        "cosine × w": plain / np.sqrt(gn2) * w,
        "rel-pool × w (the default before)": eta * (dot - dot_pool) * w,
        "rel-pool cosine × w (the default)": eta * (dot - dot_pool) / np.sqrt(gn2) * w,
        "perp-pool × w": eta * perp * w,
        "fisher × w": eta * (G @ fisher_q).numpy() * w,
        "fisher rel-pool × w": eta * (G @ fisher_rel_q[0.1]).numpy() * w,
        **{f"fisher rel-pool λ={r} × w": eta * (G @ q).numpy() * w for r, q in fisher_rel_q.items() if r != 0.1},
        "adam-diag × w": eta * adam * w,
        "adam-diag rel-pool × w": eta * adam_rel * w,
        "2nd-order iso, pool-calibrated κ × w": eta * (dot - kappa * gn2) * w,
        "rel-pool − pool-calibrated ‖g‖² × w": eta * ((dot - dot_pool) - float((dot - dot_pool).mean() / gn2.mean())
                                                      * gn2) * w,
    }
    for c in (10, 100, 300):
        out[f"2nd-order iso c={c} × w"] = (plain - 0.5 * c * eta * eta * gn2) * w
    for c in (10, 30):
        out[f"2nd-order GN c={c} × w"] = (plain - 0.5 * (c * eta) ** 2 * gn_quad) * w
    for key in ("plain × w (the demo's design before)", "cosine × w", "fisher × w"):
        for q in (75, 90, 95):
            out[f"{key} − pool q{q}"] = out[key] - np.percentile(out[key], q)
    return out


def _ground_truth(path: Path) -> dict[str, object]:
    doc = json.loads(path.read_text())
    return doc.get("result", doc)


def _provider_means(values: np.ndarray, providers: np.ndarray, pids: list[int]) -> np.ndarray:
    """Mean of ``values`` over each provider's labeled samples, in the order of ``pids`` (0 without any)."""
    return np.array([values[providers == p].mean() if (providers == p).any() else 0.0 for p in pids])


def _normalised(total: np.ndarray) -> np.ndarray:
    return total / total.sum() if total.sum() > 0 else np.zeros_like(total)


def _shares(values: np.ndarray, providers: np.ndarray, pids: list[int], n: np.ndarray) -> np.ndarray:
    pay = np.clip(values, 0.0, max(float(np.percentile(values, 99)), 0.0))
    return _normalised(_provider_means(pay, providers, pids) * n)


def _netted_shares(values: np.ndarray, providers: np.ndarray, pids: list[int], n: np.ndarray) -> np.ndarray:
    return _normalised(np.maximum(_provider_means(values, providers, pids), 0.0) * n)


def _check_passed(home: Path, campaign: str) -> dict[int, float] | None:
    """Measured gain per sample of each provider that passed the fine-tuning check of the campaign's latest
    complete pricing run (None: no check)."""
    os.environ["MKT_HOME"] = str(home)
    from marketplace.campaigns import get_campaign
    from marketplace.db.pricing_runs import latest_complete_pricing_runs
    from marketplace.runtime import session_factory

    with session_factory()() as session:
        camp = get_campaign(session, campaign)
        runs = latest_complete_pricing_runs(session, campaign_id=camp.id)
        run = max(runs, key=lambda r: r.period, default=None)
        if run is None or not run.screening:
            return None
        return {int(c["provider_id"]): float(c["gain"]) for c in run.screening["providers"] if c["passed"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_demo_home_args(ap)
    ap.add_argument("--ground-truth", type=Path, required=True, help="JSON of `marketplace validate CAMPAIGN --json`.")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    home = args.home or ROOT / ".marketplace"
    data = _load(home, args.campaign)
    gt = _ground_truth(args.ground_truth)
    rows = [p for p in gt["providers"] if p["gain"].get("adamw") is not None]  # type: ignore[index, union-attr]
    pids = [int(p["provider_id"]) for p in rows]
    names = [str(p["provider_name"]) for p in rows]
    n = np.array([data["n_payable"].get(p, 0) for p in pids], dtype=np.float64)  # type: ignore[union-attr]

    from marketplace.validation.shares import harmful_share, ideal_shares, total_variation

    regimes = ("adamw", "sgd")
    gains = {r: np.array([p["gain"][r] for p in rows], dtype=np.float64) for r in regimes}
    ideal = {r: ideal_shares(gains[r], n) for r in regimes}
    def verdict(s: np.ndarray, r: str) -> tuple[str, str]:
        ideal_r = ideal[r]
        tv = "nothing paid" if s.sum() == 0 else "n/a" if ideal_r is None else f"{total_variation(s, ideal_r):.3f}"
        return tv, f"{harmful_share(s, gains[r]):.3f}"

    lines = [
        f"# Label designs on `{args.campaign}` (label set {data['label_set_id']}: {len(data['ids'])} samples, "  # type: ignore[arg-type]
        f"{data['n_target']} target texts)", "",
        "Measured gains per sample (fine-tuning ground truth, `marketplace validate`), ×1e-4 nats/token:", "",
        "| provider | payable | AdamW | SGD |", "|---|---:|---:|---:|",
    ]
    for i, name in enumerate(names):
        sd = rows[i]["gain_sd"]
        lines.append(f"| {name} | {int(n[i])} | {gains['adamw'][i] * 1e4:+.2f} ± {sd['adamw'] * 1e4:.2f} | "
                     f"{gains['sgd'][i] * 1e4:+.2f} ± {sd['sgd'] * 1e4:.2f} |")
    lines += ["", "Payout shares a perfect approximator of each design would pay, and their verdicts:", "",
              "| design | misallocated (AdamW) | harmful (AdamW) | misallocated (SGD) | harmful (SGD) | "
              + " | ".join(names) + " |", "|---|---:|---:|---:|---:|" + "---:|" * len(names)]
    designs = _designs(data)
    passed = _check_passed(home, args.campaign)
    pricings = [("per sample", _shares), ("netted per provider", _netted_shares)]
    if passed is not None:
        mask = np.array([p in passed for p in pids], dtype=np.float64)

        def _checked_shares(values: np.ndarray, providers: np.ndarray, pids: list[int], n: np.ndarray) -> np.ndarray:
            return _normalised(_netted_shares(values, providers, pids, n) * mask)

        check_gain = np.array([passed.get(p, 0.0) for p in pids], dtype=np.float64)

        def _measured_split(values: np.ndarray, providers: np.ndarray, pids: list[int], n: np.ndarray) -> np.ndarray:
            net = _provider_means(values, providers, pids)
            positive = _provider_means((values > 0).astype(np.float64), providers, pids)
            return _normalised(np.where(net > 0, check_gain * n * positive, 0.0))

        pricings.append(("netted + fine-tuning check", _checked_shares))
        pricings.append(("check + measured split (pricing default)", _measured_split))
        lines.insert(2, "Fine-tuning check of the latest pricing run (providers paid at all): "
                        + ", ".join(nm for nm, p in zip(names, pids, strict=True) if p in passed) + ".")
        lines.insert(3, "")
    for pricing, share_fn in pricings:
        for name, values in designs.items():
            if pricing != "per sample" and " − pool q" in name:
                continue  # a reserve shifts every provider's mean alike: netting makes it redundant
            s = share_fn(values, data["providers"], pids, n)  # type: ignore[arg-type]
            (ma, ha), (ms, hs) = verdict(s, "adamw"), verdict(s, "sgd")
            cells = " | ".join(f"{x:.2f}" for x in s)
            lines.append(f"| {name}, {pricing} | {ma} | {ha} | {ms} | {hs} | {cells} |")
    out = args.out or ROOT / "benchmarks" / "results" / f"label_designs_{args.campaign}.md"
    publish_report(lines, out)


if __name__ == "__main__":
    main()
