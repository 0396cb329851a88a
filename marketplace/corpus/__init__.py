"""Real provider corpora from offline public text, and the demo campaign's target data.

Sources (all offline, none invented): Python's documentation (``pydoc_data.topics``, stdlib
docstrings) everywhere, and Debian text packages where installed (FOLDOC, the Jargon File, GCIDE,
WordNet, fortunes). :func:`build_corpus` writes one folder per provider of :data:`PROVIDERS` plus the
target data and a ``manifest.json``; :func:`general_text` gives general text for the target model.

Using a built corpus (what the end-to-end demo does)::

    manifest = build_corpus(out_dir, seed=0, small=True)          # reused when already built
    for provider in manifest.providers:                           # ingest in this order: originals first
        for f in provider.files:                                  # f.fields: {"text": "text"} or
            ingest(out_dir / f.path, provider.name, f.fields)     #   {"prompt": "prompt", "response": "response"}
    target = out_dir / manifest.target.target.path                # campaign target data (JSONL, field "text")
    # expected: relevance "high"/"medium" providers valued above "none"; copycat earns nothing
    # (exact copy + near copies); noisy-bytes (corrupted) next to nothing. Bad records per file are
    # listed in f.bad_records (index, kind) for checking the quarantine.
"""

from marketplace.corpus.build import build_corpus
from marketplace.corpus.catalog import PROVIDER_ONLY_SOURCES, SOURCE_NAMES, default_sources, model_text_sources
from marketplace.corpus.general import general_text, python_docs_paragraphs
from marketplace.corpus.manifest import (
    CorpusManifest,
    CorpusParams,
    FileInfo,
    ProviderInfo,
    load_manifest,
)
from marketplace.corpus.providers import PROVIDERS, FileSpec, ProviderSpec, provider_spec
from marketplace.corpus.records import SourceRecord
from marketplace.corpus.target import held_out_split, target_records

__all__ = [
    "PROVIDERS",
    "PROVIDER_ONLY_SOURCES",
    "SOURCE_NAMES",
    "CorpusManifest",
    "CorpusParams",
    "FileInfo",
    "FileSpec",
    "ProviderInfo",
    "ProviderSpec",
    "SourceRecord",
    "build_corpus",
    "default_sources",
    "general_text",
    "held_out_split",
    "load_manifest",
    "model_text_sources",
    "provider_spec",
    "python_docs_paragraphs",
    "target_records",
]
