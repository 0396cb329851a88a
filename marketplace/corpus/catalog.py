"""The sources a build uses by default, with their licences as the packages' copyright files state them."""

from __future__ import annotations

from marketplace.corpus.sources import (
    DictdSource,
    FortunesSource,
    LicencesSource,
    PydocTopicsSource,
    StdlibDocstringsSource,
    TextSource,
    WordNetSource,
)
from marketplace.corpus.target import held_out_split

__all__ = ["PROVIDER_ONLY_SOURCES", "SOURCE_NAMES", "default_sources", "model_text_sources"]

SOURCE_NAMES = (
    "python-docs/topics",
    "python-stdlib-docstrings",
    "foldoc",
    "jargon",
    "gcide",
    "wordnet",
    "fortunes",
    "licences",
)
#: Sources that provider files are built from but the demo target model is not trained on (its
#: training text, and so its cache key, stays what it was): the model has never seen them.
PROVIDER_ONLY_SOURCES = frozenset({"licences"})


def default_sources() -> tuple[TextSource, ...]:
    """Every known source at its Debian/Python location; the pydoc topics without the held-out slice.

    Licences: FOLDOC is GFDL 1.1 or later; the Jargon File is public domain; GCIDE is GPL version 2
    or later (both /usr/share/doc/dict-gcide/copyright and the dictionary's own header say so);
    WordNet has the WordNet 3.0 licence; the fortune-mod collection is BSD (the quotations' own
    rights vary); Python's documentation and docstrings are PSF-2.0; the licence texts of base-files may be
    copied verbatim.
    """
    return (
        PydocTopicsSource(exclude=held_out_split().held_out),
        StdlibDocstringsSource(),
        DictdSource(name="foldoc", licence="GFDL-1.1-or-later", package="dict-foldoc", defer_to="jargon"),
        DictdSource(name="jargon", licence="public-domain", package="dict-jargon"),
        DictdSource(name="gcide", licence="GPL-2.0-or-later", package="dict-gcide"),
        WordNetSource(),
        FortunesSource(),
        LicencesSource(),
    )


def model_text_sources() -> tuple[TextSource, ...]:
    """The default sources the demo target model is trained on: all but :data:`PROVIDER_ONLY_SOURCES`."""
    return tuple(s for s in default_sources() if s.name not in PROVIDER_ONLY_SOURCES)
