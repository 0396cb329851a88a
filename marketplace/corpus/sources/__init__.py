"""Real, offline text sources: Debian text packages and Python's own documentation."""

from marketplace.corpus.sources.base import TextSource
from marketplace.corpus.sources.dictd import DictdSource
from marketplace.corpus.sources.fortunes import FortunesSource
from marketplace.corpus.sources.licences import LicencesSource
from marketplace.corpus.sources.pydocs import PydocTopicsSource, StdlibDocstringsSource
from marketplace.corpus.sources.wordnet import WordNetSource

__all__ = [
    "DictdSource",
    "FortunesSource",
    "LicencesSource",
    "PydocTopicsSource",
    "StdlibDocstringsSource",
    "TextSource",
    "WordNetSource",
]
