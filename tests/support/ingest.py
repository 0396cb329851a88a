"""Helpers for the ingestion tests: real text, file writers, a database fingerprint.

Real text only: paragraphs of Python's own documentation (``pydoc_data.topics``) and
standard-library docstrings, which exist on every machine with Python.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from marketplace.corpus.sources.pydocs import pydoc_topics, stdlib_docstrings
from marketplace.db import Base

_MODULES = (
    "collections", "os", "re", "json", "csv", "pathlib", "typing", "functools", "itertools", "argparse",
    "logging", "email", "decimal", "fractions", "statistics", "datetime", "calendar", "textwrap", "string",
    "difflib", "heapq", "bisect", "zipfile", "tarfile", "gzip", "shutil", "tempfile", "subprocess", "threading",
    "asyncio", "socket", "sqlite3", "unittest", "doctest", "inspect", "ast", "pickle", "copy", "enum",
    "dataclasses", "contextlib", "random", "hashlib", "io", "time", "configparser", "queue", "traceback",
    "warnings", "weakref", "types", "operator", "urllib.parse", "http.client", "ipaddress", "uuid", "codecs",
)
_WORD = re.compile(r"\w+")


@functools.lru_cache(maxsize=1)
def real_paragraphs() -> tuple[str, ...]:
    """Distinct paragraphs (whitespace collapsed) from pydoc topics and stdlib docstrings, sorted."""
    texts = [*pydoc_topics().values(), *stdlib_docstrings(_MODULES)]
    out = set()
    for t in texts:
        for para in re.split(r"\n\s*\n", t):
            clean = " ".join(para.split())
            if clean:
                out.add(clean)
    return tuple(sorted(out))


def real_texts(min_words: int = 20, max_chars: int = 5000) -> list[str]:
    return [t for t in real_paragraphs() if len(_WORD.findall(t)) >= min_words and len(t) <= max_chars]


def distinct_texts(n: int, *, min_words: int = 12, max_chars: int = 1500, seed: int = 0,
                   max_jaccard: float = 0.5) -> list[str]:
    """``n`` real texts of which no two are near-duplicates by the ground truth (exact word-set
    Jaccard below ``max_jaccard``): real corpora contain templated paragraphs that *are* near copies."""
    import random

    pool = real_texts(min_words=min_words, max_chars=max_chars)
    rng = random.Random(seed)
    kept: list[str] = []
    kept_sets: list[set[str]] = []
    for candidate in rng.sample(pool, len(pool)):
        words = set(_WORD.findall(candidate.lower()))
        if all(len(words & s) / len(words | s) < max_jaccard for s in kept_sets):
            kept.append(candidate)
            kept_sets.append(words)
            if len(kept) == n:
                return kept
    raise AssertionError(f"only {len(kept)} distinct texts")


def write_jsonl(path: Path, records: Iterable[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def table_fingerprint(engine: Engine) -> dict[str, tuple[int, str]]:
    """``table -> (row count, sha256 of all rows sorted)`` for every table of the schema."""
    out: dict[str, tuple[int, str]] = {}
    with Session(engine) as session:
        for table in Base.metadata.sorted_tables:
            rows = session.execute(select(table)).all()
            digest = hashlib.sha256()
            for row in sorted(repr(tuple(r)) for r in rows):
                digest.update(row.encode("utf-8", "backslashreplace"))
            out[table.name] = (len(rows), digest.hexdigest())
        version = session.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
        out["alembic_version"] = (len(version), ",".join(version))
    return out
