"""The N-record market of ``scale.py``: provider JSONL files cut from the project's real offline corpora.

Text: every available source of :func:`marketplace.corpus.default_sources` (Python documentation and
docstrings, FOLDOC, the Jargon File, GCIDE, WordNet, fortunes, licence texts) is split into sentences
(20-600 characters). Each source's sentences are first cut into *disjoint* windows of 1-3 consecutive
sentences of one record ("paragraph windows": no two windows share a sentence, so they are not
near-duplicates of each other), shuffled; when a provider needs more texts than its sources have
windows, it goes on with random pairs of sentences from different places of its sources (unique by
text). So any N can be reached from real text; past ~300k records per source most texts are such pairs.

Providers (share of the N records; the target of the campaign is Python documentation):

- originals: ``pydocs-press`` (Python docs and docstrings, 5%), ``dictionary-house`` (GCIDE, 36%),
  ``lexicon-works`` (WordNet, 14%), ``computing-glossary`` (FOLDOC + Jargon, 9%), ``fortune-cookies``
  (fortunes, 7%), ``licence-prose`` (licence texts, 2%), ``mixed-bulk`` (all sources, 14%); a provider
  whose sources are missing takes its texts from the available ones;
- ``copycat`` (5%): exact copies of the originals' records (linked by the exact-duplicate path);
- ``near-copier`` (4%): near copies (:func:`marketplace.corpus.transforms.near_copy`, 5% of the words
  edited, case and spacing changed) of originals' records of 12+ words (the MinHash LSH path);
- ``noisy-bytes`` (4%): originals with their characters shuffled or scrambled
  (:func:`~marketplace.corpus.transforms.shuffle_chars`, :func:`~marketplace.corpus.transforms.scramble`).

Inside every file, 1% of the records repeat an earlier record of the same file exactly, and 0.5% are bad
records the ingest must quarantine (empty, blank, null, missing field, too short). Files hold at most
``FILE_RECORDS`` records. The originals are ingested first, the copiers last (``manifest.json`` lists the
order). Everything is deterministic for (N, seed, ``RECIPE``) and the sources present; a folder with a
matching manifest is reused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["FILE_RECORDS", "PROVIDERS", "RECIPE", "MarketSpec", "build_market", "market_key"]

log = logging.getLogger("scale.market")

RECIPE = 1  # bump when the texts a (N, seed) gives change
FILE_RECORDS = 25_000
REPEAT_FRACTION = 0.01
BAD_FRACTION = 0.005
NEAR_MIN_WORDS = 12
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_BAD = ({"id": None, "text": ""}, {"id": None, "text": "   \t  "}, {"id": None, "text": None},
        {"id": None, "title": "no text field"}, {"id": None, "text": "too short"})


@dataclass(frozen=True)
class ProviderRecipe:
    name: str
    kind: str  # original | exact | near | noise
    share: float
    sources: tuple[str, ...] = ()  # empty: every available source


PROVIDERS = (
    ProviderRecipe("pydocs-press", "original", 0.05, ("python-docs/topics", "python-stdlib-docstrings")),
    ProviderRecipe("dictionary-house", "original", 0.36, ("gcide",)),
    ProviderRecipe("lexicon-works", "original", 0.14, ("wordnet",)),
    ProviderRecipe("computing-glossary", "original", 0.09, ("foldoc", "jargon")),
    ProviderRecipe("fortune-cookies", "original", 0.07, ("fortunes",)),
    ProviderRecipe("licence-prose", "original", 0.02, ("licences",)),
    ProviderRecipe("mixed-bulk", "original", 0.14),
    ProviderRecipe("copycat", "exact", 0.05),
    ProviderRecipe("near-copier", "near", 0.04),
    ProviderRecipe("noisy-bytes", "noise", 0.04),
)


@dataclass
class MarketSpec:
    """What was built: per provider its files (relative paths) and counts; the target data file."""

    key: str
    n: int
    seed: int
    providers: list[dict[str, Any]] = field(default_factory=list)
    target: str = "target/target.jsonl"
    sources: dict[str, int] = field(default_factory=dict)  # source -> sentences available
    missing_sources: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True)


def market_key(n: int, seed: int, sources: Sequence[str]) -> str:
    """The build key: recipe, size, seed and the sources present."""
    payload = json.dumps({"recipe": RECIPE, "n": n, "seed": seed, "sources": sorted(sources),
                          "providers": [asdict(p) for p in PROVIDERS], "file_records": FILE_RECORDS})
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _sentences_by_source() -> tuple[dict[str, list[list[str]]], list[str]]:
    """source name -> its records, each a list of sentences (20-600 chars); and the missing sources."""
    from marketplace.corpus import default_sources

    out: dict[str, list[list[str]]] = {}
    missing = []
    for source in default_sources():
        if not source.available():
            missing.append(source.name)
            continue
        records = []
        for rec in source.load():
            sentences = [s for s in _SENTENCE.split(" ".join(rec.text.split())) if 20 <= len(s) <= 600]
            if sentences:
                records.append(sentences)
        out[source.name] = records
        log.info("source %s: %d records, %d sentences", source.name, len(records), sum(map(len, records)))
    return out, missing


def _texts(records: list[list[str]], rng: random.Random) -> Iterator[str]:
    """Disjoint windows of 1-3 sentences of one record (shuffled), then random pairs of sentences, forever;
    never the same text twice."""
    windows = []
    for sentences in records:
        i = 0
        while i < len(sentences):
            w = rng.randint(1, 3)
            windows.append(" ".join(sentences[i : i + w]))
            i += w
    rng.shuffle(windows)
    seen: set[bytes] = set()
    for text in windows:
        digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
        if digest not in seen:
            seen.add(digest)
            yield text
    flat = [s for sentences in records for s in sentences]
    misses = 0
    while misses < 1000:
        text = f"{flat[rng.randrange(len(flat))]} {flat[rng.randrange(len(flat))]}"
        digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
        if digest in seen:
            misses += 1
            continue
        misses = 0
        seen.add(digest)
        yield text
    raise RuntimeError("the sources cannot give more distinct texts; lower --n")


class _Writer:
    """One provider's files: ``FILE_RECORDS`` records each, with in-file repeats and bad records mixed in."""

    def __init__(self, root: Path, provider: str, rng: random.Random) -> None:
        self.dir = root / provider
        self.dir.mkdir(parents=True, exist_ok=True)
        self.provider, self.rng = provider, rng
        self.files: list[str] = []
        self.counts = {"records": 0, "bad": 0, "repeats": 0}
        self._fh: Any = None
        self._in_file = 0
        self._recent: list[str] = []

    def _line(self, row: dict[str, Any]) -> None:
        if self._fh is None or self._in_file >= FILE_RECORDS:
            self.close()
            name = f"part-{len(self.files) + 1:04d}.jsonl"
            self.files.append(f"{self.provider}/{name}")
            self._fh = (self.dir / name).open("w", encoding="utf-8")
            self._in_file = 0
            self._recent = []
        self._fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._in_file += 1
        self.counts["records"] += 1

    def write(self, text: str) -> None:
        """One record of ``text``, sometimes preceded by a bad record or a repeat of an earlier one."""
        r = self.rng.random()
        if r < BAD_FRACTION:
            self.counts["bad"] += 1
            self._line(dict(self.rng.choice(_BAD), id=f"{self.provider}-{self.counts['records']}"))
        elif r < BAD_FRACTION + REPEAT_FRACTION and self._recent:
            self.counts["repeats"] += 1
            self._line({"id": f"{self.provider}-{self.counts['records']}", "text": self.rng.choice(self._recent)})
        self._line({"id": f"{self.provider}-{self.counts['records']}", "text": text})
        if len(self._recent) < 500:
            self._recent.append(text)
        else:
            self._recent[self.rng.randrange(500)] = text

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def build_market(out: Path, n: int, seed: int = 0) -> MarketSpec:
    """Write the N-record market under ``out`` (reused when its manifest has the same key)."""
    from marketplace.corpus import default_sources, target_records
    from marketplace.corpus.transforms import near_copy, scramble, shuffle_chars

    key = market_key(n, seed, [s.name for s in default_sources() if s.available()])
    manifest = out / "manifest.json"
    if manifest.is_file():
        found = json.loads(manifest.read_text(encoding="utf-8"))
        if found.get("key") == key:
            log.info("market %s reused from %s", key, out)
            return MarketSpec(**found)
        raise SystemExit(f"{out} holds another market (key {found.get('key')}, want {key}); remove it")
    by_source, missing = _sentences_by_source()
    spec = MarketSpec(key=key, n=n, seed=seed, sources={k: sum(map(len, v)) for k, v in by_source.items()},
                      missing_sources=missing)
    rng = random.Random(seed)
    targets = {p.name: round(p.share * n) for p in PROVIDERS}
    targets["mixed-bulk"] += n - sum(targets.values())  # rounding
    n_derived = sum(targets[p.name] for p in PROVIDERS if p.kind != "original")
    n_original = n - n_derived
    # Originals whose texts the copiers reuse, drawn as they are written (about twice what they need).
    keep_p = min(1.0, 2.2 * n_derived / max(n_original, 1))
    kept: list[str] = []
    for recipe in PROVIDERS:
        writer = _Writer(out, recipe.name, random.Random(rng.random()))
        want = targets[recipe.name]
        if recipe.kind == "original":
            names = [s for s in (recipe.sources or tuple(by_source)) if s in by_source] or list(by_source)
            records = [r for s in names for r in by_source[s]]
            texts = _texts(records, random.Random(rng.random()))
            while writer.counts["records"] < want:
                text = next(texts)
                writer.write(text)
                if rng.random() < keep_p:
                    kept.append(text)
        else:
            pool = [t for t in kept if len(t.split()) >= NEAR_MIN_WORDS] if recipe.kind == "near" else kept
            prng = random.Random(rng.random())
            while writer.counts["records"] < want:
                text = prng.choice(pool)
                if recipe.kind == "near":
                    text = near_copy(text, prng)
                elif recipe.kind == "noise":
                    text = shuffle_chars(text, prng) if prng.random() < 0.5 else scramble(text, prng)
                writer.write(text)
        writer.close()
        spec.providers.append({"name": recipe.name, "kind": recipe.kind, "files": writer.files, **writer.counts})
        log.info("provider %s: %d records in %d files", recipe.name, writer.counts["records"], len(writer.files))
    target = out / spec.target
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w", encoding="utf-8") as fh:
        for rec in target_records():
            fh.write(json.dumps({"text": rec.text}, ensure_ascii=False) + "\n")
    manifest.write_text(spec.to_json(), encoding="utf-8")
    return spec
