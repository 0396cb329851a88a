"""Shared helpers for the labeling tests: a tiny real model folder and a tiny campaign (no tests here)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from sqlalchemy.orm import Session

from marketplace.corpus import python_docs_paragraphs
from marketplace.db import (
    Campaign,
    DuplicateKind,
    Provider,
    Sample,
    Submission,
    SubmissionStatus,
    TargetSample,
)
from marketplace.valuation.demo_model import DemoModelConfig, build_demo_model
from marketplace.valuation.target_model import digest_model_dir

TINY_MODEL = DemoModelConfig(
    arch="gpt2", n_layer=2, d_model=32, n_head=2, context=64, vocab_size=400, text_chars=10_000,
    train_steps=30, batch_size=8, seq_len=32, warmup_steps=5,
)


def build_tiny_model(root: Path, *, arch: str = "gpt2") -> Path:
    """A real (tokenizer + weights) GPT-2 or Llama folder in a few seconds; reused when present."""
    out = root / f"tiny-{arch}"
    build_demo_model(out, TINY_MODEL.model_copy(update={"arch": arch}), seed=0,
                     paragraphs=python_docs_paragraphs(60_000, seed=0))
    return out


def texts(n: int, *, seed: int = 1, max_chars: int = 240) -> list[str]:
    paras = python_docs_paragraphs(400_000, seed=seed)
    out = list(dict.fromkeys(p[:max_chars] for p in paras))
    assert len(out) >= n
    return out[:n]


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def seed_campaign(
    session: Session, model_dir: Path, *, per_provider: tuple[int, ...] = (12, 18, 6), n_target: int = 5,
    name: str = "tiny",
) -> int:
    """Providers with accepted samples (every 4th a prompt/response), one duplicate, a campaign + target set."""
    pool = texts(sum(per_provider) + n_target + 1)
    cursor = 0
    first_sample: Sample | None = None
    for p_index, count in enumerate(per_provider):
        provider = Provider(name=f"provider-{p_index}")
        session.add(provider)
        session.flush()
        sub = Submission(provider_id=provider.id, filename=f"p{p_index}.jsonl", format="jsonl",
                         content_sha256=sha(f"file{p_index}"), byte_size=100, status=SubmissionStatus.ACCEPTED,
                         n_records=count, n_accepted=count, n_quarantined=0)
        session.add(sub)
        session.flush()
        for r in range(count):
            text = pool[cursor]
            cursor += 1
            prompt_chars = None
            if r % 4 == 1:
                cut = max(10, len(text) // 3)
                text = text[:cut] + "\n" + text[cut:]
                prompt_chars = cut
            s = Sample(submission_id=sub.id, provider_id=provider.id, record_index=r, text=text,
                       prompt_chars=prompt_chars, content_hash=sha(text), n_chars=len(text))
            session.add(s)
            if first_sample is None:
                session.flush()
                first_sample = s
    assert first_sample is not None
    # a later exact duplicate of the first sample: never labeled
    dup_provider = session.get(Provider, first_sample.provider_id)
    assert dup_provider is not None
    sub = Submission(provider_id=dup_provider.id, filename="dup.jsonl", format="jsonl", content_sha256=sha("dup"),
                     byte_size=10, status=SubmissionStatus.ACCEPTED, n_records=1, n_accepted=1, n_quarantined=0)
    session.add(sub)
    session.flush()
    session.add(Sample(submission_id=sub.id, provider_id=dup_provider.id, record_index=0, text=first_sample.text,
                       content_hash=first_sample.content_hash, n_chars=first_sample.n_chars,
                       duplicate_of_id=first_sample.id, duplicate_kind=DuplicateKind.EXACT))
    target_texts = pool[cursor : cursor + n_target]
    h = hashlib.sha256()
    for t in target_texts:
        h.update(sha(t).encode() + b"\n")
    camp = Campaign(name=name, target_model_path=str(model_dir), target_model_digest=digest_model_dir(model_dir),
                    target_data_path="/nowhere/target.jsonl", target_data_digest=h.hexdigest(), budget_minor=10_000,
                    currency="EUR")
    session.add(camp)
    session.flush()
    for i, t in enumerate(target_texts):
        session.add(TargetSample(campaign_id=camp.id, record_index=i, text=t, prompt_chars=None, content_hash=sha(t)))
    session.flush()
    return camp.id
