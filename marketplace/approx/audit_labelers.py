"""The audit's exact labeler, named by a string so that the choice crosses process boundaries.

- ``"linfik"``: :func:`marketplace.valuation.label_sample_ids` with the LinFiK configuration of the
  label set the scored version learned from (the same definition as its training labels);
- ``"none"``: no labeler; the audit is recorded as skipped;
- ``"package.module:factory"``: ``factory(context)`` returns a callable ``sample_ids -> {sample id:
  LinFiK}`` (a plug-in; tests pass a fake this way).

:func:`label_for_audit` applies the choice to the samples the audit picked and says why nothing was
labeled when nothing was; :func:`marketplace.approx.audit.conclude_audit` records either outcome.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from marketplace.approx.audit import AuditLabels, ExactLabeler
from marketplace.db import LabelSet
from marketplace.errors import ConfigError, NotFoundError

__all__ = ["LabelerContext", "build_labeler", "label_for_audit"]


@dataclass(frozen=True)
class LabelerContext:
    """What an exact-labeler factory gets: where to read, which campaign and label set, where to work.

    The labeler opens its own short read-only sessions from ``session_factory`` (labeling takes
    minutes; no transaction stays open meanwhile)."""

    session_factory: sessionmaker[Session]
    campaign_id: int
    label_set_id: int
    work_dir: Path  # cached LinFiK queries go below it
    device: str


def _linfik_labeler(ctx: LabelerContext) -> ExactLabeler:
    """The real exact labeler: LinFiK with the config of the label set the version learned from."""
    try:
        from marketplace.valuation import LinFiKConfig, label_sample_ids
    except ImportError as exc:  # pragma: no cover - valuation ships with the package
        raise ConfigError(
            "exact LinFiK labeling (marketplace.valuation) is not available; score with --audit-labeler none"
        ) from exc

    with ctx.session_factory() as session:
        label_set = session.get(LabelSet, ctx.label_set_id)
        if label_set is None:
            raise NotFoundError(f"label set {ctx.label_set_id} not found; the scored version's lineage is broken")
        config = LinFiKConfig.from_stored(label_set.config)

    def label(sample_ids: Sequence[int]) -> dict[int, float]:
        with ctx.session_factory() as session:
            return label_sample_ids(session, ctx.campaign_id, list(sample_ids), config, work_dir=ctx.work_dir,
                                    device=ctx.device)

    return label


def build_labeler(spec: str, ctx: LabelerContext) -> ExactLabeler | None:
    """The labeler ``spec`` names (see the module docstring); None for ``"none"``."""
    if spec == "none":
        return None
    if spec == "linfik":
        return _linfik_labeler(ctx)
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"audit labeler {spec!r} must be 'linfik', 'none' or 'package.module:factory'")
    try:
        factory: Callable[[LabelerContext], ExactLabeler] = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"audit labeler {spec!r} cannot be imported: {exc}") from exc
    return factory(ctx)


def label_for_audit(spec: str, ctx: LabelerContext, sample_ids: Sequence[int], n_audit: int) -> AuditLabels:
    """Exact labels of the picked ``sample_ids`` with the labeler ``spec`` names; no labeler is built
    when the audit size is 0, and none is asked when nothing was picked."""
    if n_audit <= 0:
        return AuditLabels(None, "audit size 0")
    labeler = build_labeler(spec, ctx)
    if labeler is None:
        return AuditLabels(None, "no labeler")
    if not sample_ids:
        return AuditLabels(None, "nothing to audit")
    return AuditLabels(labeler(sample_ids))
