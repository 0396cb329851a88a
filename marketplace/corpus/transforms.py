"""What copycats and corrupted providers do to real text, and how a record becomes a prompt/response pair.

All functions take an explicit ``random.Random`` so that a build is reproducible from its seed.
"""

from __future__ import annotations

import random

from marketplace.corpus.records import SourceRecord

__all__ = ["PROMPT_TEMPLATES", "near_copy", "shuffle_chars", "shuffle_words", "to_prompt_response"]

PROMPT_TEMPLATES = (
    'What does "{title}" mean?',
    'Define "{title}".',
    'Explain the meaning of "{title}".',
    'What is meant by "{title}"?',
)


def near_copy(text: str, rng: random.Random, edit_fraction: float = 0.05) -> str:
    """A near-duplicate of ``text``: about ``edit_fraction`` of its whitespace tokens edited
    (deleted, duplicated, or replaced by another token of the text), its case changed
    (all lower or all upper), and its whitespace changed (line breaks flattened, some gaps doubled).

    This is what the ingest's near-duplicate detection must catch (recall is measured with up
    to 10% of tokens edited; we edit 5%).
    """
    tokens = text.split()
    if not tokens:
        return text
    n_edits = max(1, round(edit_fraction * len(tokens)))
    for pos in sorted(rng.sample(range(len(tokens)), min(n_edits, len(tokens))), reverse=True):
        op = rng.randrange(3)
        if op == 0 and len(tokens) > 1:
            del tokens[pos]
        elif op == 1:
            tokens.insert(pos, tokens[pos])
        else:
            tokens[pos] = tokens[rng.randrange(len(tokens))]
    case = rng.choice(("lower", "lower", "upper"))
    gaps = [("  " if rng.random() < 0.1 else " ") for _ in range(len(tokens) - 1)]
    out = tokens[0] + "".join(gap + tok for gap, tok in zip(gaps, tokens[1:], strict=True))
    return out.lower() if case == "lower" else out.upper()


def shuffle_words(text: str, rng: random.Random) -> str:
    """The words of ``text`` in a random order, one space apart: real vocabulary, no syntax."""
    tokens = text.split()
    rng.shuffle(tokens)
    return " ".join(tokens)


def shuffle_chars(text: str, rng: random.Random) -> str:
    """The characters of ``text`` (line breaks as spaces) in a random order: real letter frequencies, no words."""
    chars = list(" ".join(text.split()))
    rng.shuffle(chars)
    return "".join(chars).strip() or text


def to_prompt_response(record: SourceRecord, rng: random.Random) -> tuple[str, str]:
    """``(prompt, response)``: a question about the record's title, answered by the record's text."""
    template = PROMPT_TEMPLATES[rng.randrange(len(PROMPT_TEMPLATES))]
    return template.format(title=record.title), record.text
