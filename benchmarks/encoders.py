"""Encoders for ALinFiK side by side, in one run: quality on the demo's labels and scoring throughput.

(q) held-out quality: each candidate encoder (MiniLM float32 and int8, the static table distilled from
    MiniLM, hashed word-piece n-grams) trains the default approximator on the demo campaign's newest
    complete label set, with the training's own split (``split_indices``: the same held-out rows for
    every candidate) and the same head config; held-out Spearman in the labels' units, for the
    per-token value, a paired bootstrap of the difference to MiniLM float32 (same resampled rows), and
    the TF-IDF + ridge baseline of the same split. The cascade (cascade.py) is evaluated on the same
    held-out rows: the static model scores all, MiniLM float32 re-scores the rule's picks.
(e) embedding throughput per encoder on texts of the demo pool (texts/s).
(t) end to end: N samples (default 100,000; demo-pool texts, each with a unique numeric suffix so no
    two share a cache entry) in a fresh database → ``start_score_run`` → per shard ``load_shard`` →
    ``compute_shard`` (embedding cache, token factor with its count store, heads) → ``write_shard``,
    exactly the calls of the score flow's shard task; with the static model, then again with a new
    version of it (a re-score: every embedding and count cached); the baseline is the same path with
    the MiniLM float32 model on a smaller N, in the same run.

    python benchmarks/encoders.py --home MKT_HOME [--campaign demo-python-docs] [--n-e2e 100000]
                                  [--n-baseline 300] [--postgres SERVER_URL] [--threads 2] [--skip q,e,t]

``MKT_HOME`` is the home of a finished ``marketplace demo`` (its database, labels and target model).
Prints Markdown and writes benchmarks/results/encoders.md (only when nothing is skipped).
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
from _common import ROOT, add_demo_home_args, publish_report

RESULTS = ROOT / "benchmarks" / "results" / "encoders.md"

# name -> EmbedConfig fields. The first is the reference every difference is taken against.
CANDIDATES: dict[str, dict[str, Any]] = {
    "MiniLM float32 (default features)": {},
    "MiniLM int8 (default features)": {"precision": "int8"},
    "static (distilled from MiniLM, 256 d)": {"encoder": "static"},
    "hashed word-piece 1-2 grams (1024 d)": {"encoder": "hashed"},
}
REFERENCE, FAST = "MiniLM float32 (default features)", "static (distilled from MiniLM, 256 d)"
CASCADE_RULES = ((0.0, 0.05), (0.05, 0.0), (0.05, 0.05), (0.10, 0.10), (0.20, 0.20))


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def _open_home(home: Path) -> Any:
    from marketplace.db import create_db_engine, make_session_factory

    db = home / "marketplace.db"
    if not db.is_file():
        sys.exit(f"{db} does not exist; pass --home the MKT_HOME of a finished `marketplace demo`")
    return make_session_factory(create_db_engine(f"sqlite:///{db}"))


def _pool_texts(factory: Any, n: int, seed: int = 0) -> list[str]:
    from sqlalchemy import select

    from marketplace.db import Sample

    with factory() as s:
        texts = list(s.scalars(select(Sample.text).order_by(Sample.id)))
    rng = np.random.default_rng(seed)
    return [texts[i] for i in rng.choice(len(texts), size=n, replace=len(texts) < n)]


# --- (q) quality ---------------------------------------------------------------------------------------------


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def _bootstrap_diff(pred: np.ndarray, ref: np.ndarray, y: np.ndarray, n_boot: int = 1000) -> tuple[float, float]:
    """95% interval of Spearman(pred, y) − Spearman(ref, y) over paired resamples of the held-out rows."""
    from scipy.stats import rankdata

    rng = np.random.default_rng(0)
    diffs = np.empty(n_boot)
    for b in range(n_boot):
        idx = rng.integers(0, y.size, y.size)
        ry = rankdata(y[idx])
        diffs[b] = np.corrcoef(rankdata(pred[idx]), ry)[0, 1] - np.corrcoef(rankdata(ref[idx]), ry)[0, 1]
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return float(lo), float(hi)


def bench_quality(factory: Any, campaign: str, work: Path) -> tuple[str, list[dict[str, Any]], list[dict[str, Any]],
                                                                   dict[str, Path]]:
    import pandas as pd

    from marketplace.approx.config import ApproxConfig, EmbedConfig
    from marketplace.approx.data import load_labeled_data
    from marketplace.approx.training import train_approximator
    from marketplace.campaigns import get_campaign

    with factory() as s:
        data = load_labeled_data(s, get_campaign(s, campaign).id)
    rows: list[dict[str, Any]] = []
    holdouts: dict[str, pd.DataFrame] = {}
    bundles: dict[str, Path] = {}
    for name, embed in CANDIDATES.items():
        cfg = ApproxConfig(embed=EmbedConfig(**embed))
        t, res = _timed(lambda cfg=cfg, name=name: train_approximator(
            data, cfg, store_root=work / "emb", run_dir=work / "runs" / str(len(bundles))))
        holdouts[name] = pd.read_parquet(res.holdout_path)
        bundles[name] = res.bundle_dir
        m = res.metrics
        rows.append({"name": name, "spearman": m["approx_spearman"], "per_token": m.get("approx_per_token_spearman"),
                     "tfidf": m["tfidf_ridge_spearman"], "n_test": res.n_test, "train_s": t})
        print(f"(q) {name}: held-out Spearman {m['approx_spearman']:.4f} ({t:.0f} s)", file=sys.stderr)
    ref = holdouts[REFERENCE]
    y = ref["label"].to_numpy()
    for r in rows:
        h = holdouts[r["name"]]
        assert (h["sample_id"].to_numpy() == ref["sample_id"].to_numpy()).all(), "held-out rows differ"
        r["delta"] = r["spearman"] - rows[0]["spearman"]
        r["ci"] = _bootstrap_diff(h["prediction"].to_numpy(), ref["prediction"].to_numpy(), y) if r is not rows[0] \
            else None
    cascade = bench_cascade(holdouts[FAST]["prediction"].to_numpy(), ref["prediction"].to_numpy(), y)
    weighting = data.weighting
    source = (f"campaign {campaign}, label set {data.label_set_id}: {len(data)} exact LinFiK labels "
              f"({weighting}-weighted), {rows[0]['n_test']} held out by the training's own split")
    return source, rows, cascade, bundles


def bench_cascade(fast: np.ndarray, slow: np.ndarray, y: np.ndarray) -> list[dict[str, Any]]:
    from marketplace.approx.cascade import CascadeRule, combine_cascade, pick_for_rescoring

    out = []
    for q, b in CASCADE_RULES:
        picked = pick_for_rescoring(fast, CascadeRule(q, b))
        scores = combine_cascade(fast, picked, slow[picked])
        out.append({"q": q, "b": b, "share": picked.size / fast.size, "spearman": _spearman(scores, y)})
    return out


# --- (e) embedding throughput ---------------------------------------------------------------------------------


def bench_embedding(texts: list[str], n_slow: int, work: Path) -> list[dict[str, Any]]:
    from marketplace.approx.config import EmbedConfig
    from marketplace.approx.encoder import open_encoder

    rows = []
    for name, embed in CANDIDATES.items():
        cfg = EmbedConfig(**embed)
        enc = open_encoder(None, cfg, cache_dir=work / "emb")
        n = n_slow if cfg.encoder == "transformer" else len(texts)
        enc.embed(texts[:64])  # warm-up (lazy initialisation, thread pools)
        c0 = time.process_time()
        t, _ = _timed(lambda enc=enc, n=n: enc.embed(texts[:n]))
        rows.append({"name": name, "n": n, "s": t, "per_s": n / t, "per_cpu_s": n / (time.process_time() - c0)})
        print(f"(e) {name}: {n / t:,.0f} texts/s", file=sys.stderr)
    return rows


# --- (t) end to end -----------------------------------------------------------------------------------------------


def _scoring_db(url: str | None, work: Path, texts: list[str]) -> tuple[Any, int, int]:
    """A fresh, migrated database with the benchmark's samples, a campaign, a label set and its model row:
    SQLite under ``work``, or (``url`` given) a new PostgreSQL database of that server (dropped by
    :func:`_drop_postgres`)."""
    from sqlalchemy import insert

    from marketplace.db import Sample, Submission, create_db_engine, make_session_factory
    from marketplace.db.migrate import upgrade
    from tests.support.approx import content_hash, make_labeled_campaign

    engine = create_db_engine(f"sqlite:///{work / 'score.db'}" if url is None else url)
    upgrade(engine)
    factory = make_session_factory(engine)
    with factory() as s, s.begin():
        fx = make_labeled_campaign(s, n_samples=12, n_labeled=8, n_duplicates=0)
        first = s.get(Sample, fx.sample_ids[0])
        assert first is not None
        sub = s.get(Submission, first.submission_id)
        assert sub is not None
        rows = [{"submission_id": sub.id, "provider_id": first.provider_id, "record_index": 1000 + i, "text": t,
                 "content_hash": content_hash(t), "n_chars": len(t)} for i, t in enumerate(texts)]
        for start in range(0, len(rows), 20_000):
            s.execute(insert(Sample), rows[start : start + 20_000])
    return factory, fx.campaign_id, fx.label_set_id


def _admin_engine(server_url: str) -> Any:
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    url = make_url(server_url)
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")  # the project's driver (psycopg 3)
    return create_engine(url, isolation_level="AUTOCOMMIT")


def _fresh_postgres(server_url: str) -> str:
    """CREATE DATABASE bench_encoders_<random> on the server of ``server_url``; returns its URL."""
    import uuid

    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    name = f"bench_encoders_{uuid.uuid4().hex[:8]}"
    admin = _admin_engine(server_url)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def _drop_postgres(server_url: str, url: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    admin = _admin_engine(server_url)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
    admin.dispose()


def _new_version(factory: Any, campaign_id: int, label_set_id: int, version: str) -> int:
    from marketplace.db import ApproximatorVersion

    with factory() as s, s.begin():
        row = ApproximatorVersion(campaign_id=campaign_id, label_set_id=label_set_id, model_name="bench",
                                  version=version, model_uri=f"models:/bench/{version}", mlflow_run_id="bench",
                                  metrics={})
        s.add(row)
        s.flush()
        return row.id


def _score_all(factory: Any, campaign_id: int, version_id: int, bundle: Path, store_root: Path,
               shard_size: int) -> dict[str, float]:
    """The score flow's work for every unscored sample, shard by shard; seconds per phase."""
    from marketplace.approx.scoring import compute_shard, load_shard, open_scorer, start_score_run, write_shard

    t0, c0 = time.perf_counter(), time.process_time()
    approx, store, counts = open_scorer(bundle, store_root)
    with factory() as s, s.begin():
        plan = start_score_run(s, campaign_id, version_id, resolved_from="bench", shard_size=shard_size)
    phases = {"open+plan": time.perf_counter() - t0, "load": 0.0, "compute": 0.0, "write": 0.0}
    written = 0
    for lo, hi in plan.shards:
        t1 = time.perf_counter()
        with factory() as s:
            shard = load_shard(s, plan.score_run_id, lo, hi, is_cached=store.contains if store else None,
                               counts_cached=counts.contains if counts else None)
        t2 = time.perf_counter()
        scores = compute_shard(shard, approx, store, counts)
        t3 = time.perf_counter()
        with factory() as s, s.begin():
            written += write_shard(s, scores)
        t4 = time.perf_counter()
        phases["load"] += t2 - t1
        phases["compute"] += t3 - t2
        phases["write"] += t4 - t3
    phases["total"] = time.perf_counter() - t0
    phases["cpu"] = time.process_time() - c0  # this process, all its threads (a PostgreSQL server's CPU is not in it)
    phases["n"] = float(written)
    if written != plan.n_todo:
        raise RuntimeError(f"scored {written} of {plan.n_todo} samples")
    return phases


def bench_end_to_end(pool: list[str], n: int, n_baseline: int, bundles: dict[str, Path], url: str | None,
                     shard_size: int, work: Path) -> list[dict[str, Any]]:
    texts = [f"{pool[i % len(pool)]} ({i})" for i in range(n)]
    rows = []
    for engine_name, server_url in (("SQLite", None), ("PostgreSQL", url)):
        if engine_name == "PostgreSQL" and url is None:
            continue
        store_root = work / f"e2e-{engine_name}"
        engine_url = None if server_url is None else _fresh_postgres(server_url)
        try:
            factory, campaign_id, label_set_id = _scoring_db(engine_url, work, texts)
        except BaseException:
            if server_url is not None and engine_url is not None:
                _drop_postgres(server_url, engine_url)
            raise
        v1 = _new_version(factory, campaign_id, label_set_id, "1")
        first = _score_all(factory, campaign_id, v1, bundles[FAST], store_root, shard_size)
        rows.append({"what": f"{engine_name}: static, first score (embed, count and cache every text)", **first})
        v2 = _new_version(factory, campaign_id, label_set_id, "2")
        again = _score_all(factory, campaign_id, v2, bundles[FAST], store_root, shard_size)
        rows.append({"what": f"{engine_name}: static, a new version re-scores (embeddings and counts cached)",
                     **again})
        print(f"(t) {engine_name}: {first['n'] / first['total']:,.0f} samples/s first, "
              f"{again['n'] / again['total']:,.0f} re-score", file=sys.stderr)
        if server_url is not None and engine_url is not None:
            factory.kw["bind"].dispose()
            _drop_postgres(server_url, engine_url)
        if engine_name == "SQLite":
            (work / "baseline").mkdir()
            base_factory, b_campaign, b_label_set = _scoring_db(None, work / "baseline", texts[:n_baseline])
            vb = _new_version(base_factory, b_campaign, b_label_set, "1")
            base = _score_all(base_factory, b_campaign, vb, bundles[REFERENCE], work / "e2e-baseline", shard_size)
            rows.append({"what": "SQLite: baseline, MiniLM float32, first score", **base})
    for r in rows:
        r["per_s"] = r["n"] / r["total"]
        r["per_cpu_s"] = r["n"] / r["cpu"]
    return rows


# --- report -------------------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_demo_home_args(ap)
    ap.add_argument("--n-e2e", type=int, default=100_000)
    ap.add_argument("--n-baseline", type=int, default=300)
    ap.add_argument("--n-embed", type=int, default=10_000)
    ap.add_argument("--n-embed-slow", type=int, default=200)
    ap.add_argument("--shard-size", type=int, default=2_000)
    ap.add_argument("--postgres", default=None,
                    help="a PostgreSQL server URL (e.g. postgresql://postgres@127.0.0.1:5432/postgres): a fresh "
                         "database is created on it for the run and dropped after")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip", default="", help="comma list of parts to skip: q,e,t")
    args = ap.parse_args()
    if args.home is None:
        sys.exit("pass --home, the MKT_HOME of a finished `marketplace demo`")
    torch.set_num_threads(args.threads)
    skip = set(filter(None, args.skip.split(",")))
    factory = _open_home(args.home)
    load = os.getloadavg()[0]
    lines = [
        "# Encoders for ALinFiK: quality and scoring throughput (benchmarks/encoders.py)",
        "",
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs visible, torch {torch.__version__} "
        f"with {args.threads} threads, load average {load:.1f} at the start, {time.strftime('%Y-%m-%d %H:%M')}. "
        f"Command: `python benchmarks/encoders.py {' '.join(sys.argv[1:])}`",
        "",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        bundles: dict[str, Path] = {}
        if "q" not in skip or "t" not in skip:
            source, quality, cascade, bundles = bench_quality(factory, args.campaign, work)
            lines += _quality_lines(source, quality, cascade)
        if "e" not in skip:
            emb = bench_embedding(_pool_texts(factory, args.n_embed), args.n_embed_slow, work)
            lines += ["## (e) Embedding throughput (texts of the demo pool)", "",
                      "| encoder | texts | seconds | texts/s | texts/CPU-s | vs MiniLM float32 |",
                      "|---|---:|---:|---:|---:|---:|"]
            lines += [f"| {r['name']} | {r['n']:,} | {r['s']:.2f} | {r['per_s']:,.0f} | {r['per_cpu_s']:,.0f} | "
                      f"{r['per_s'] / emb[0]['per_s']:,.1f}× |" for r in emb]
            lines.append("")
        if "t" not in skip:
            e2e = bench_end_to_end(_pool_texts(factory, 20_000, seed=1), args.n_e2e, args.n_baseline, bundles,
                                   args.postgres, args.shard_size, work)
            lines += ["## (t) End to end: texts in the database → scores in the database", "",
                      f"Shards of {args.shard_size:,}; load = `load_shard`, compute = `compute_shard` (embedding "
                      "cache, embedding of misses, token factor with its count store, heads), write = `write_shard`.",
                      "`samples/CPU-s`: samples per CPU-second of the scoring process (all its threads): what the path "
                      "costs, whatever else the machine was running.",
                      "", "| run | samples | open+plan s | load s | compute s | write s | total s | samples/s | "
                      "samples/CPU-s |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
            lines += [f"| {r['what']} | {int(r['n']):,} | {r['open+plan']:.1f} | {r['load']:.1f} | "
                      f"{r['compute']:.1f} | {r['write']:.1f} | {r['total']:.1f} | {r['per_s']:,.0f} | "
                      f"{r['per_cpu_s']:,.0f} |" for r in e2e]
            lines.append("")
    text = publish_report(lines, RESULTS) if not skip else "\n".join(lines)
    if skip:
        print(text)


def _quality_lines(source: str, quality: list[dict[str, Any]], cascade: list[dict[str, Any]]) -> list[str]:
    lines = ["## (q) Held-out quality (default approximator per encoder, same split, same heads)", "",
             f"Labels: {source}.", "",
             "| encoder | held-out Spearman | Δ vs MiniLM float32 | 95% paired bootstrap of Δ | per-token value | "
             "TF-IDF + ridge (same split) | train s |", "|---|---:|---:|---|---:|---:|---:|"]
    for r in quality:
        ci = "" if r["ci"] is None else f"[{r['ci'][0]:+.3f}, {r['ci'][1]:+.3f}]"
        per_token = "" if r["per_token"] is None else f"{r['per_token']:.4f}"
        lines.append(f"| {r['name']} | {r['spearman']:.4f} | {r['delta']:+.4f} | {ci} | {per_token} | "
                     f"{r['tfidf']:.4f} | {r['train_s']:.0f} |")
    lines += ["", "Cascade (cascade.py) on the same held-out rows: the static model scores every sample; MiniLM "
              "float32 re-scores the top q by static score and the b nearest the pricing threshold (0).", "",
              "| q (top) | b (band) | share re-scored | held-out Spearman |", "|---:|---:|---:|---:|"]
    lines += [f"| {c['q']:.2f} | {c['b']:.2f} | {c['share']:.1%} | {c['spearman']:.4f} |" for c in cascade]
    lines.append("")
    return lines


if __name__ == "__main__":
    main()
