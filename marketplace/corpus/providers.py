"""The provider line-up of a built corpus: who submits what, and what each is there to show.

The end-to-end demo values these providers against a campaign whose target task is
*Python programming documentation* (see :mod:`marketplace.corpus.target`). ``role`` and
``relevance`` say what a working valuation should conclude:

==================  ==========  =========  ====================================================
provider            role        relevance  content
==================  ==========  =========  ====================================================
pydocs-press        relevant    high       stdlib docstrings + non-held-out pydoc topics
foldoc-computing    relevant    medium     FOLDOC computing dictionary entries
jargon-lore         relevant    low        Jargon File entries (hacker culture)
wordnet-glosses     irrelevant  none       WordNet glosses as prompt/response pairs
gcide-general       irrelevant  none       GCIDE (Webster 1913) general English dictionary
fortune-teller      irrelevant  none       BSD fortune cookies
licence-prose       irrelevant  none       software licence texts in passages of a few sentences:
                                           fluent English off the target task, in bulk
copycat             copy        none       a byte-identical copy of a pydocs-press file, and
                                           near-copies of foldoc-computing records
noisy-bytes         corrupted   none       real text with shuffled words / shuffled characters
garbled-docs        corrupted   low        pydocs-press records with words shuffled in short
                                           windows and letters scrambled inside words: the
                                           target's vocabulary and layout, beyond near-duplicate
                                           reach (what it is worth is for the ground truth to say)
==================  ==========  =========  ====================================================

Expected outcome: every ``high``/``medium`` provider is valued above every ``none`` one; copycat
earns nothing (its records are duplicates of earlier submissions); noisy-bytes earns nothing or
next to nothing. The order of :data:`PROVIDERS` is the order to ingest in: originals before the
copies, so that the first owner of a text is its real provider.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Literal, get_args

__all__ = [
    "PROVIDERS",
    "Derivation",
    "FileFormat",
    "FileSpec",
    "ProviderSpec",
    "Relevance",
    "Role",
    "Shape",
    "provider_spec",
]

Role = Literal["relevant", "irrelevant", "copy", "corrupted"]
Relevance = Literal["high", "medium", "low", "none"]
FileFormat = Literal["jsonl", "csv", "parquet"]
Shape = Literal["text", "prompt-response"]
Derivation = Literal["original", "exact-copy", "near-copy", "scrambled-copy", "shuffled-words", "shuffled-chars"]


@dataclass(frozen=True)
class FileSpec:
    """One file of a provider.

    ``sources``: the text sources drawn from (mixed evenly when several are available; for
    corrupted files, the first available ones). ``copy_of``: for ``exact-copy``, the one
    ``provider/filename`` copied byte for byte; for ``near-copy`` and ``scrambled-copy``, the providers
    whose records are copied (edited a little / scrambled beyond near-duplicate reach), in order of
    preference (the first one built is used). ``records``/``records_small``:
    good records wanted in a default / ``--small`` build (fewer when a source runs out).
    ``bad_records``: deliberately broken records mixed in (empty or missing text...), well under the
    ingest quarantine threshold, so that quarantine shows up in the demo.
    """

    filename: str
    records: int
    records_small: int
    sources: tuple[str, ...] = ()
    shape: Shape = "text"
    derivation: Derivation = "original"
    copy_of: tuple[str, ...] = ()
    bad_records: int = 0
    bad_records_small: int = 0

    def __post_init__(self) -> None:
        suffix = PurePosixPath(self.filename).suffix.lstrip(".")
        if suffix not in get_args(FileFormat):
            raise ValueError(f"{self.filename}: the extension must be one of {get_args(FileFormat)}")
        if self.derivation == "exact-copy" and len(self.copy_of) != 1:
            raise ValueError(f"{self.filename}: an exact copy names exactly one provider/filename in copy_of")

    @property
    def format(self) -> FileFormat:
        return PurePosixPath(self.filename).suffix.lstrip(".")  # type: ignore[return-value]

    def wanted(self, small: bool) -> tuple[int, int]:
        """(good records, bad records) for a default or small build."""
        return (self.records_small, self.bad_records_small) if small else (self.records, self.bad_records)


@dataclass(frozen=True)
class ProviderSpec:
    name: str
    role: Role
    relevance: Relevance
    description: str
    files: tuple[FileSpec, ...]

    @property
    def sources(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s for f in self.files for s in f.sources))

    @property
    def formats(self) -> tuple[FileFormat, ...]:
        return tuple(dict.fromkeys(f.format for f in self.files))


PROVIDERS: tuple[ProviderSpec, ...] = (
    ProviderSpec(
        "pydocs-press", "relevant", "high",
        "Python standard-library docstrings and Python reference topics (the held-out target topics excluded).",
        (
            FileSpec("docstrings.parquet", 3000, 200, ("python-stdlib-docstrings",),
                     bad_records=8, bad_records_small=2),
            FileSpec("topics.jsonl", 2000, 100, ("python-docs/topics",)),
        ),
    ),
    ProviderSpec(
        "foldoc-computing", "relevant", "medium",
        "Entries of the Free On-line Dictionary of Computing.",
        (
            FileSpec("foldoc-a.csv", 1500, 125, ("foldoc",), bad_records=10, bad_records_small=2),
            FileSpec("foldoc-b.parquet", 1500, 125, ("foldoc",)),
        ),
    ),
    ProviderSpec(
        "jargon-lore", "relevant", "low",
        "Entries of the Jargon File (hacker slang and lore).",
        (FileSpec("jargon.jsonl", 1800, 200, ("jargon",), bad_records=12, bad_records_small=3),),
    ),
    ProviderSpec(
        "wordnet-glosses", "irrelevant", "none",
        "WordNet synsets as prompt/response pairs: 'What does X mean?' -> gloss.",
        (FileSpec("glosses-qa.jsonl", 2500, 200, ("wordnet",), shape="prompt-response",
                  bad_records=10, bad_records_small=2),),
    ),
    ProviderSpec(
        "gcide-general", "irrelevant", "none",
        "Entries of the Collaborative International Dictionary of English (Webster 1913).",
        (
            FileSpec("gcide-1.parquet", 2000, 150, ("gcide",)),
            FileSpec("gcide-2.csv", 1000, 100, ("gcide",), bad_records=6, bad_records_small=1),
        ),
    ),
    ProviderSpec(
        "fortune-teller", "irrelevant", "none",
        "BSD fortune cookies: quotations, jokes, poems.",
        (FileSpec("fortunes.csv", 2500, 200, ("fortunes",), bad_records=8, bad_records_small=2),),
    ),
    ProviderSpec(
        "licence-prose", "irrelevant", "none",
        "Software licence texts (GPL, LGPL, Apache, MPL, GFDL...) cut into passages of a few sentences.",
        (FileSpec("passages.parquet", 2500, 300, ("licences",), bad_records=5, bad_records_small=1),),
    ),
    ProviderSpec(
        "copycat", "copy", "none",
        "Resubmits others' data: one pydocs-press file byte for byte, and near-copies of FOLDOC entries.",
        (
            FileSpec("pydocs-topics.jsonl", 0, 0, derivation="exact-copy", copy_of=("pydocs-press/topics.jsonl",)),
            FileSpec("remix.parquet", 600, 80, derivation="near-copy",
                     copy_of=("foldoc-computing", "jargon-lore", "pydocs-press")),
        ),
    ),
    ProviderSpec(
        "noisy-bytes", "corrupted", "none",
        "Corrupted real text: words shuffled within a record, or characters shuffled within a record.",
        (
            FileSpec("scrambled-words.jsonl", 500, 80, ("gcide", "fortunes", "wordnet", "python-stdlib-docstrings"),
                     derivation="shuffled-words"),
            FileSpec("scrambled-chars.csv", 500, 80, ("gcide", "fortunes", "wordnet", "python-stdlib-docstrings"),
                     derivation="shuffled-chars"),
        ),
    ),
    ProviderSpec(
        "garbled-docs", "corrupted", "low",
        "Corrupted copies of pydocs-press's records: words shuffled within short windows, letters scrambled "
        "inside words; layout and vocabulary kept.",
        (FileSpec("garbled.jsonl", 1500, 150, derivation="scrambled-copy", copy_of=("pydocs-press",)),),
    ),
)  # fmt: skip


def provider_spec(name: str) -> ProviderSpec:
    """The spec of provider ``name``; ``KeyError`` names the known providers."""
    for spec in PROVIDERS:
        if spec.name == name:
            return spec
    raise KeyError(f"unknown provider {name!r}; known: {', '.join(p.name for p in PROVIDERS)}")
