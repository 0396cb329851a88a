"""General real text for training the demo target model, behind one function.

:func:`general_text` uses ``marketplace.corpus.general_text`` (Debian dictionaries, fortunes and
Python docs) when that module provides it, and otherwise falls back to text every Python install has:
the language reference topics of ``pydoc_data.topics`` and standard-library docstrings. Whatever the
source, the demo model's manifest records a digest of the exact text it was trained on.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import logging
import random
import re

__all__ = ["general_text", "stdlib_text", "text_digest"]

log = logging.getLogger(__name__)

# Plain-text-heavy modules whose import has no side effects worth worrying about.
_DOC_MODULES = (
    "abc", "argparse", "array", "ast", "asyncio", "base64", "bisect", "calendar", "cmath", "codecs",
    "collections", "colorsys", "concurrent.futures", "configparser", "contextlib", "copy", "csv",
    "dataclasses", "datetime", "decimal", "difflib", "dis", "doctest", "email", "enum", "fnmatch",
    "fractions", "ftplib", "functools", "gettext", "glob", "gzip", "hashlib", "heapq", "hmac", "html",
    "http.client", "imaplib", "inspect", "io", "ipaddress", "itertools", "json", "locale", "logging",
    "lzma", "mailbox", "math", "mimetypes", "numbers", "operator", "optparse", "os", "pathlib",
    "pickle", "pprint", "queue", "random", "re", "sched", "secrets", "selectors", "shelve", "shlex",
    "shutil", "smtplib", "socket", "sqlite3", "statistics", "string", "struct", "subprocess",
    "tarfile", "tempfile", "textwrap", "threading", "time", "timeit", "tokenize", "traceback", "types",
    "typing", "unittest", "urllib.parse", "urllib.request", "uuid", "warnings", "wave", "weakref",
    "xml.dom.minidom", "xml.etree.ElementTree", "zipfile", "zoneinfo",
)

_MIN_PARAGRAPH_CHARS = 60


def _paragraphs(text: str) -> list[str]:
    out = []
    for block in re.split(r"\n\s*\n", text):
        para = " ".join(line.strip() for line in block.strip().splitlines())
        if len(para) >= _MIN_PARAGRAPH_CHARS and not para.startswith((">>>", "...")):
            out.append(para)
    return out


def stdlib_text(max_chars: int, seed: int = 0) -> list[str]:
    """Paragraphs of the Python reference topics and stdlib docstrings, shuffled by ``seed``."""
    import pydoc_data.topics

    paragraphs: list[str] = []
    for key in sorted(pydoc_data.topics.topics):
        paragraphs.extend(_paragraphs(pydoc_data.topics.topics[key]))
    for mod_name in _DOC_MODULES:
        try:
            mod = importlib.import_module(mod_name)
        except ImportError:
            continue
        paragraphs.extend(_paragraphs(inspect.getdoc(mod) or ""))
        for _name, member in sorted(vars(mod).items()):
            if inspect.isclass(member) or inspect.isfunction(member):
                paragraphs.extend(_paragraphs(inspect.getdoc(member) or ""))
    unique = list(dict.fromkeys(paragraphs))
    random.Random(seed).shuffle(unique)
    out, total = [], 0
    for para in unique:
        if total + len(para) > max_chars:
            break
        out.append(para)
        total += len(para)
    return out


def general_text(max_chars: int, seed: int = 0) -> list[str]:
    """Paragraphs of general real text, at most ``max_chars`` characters in all, deterministic per seed."""
    try:
        corpus = importlib.import_module("marketplace.corpus")
        fn = corpus.general_text
    except (ImportError, AttributeError):
        log.info("marketplace.corpus.general_text not available; using Python docs and docstrings")
        return stdlib_text(max_chars, seed)
    result: list[str] = fn(max_chars=max_chars, seed=seed)
    return result


def text_digest(paragraphs: list[str]) -> str:
    h = hashlib.sha256()
    for para in paragraphs:
        h.update(para.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()
