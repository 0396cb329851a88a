"""Python's own documentation, present wherever Python is: the reference topics and stdlib docstrings.

- ``python-docs/topics``: ``pydoc_data.topics.topics``, the ~80 long sections of the language
  reference and library docs that ``help("for")`` shows, split into paragraph groups (code examples
  keep their layout).
- ``python-stdlib-docstrings``: the docstrings of the standard-library modules (see
  :func:`stdlib_modules`), their public functions and classes and those classes' public methods, as
  ``qualified.name(signature)`` + blank line + docstring.

Both are PSF-2.0 licensed and change with the Python version (the manifest records it).
"""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from marketplace.corpus.records import SourceRecord, chunk_paragraphs, clean_block, split_paragraphs
from marketplace.corpus.sources.base import TextSource

__all__ = [
    "EXCLUDED_MODULES",
    "PydocTopicsSource",
    "StdlibDocstringsSource",
    "all_topic_keys",
    "pydoc_topics",
    "stdlib_docstrings",
    "stdlib_modules",
    "topic_paragraphs",
]

logger = logging.getLogger(__name__)

PSF_LICENCE = "PSF-2.0"

#: Standard-library modules never imported for their docstrings: import-time side effects (a browser,
#: a GUI, terminal escape codes from readline, printing the Zen), platform-specific or deprecated
#: modules, and test suites.
EXCLUDED_MODULES = frozenset({
    "antigravity", "this", "idlelib", "tkinter", "turtle", "turtledemo", "readline", "rlcompleter",
    "ensurepip", "venv", "lib2to3", "pydoc_data", "test", "tests", "encodings", "site", "sitecustomize",
    "usercustomize", "msilib", "winreg", "winsound", "nt", "msvcrt", "xxlimited", "xxsubtype",
    "asynchat", "asyncore", "smtpd", "distutils", "imp", "cgi", "cgitb", "crypt", "nis", "spwd",
    "ossaudiodev", "audioop", "telnetlib", "imghdr", "sndhdr", "chunk", "mailcap", "nntplib", "pipes",
    "uu", "xdrlib", "sunau", "aifc", "__main__",
})  # fmt: skip


def stdlib_modules() -> tuple[str, ...]:
    """Top-level public stdlib modules (``sys.stdlib_module_names``) and the public submodules of
    those that are packages, sorted; :data:`EXCLUDED_MODULES` left out. Fixed for a Python version."""
    import pkgutil
    import sys

    names: list[str] = []
    for top in sorted(sys.stdlib_module_names):
        if top.startswith("_") or top in EXCLUDED_MODULES:
            continue
        names.append(top)
        try:
            module = importlib.import_module(top)
        except Exception:  # absent or broken on this platform: simply not a source
            continue
        for info in sorted(pkgutil.iter_modules(getattr(module, "__path__", [])), key=lambda i: i.name):
            if not info.name.startswith("_") and info.name not in EXCLUDED_MODULES:
                names.append(f"{top}.{info.name}")
    return tuple(names)


_UNDERLINE = re.compile(r"^[*=\-~^]{3,}$")
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
MIN_DOCSTRING_CHARS = 120
TOPIC_CHUNK_CHARS = 900


def topic_paragraphs(text: str) -> tuple[str, list[str]]:
    """``(title, paragraphs)`` of one pydoc topic: the heading is its first line; underlines dropped."""
    paragraphs = []
    for para in split_paragraphs(text, keep_lines=True):
        lines = [line for line in para.split("\n") if not _UNDERLINE.match(line.strip())]
        if lines:
            paragraphs.append("\n".join(lines))
    title = paragraphs[0].split("\n")[0].strip() if paragraphs else ""
    return title, paragraphs


@functools.lru_cache(maxsize=1)
def pydoc_topics() -> dict[str, str]:
    """``pydoc_data.topics.topics`` (topic key → text): the one reader of that module. ImportError on a
    Python built without it."""
    from pydoc_data.topics import topics

    return dict(topics)


def all_topic_keys() -> list[str]:
    """Every pydoc topic key, sorted ("" list when this Python has no ``pydoc_data``)."""
    try:
        return sorted(pydoc_topics())
    except ImportError:
        return []


@dataclass(frozen=True)
class PydocTopicsSource(TextSource):
    """The pydoc topics, optionally restricted (``only``) or with some held out (``exclude``).

    ``max_chars`` bounds a record (paragraphs are grouped up to it), so the same topics give
    shorter records for target data and longer ones for providers.
    """

    name: str = "python-docs/topics"
    licence: str = PSF_LICENCE
    package: str | None = None
    exclude: frozenset[str] = field(default_factory=frozenset)
    only: frozenset[str] | None = None
    max_chars: int = TOPIC_CHUNK_CHARS

    def available(self) -> bool:
        try:
            return bool(pydoc_topics())
        except ImportError:  # a Python built without pydoc_data
            return False

    def describe(self) -> str:
        import platform

        return f"pydoc_data.topics of Python {platform.python_version()}"

    def units(self) -> list[str]:
        return [k for k in sorted(pydoc_topics()) if k not in self.exclude and (self.only is None or k in self.only)]

    def records_of(self, unit: str) -> list[SourceRecord]:
        title, paragraphs = topic_paragraphs(pydoc_topics()[unit])
        return [
            SourceRecord(self.name, self.licence, f"{unit}#{i}", title, chunk)
            for i, chunk in enumerate(chunk_paragraphs(paragraphs, max_chars=self.max_chars))
        ]


@dataclass(frozen=True, slots=True)
class DocUnit:
    """A documented stdlib object: its qualified name, signature text ("" when unknown) and docstring."""

    qualname: str
    signature: str
    doc: str


def _machine_paths() -> tuple[str, ...]:
    """This interpreter's and this user's folders, as text: a default argument such as
    ``executable=sys.executable`` prints one of them, which would make the corpus (and the demo model
    trained on it) depend on where the checkout lives."""
    import os
    import sys

    paths = {sys.executable, sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.expanduser("~"), os.getcwd()}
    return tuple(sorted(p for p in paths if p and len(p) > 4))


def _machine_specific(text: str) -> bool:
    return any(path in text for path in _machine_paths())


def _signature(obj: Any) -> str:
    try:
        sig = str(inspect.signature(obj))
    except (TypeError, ValueError):
        return ""
    return "" if _ADDRESS.search(sig) or _machine_specific(sig) else sig


def _own_doc(obj: Any) -> str:
    """The object's own docstring (not inherited), cleaned; "" when absent."""
    doc = getattr(obj, "__doc__", None)
    return inspect.cleandoc(doc) if isinstance(doc, str) else ""


def _walk_module(module_name: str) -> Iterator[DocUnit]:
    try:
        module = importlib.import_module(module_name)
    except Exception:  # platform-specific modules fail in many ways; they are just skipped
        logger.debug("stdlib module %s is not importable here; skipped", module_name)
        return
    yield DocUnit(module_name, "", _own_doc(module))
    for name, obj in sorted(vars(module).items()):
        # Hooks (sys.unraisablehook...) are swapped at run time by test runners and debuggers: what
        # they hold depends on who imported us, so they are left out to keep builds reproducible.
        if name.startswith("_") or name.endswith("hook"):
            continue
        if getattr(obj, "__module__", None) not in (module_name, module.__name__):
            continue
        if inspect.isclass(obj):
            yield DocUnit(f"{module_name}.{name}", _signature(obj), _own_doc(obj))
            for attr, member in sorted(vars(obj).items()):
                if attr.startswith("_"):
                    continue
                func = member.__func__ if isinstance(member, classmethod | staticmethod) else member
                if inspect.isroutine(func):
                    yield DocUnit(f"{module_name}.{name}.{attr}", _signature(func), _own_doc(func))
        elif inspect.isroutine(obj):
            yield DocUnit(f"{module_name}.{name}", _signature(obj), _own_doc(obj))


def collect_doc_units(modules: tuple[str, ...] | None) -> list[DocUnit]:
    """Walk the modules (None: :func:`stdlib_modules`) in *this* process; see :func:`_doc_units`."""
    seen: set[str] = set()
    units = []
    for module_name in modules if modules is not None else stdlib_modules():
        for unit in _walk_module(module_name):
            # Same docstring under two names (aliases, re-exports): keep the first.
            if (len(unit.doc) >= MIN_DOCSTRING_CHARS and unit.doc not in seen and not _ADDRESS.search(unit.doc)
                    and not _machine_specific(unit.doc)):
                seen.add(unit.doc)
                units.append(unit)
    return units


_COLLECT = (
    "import json, sys\n"
    "from marketplace.corpus.sources.pydocs import collect_doc_units\n"
    "mods = json.loads(sys.stdin.read())\n"
    "units = collect_doc_units(None if mods is None else tuple(mods))\n"
    "sys.stdout.write(json.dumps([[u.qualname, u.signature, u.doc] for u in units]))\n"
)


@functools.lru_cache(maxsize=2)
def _doc_units(modules: tuple[str, ...] | None) -> list[DocUnit]:
    """Docstrings collected in a fresh interpreter.

    What live objects say (signatures, docstrings, even which names a module holds) depends on what
    the calling process imported or patched before: test runners, debuggers and Prefect all wrap
    standard-library objects. A corpus must be byte-identical whoever builds it, so the walk runs in
    a new process that imports nothing but this module.
    """
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", _COLLECT],
        input=json.dumps(None if modules is None else list(modules)),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"collecting standard-library docstrings failed: {done.stderr.strip()[-2000:]}")
    return [DocUnit(q, sig, doc) for q, sig, doc in json.loads(done.stdout)]


def stdlib_docstrings(modules: tuple[str, ...] | None = None) -> list[str]:
    """The docstrings :class:`StdlibDocstringsSource` draws from (``modules``, None: every stdlib
    module of :func:`stdlib_modules`): own docstrings of at least :data:`MIN_DOCSTRING_CHARS`, the first
    of any repeated one, collected in a fresh interpreter; the one reader of stdlib docstrings."""
    return [unit.doc for unit in _doc_units(modules)]


@dataclass(frozen=True)
class StdlibDocstringsSource(TextSource):
    name: str = "python-stdlib-docstrings"
    licence: str = PSF_LICENCE
    package: str | None = None
    modules: tuple[str, ...] | None = None  # None: :func:`stdlib_modules`

    def available(self) -> bool:
        return True

    def describe(self) -> str:
        import platform

        return f"docstrings of the standard library of Python {platform.python_version()}"

    def units(self) -> list[DocUnit]:
        return _doc_units(self.modules)

    def records_of(self, unit: DocUnit) -> list[SourceRecord]:
        head = f"{unit.qualname}{unit.signature}"
        paragraphs = [head, *split_paragraphs(clean_block(unit.doc), keep_lines=True)]
        return [
            SourceRecord(self.name, self.licence, unit.qualname + (f"#{i}" if i else ""), unit.qualname, chunk)
            for i, chunk in enumerate(chunk_paragraphs(paragraphs))
        ]
