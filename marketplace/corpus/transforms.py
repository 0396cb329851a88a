"""What copycats and corrupted providers do to real text, and how a record becomes a prompt/response pair.

All functions take an explicit ``random.Random`` so that a build is reproducible from its seed.
"""

from __future__ import annotations

import random

from marketplace.corpus.records import SourceRecord

__all__ = ["PROMPT_TEMPLATES", "near_copy", "scramble", "shuffle_chars", "shuffle_words", "to_prompt_response"]

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


def scramble(text: str, rng: random.Random, window: int = 4, letter_fraction: float = 0.4) -> str:
    """A corrupted copy of ``text`` that keeps its layout and vocabulary but not its sense.

    Line by line (line breaks and indentation kept, so code and lists keep their shape), the words are
    shuffled within consecutive windows of ``window`` words, and the inner letters of about
    ``letter_fraction`` of the words longer than three letters are shuffled (first and last letter kept:
    "docmunetaoin"). Few runs of five words survive, so word-shingle near-duplicate detection does not
    link the copy to its original; what it can still teach a model is for the ground truth to measure.
    """
    out_lines = []
    for line in text.split("\n"):
        indent = line[: len(line) - len(line.lstrip())]
        words = line.split()
        for start in range(0, len(words), window):
            chunk = words[start : start + window]
            rng.shuffle(chunk)
            words[start : start + window] = chunk
        for i, word in enumerate(words):
            if len(word) > 3 and rng.random() < letter_fraction:
                inner = list(word[1:-1])
                rng.shuffle(inner)
                words[i] = word[0] + "".join(inner) + word[-1]
        out_lines.append(indent + " ".join(words))
    return "\n".join(out_lines)


def to_prompt_response(record: SourceRecord, rng: random.Random) -> tuple[str, str]:
    """``(prompt, response)``: a question about the record's title, answered by the record's text."""
    template = PROMPT_TEMPLATES[rng.randrange(len(PROMPT_TEMPLATES))]
    return template.format(title=record.title), record.text
