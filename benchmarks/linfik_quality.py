"""LinFiK label quality on the demo target model (the quality gates, on the real thing).

Samples: paragraphs of general real text (marketplace.corpus.general_text).
Target set: the campaign's held-out Python-documentation slice (marketplace.corpus.target_records).

Reports Spearman correlations between
  logra          LoGra LinFiK at the default ranks (64 × 64 per watched layer), identity H;
  exact_watched  η⟨ḡ_Y, g(x)⟩ from exact float64 gradients of the watched layers' weights;
  exact_all      the same over all parameters (reported, not gated: what watching only the
                 projections costs);
  drop_all       measured drop of the mean target loss after one SGD step of size η on x alone
                 (all parameters, float64);
  drop_watched   the same step restricted to the watched weights.
Gates: logra~exact_watched ≥ 0.9; logra~drop_all ≥ 0.9 over 200 samples.

Run:  python benchmarks/linfik_quality.py [--model-dir DIR] [--n 200] [--n-target 32] [--eta 1e-3]
Writes benchmarks/results/linfik_quality.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from _common import ROOT, publish_report


def _data(n: int, n_target: int, seed: int) -> tuple[list[str], list[str], str]:
    from marketplace.corpus import general_text
    from marketplace.corpus.target import target_records

    target = [r.text for r in target_records("target")][:n_target]
    samples = [p for p in general_text(3_000_000, seed=seed) if len(p) >= 120][:n]
    return samples, target, "marketplace.corpus (general_text; held-out pydoc target slice)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", type=Path, default=None, help="Demo model folder (built if missing).")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--n-target", type=int, default=32)
    ap.add_argument("--eta", type=float, default=1e-3)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "linfik_quality.md")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from marketplace.settings import get_settings
    from marketplace.valuation.demo_model import build_demo_model
    from marketplace.valuation.quality import evaluate_linfik_quality
    from marketplace.valuation.target_model import load_target_model

    model_dir = args.model_dir or get_settings().resolved_models_dir / "demo-gpt2-seed0"
    if not (model_dir / "config.json").exists():
        print(f"building the demo model in {model_dir} (a few minutes)...", file=sys.stderr)
        build_demo_model(model_dir, seed=0)
    target = load_target_model(model_dir)
    samples, target_texts, source = _data(args.n, args.n_target, args.seed)
    t0 = time.perf_counter()
    report = evaluate_linfik_quality(target, samples, target_texts, eta=args.eta, max_length=args.max_length)
    wall = time.perf_counter() - t0
    s = report.spearman
    gates = {
        "Spearman(LoGra LinFiK, exact LinFiK on watched layers) ≥ 0.9": s["logra~exact_watched"] >= 0.9,
        "Spearman(LoGra LinFiK, measured one-step drop, all parameters) ≥ 0.9": s["logra~drop_all"] >= 0.9,
    }
    lines = [
        "# LinFiK label quality on the demo target model (benchmarks/linfik_quality.py)",
        "",
        f"Model: {model_dir.name} ({report.all_params / 1e6:.2f} M parameters, {report.watched_params / 1e6:.2f} M in "
        f"the watched layers), LoGra ranks {report.rank_out}×{report.rank_in} per layer → D = {report.projected_dim}.",
        f"{report.n_samples} samples, {report.n_target} target samples ({source}); max {args.max_length} tokens; "
        f"η = {args.eta:g}; identity preconditioner. Wall time {wall:.0f} s "
        f"(LoGra {report.seconds['logra']:.1f} s; exact float64 gradients + loss drops "
        f"{report.seconds['exact_and_drops']:.0f} s).",
        "",
        "| pair | Spearman |",
        "|---|---:|",
        *[f"| {k.replace('~', ' vs ')} | {v:.4f} |" for k, v in s.items()],
        "",
        "## Gates",
        "",
        *[f"- {name}: **{'met' if ok else 'NOT met'}**" for name, ok in gates.items()],
        f"- reported, not gated: Spearman(LoGra LinFiK, exact LinFiK over all parameters) = "
        f"{s['logra~exact_all']:.4f}",
        "",
    ]
    publish_report(lines, args.out)


if __name__ == "__main__":
    main()
