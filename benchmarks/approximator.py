"""Approximator choices on real labels: pooled encoder block and early-stopping metric, over head seeds.

    python benchmarks/approximator.py --market small=HOME_A:demo-python-docs-small \\
                                      --market default=HOME_B:demo-python-docs [--layers 2 3 4] \\
                                      [--stopping spearman mse] [--seeds 0 1 2]

For each market (``NAME=MKT_HOME:CAMPAIGN``, the home of a finished ``marketplace demo`` or
``benchmarks/second_market.py`` run): the campaign's latest label set, the product's own steps in the
order ``marketplace train`` runs them (token factor, content-hash test split, label scaler fitted on the
training split, MiniLM embeddings pooled at each block, the head ensemble, predictions times the token
factor), and the held-out Spearman in the labels' units for every block x early-stopping metric x head
seed, next to TF-IDF + ridge on the same split. The seed moves the validation split and the heads'
initialisation, not the test split, so the spread over seeds is how much a choice depends on luck.

Writes benchmarks/results/approximator.md (``--out`` to change).
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from pathlib import Path

import numpy as np
from _common import ROOT, publish_report
from scipy.stats import spearmanr


def _market(spec: str) -> tuple[str, Path, str]:
    name, _, rest = spec.partition("=")
    home, _, campaign = rest.rpartition(":")
    if not (name and home and campaign):
        sys.exit(f"--market {spec!r}: expected NAME=MKT_HOME:CAMPAIGN")
    if not (Path(home) / "marketplace.db").is_file():
        sys.exit(f"--market {spec!r}: {home}/marketplace.db does not exist; pass the MKT_HOME of a finished demo")
    return name, Path(home), campaign


def _measure(home: Path, campaign: str, layers: list[int], stopping: list[str],
             seeds: list[int]) -> tuple[dict[tuple[int, str], list[float]], list[float], int, int]:
    from marketplace.approx.baselines import predict_tfidf_ridge
    from marketplace.approx.config import ApproxConfig, EmbedConfig
    from marketplace.approx.data import load_labeled_data
    from marketplace.approx.encoder import open_encoder
    from marketplace.approx.heads import predict_numpy
    from marketplace.approx.scaling import fit_scaler
    from marketplace.approx.train import fit_heads, split_indices
    from marketplace.approx.training import _token_factor, _with_factor
    from marketplace.campaigns import get_campaign
    from marketplace.db import create_db_engine, make_session_factory

    factory = make_session_factory(create_db_engine(f"sqlite:///{home / 'marketplace.db'}"))
    with factory() as s:
        data = load_labeled_data(s, get_campaign(s, campaign).id)
    data, w, learned = _with_factor(data, _token_factor(data))
    emb = {layer: open_encoder(None, EmbedConfig(layer=layer)).embed(data.texts) for layer in layers}
    scores: dict[tuple[int, str], list[float]] = {}
    tfidf: list[float] = []
    n_test = 0
    for seed in seeds:
        base = ApproxConfig(seed=seed)
        train, val, test = split_indices(data.content_hashes, base)
        n_test = int(test.size)
        scaler = fit_scaler(learned[train], base.label_transform)
        z = scaler.transform(learned)
        fit_idx = np.concatenate([train, val])
        tf = predict_tfidf_ridge([data.texts[i] for i in fit_idx], z[fit_idx], [data.texts[i] for i in test])
        tfidf.append(float(spearmanr(scaler.inverse(tf) * w[test], data.labels[test])[0]))
        for layer, metric in itertools.product(layers, stopping):
            config = base.model_copy(update={"early_stopping": metric})
            x = emb[layer].astype(np.float32)
            fit = fit_heads(x[train], z[train], x[val], z[val], config)
            pred = predict_numpy(fit.head_params, x[test]).mean(axis=0)
            rho = spearmanr(scaler.inverse(pred) * w[test], data.labels[test])[0]
            scores.setdefault((layer, metric), []).append(float(rho))
        print(f"{campaign} seed {seed}: done", file=sys.stderr, flush=True)
    return scores, tfidf, len(data), n_test


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--market", action="append", required=True, help="NAME=MKT_HOME:CAMPAIGN (repeatable)")
    ap.add_argument("--layers", type=int, nargs="+", default=[2, 3, 4])
    ap.add_argument("--stopping", nargs="+", default=["spearman", "mse"], choices=["spearman", "mse"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/approximator.md")
    args = ap.parse_args()
    markets = [_market(m) for m in args.market]
    lines = [
        "# Approximator choices: pooled MiniLM block and early-stopping metric (benchmarks/approximator.py)",
        "",
        f"{os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d %H:%M')}. Command: "
        f"`python benchmarks/approximator.py {' '.join(sys.argv[1:])}`",
        "",
        "Held-out Spearman in the labels' units (the metric `marketplace train` reports), mean over head seeds "
        f"{', '.join(map(str, args.seeds))} with the range in brackets; the test split is the same for every "
        "seed and every choice. TF-IDF + ridge is the baseline on the same split.",
        "",
    ]
    for name, home, campaign in markets:
        scores, tfidf, n, n_test = _measure(home, campaign, args.layers, args.stopping, args.seeds)
        lines += [f"## {name}: `{campaign}` ({n} labels, {n_test} held out)", "",
                  "| block | " + " | ".join(f"{m} early stopping" for m in args.stopping) + " |",
                  "|---|" + "---:|" * len(args.stopping)]
        for layer in args.layers:
            cells = []
            for metric in args.stopping:
                v = scores[(layer, metric)]
                cells.append(f"{np.mean(v):.3f} [{min(v):.3f}, {max(v):.3f}]")
            lines.append(f"| {layer} | " + " | ".join(cells) + " |")
        lines += ["", f"TF-IDF + ridge: {np.mean(tfidf):.3f}.", ""]
    publish_report(lines, args.out)


if __name__ == "__main__":
    main()
