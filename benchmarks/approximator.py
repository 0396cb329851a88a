"""Approximator choices on real labels: the features the heads see and the heads themselves, over seeds.

    python benchmarks/approximator.py --market small=HOME_A:demo-python-docs-small \\
                                      --market second=HOME_B:word-definitions [--seeds 0 1 2]

For each market (``NAME=MKT_HOME:CAMPAIGN``, the home of a finished ``marketplace demo`` or
``benchmarks/second_market.py`` run): the campaign's latest label set, the product's own steps in the
order ``marketplace train`` runs them (token factor, content-hash test split, label scaler fitted on the
training split, MiniLM features, the feature scaling, the head ensemble, predictions times the token
factor), and the held-out Spearman in the labels' units for each choice:

- features: ``pooled`` (hidden state 3 alone, the former default) or ``stacked`` (hidden states 0-3
  and the text statistics, the default);
- heads: ``mlp`` (5 MLPs with early stopping on the validation split, the former default) or
  ``ridge`` (5 bootstrap ridge regressions, penalty by leave-one-out, the default).

TF-IDF + ridge is the baseline on the same split. The seed moves the validation split, the bootstrap
weights and the MLPs' initialisation, not the test split, so the spread over seeds is how much a choice
depends on luck. Writes benchmarks/results/approximator.md (``--out`` to change).
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

FEATURES = ("pooled", "stacked")
HEADS = ("mlp", "ridge")


def _market(spec: str) -> tuple[str, Path, str]:
    name, _, rest = spec.partition("=")
    home, _, campaign = rest.rpartition(":")
    if not (name and home and campaign):
        sys.exit(f"--market {spec!r}: expected NAME=MKT_HOME:CAMPAIGN")
    if not (Path(home) / "marketplace.db").is_file():
        sys.exit(f"--market {spec!r}: {home}/marketplace.db does not exist; pass the MKT_HOME of a finished demo")
    return name, Path(home), campaign


def _measure(home: Path, campaign: str, seeds: list[int]) -> tuple[dict[tuple[str, str], list[float]], list[float],
                                                                    int, int]:
    from marketplace.approx.baselines import predict_tfidf_ridge
    from marketplace.approx.config import ApproxConfig, EmbedConfig
    from marketplace.approx.data import load_labeled_data
    from marketplace.approx.encoder import open_encoder
    from marketplace.approx.feature_scaling import apply_feature_scaling, fit_feature_scaling
    from marketplace.approx.heads import predict_numpy
    from marketplace.approx.scaling import fit_scaler
    from marketplace.approx.train import fit_heads, fit_ridge, split_indices
    from marketplace.approx.training import _token_factor, _with_factor
    from marketplace.campaigns import get_campaign
    from marketplace.db import create_db_engine, make_session_factory

    factory = make_session_factory(create_db_engine(f"sqlite:///{home / 'marketplace.db'}"))
    with factory() as s:
        data = load_labeled_data(s, get_campaign(s, campaign).id)
    data, w, learned = _with_factor(data, _token_factor(data))
    encoder = open_encoder(None, EmbedConfig())
    stacked = encoder.embed(data.texts)
    hidden = encoder.hidden_size  # type: ignore[attr-defined]  # a TextEncoder
    emb = {"stacked": stacked, "pooled": stacked[:, 3 * hidden : 4 * hidden]}  # block 3 is the 4th unit block
    scores: dict[tuple[str, str], list[float]] = {}
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
        for features, head in itertools.product(FEATURES, HEADS):
            config = ApproxConfig.model_validate({"seed": seed, "head": head, "embed": {"features": features}})
            x = apply_feature_scaling(emb[features], fit_feature_scaling(emb[features][train], config))
            if head == "ridge":
                fit = fit_ridge(x[fit_idx], z[fit_idx], config)
            else:
                fit = fit_heads(x[train], z[train], x[val], z[val], config)
            pred = predict_numpy(fit.head_params, x[test]).mean(axis=0)
            rho = spearmanr(scaler.inverse(pred) * w[test], data.labels[test])[0]
            scores.setdefault((features, head), []).append(float(rho))
        print(f"{campaign} seed {seed}: done", file=sys.stderr, flush=True)
    return scores, tfidf, len(data), n_test


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--market", action="append", required=True, help="NAME=MKT_HOME:CAMPAIGN (repeatable)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/approximator.md")
    args = ap.parse_args()
    markets = [_market(m) for m in args.market]
    lines = [
        "# Approximator choices: features and heads (benchmarks/approximator.py)",
        "",
        f"{os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d %H:%M')}. Command: "
        f"`python benchmarks/approximator.py {' '.join(sys.argv[1:])}`",
        "",
        "Held-out Spearman in the labels' units (the metric `marketplace train` reports), mean over seeds "
        f"{', '.join(map(str, args.seeds))} with the range in brackets; the test split is the same for every "
        "seed and every choice. Features: `pooled` = MiniLM hidden state 3 alone (the former default); "
        "`stacked` = hidden states 0-3 and the text statistics (the default). Heads: `mlp` = 5 MLPs with early "
        "stopping on the validation split (the former default); `ridge` = 5 bootstrap ridge regressions, penalty "
        "by leave-one-out on the training and validation rows (the default). TF-IDF + ridge is the baseline on "
        "the same split.",
        "",
    ]
    for name, home, campaign in markets:
        scores, tfidf, n, n_test = _measure(home, campaign, args.seeds)
        lines += [f"## {name}: `{campaign}` ({n} labels, {n_test} held out)", "",
                  "| features | " + " | ".join(f"{h} heads" for h in HEADS) + " |", "|---|" + "---:|" * len(HEADS)]
        for features in FEATURES:
            cells = []
            for head in HEADS:
                v = scores[(features, head)]
                cells.append(f"{np.mean(v):.3f} [{min(v):.3f}, {max(v):.3f}]")
            lines.append(f"| {features} | " + " | ".join(cells) + " |")
        lines += ["", f"TF-IDF + ridge: {np.mean(tfidf):.3f}.", ""]
    publish_report(lines, args.out)


if __name__ == "__main__":
    main()
