"""What a name may be: the one validator for provider, campaign and buyer names, and their inert display.

Names are typed by operators and by providers (the inbox's folder names and manifest), and they end up
in terminals, logs, Rich tables, Markdown, HTML, file names and MLflow. So a name is refused unless:

- it has 1 to :data:`MAX_NAME_CHARS` characters once the surrounding spaces are stripped;
- every character is a letter, a combining mark, a digit, a plain space (U+0020) or one of
  :data:`ALLOWED_PUNCTUATION`; so no control, format (zero-width, bidi override), private-use,
  unassigned or surrogate character, no other white space (tab, newline, no-break space), and no
  markup brackets (``[`` ``]`` ``<`` ``>`` ``{`` ``}``) or backslash;
- it is not made of digits only, nor spelled like an explicit id reference (``id:7``): a digit string
  always means an id to the lookups (:func:`marketplace.db.lookup.find_by_name_or_id`).

Rows stored before this rule may still hold any text, so every place that *shows* a name also makes it
inert: :func:`display_name` (one line, controls escaped, for logs and plain text) and
:func:`rich_safe` (the same, with Rich markup escaped, for tables and console messages).
"""

from __future__ import annotations

import logging
import re
import unicodedata

from marketplace.errors import ValidationError

__all__ = ["ALLOWED_PUNCTUATION", "LOG_FORMAT", "MAX_NAME_CHARS", "InertLogFormatter", "display_name",
           "escape_unprintable", "registry_model_name", "rich_safe", "validate_name"]

MAX_NAME_CHARS = 100
ALLOWED_PUNCTUATION = frozenset("-_.,:;'&()+@#!?/")
_ID_REFERENCE = re.compile(r"id:\d+", re.IGNORECASE)
_KINDS = {"provider": "--provider NAME", "campaign": "a campaign NAME", "buyer": "a buyer NAME"}


def _char_problem(ch: str) -> str | None:
    """Why ``ch`` may not appear in a name, or None when it may."""
    if ch == " " or ch in ALLOWED_PUNCTUATION:
        return None
    category = unicodedata.category(ch)
    if category[0] in "LMN":
        return None
    what = {"Cc": "a control character", "Cf": "an invisible format character (zero-width or bidi)",
            "Cs": "a surrogate", "Co": "a private-use character", "Cn": "an unassigned character",
            "Zs": "a space other than a plain space", "Zl": "a line separator", "Zp": "a paragraph separator"}
    return what.get(category, "a symbol or punctuation mark that names may not use")


def validate_name(value: object, kind: str = "provider") -> str:
    """``value`` stripped of surrounding spaces when it is a valid name; ValidationError saying what is
    wrong and what is allowed otherwise. ``kind`` ("provider", "campaign", "buyer") only words the error."""
    how = _KINDS.get(kind, "a NAME")
    allowed = (f"use 1-{MAX_NAME_CHARS} letters, digits, spaces and {''.join(sorted(ALLOWED_PUNCTUATION))}, "
               f"not only digits ({how})")
    if not isinstance(value, str):
        raise ValidationError(f"{kind} name must be text, got {type(value).__name__}; {allowed}")
    name = value.strip(" ")
    if not name:
        raise ValidationError(f"{kind} name is empty; {allowed}")
    if len(name) > MAX_NAME_CHARS:
        raise ValidationError(f"{kind} name has {len(name)} characters (at most {MAX_NAME_CHARS}); {allowed}")
    for pos, ch in enumerate(name):
        problem = _char_problem(ch)
        if problem is not None:
            raise ValidationError(f"{kind} name {display_name(name)} holds {problem} (U+{ord(ch):04X}) at "
                                  f"position {pos}; {allowed}")
    if name.isdigit() or _ID_REFERENCE.fullmatch(name):
        raise ValidationError(f"{kind} name {display_name(name)} reads as an id (digits are ids, id:N is an "
                              f"explicit id); {allowed}")
    return name


def escape_unprintable(text: str) -> str:
    """Every character Python calls unprintable (controls, format and bidi characters, separators other
    than the plain space, surrogates, private use, unassigned) as its ``\\u`` escape."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape", "backslashreplace").decode("ascii")
                   for ch in text)


#: The line layout of the CLI's logs (console and the demo's log file).
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class InertLogFormatter(logging.Formatter):
    """Log lines that user text cannot forge: every unprintable character of the message (a newline, a
    carriage return, an ANSI escape, a bidi override, a zero-width character) is written as its ``\\u``
    escape, so a provider name or a record cannot start a fake log line, recolour a terminal or reorder
    what a reader sees. Only the message is escaped; a traceback appended by the handler keeps its lines.
    The CLI installs it on every handler of the root logger (marketplace/cli/app.py)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_unprintable(record.message)
        return super().formatMessage(record)


def display_name(name: object, limit: int = 120) -> str:
    """A name as one inert line for logs and plain text: quoted and escaped like ``repr`` (control,
    format and bidi characters as ``\\u202e``), cut at ``limit`` characters. Works on any stored text."""
    text = name if isinstance(name, str) else str(name)
    return repr(text[:limit]) + ("…" if len(text) > limit else "")


def rich_safe(text: object) -> str:
    """``text`` for a Rich table cell or console message: controls and bidi escaped, markup escaped
    (``[/]`` prints as written). Unlike :func:`display_name` it adds no quotes and does not cut."""
    from rich.markup import escape

    raw = text if isinstance(text, str) else str(text)
    return escape(escape_unprintable(raw))


def registry_model_name(campaign_name: str) -> str:
    """The campaign's registered model name, ``alinfik-<slug>`` (lower case, runs of other characters
    replaced by '-'). Several names map to one slug (``Camp One``, ``camp-one``): campaign creation refuses
    a name whose model name another campaign has (:func:`marketplace.campaigns.check_registry_name_free`),
    so within one database each campaign has its own registered model."""
    slug = re.sub(r"[^a-z0-9]+", "-", campaign_name.lower()).strip("-") or "campaign"
    return f"alinfik-{slug}"
