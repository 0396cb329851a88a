"""A second market, not tuned to the demo: a buyer who wants plain-English word definitions.

The demo's campaign values data for *Python documentation*. This script builds another market from
other real text, with another target task and other providers, and runs it through the product's
own commands (``campaign create``, ``revalue --inbox``, ``validate``, ``report``), so that the
payout checks of ``marketplace validate`` can be read on data the valuation was not designed on.

Target task: definitions in WordNet's style (``word (part of speech): gloss``), a held-out slice of
WordNet synsets chosen by a salted hash of the synset key. Providers (ingested in this order):

==================  ==========================================================================
lexicon-house       other WordNet synsets, same style as the target
webster-archive     GCIDE (Webster 1913) entries: definitions in another dictionary's style
foldoc-terms        FOLDOC entries: definitions, of computing terms
quote-box           BSD fortunes: quotations and jokes
legal-bulk          software licence passages (the most records): fluent, off the task
api-docs            Python standard-library docstrings
lexicon-garbled     lexicon-house's records scrambled (words shuffled in short windows, letters
                    inside words), beyond near-duplicate reach
copy-shop           lexicon-house's file byte for byte, and near-copies of webster-archive
==================  ==========================================================================

Run:  python benchmarks/second_market.py --home DIR [--k 64] [--seeds 0 1]
      (about 10 minutes on 2 CPU cores: corpus, labels, training, scoring, then the fine-tuning runs)
Writes DIR/market (the inbox and target), prints each step, and writes
benchmarks/results/second_market.md with the validation's numbers.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

from _common import ROOT, publish_report

from marketplace.corpus.records import SourceRecord
from marketplace.corpus.sources import (
    DictdSource,
    FortunesSource,
    LicencesSource,
    StdlibDocstringsSource,
    WordNetSource,
)
from marketplace.corpus.transforms import near_copy, scramble
from marketplace.corpus.writers import write_rows

CAMPAIGN = "word-definitions"
SALT = "mkt-second-market-v1:"
TARGET_RECORDS = 150
#: provider -> records (good ones); small enough that labeling 600 covers every provider.
QUOTAS = {
    "lexicon-house": 300,
    "webster-archive": 250,
    "foldoc-terms": 200,
    "quote-box": 200,
    "legal-bulk": 500,
    "api-docs": 200,
    "lexicon-garbled": 200,
}
NEAR_COPIES = 80


def _held_out(key: str) -> bool:
    return int(hashlib.sha256((SALT + key).encode()).hexdigest()[:8], 16) % 8 == 0


def _draw(source: object, n: int, rng: random.Random, keep: object = None) -> list[SourceRecord]:
    """``n`` records of ``source`` drawn from its units in a seeded order (cleaning only what is drawn)."""
    units = list(source.units())  # type: ignore[attr-defined]
    rng.shuffle(units)
    out: list[SourceRecord] = []
    for unit in units:
        for record in source.records_of(unit):  # type: ignore[attr-defined]
            if keep is None or keep(record):  # type: ignore[operator]
                out.append(record)
        if len(out) >= n:
            break
    return out[:n]


def _rows(records: list[SourceRecord], prefix: str) -> list[dict[str, object]]:
    return [
        {"id": f"{prefix}:{i:05d}", "text": r.text, "source": r.source, "licence": r.licence}
        for i, r in enumerate(records)
    ]


def build_market(out: Path, seed: int = 0) -> dict[str, int]:
    """Write ``out/inbox/<provider>/*.jsonl``, ``out/inbox/manifest.json`` (ingestion order) and
    ``out/target.jsonl``; returns records per file. Same seed, same machine: the same files."""
    rng = random.Random(f"{SALT}{seed}")
    wordnet = WordNetSource()
    for s in (wordnet, DictdSource(name="gcide", licence="GPL-2.0-or-later", package="dict-gcide")):
        if not s.available():
            raise SystemExit(f"error: source {s.name} is missing; install it with: sudo apt-get install {s.package}")
    target = _draw(wordnet, TARGET_RECORDS, rng, keep=lambda r: _held_out(r.key))
    lexicon = _draw(wordnet, QUOTAS["lexicon-house"], rng, keep=lambda r: not _held_out(r.key))
    webster = _draw(
        DictdSource(name="gcide", licence="GPL-2.0-or-later", package="dict-gcide"), QUOTAS["webster-archive"], rng
    )
    files: dict[str, list[dict[str, object]]] = {
        "lexicon-house/definitions.jsonl": _rows(lexicon, "lexicon-house"),
        "webster-archive/entries.jsonl": _rows(webster, "webster-archive"),
        "foldoc-terms/entries.jsonl": _rows(
            _draw(
                DictdSource(name="foldoc", licence="GFDL-1.1-or-later", package="dict-foldoc"),
                QUOTAS["foldoc-terms"],
                rng,
            ),
            "foldoc-terms",
        ),
        "quote-box/quotes.jsonl": _rows(_draw(FortunesSource(), QUOTAS["quote-box"], rng), "quote-box"),
        "legal-bulk/passages.jsonl": _rows(_draw(LicencesSource(), QUOTAS["legal-bulk"], rng), "legal-bulk"),
        "api-docs/docstrings.jsonl": _rows(_draw(StdlibDocstringsSource(), QUOTAS["api-docs"], rng), "api-docs"),
        "lexicon-garbled/definitions.jsonl": [
            {
                "id": f"lexicon-garbled:{i:05d}",
                "text": scramble(r.text, rng),
                "source": "wordnet (scrambled)",
                "licence": r.licence,
            }
            for i, r in enumerate(rng.sample(lexicon, QUOTAS["lexicon-garbled"]))
        ],
        "copy-shop/remix.jsonl": [
            {"id": f"copy-shop:{i:05d}", "text": near_copy(r.text, rng), "source": r.source, "licence": r.licence}
            for i, r in enumerate(rng.sample(webster, NEAR_COPIES))
        ],
    }
    inbox = out / "inbox"
    for rel, rows in files.items():
        (inbox / rel).parent.mkdir(parents=True, exist_ok=True)
        write_rows(inbox / rel, "jsonl", ("id", "text", "source", "licence"), rows)
    (inbox / "copy-shop" / "definitions.jsonl").write_bytes((inbox / "lexicon-house/definitions.jsonl").read_bytes())
    order = [
        "lexicon-house",
        "webster-archive",
        "foldoc-terms",
        "quote-box",
        "legal-bulk",
        "api-docs",
        "lexicon-garbled",
        "copy-shop",
    ]
    (inbox / "manifest.json").write_text(json.dumps({"providers": [{"name": n} for n in order]}, indent=1))
    write_rows(out / "target.jsonl", "jsonl", ("id", "text", "source", "licence"), _rows(target, "target"))
    counts = {rel: len(rows) for rel, rows in files.items()}
    counts["copy-shop/definitions.jsonl"] = len(files["lexicon-house/definitions.jsonl"])
    counts["target.jsonl"] = len(target)
    return counts


def _run(args: list[str], env: dict[str, str], capture: bool = False) -> str:
    print(f"$ marketplace {' '.join(args)}", flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("marketplace")), *args],  # the console script beside this Python
        env=env,
        cwd=ROOT,
        check=False,
        stdout=subprocess.PIPE if capture else None,
        text=True,
    )
    if proc.returncode != 0:
        raise SystemExit(f"error: `marketplace {' '.join(args)}` exited with {proc.returncode}")
    print(f"  done in {time.perf_counter() - t0:.0f} s", flush=True)
    return proc.stdout or ""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--home", type=Path, required=True, help="MKT_HOME for this market (created).")
    ap.add_argument("--models-dir", type=Path, default=None, help="Where the demo target model is cached.")
    ap.add_argument("--k", type=int, default=64, help="Samples per provider and seed in the fine-tuning runs.")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--n-labels", type=int, default=600)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "second_market.md")
    args = ap.parse_args()

    home = args.home.resolve()
    env = {**os.environ, "MKT_HOME": str(home)}
    if args.models_dir:
        env["MKT_MODELS_DIR"] = str(args.models_dir.resolve())
    print(f"[1/5] building the market in {home / 'market'}", flush=True)
    counts = build_market(home / "market")
    print("  " + ", ".join(f"{k}: {v}" for k, v in counts.items()), flush=True)

    print("[2/5] the demo target model (built once, then reused)", flush=True)
    from marketplace.valuation.demo_model import build_keyed_demo_model

    models_dir = args.models_dir.resolve() if args.models_dir else home / "models"
    model = build_keyed_demo_model(models_dir).path

    print("[3/5] campaign, then ingest → label → train → score → price", flush=True)
    _run(
        [
            "campaign",
            "create",
            CAMPAIGN,
            "--target-model",
            str(model),
            "--target-data",
            str(home / "market" / "target.jsonl"),
            "--budget",
            "10000.00",
            "--audit-threshold",
            "0.2",
        ],
        env,
    )
    _run(
        [
            "revalue",
            CAMPAIGN,
            "--inbox",
            str(home / "market" / "inbox"),
            "--n-labels",
            str(args.n_labels),
            "--promotion-floor",
            "0.2",
            "--audit-n",
            "60",
        ],
        env,
    )
    print("[4/5] the fine-tuning ground truth (marketplace validate)", flush=True)
    out = _run(
        [
            "validate",
            CAMPAIGN,
            "-k",
            str(args.k),
            *[arg for seed in args.seeds for arg in ("--seeds", str(seed))],
            "--out",
            str(home / "validation"),
            "--json",
        ],
        env,
        capture=True,
    )
    doc = json.loads(out[out.index("{") :])
    (home / "validation.json").write_text(json.dumps(doc, indent=1))
    print("[5/5] reports", flush=True)
    _run(["report", "campaign", CAMPAIGN], env)

    table = next((home / "validation").glob("validation_*.md")).read_text(encoding="utf-8")
    lines = [
        f"# A second market: `{CAMPAIGN}` (target: WordNet-style definitions)",
        "",
        "Built and run by `python benchmarks/second_market.py --home DIR` on 2 CPU cores, with the library "
        "defaults throughout (no label or pricing option given). Records per file:",
        "",
        "| file | records |",
        "|---|---:|",
        *[f"| {k} | {v} |" for k, v in counts.items()],
        "",
        "`marketplace validate` on the pricing run (headline regime first):",
        "",
        table,
    ]
    publish_report(lines, args.out)


if __name__ == "__main__":
    main()
