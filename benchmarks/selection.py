"""Data selection with valuation scores: does training on what the marketplace values help?

On a finished default demo (``marketplace demo``), a candidate pool is drawn from the campaign's
accepted, first-owner samples that the approximator never saw (not in its label set). For each of

  alinfik   the champion approximator's stored scores (what the marketplace splits a provider's pay by),
  checked   the same scores after the latest pricing run's fine-tuning check: every sample of a provider
            that passed ranks above every sample of one that did not (what the marketplace pays for:
            a provider that fails the check is paid nothing), ALinFiK order within each group,
  exact     exact LinFiK of every pool sample (LoGra, same configuration as the label set),
  random    a seeded random choice,
  embed     cosine of the sample's MiniLM embedding to the mean target embedding (the baseline),

the top ``--fraction`` (20%) of the pool is selected and the demo target model is fine-tuned on it
(same batch order for every selector at a given seed), in each of two regimes: plain SGD with a small
step on each sample's mean token loss (the update LinFiK linearises) and the usual AdamW on the token
loss. The score is the mean token loss on the target *validation* set (held-out Python-doc topics,
disjoint from the campaign's target data). "gain recovered" is
(loss before − loss_method) / (loss before − loss_exact).

Run:  python benchmarks/selection.py [--home MKT_HOME] [--campaign demo-python-docs] [--pool 1500]
                                     [--seeds 0 1 2] [--regimes sgd:0.03:4 adamw:3e-4:2:token]
Writes benchmarks/results/selection.md and selection.png. ``--part providers`` and ``--part without``
(exact LinFiK's top pick with one provider left out at a time) write selection_providers.md and
selection_without.md instead.

Fine-tuning and the loss come from marketplace.validation (the product's payout validation, which runs
the per-provider measurement against a campaign's payouts); the regimes are its RegimeConfig.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _common import ROOT, add_demo_home_args, publish_report

from marketplace.validation import DEFAULT_REGIMES, RegimeConfig, finetune, mean_loss

METHODS = ("alinfik", "checked", "exact", "random", "embed")


def _log(msg: str) -> None:
    print(f"[selection {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


@dataclass
class Pool:
    sample_ids: np.ndarray  # (N,)
    texts: list[str]
    prompt_chars: list[int | None]
    providers: list[str]
    scores: dict[str, np.ndarray]  # method → (N,) score (random excluded)


def _load_pool(campaign_name: str, n_pool: int, seed: int, work_dir: Path, chunk: int) -> tuple[Pool, Any, Path]:
    """The pool, its ALinFiK / exact / embedding scores, the campaign, and the target model folder."""
    from sqlalchemy import select

    from marketplace.approx.baselines import predict_target_cosine
    from marketplace.approx.config import EmbedConfig
    from marketplace.approx.encoder import load_encoder
    from marketplace.campaigns import get_campaign
    from marketplace.cli.common import open_db
    from marketplace.db import Label, Provider, RunStatus, Sample, Score, ScoreRun, TargetSample
    from marketplace.db.label_sets import require_latest_label_set
    from marketplace.db.pricing_runs import latest_complete_pricing_runs
    from marketplace.db.screening import passed_provider_ids
    from marketplace.db.valuation import LabelSet
    from marketplace.valuation import LinFiKConfig, label_sample_ids

    _, factory = open_db()
    with factory() as session:
        camp = get_campaign(session, campaign_name)
        label_set: LabelSet = require_latest_label_set(session, camp.id)
        config = LinFiKConfig.from_stored(label_set.config)
        run = session.scalar(select(ScoreRun).where(ScoreRun.campaign_id == camp.id,
                                                    ScoreRun.status == RunStatus.COMPLETE)
                             .order_by(ScoreRun.id.desc()).limit(1))
        if run is None:
            raise SystemExit(f"campaign {campaign_name!r} has no complete score run: run `marketplace demo` first")
        version_id = run.approximator_version_id
        labeled = set(session.scalars(select(Label.sample_id).where(Label.label_set_id == label_set.id)))
        checked = [r for r in latest_complete_pricing_runs(session, campaign_id=camp.id) if r.screening]
        if not checked:
            raise SystemExit(f"campaign {campaign_name!r} has no complete pricing run with the fine-tuning check: "
                             "run `marketplace demo` (or `marketplace price`) first")
        passed = passed_provider_ids(max(checked, key=lambda r: r.id).screening or {})
        rows = session.execute(
            select(Sample.id, Sample.text, Sample.prompt_chars, Provider.name, Sample.provider_id, Score.score)
            .join(Score, Score.sample_id == Sample.id).join(Provider, Provider.id == Sample.provider_id)
            .where(Score.approximator_version_id == version_id, Sample.duplicate_of_id.is_(None))
            .order_by(Sample.id)
        ).all()
        eligible = [r for r in rows if r.id not in labeled]
        if len(eligible) < n_pool:
            raise SystemExit(f"only {len(eligible)} unlabeled first-owner scored samples; lower --pool")
        pick = np.sort(np.random.default_rng(seed).choice(len(eligible), size=n_pool, replace=False))
        chosen = [eligible[i] for i in pick]
        _log(f"pool: {n_pool} of {len(eligible)} unlabeled first-owner samples scored by approximator "
             f"version {version_id}; label set {label_set.id} ({config.preconditioner} preconditioner)")
        ids = [int(r.id) for r in chosen]
        exact: dict[int, float] = {}
        t0 = time.perf_counter()
        for start in range(0, len(ids), chunk):
            part = ids[start:start + chunk]
            exact.update(label_sample_ids(session, camp.id, part, config, work_dir=work_dir))
            done = min(start + chunk, len(ids))
            _log(f"exact LinFiK {done}/{len(ids)} ({done / (time.perf_counter() - t0):.1f} samples/s)")
        targets = [t for (t,) in session.execute(select(TargetSample.text).where(
            TargetSample.campaign_id == camp.id).order_by(TargetSample.record_index))]
        model_dir = Path(camp.target_model_path)
    encoder = load_encoder(None, EmbedConfig(features="pooled"))  # the embedding baseline: block 3 alone
    texts = [r.text for r in chosen]
    embed = predict_target_cosine(encoder.embed(texts), encoder.embed(targets))
    pool = Pool(
        sample_ids=np.asarray(ids), texts=texts, prompt_chars=[r.prompt_chars for r in chosen],
        providers=[r.name for r in chosen],
        scores={"alinfik": np.asarray([r.score for r in chosen], dtype=np.float64),
                "checked": _checked_scores(np.asarray([r.score for r in chosen], dtype=np.float64),
                                           np.asarray([r.provider_id in passed for r in chosen])),
                "exact": np.asarray([exact[i] for i in ids], dtype=np.float64),
                "embed": np.asarray(embed, dtype=np.float64)},
    )
    return pool, camp, model_dir


def _checked_scores(scores: np.ndarray, passed: np.ndarray) -> np.ndarray:
    """Scores that keep ALinFiK's order within the passed and within the failed samples and put every
    passed sample above every failed one."""
    shift = float(scores.max() - scores.min()) + 1.0 if scores.size else 0.0
    return np.where(passed, scores + shift, scores)


def _select(pool: Pool, method: str, k: int, seed: int) -> np.ndarray:
    if method == "random":
        return np.random.default_rng(1000 + seed).choice(len(pool.texts), size=k, replace=False)
    order = np.argsort(-pool.scores[method], kind="stable")
    return order[:k]


def _mean_loss(model: Any, encoded: Any) -> float:
    """Mean token loss over every target token of the set (each token counts once)."""
    return mean_loss(model, encoded, batch_size=32, device="cpu", weighting="token")


def _finetuned(base: Any, encoded: Any, rows: np.ndarray, regime: RegimeConfig, seed: int) -> Any:
    """A fresh copy of the target model, fine-tuned on ``encoded[rows]`` (same batch order for a seed)."""
    model = copy.deepcopy(base)
    finetune(model, encoded, rows, regime, seed=seed, device="cpu")
    return model


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    from marketplace.approx.metrics import spearman

    return float(spearman(a, b))


def _parse_regime(text: str) -> RegimeConfig:
    """``OPTIMIZER:LR:EPOCHS[:WEIGHTING]``, e.g. ``sgd:0.03:4`` or ``adamw:3e-4:2:token`` (batch: --batch-size)."""
    parts = text.split(":")
    if len(parts) not in (3, 4) or parts[0] not in ("sgd", "adamw"):
        raise argparse.ArgumentTypeError(f"regime {text!r}: expected OPTIMIZER:LR:EPOCHS[:WEIGHTING], "
                                         "OPTIMIZER sgd or adamw, WEIGHTING sample or token")
    weighting = parts[3] if len(parts) == 4 else "sample"
    if weighting not in ("sample", "token"):
        raise argparse.ArgumentTypeError(f"regime {text!r}: weighting must be sample or token")
    return RegimeConfig.model_validate({"name": parts[0], "optimizer": parts[0], "weighting": weighting,
                                        "learning_rate": float(parts[1]), "epochs": int(parts[2])})


def _plot(results: dict[str, dict[str, list[float]]], none_loss: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 3.8), squeeze=False)
    colours = ["#4C72B0", "#55A868", "#C44E52", "#8172B2", "#937860"]
    for ax, (regime, losses) in zip(axes[0], results.items(), strict=True):
        names = list(losses)
        means = np.asarray([np.mean(losses[m]) for m in names]) - none_loss
        stds = [float(np.std(losses[m])) for m in names]
        ax.bar(names, means, yerr=stds, capsize=4, color=colours[: len(names)])
        ax.axhline(0.0, color="grey", linewidth=0.8)
        ax.set_title(regime, fontsize=9)
        ax.set_ylabel("Δ target validation loss vs before (nats/token)")
    fig.suptitle(f"Fine-tuning the demo target model on the top 20% of the pool (before: {none_loss:.4f})",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _providers_part(args: argparse.Namespace, pool: Pool, base: Any, pool_enc: Any, val_enc: Any,
                    none_loss: float, t_start: float) -> None:
    """Fine-tune on ``--per-provider`` random pool samples of one provider at a time (first regime)."""
    regime = args.regimes[0]
    providers = sorted(set(pool.providers))
    by_provider = {p: np.flatnonzero(np.asarray(pool.providers) == p) for p in providers}
    n = min([args.per_provider, *(len(v) for v in by_provider.values())])
    losses: dict[str, list[float]] = {p: [] for p in providers}
    for seed in args.seeds:
        for p in providers:
            rows = np.random.default_rng(2000 + seed).choice(by_provider[p], size=n, replace=False)
            losses[p].append(_mean_loss(_finetuned(base, pool_enc, rows, regime, seed), val_enc))
            _log(f"providers | seed {seed} {p:>18}: validation loss {losses[p][-1]:.4f}")
    mean_scores = {p: (float(pool.scores["alinfik"][by_provider[p]].mean()),
                       float(pool.scores["exact"][by_provider[p]].mean())) for p in providers}
    order = sorted(providers, key=lambda p: float(np.mean(losses[p])))
    lines = [
        "# Which providers' data helps the target model? (benchmarks/selection.py --part providers)",
        "",
        f"The ground truth for the demo's provider ranking: the demo target model fine-tuned on {n} random pool "
        f"samples of one provider at a time ({regime.describe()}, seeds {args.seeds}; the "
        f"samples change with the seed), scored by the mean token loss on {len(val_enc.ids)} held-out Python-doc "
        f"topics (before fine-tuning {none_loss:.4f}); next to it the provider's mean ALinFiK and exact LinFiK "
        f"score over its pool samples. Wall time {time.perf_counter() - t_start:.0f} s.",
        "",
        "| provider | validation loss (mean ± sd) | gain vs before | mean ALinFiK | mean exact LinFiK |",
        "|---|---:|---:|---:|---:|",
    ]
    for p in order:
        v = np.asarray(losses[p])
        lines.append(f"| {p} | {v.mean():.4f} ± {v.std():.4f} | {none_loss - v.mean():+.4f} | "
                     f"{mean_scores[p][0]:+.3e} | {mean_scores[p][1]:+.3e} |")
    gains = np.asarray([none_loss - float(np.mean(losses[p])) for p in providers])
    lines += ["", f"Spearman over providers between the measured gain and the mean ALinFiK score: "
                  f"{_spearman(gains, np.asarray([mean_scores[p][0] for p in providers])):.3f}; and the mean exact "
                  f"LinFiK: {_spearman(gains, np.asarray([mean_scores[p][1] for p in providers])):.3f}.", ""]
    text = "\n".join(lines)
    print(text)
    out = args.out.with_name("selection_providers.md")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")


def _without_part(args: argparse.Namespace, pool: Pool, base: Any, pool_enc: Any, val_enc: Any,
                  none_loss: float, t_start: float) -> None:
    """Leave one provider out of exact LinFiK's top pick: is that provider's share of the mix worth having?"""
    k = max(1, round(args.fraction * len(pool.texts)))
    order = np.argsort(-pool.scores["exact"], kind="stable")
    providers = np.asarray(pool.providers)
    variants: dict[str, np.ndarray] = {"top (all providers)": order[:k]}
    for name in args.without:
        if name not in set(pool.providers):
            known = ", ".join(sorted(set(pool.providers)))
            raise SystemExit(f"--without {name!r}: no such provider in the pool ({known})")
        variants[f"without {name}"] = order[providers[order] != name][:k]  # the next-best samples fill in
    results: dict[str, dict[str, list[float]]] = {}
    for regime in args.regimes:
        losses: dict[str, list[float]] = {v: [] for v in variants}
        for seed in args.seeds:
            for v, rows in variants.items():
                losses[v].append(_mean_loss(_finetuned(base, pool_enc, rows, regime, seed), val_enc))
                _log(f"without | {regime.describe()} | seed {seed} {v:>28}: validation loss {losses[v][-1]:.4f}")
        results[regime.describe()] = losses
    names = sorted(set(pool.providers))
    lines = [
        "# Leaving one provider out of the selection (benchmarks/selection.py --part without)",
        "",
        f"The top {args.fraction:.0%} ({k}) of a pool of {len(pool.texts)} by exact LinFiK, and the same pick with one "
        "provider's samples removed and the next-best samples in their place; the demo target model is fine-tuned "
        f"on each (batch {args.batch_size}, seeds {args.seeds}) and scored on {len(val_enc.ids)} held-out Python-doc "
        f"topics (before fine-tuning {none_loss:.4f}). A provider whose removal *raises* the loss contributes to the "
        "mix; one whose removal lowers it costs the mix. Wall time "
        f"{time.perf_counter() - t_start:.0f} s.",
        "",
        "| variant | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(names),
        *[f"| {v} | " + " | ".join(str(int((providers[rows] == p).sum())) for p in names) + " |"
          for v, rows in variants.items()],
        "",
    ]
    for regime, losses in results.items():
        base = float(np.mean(losses["top (all providers)"]))
        lines += [f"## {regime}", "", "| variant | validation loss (mean ± sd) | change vs the full pick |",
                  "|---|---:|---:|"]
        for v, vals in losses.items():
            a = np.asarray(vals)
            lines.append(f"| {v} | {a.mean():.4f} ± {a.std():.4f} | {a.mean() - base:+.4f} |")
        lines.append("")
    text = "\n".join(lines)
    print(text)
    out = args.out.with_name("selection_without.md")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_demo_home_args(ap)
    ap.add_argument("--pool", type=int, default=1500, help="Candidate pool size.")
    ap.add_argument("--fraction", type=float, default=0.2)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--regimes", type=_parse_regime, nargs="+",
                    default=list(DEFAULT_REGIMES),
                    help="Fine-tuning regimes OPTIMIZER:LR:EPOCHS[:WEIGHTING]. Default: plain SGD on the "
                         "per-sample loss (the update LinFiK linearises) and the usual AdamW on the token loss.")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--part", choices=("selectors", "providers", "without"), default="selectors",
                    help="selectors: the selection table (selection.md); providers: fine-tune on an equal-sized "
                         "random sample of each provider's pool samples, a ground truth for the providers' ranking "
                         "(selection_providers.md, first regime only); without: exact LinFiK's top pick with "
                         "each --without provider left out (selection_without.md).")
    ap.add_argument("--without", nargs="+", default=["fortune-teller", "foldoc-computing"],
                    help="Providers to leave out one at a time for --part without.")
    ap.add_argument("--per-provider", type=int, default=150, help="Samples per provider for --part providers.")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "selection.md")
    args = ap.parse_args()
    args.regimes = [r.model_copy(update={"batch_size": args.batch_size}) for r in args.regimes]
    if args.home is not None:
        os.environ["MKT_HOME"] = str(args.home)
    torch.set_num_threads(args.threads)
    from marketplace.cli.common import settings
    from marketplace.runtime import apply_offline_env
    from marketplace.valuation.target_model import load_target_model
    from marketplace.valuation.tokenization import encode_texts

    apply_offline_env()
    t_start = time.perf_counter()
    home = settings().home
    pool, camp, model_dir = _load_pool(args.campaign, args.pool, seed=12345, work_dir=home / "selection",
                                       chunk=250)
    target = load_target_model(model_dir)
    validation_path = Path(camp.target_data_path).with_name("validation.jsonl")
    if not validation_path.exists():
        raise SystemExit(f"no validation set at {validation_path}: the campaign's target data must come from a "
                         "built corpus (marketplace corpus build / marketplace demo)")
    validation = [json.loads(line)["text"] for line in validation_path.read_text(encoding="utf-8").splitlines()
                  if line.strip()]
    val_enc = encode_texts(target.tokenizer, validation, None, max_length=args.max_length)
    pool_enc = encode_texts(target.tokenizer, pool.texts, pool.prompt_chars, max_length=args.max_length)
    none_loss = _mean_loss(target.model, val_enc)
    _log(f"validation: {len(validation)} texts; loss before fine-tuning {none_loss:.4f}")

    if args.part == "providers":
        _providers_part(args, pool, target.model, pool_enc, val_enc, none_loss, t_start)
        return
    if args.part == "without":
        _without_part(args, pool, target.model, pool_enc, val_enc, none_loss, t_start)
        return
    k = max(1, round(args.fraction * len(pool.texts)))
    results: dict[str, dict[str, list[float]]] = {}
    for regime in args.regimes:
        losses: dict[str, list[float]] = {m: [] for m in METHODS}
        for seed in args.seeds:
            for method in METHODS:
                t0 = time.perf_counter()
                model = _finetuned(target.model, pool_enc, _select(pool, method, k, seed), regime, seed)
                losses[method].append(_mean_loss(model, val_enc))
                _log(f"{regime.describe()} | seed {seed} {method:>8}: validation loss {losses[method][-1]:.4f} "
                     f"({time.perf_counter() - t0:.0f} s)")
        results[regime.describe()] = losses

    s = pool.scores
    top_exact = set(_select(pool, "exact", k, 0).tolist())
    overlap = {m: len(set(_select(pool, m, k, 0).tolist()) & top_exact) / k
               for m in ("alinfik", "checked", "embed", "random")}
    providers = sorted(set(pool.providers))
    lines = [
        "# Data selection by valuation scores (benchmarks/selection.py)",
        "",
        f"Campaign `{args.campaign}` of a default `marketplace demo`; a pool of {len(pool.texts)} first-owner samples "
        f"the approximator never saw (not in its label set); each selector keeps the top {args.fraction:.0%} "
        f"({k} samples) and the demo target model is fine-tuned on them (batch {args.batch_size}, max "
        f"{args.max_length} tokens; same batch order for every selector at a given seed; seeds {args.seeds}). "
        f"Score: mean token loss on {len(validation)} held-out Python-doc topics (the campaign's validation "
        f"set, not its target data); before fine-tuning {none_loss:.4f}. \"gain recovered\" = "
        "(loss before − loss) / (loss before − loss with exact LinFiK). "
        f"Wall time {time.perf_counter() - t_start:.0f} s on {torch.get_num_threads()} CPU threads.",
        "",
    ]
    verdicts = []
    for regime, losses in results.items():
        mean = {m: float(np.mean(v)) for m, v in losses.items()}
        exact_gain = none_loss - mean["exact"]
        lines += [f"## {regime}", "",
                  "| selector | validation loss (mean ± sd) | per seed | gain vs before | gain recovered |",
                  "|---|---:|---|---:|---:|"]
        for m in METHODS:
            v = np.asarray(losses[m])
            gain = none_loss - v.mean()
            rec = f"{100 * gain / exact_gain:.0f}%" if exact_gain > 0 else "n/a"
            lines.append(f"| {m} | {v.mean():.4f} ± {v.std():.4f} | {', '.join(f'{x:.4f}' for x in v)} | "
                         f"{gain:+.4f} | {rec} |")
        lines.append("")
        verdicts.append(
            f"- {regime}: ALinFiK {'beats' if mean['alinfik'] < mean['random'] else 'does NOT beat'} random "
            f"({mean['alinfik']:.4f} vs {mean['random']:.4f}); "
            + (f"it recovers {100 * (none_loss - mean['alinfik']) / exact_gain:.0f}% of exact LinFiK's gain"
               if exact_gain > 0 else "exact LinFiK's selection did not lower the validation loss")
            + f"; ALinFiK {'≤' if mean['alinfik'] <= mean['exact'] else '>'} exact; against the embedding "
            f"baseline ({mean['embed']:.4f}): ALinFiK {'ahead' if mean['alinfik'] < mean['embed'] else 'behind'} "
            f"({mean['alinfik']:.4f}), ALinFiK with the check "
            f"{'ahead' if mean['checked'] < mean['embed'] else 'behind'} ({mean['checked']:.4f}).")
    lines += [
        "## Agreement on the pool",
        "",
        f"Spearman(ALinFiK, exact LinFiK) = {_spearman(s['alinfik'], s['exact']):.3f}; "
        f"Spearman(embedding cosine, exact) = {_spearman(s['embed'], s['exact']):.3f}. Overlap of the top "
        f"{args.fraction:.0%} with exact LinFiK's: ALinFiK {overlap['alinfik']:.0%}, checked {overlap['checked']:.0%}, "
        f"embedding {overlap['embed']:.0%}, "
        f"random {overlap['random']:.0%} (seed 0).",
        "",
        "Selected samples per provider (seed 0):",
        "",
        "| selector | " + " | ".join(providers) + " |",
        "|---|" + "---:|" * len(providers),
        "| pool | " + " | ".join(str(pool.providers.count(p)) for p in providers) + " |",
    ]
    for m in METHODS:
        rows = _select(pool, m, k, 0)
        picked = [pool.providers[r] for r in rows]
        lines.append(f"| {m} | " + " | ".join(str(picked.count(p)) for p in providers) + " |")
    lines += ["", "## Verdict", "", *verdicts, "", f"![selection]({args.out.with_suffix('.png').name})", ""]
    publish_report(lines, args.out)
    _plot(results, none_loss, args.out.with_suffix(".png"))


if __name__ == "__main__":
    main()
