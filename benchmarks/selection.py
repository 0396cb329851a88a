"""Data selection with valuation scores (issue 6): does training on what the marketplace values help?

On a finished default demo (``marketplace demo``), a candidate pool is drawn from the campaign's
accepted, first-owner samples that the approximator never saw (not in its label set). For each of

  alinfik   the champion approximator's stored scores (what the marketplace pays by),
  exact     exact LinFiK of every pool sample (LoGra, same configuration as the label set),
  random    a seeded random choice,
  embed     cosine of the sample's MiniLM embedding to the mean target embedding (the baseline),

the top ``--fraction`` (20%) of the pool is selected and the demo target model is fine-tuned on it
(same optimiser, steps and batch order for every method at a given seed); the score is the mean
token loss on the target *validation* set (held-out Python-doc topics, disjoint from the campaign's
target data). ``none`` is the model before fine-tuning. "gain recovered" is
(loss_none − loss_method) / (loss_none − loss_exact).

Run:  python benchmarks/selection.py [--home MKT_HOME] [--campaign demo-python-docs] [--pool 1500]
Writes benchmarks/results/selection.md and selection.png.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

METHODS = ("alinfik", "exact", "random", "embed")


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
    from marketplace.approx.data import latest_label_set
    from marketplace.approx.encoder import load_encoder
    from marketplace.campaigns import get_campaign
    from marketplace.cli.common import open_db
    from marketplace.db import Label, Provider, RunStatus, Sample, Score, ScoreRun, TargetSample
    from marketplace.db.valuation import LabelSet
    from marketplace.valuation import LinFiKConfig, label_sample_ids

    _, factory = open_db()
    with factory() as session:
        camp = get_campaign(session, campaign_name)
        label_set: LabelSet = latest_label_set(session, camp.id)
        config = LinFiKConfig.model_validate(label_set.config)
        run = session.scalar(select(ScoreRun).where(ScoreRun.campaign_id == camp.id,
                                                    ScoreRun.status == RunStatus.COMPLETE)
                             .order_by(ScoreRun.id.desc()).limit(1))
        if run is None:
            raise SystemExit(f"campaign {campaign_name!r} has no complete score run: run `marketplace demo` first")
        version_id = run.approximator_version_id
        labeled = set(session.scalars(select(Label.sample_id).where(Label.label_set_id == label_set.id)))
        rows = session.execute(
            select(Sample.id, Sample.text, Sample.prompt_chars, Provider.name, Score.score)
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
    encoder = load_encoder(None, EmbedConfig())
    texts = [r.text for r in chosen]
    embed = predict_target_cosine(encoder.embed(texts), encoder.embed(targets))
    pool = Pool(
        sample_ids=np.asarray(ids), texts=texts, prompt_chars=[r.prompt_chars for r in chosen],
        providers=[r.name for r in chosen],
        scores={"alinfik": np.asarray([r.score for r in chosen], dtype=np.float64),
                "exact": np.asarray([exact[i] for i in ids], dtype=np.float64),
                "embed": np.asarray(embed, dtype=np.float64)},
    )
    return pool, camp, model_dir


def _select(pool: Pool, method: str, k: int, seed: int) -> np.ndarray:
    if method == "random":
        return np.random.default_rng(1000 + seed).choice(len(pool.texts), size=k, replace=False)
    order = np.argsort(-pool.scores[method], kind="stable")
    return order[:k]


def _mean_loss(model: Any, encoded: Any, batch_size: int) -> float:
    from marketplace.valuation.tokenization import per_sample_loss

    total = weight = 0.0
    with torch.inference_mode():
        for start in range(0, len(encoded.ids), batch_size):
            batch = encoded.batch(range(start, min(start + batch_size, len(encoded.ids))))
            logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
            n_tok = batch.loss_mask[:, 1:].sum(dim=1).to(torch.float64)
            total += float((per_sample_loss(logits, batch.input_ids, batch.loss_mask).to(torch.float64) * n_tok).sum())
            weight += float(n_tok.sum())
    return total / max(weight, 1.0)


def _finetune(model_dir: Path, encoded: Any, rows: np.ndarray, *, seed: int, epochs: int, lr: float,
              batch_size: int) -> Any:
    from transformers import AutoModelForCausalLM

    from marketplace.valuation.tokenization import per_sample_loss

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = rows[torch.randperm(len(rows), generator=gen).numpy()]
        for start in range(0, len(perm), batch_size):
            batch = encoded.batch(perm[start:start + batch_size])
            logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
            n_tok = batch.loss_mask[:, 1:].sum(dim=1).to(logits.dtype)
            loss = (per_sample_loss(logits, batch.input_ids, batch.loss_mask) * n_tok).sum() / n_tok.sum().clamp_min(1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    model.eval()
    return model


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    from marketplace.valuation.quality import spearman

    return float(spearman(a, b))


def _plot(results: dict[str, list[float]], none_loss: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    means = [float(np.mean(results[m])) for m in names]
    stds = [float(np.std(results[m])) for m in names]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    colours = ["#4C72B0", "#55A868", "#C44E52", "#8172B2", "#937860"]
    ax.bar(names, means, yerr=stds, capsize=4, color=colours[: len(names)])
    ax.axhline(none_loss, color="grey", linestyle="--", label="before fine-tuning")
    lo = min(min(means) - 2 * max([*stds, 0.0]), none_loss) - 0.02
    ax.set_ylim(lo, max(none_loss, max(means)) + 0.02)
    ax.set_ylabel("target validation loss (nats/token)")
    ax.set_title("Fine-tuning on the top 20% of the pool, by selector")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", type=Path, default=None, help="MKT_HOME of a finished `marketplace demo`.")
    ap.add_argument("--campaign", default="demo-python-docs")
    ap.add_argument("--pool", type=int, default=1500, help="Candidate pool size.")
    ap.add_argument("--fraction", type=float, default=0.2)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--full", action="store_true", help="Also fine-tune on the whole pool (reference).")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "selection.md")
    args = ap.parse_args()
    if args.home is not None:
        os.environ["MKT_HOME"] = str(args.home)
    torch.set_num_threads(args.threads)
    from marketplace.cli.common import apply_offline_env, settings
    from marketplace.valuation.target_model import load_target_model
    from marketplace.valuation.tokenization import encode_texts

    apply_offline_env()
    t_start = time.perf_counter()
    home = settings().home
    pool, camp, model_dir = _load_pool(args.campaign, args.pool, seed=12345, work_dir=home / "selection",
                                       chunk=250)
    target = load_target_model(model_dir)
    tok = target.tokenizer
    validation_path = home / "demo" / "default" / "corpus" / "target" / "validation.jsonl"
    if args.campaign != "demo-python-docs":
        validation_path = Path(camp.target_data_path).with_name("validation.jsonl")
    validation = [json.loads(line)["text"] for line in validation_path.read_text(encoding="utf-8").splitlines()
                  if line.strip()]
    val_enc = encode_texts(tok, validation, None, max_length=args.max_length)
    pool_enc = encode_texts(tok, pool.texts, pool.prompt_chars, max_length=args.max_length)
    none_loss = _mean_loss(target.model, val_enc, 32)
    _log(f"validation: {len(validation)} texts; loss before fine-tuning {none_loss:.4f}")

    k = max(1, round(args.fraction * len(pool.texts)))
    methods = list(METHODS) + (["all pool"] if args.full else [])
    losses: dict[str, list[float]] = {m: [] for m in methods}
    picked_providers: dict[str, dict[str, int]] = {}
    for seed in args.seeds:
        for method in methods:
            rows = np.arange(len(pool.texts)) if method == "all pool" else _select(pool, method, k, seed)
            if seed == args.seeds[0]:
                counts: dict[str, int] = {}
                for r in rows:
                    counts[pool.providers[r]] = counts.get(pool.providers[r], 0) + 1
                picked_providers[method] = counts
            t0 = time.perf_counter()
            model = _finetune(model_dir, pool_enc, np.asarray(rows), seed=seed, epochs=args.epochs, lr=args.lr,
                              batch_size=args.batch_size)
            loss = _mean_loss(model, val_enc, 32)
            losses[method].append(loss)
            _log(f"seed {seed} {method:>8}: validation loss {loss:.4f} ({time.perf_counter() - t0:.0f} s)")

    mean = {m: float(np.mean(v)) for m, v in losses.items()}
    exact_gain = none_loss - mean["exact"]
    s = pool.scores
    top = {m: set(_select(pool, m, k, args.seeds[0]).tolist()) for m in ("alinfik", "embed")}
    top_exact = set(_select(pool, "exact", k, args.seeds[0]).tolist())
    lines = [
        "# Data selection by valuation scores (benchmarks/selection.py)",
        "",
        f"Campaign `{args.campaign}` of a default `marketplace demo`; pool of {len(pool.texts)} unlabeled first-owner "
        f"samples; each selector keeps the top {args.fraction:.0%} ({k} samples). Fine-tuning: AdamW lr {args.lr:g}, "
        f"{args.epochs} epochs, batch {args.batch_size}, max {args.max_length} tokens, seeds {args.seeds}. "
        f"Validation: {len(validation)} held-out Python-doc topics (not the campaign's target data). "
        f"Wall time {time.perf_counter() - t_start:.0f} s on {torch.get_num_threads()} CPU threads.",
        "",
        "| selector | validation loss (mean ± sd) | per seed | gain vs none | gain recovered (of exact) |",
        "|---|---:|---|---:|---:|",
        f"| none (before fine-tuning) | {none_loss:.4f} | | 0 | 0% |",
    ]
    for m in methods:
        v = np.asarray(losses[m])
        gain = none_loss - v.mean()
        rec = f"{100 * gain / exact_gain:.0f}%" if exact_gain > 0 else "n/a"
        lines.append(f"| {m} | {v.mean():.4f} ± {v.std():.4f} | {', '.join(f'{x:.4f}' for x in v)} | "
                     f"{gain:.4f} | {rec} |")
    lines += [
        "",
        f"Agreement on the pool: Spearman(ALinFiK, exact) = {_spearman(s['alinfik'], s['exact']):.3f}, "
        f"Spearman(embedding cosine, exact) = {_spearman(s['embed'], s['exact']):.3f}; overlap of the top "
        f"{args.fraction:.0%} with exact's: ALinFiK {len(top['alinfik'] & top_exact) / k:.0%}, "
        f"embedding {len(top['embed'] & top_exact) / k:.0%}.",
        "",
        "Selected samples by provider (first seed):",
        "",
        "| selector | " + " | ".join(sorted({p for c in picked_providers.values() for p in c})) + " |",
        "|---|" + "---:|" * len({p for c in picked_providers.values() for p in c}),
    ]
    provs = sorted({p for c in picked_providers.values() for p in c})
    for m, c in picked_providers.items():
        lines.append(f"| {m} | " + " | ".join(str(c.get(p, 0)) for p in provs) + " |")
    verdict_between = mean["alinfik"] < mean["random"]
    lines += [
        "",
        "## Verdict",
        "",
        f"- ALinFiK beats random: **{'yes' if verdict_between else 'no'}** "
        f"({mean['alinfik']:.4f} vs {mean['random']:.4f}).",
        f"- ALinFiK recovers {100 * (none_loss - mean['alinfik']) / exact_gain:.0f}% of exact LinFiK's gain"
        if exact_gain > 0 else "- exact LinFiK selection did not lower the validation loss",
        "",
        "![selection](selection.png)",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    _plot({m: losses[m] for m in methods}, none_loss, args.out.with_suffix(".png"))


if __name__ == "__main__":
    main()
