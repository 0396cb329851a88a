"""The sources a build uses by default, with their licences as the packages' copyright files state them."""

from __future__ import annotations

from marketplace.corpus.sources import (
    DictdSource,
    FortunesSource,
    PydocTopicsSource,
    StdlibDocstringsSource,
    TextSource,
    WordNetSource,
)
from marketplace.corpus.target import held_out_split

__all__ = ["SOURCE_NAMES", "default_sources"]

SOURCE_NAMES = (
    "python-docs/topics",
    "python-stdlib-docstrings",
    "foldoc",
    "jargon",
    "gcide",
    "wordnet",
    "fortunes",
)


def default_sources() -> tuple[TextSource, ...]:
    """Every known source at its Debian/Python location; the pydoc topics without the held-out slice.

    Licences: FOLDOC is GFDL 1.1 or later; the Jargon File is public domain; GCIDE is GPL version 2
    or later (both /usr/share/doc/dict-gcide/copyright and the dictionary's own header say so);
    WordNet has the WordNet 3.0 licence; the fortune-mod collection is BSD (the quotations' own
    rights vary); Python's documentation and docstrings are PSF-2.0.
    """
    return (
        PydocTopicsSource(exclude=held_out_split().held_out),
        StdlibDocstringsSource(),
        DictdSource(name="foldoc", licence="GFDL-1.1-or-later", package="dict-foldoc", defer_to="jargon"),
        DictdSource(name="jargon", licence="public-domain", package="dict-jargon"),
        DictdSource(name="gcide", licence="GPL-2.0-or-later", package="dict-gcide"),
        WordNetSource(),
        FortunesSource(),
    )
