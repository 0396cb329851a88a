"""ALinFiK scoring throughput, in one run:

(a) embedding with MiniLM: our path (tokenise once, length-sorted batches, inference_mode) in float32,
    bf16 autocast and int8 dynamic quantisation, against a naive baseline (input order, batches padded
    to their longest text, no_grad) and against the encoder's forward-pass limit (the bare model
    forward on pre-tokenised, length-sorted, pre-padded batches: no tokeniser, no pooling);
    plus, per precision, the held-out Spearman of an approximator trained on those embeddings (the
    quality cost of bf16/int8, goal: within 0.01 of float32);
(b) head-only re-scoring of cached embeddings: N (default 1,000,000) float16 vectors in the embedding
    store → index lookup by content hash → the fused 5-head ensemble, against a per-sample Python loop
    (the baseline, extrapolated); goal: 1M samples in < 30 s on 2 cores;
(c) exact LinFiK labeling (``marketplace.valuation.label_sample_ids``) on a small target model,
    after its target query is cached;
(t) the length factor T(x)/L of a token-weighted model (needs ``--target-model``): N token counts read
    from the count store (what a re-score with a new version does), against counting them with the
    target tokenizer (the baseline, measured on real texts and extrapolated).

    python benchmarks/scoring.py [--n-embed 1024] [--n-score 1000000] [--n-quality 1500] [--n-label 128]
                                 [--target-model DIR] [--labels-home MKT_HOME --campaign NAME] [--threads 2]

Quality labels: with ``--labels-home/--campaign`` the newest complete label set of that campaign (real
LinFiK); otherwise a proxy label (topic relevance of Python-documentation paragraphs, see
tests/support/approx.py) — stated in the table. Prints Markdown and writes benchmarks/results/scoring.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _common import ROOT

RESULTS = ROOT / "benchmarks" / "results" / "scoring.md"


def _timed(fn: Callable[[], Any], repeat: int = 1) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def _texts(n: int) -> list[str]:
    from tests.support.approx import pydoc_paragraphs

    pool = list(pydoc_paragraphs())
    return [pool[i % len(pool)] for i in range(n)]


# --- (a) embedding -------------------------------------------------------------------------------------


def bench_embedding(n: int) -> list[dict[str, Any]]:
    from marketplace.approx.config import EmbedConfig
    from marketplace.approx.encoder import load_encoder, pool_embeddings

    texts = _texts(n)
    rows: list[dict[str, Any]] = []
    enc = load_encoder(None, EmbedConfig(batch_size=64, features="pooled"))
    ids = enc.tokenize(texts)
    n_tokens = sum(len(x) for x in ids)

    def naive() -> np.ndarray:
        out = []
        with torch.no_grad():
            for start in range(0, n, 64):
                batch = enc.tokenizer(texts[start : start + 64], padding=True, truncation=True, max_length=256,
                                      return_tensors="pt")
                hidden = enc.model(**batch).last_hidden_state
                out.append(pool_embeddings(hidden, batch["attention_mask"]).numpy())
        return np.concatenate(out)

    order = np.argsort([len(x) for x in ids], kind="stable")
    batches = [enc.pad([ids[i] for i in order[s : s + 64]]) for s in range(0, n, 64)]

    def forward_only() -> None:
        with torch.inference_mode():
            for input_ids, mask in batches:
                enc.model(input_ids=input_ids, attention_mask=mask)

    t_limit, _ = _timed(forward_only)
    t_naive, ref = _timed(naive)
    rows.append({"what": "naive baseline (input order, no_grad), float32", "s": t_naive, "n": n})
    rows.append({"what": "forward-pass limit (pre-tokenised, sorted, padded), float32", "s": t_limit, "n": n})
    for precision in ("float32", "bfloat16", "int8"):
        e = load_encoder(None, EmbedConfig(batch_size=64, precision=precision, features="pooled"))  # type: ignore[arg-type]
        t, emb = _timed(lambda e=e: e.embed(texts))
        cos = float(np.mean(np.sum(emb * ref, axis=1)))
        rows.append({"what": f"ours (tokenise once, length-sorted, inference_mode), {precision}", "s": t, "n": n,
                     "cos_vs_fp32": cos, "precision": precision})
    full = load_encoder(None, EmbedConfig(batch_size=64, layer=-1, features="pooled"))
    t_full, _ = _timed(lambda: full.embed(texts))
    rows.append({"what": "ours, float32, all 6 blocks (layer -1, the sentence-transformers output)", "s": t_full,
                 "n": n})
    for r in rows:
        r["per_s"] = r["n"] / r["s"]
        r["vs_limit"] = t_limit / r["s"]
    print(f"(a) {n} texts, {n_tokens / n:.0f} tokens per text on average", file=sys.stderr)
    return rows


# The default (MiniLM pooled at block 4) in three precisions, and float32 at the last block (the
# sentence-transformers embedding) to show what the block choice is worth.
QUALITY_VARIANTS: dict[str, dict[str, Any]] = {
    "float32": {},
    "bfloat16": {"precision": "bfloat16"},
    "int8": {"precision": "int8"},
    "float32, last block (layer -1)": {"layer": -1},
}


def quality_by_precision(n: int, labels_home: str | None, campaign: str | None) -> tuple[str, dict[str, float]]:
    """Held-out Spearman of the default approximator trained on embeddings of each precision."""
    from marketplace.approx.config import ApproxConfig, EmbedConfig
    from marketplace.approx.data import LabeledData, load_labeled_data
    from marketplace.approx.training import train_approximator

    if labels_home and campaign:
        from marketplace.campaigns import get_campaign
        from marketplace.db import create_db_engine, make_session_factory

        engine = create_db_engine(f"sqlite:///{Path(labels_home) / 'marketplace.db'}")
        with make_session_factory(engine)() as s:
            data = load_labeled_data(s, get_campaign(s, campaign).id)
        source = f"real LinFiK labels (campaign {campaign}, label set {data.label_set_id}, n={len(data)})"
    else:
        from tests.support.approx import content_hash, proxy_label, pydoc_paragraphs

        texts = list(pydoc_paragraphs()[:n])
        hashes = [content_hash(t) for t in texts]
        data = LabeledData(0, "bench", 0, np.arange(len(texts)), hashes, texts,
                           np.array([proxy_label(t) for t in texts]), hashes[:8], texts[:8], {})
        source = f"proxy labels (topic relevance of Python-doc paragraphs, n={len(texts)})"
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for variant, embed in QUALITY_VARIANTS.items():
            cfg = ApproxConfig(embed=EmbedConfig(**embed))  # type: ignore[arg-type]
            res = train_approximator(data, cfg, store_root=Path(tmp) / "emb", run_dir=Path(tmp) / variant)
            out[variant] = res.metrics["approx_spearman"]
            out[f"tfidf_{variant}"] = res.metrics["tfidf_ridge_spearman"]
            out[f"cosine_{variant}"] = res.metrics["target_cosine_spearman"]
    return source, out


# --- (b) head-only scoring -------------------------------------------------------------------------------


def bench_head_scoring(n: int, shard_rows: int = 100_000) -> list[dict[str, Any]]:
    from marketplace.approx.config import ApproxConfig
    from marketplace.approx.embedding_store import EmbeddingStore
    from marketplace.approx.heads import HeadEnsemble, predict_numpy

    cfg = ApproxConfig()
    gen = torch.Generator().manual_seed(0)
    heads = HeadEnsemble(cfg.n_heads, 384, cfg.hidden_dim, cfg.dropout, gen).eval()
    params = {k: v.detach().numpy() for k, v in heads.state_dict().items()}
    rng = np.random.default_rng(0)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        store = EmbeddingStore(tmp, "bench", {"encoder_digest": "bench"}, 384)
        keys = [f"{i:064x}" for i in range(n)]
        t_write = 0.0
        for start in range(0, n, shard_rows):
            x = rng.standard_normal((min(shard_rows, n - start), 384), dtype=np.float32)
            x /= np.linalg.norm(x, axis=1, keepdims=True)
            t0 = time.perf_counter()
            store.put(keys[start : start + shard_rows], x)
            t_write += time.perf_counter() - t0
        fresh = EmbeddingStore(tmp, "bench", {"encoder_digest": "bench"}, 384)  # a new process's view
        t_index, _ = _timed(fresh.refresh)
        t_get, emb = _timed(lambda: fresh.get(keys))
        t_head, scores = _timed(lambda: predict_numpy(params, emb))
        rows.append({"what": f"store index build ({n:,} keys, {n // shard_rows} shards, cold)", "s": t_index, "n": n})
        rows.append({"what": "lookup by content hash + gather float16 rows", "s": t_get, "n": n})
        rows.append({"what": f"fused {cfg.n_heads}-head ensemble (D=384, H={cfg.hidden_dim}), float32", "s": t_head,
                     "n": n})
        rows.append({"what": "re-score total: index + lookup + heads", "s": t_index + t_get + t_head, "n": n})
        # Baseline: the module, one sample at a time (what a per-sample Python loop costs).
        m = 3000
        xs = torch.as_tensor(emb[:m].astype(np.float32))

        def loop() -> list[float]:
            with torch.no_grad():
                return [float(heads(xs[i : i + 1]).mean()) for i in range(m)]

        t_loop, slow = _timed(loop)
        np.testing.assert_allclose(np.array(slow), scores[:, :m].mean(axis=0), rtol=1e-4, atol=1e-5)
        rows.append({"what": f"baseline: per-sample loop (measured on {m:,}, extrapolated)", "s": t_loop * n / m,
                     "n": n})
        print(f"(b) writing {n:,} float16 embeddings took {t_write:.1f} s (not part of re-scoring)", file=sys.stderr)
    for r in rows:
        r["per_s"] = r["n"] / r["s"]
    return rows


# --- (t) token factor ------------------------------------------------------------------------------------


def bench_token_factor(n: int, target_model: str, m: int = 20_000, shard_rows: int = 100_000) -> list[dict[str, Any]]:
    from marketplace.approx.token_factor import TokenFactor, count_key, open_count_store

    factor = TokenFactor.from_target_model(target_model, 256)
    texts = _texts(m)
    t_count, counts = _timed(lambda: factor.counts(texts))
    rng = np.random.default_rng(0)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        store = open_count_store(tmp, factor)
        keys = [count_key(f"{i:064x}", None) for i in range(n)]
        for start in range(0, n, shard_rows):
            chunk = keys[start : start + shard_rows]
            store.put(chunk, rng.choice(counts, size=len(chunk)).astype(np.float32)[:, None])
        fresh = open_count_store(tmp, factor)  # a new process's view
        t_cached, w = _timed(lambda: factor.weights_cached(fresh, keys, {}, [None] * n))
        assert w.shape == (n,) and np.all(w > 0)
    rows.append({"what": f"token factor from the count store (index + lookup, {n:,} keys, cold)", "s": t_cached,
                 "n": n})
    rows.append({"what": f"baseline: counting with the target tokenizer (measured on {m:,} texts, extrapolated)",
                 "s": t_count * n / m, "n": n})
    for r in rows:
        r["per_s"] = r["n"] / r["s"]
    return rows


# --- (c) exact LinFiK --------------------------------------------------------------------------------------


def bench_exact_labeling(n: int, target_model: str | None) -> tuple[list[dict[str, Any]], str]:
    from marketplace.db import Campaign, create_db_engine, make_session_factory
    from marketplace.db.migrate import upgrade
    from marketplace.valuation import LinFiKConfig, label_sample_ids
    from marketplace.valuation.demo_model import DemoModelConfig, build_demo_model
    from marketplace.valuation.target_model import digest_model_dir
    from tests.support.approx import make_labeled_campaign

    with tempfile.TemporaryDirectory() as tmp:
        if target_model is None:
            cfg = DemoModelConfig(train_steps=30, text_chars=200_000, vocab_size=4096)
            target_model = str(build_demo_model(Path(tmp) / "model", cfg, seed=0).path)
            note = "a small demo GPT-2 (4 layers, d=128, 30 training steps) built for this run"
        else:
            note = f"target model {target_model}"
        engine = create_db_engine(f"sqlite:///{tmp}/bench.db")
        upgrade(engine)
        factory = make_session_factory(engine)
        with factory() as s, s.begin():
            fx = make_labeled_campaign(s, n_samples=n + 16, n_labeled=8)
            camp = s.get(Campaign, fx.campaign_id)
            assert camp is not None
            camp.target_model_path = target_model
            camp.target_model_digest = digest_model_dir(target_model)
        config = LinFiKConfig()
        ids = fx.first_owner_ids[:n]
        with factory() as s:
            t_first, _ = _timed(lambda: label_sample_ids(s, fx.campaign_id, ids[:8], config, work_dir=Path(tmp)))
            t, _ = _timed(lambda: label_sample_ids(s, fx.campaign_id, ids, config, work_dir=Path(tmp)))
    rows = [{"what": f"exact LinFiK (LoGra rank 64×64, identity), {len(ids)} samples, query cached", "s": t,
             "n": len(ids), "per_s": len(ids) / t}]
    return rows, f"{note}; first call (model load + target query) took {t_first:.1f} s"


# --- report ------------------------------------------------------------------------------------------------


def _table(rows: list[dict[str, Any]], extra: tuple[str, ...] = ()) -> list[str]:
    head = ["what", "samples", "seconds", "samples/s", *extra]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["what"], f"{r['n']:,}", f"{r['s']:.2f}", f"{r['per_s']:,.0f}"]
        for key in extra:
            v = r.get(key)
            cells.append("" if v is None else f"{v:.3f}")
        out.append("| " + " | ".join(cells) + " |")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-embed", type=int, default=1024)
    parser.add_argument("--n-score", type=int, default=1_000_000)
    parser.add_argument("--n-quality", type=int, default=1500)
    parser.add_argument("--n-label", type=int, default=128)
    parser.add_argument("--target-model", default=None)
    parser.add_argument("--labels-home", default=None)
    parser.add_argument("--campaign", default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip", default="", help="comma list of parts to skip: a,q,b,c,t")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    skip = set(args.skip.split(","))
    lines = [
        "# ALinFiK scoring benchmark",
        "",
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs visible, torch {torch.__version__} "
        f"with {args.threads} threads, {time.strftime('%Y-%m-%d %H:%M')}. Command: "
        f"`python benchmarks/scoring.py {' '.join(sys.argv[1:])}`",
        "",
    ]
    if "a" not in skip:
        emb = bench_embedding(args.n_embed)
        lines += ["## (a) Embedding (all-MiniLM-L6-v2 pooled at block 4 unless stated, max 256 tokens, batch 64)", "",
                  *_table(emb, ("vs_limit", "cos_vs_fp32")), "",
                  "`vs_limit`: throughput as a fraction of the bare forward pass; `cos_vs_fp32`: mean cosine "
                  "between these embeddings and the float32 ones.", ""]
    if "q" not in skip:
        source, q = quality_by_precision(args.n_quality, args.labels_home, args.campaign)
        lines += ["## Quality by embedding precision and block (held-out Spearman of the default approximator)", "",
                  f"Labels: {source}.", "", "| embedding | ALinFiK | Δ vs float32 | TF-IDF + ridge | target cosine |",
                  "|---|---|---|---|---|"]
        for p in QUALITY_VARIANTS:
            lines.append(f"| {p} | {q[p]:.4f} | {q[p] - q['float32']:+.4f} | {q[f'tfidf_{p}']:.4f} | "
                         f"{q[f'cosine_{p}']:.4f} |")
        lines.append("")
    if "b" not in skip:
        head = bench_head_scoring(args.n_score)
        lines += ["## (b) Head-only re-scoring of cached embeddings", "", *_table(head), ""]
    if "c" not in skip:
        exact, note = bench_exact_labeling(args.n_label, args.target_model)
        lines += ["## (c) Exact LinFiK labeling", "", f"{note}.", ""]
        lines += [*_table(exact), ""] if exact else []
    if "t" not in skip and args.target_model:
        tokens = bench_token_factor(args.n_score, args.target_model)
        lines += ["## (t) Length factor of a token-weighted model (T(x)/L, re-scoring with a new version)", "",
                  *_table(tokens), ""]
    text = "\n".join(lines)
    print(text)
    if not ({"a", "q", "b", "c", "t"} & skip):
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(text + "\n", encoding="utf-8")
    elif {"a", "q", "b", "c"} <= skip and "t" not in skip and args.target_model:
        (RESULTS.parent / "scoring_tokens.md").write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
