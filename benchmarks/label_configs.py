"""Which LinFiK label configuration should a campaign use? Learnability and provider ranking, measured.

For each configuration (preconditioner identity / fisher, with or without cosine normalisation), on a
finished demo campaign: label the same stratified subsample exactly (LoGra), train the default
frozen-encoder approximator on those labels, and report its held-out Spearman next to the two
baselines (TF-IDF + ridge, target-embedding cosine), plus, per provider, the mean label (in units of
the label standard deviation), the fraction of positive labels and the share of the positive label
mass (what pricing the exact labels would pay each provider).

It runs on a *copy* of the demo's home (SQLite database, MLflow store and artifacts; the embedding
cache is shared), so the demo's books and registry are untouched.

Run:  python benchmarks/label_configs.py [--home MKT_HOME] [--campaign demo-python-docs] [--n 2400]
Writes benchmarks/results/label_configs.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, add_demo_home_args, publish_report

CONFIGS: dict[str, dict[str, object]] = {
    "identity": {},
    "identity + cosine": {"cosine": True},
    "fisher": {"preconditioner": "fisher"},
    "fisher + cosine": {"preconditioner": "fisher", "cosine": True},
    "token": {"weighting": "token"},
}


def _log(msg: str) -> None:
    print(f"[label_configs {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _copy_home(src: Path, dst: Path) -> None:
    """The database, MLflow store and artifacts, except the (read-only, shared) embedding cache."""
    for item in src.iterdir():
        if item.name == "artifacts":
            (dst / "artifacts").mkdir(parents=True)
            for sub in item.iterdir():
                if sub.name == "embeddings":
                    (dst / "artifacts" / "embeddings").symlink_to(sub.resolve())
                elif sub.is_dir():
                    shutil.copytree(sub, dst / "artifacts" / sub.name, symlinks=True)
                else:
                    shutil.copy2(sub, dst / "artifacts" / sub.name)
        elif item.name in ("models", "demo"):
            (dst / item.name).symlink_to(item.resolve())
        elif item.is_dir():
            shutil.copytree(item, dst / item.name, symlinks=True)
        else:
            shutil.copy2(item, dst / item.name)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_demo_home_args(ap)
    ap.add_argument("--n", type=int, default=2400, help="Labels per configuration.")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS),
                    help="Which configurations to run (default: all).")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "label_configs.md")
    args = ap.parse_args()

    src = (args.home or Path(os.environ.get("MKT_HOME", ".marketplace"))).resolve()
    if not (src / "marketplace.db").exists():
        raise SystemExit(f"{src} holds no marketplace.db: run `marketplace demo` first (or pass --home)")
    work = Path(tempfile.mkdtemp(prefix="label-configs-"))
    _copy_home(src, work)
    os.environ["MKT_HOME"] = str(work)
    os.environ.pop("MKT_DATABASE_URL", None)
    os.environ.pop("MKT_MLFLOW_TRACKING_URI", None)

    import numpy as np
    import torch
    from sqlalchemy import select

    torch.set_num_threads(args.threads)
    from marketplace.approx import ApproxConfig
    from marketplace.approx.data import load_labeled_data
    from marketplace.approx.training import train_approximator
    from marketplace.campaigns import get_campaign
    from marketplace.cli.common import open_db, settings
    from marketplace.db import Label, Provider, Sample
    from marketplace.runtime import apply_offline_env
    from marketplace.valuation import LinFiKConfig, create_label_set

    apply_offline_env()
    _, factory = open_db()
    cfg = settings()
    results = []
    t_start = time.perf_counter()
    try:
        for name, options in ((n, CONFIGS[n]) for n in args.configs):
            config = LinFiKConfig.model_validate(options)
            t0 = time.perf_counter()
            with factory() as session, session.begin():
                camp = get_campaign(session, args.campaign)
                label_set_id = create_label_set(session, camp.id, config, n=args.n,
                                                artifacts_dir=cfg.resolved_artifacts_dir).label_set_id
            t_label = time.perf_counter() - t0
            with factory() as session:
                rows = session.execute(
                    select(Provider.name, Label.score).join(Sample, Sample.id == Label.sample_id)
                    .join(Provider, Provider.id == Sample.provider_id).where(Label.label_set_id == label_set_id)
                ).all()
                data = load_labeled_data(session, camp.id, label_set_id)
            outcome = train_approximator(data, ApproxConfig(), store_root=cfg.resolved_artifacts_dir / "embeddings",
                                         run_dir=work / "runs" / name.replace(" + ", "-"))
            m = outcome.metrics
            scores = np.asarray([v for _, v in rows], dtype=np.float64)
            sd = float(scores.std()) or 1.0
            positive_mass = float(scores[scores > 0].sum()) or 1.0
            per_provider = {}
            for provider in sorted({p for p, _ in rows}):
                v = np.asarray([s for p, s in rows if p == provider])
                per_provider[provider] = {"n": len(v), "mean_sd": float(v.mean() / sd),
                                          "positive": float(np.mean(v > 0)),
                                          "share": float(v[v > 0].sum() / positive_mass)}
            results.append({"name": name, "options": options, "label_s": t_label, "metrics": m,
                            "providers": per_provider})
            _log(f"{name}: held-out Spearman {m['approx_spearman']:.3f} (tfidf {m['tfidf_ridge_spearman']:.3f}, "
                 f"cosine {m['target_cosine_spearman']:.3f}); labeling {t_label:.0f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    lines = [
        "# LinFiK label configurations on the demo campaign (benchmarks/label_configs.py)",
        "",
        f"Campaign `{args.campaign}`, {args.n} labels per configuration (the same stratified subsample), "
        f"LoGra 64×64 per watched layer, η = 1e-3; default frozen-encoder approximator (MiniLM block 4, "
        f"5 MLP heads), 70/10/20 train/validation/test split. Wall time {time.perf_counter() - t_start:.0f} s.",
        "",
        "## Can the approximator learn the labels? (held-out Spearman)",
        "",
        "| labels | ALinFiK | TF-IDF + ridge | target cosine | labeling s |",
        "|---|---:|---:|---:|---:|",
        *[f"| {r['name']} | {r['metrics']['approx_spearman']:.3f} | {r['metrics']['tfidf_ridge_spearman']:.3f} | "
          f"{r['metrics']['target_cosine_spearman']:.3f} | {r['label_s']:.0f} |" for r in results],
        "",
        "## How do the labels rank the providers?",
        "",
        "Per provider: mean label / label sd, fraction of positive labels, and share of the positive label mass.",
        "",
    ]
    providers = sorted({p for r in results for p in r["providers"]},
                       key=lambda p: -results[0]["providers"].get(p, {"mean_sd": 0.0})["mean_sd"])
    lines += ["| provider | " + " | ".join(r["name"] for r in results) + " |",
              "|---|" + "---:|" * len(results)]
    for p in providers:
        cells = []
        for r in results:
            d = r["providers"].get(p)
            cells.append("—" if d is None else f"{d['mean_sd']:+.2f} / {d['positive']:.0%} / {d['share']:.1%}")
        lines.append(f"| {p} | " + " | ".join(cells) + " |")
    lines.append("")
    publish_report(lines, args.out)
    (args.out.with_suffix(".json")).write_text(json.dumps(results, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
