"""LinFiK queries on disk: q_c = η_c H_c⁻¹ ḡ_Y,c of one checkpoint, saved with the inputs it was built
from, and found again for exact labels of samples outside any label set.

The scoring step writes ``query-c{c}.safetensors`` into its run folder (:func:`save_query`); the
metadata names the config hash, target data, model and projection digests, η and the
preconditioner, and :func:`load_query` refuses a file whose metadata differs from what the caller
expects. :func:`find_or_build_query` reuses the query of the newest complete label set with the same
configuration (same config hash: preconditioner, reference and the rest) whose file fits, and otherwise
computes ḡ_Y itself (identity preconditioning without a reference only: a Fisher or K-FAC query, and a
pool-referenced one, need a label set's train statistics).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from sqlalchemy.orm import Session

from marketplace.db.label_sets import complete_label_sets
from marketplace.errors import ManifestMismatchError, NotFoundError
from marketplace.valuation.config import LinFiKConfig
from marketplace.valuation.gradients import compute_text_gradients
from marketplace.valuation.linfik import LinFiKQuery, build_query
from marketplace.valuation.projection import Projection
from marketplace.valuation.runs import CheckpointRef
from marketplace.valuation.target_model import TargetModel

__all__ = ["find_or_build_query", "load_query", "query_meta", "save_query"]

log = logging.getLogger(__name__)


def query_meta(config_hash: str, target_data_digest: str, ckpt: CheckpointRef, query: LinFiKQuery) -> dict[str, str]:
    """What a saved query records about its inputs (safetensors metadata: strings only)."""
    return {
        "config_hash": config_hash,
        "target_data_digest": target_data_digest,
        "model_digest": ckpt.digest,
        "projection_digest": query.projection_digest,
        "eta": repr(query.eta),
        "preconditioner": query.preconditioner,
    }


def save_query(path: Path, query: LinFiKQuery, meta: dict[str, str]) -> None:
    """Write atomically (a temporary file per process and thread, then a rename)."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    save_file({"q": query.vector.contiguous()}, str(tmp), metadata=meta)
    tmp.replace(path)


def load_query(path: Path, expected: dict[str, str]) -> LinFiKQuery:
    """A saved query, refused (ManifestMismatchError naming the field) if made from other inputs."""
    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata() or {}
        for key, want in expected.items():
            if meta.get(key) != want:
                raise ManifestMismatchError(
                    f"query {path}: field '{key}' is {meta.get(key)!r}, expected {want!r}; it was built for "
                    "another config, model or target set; relabel or delete it"
                )
        vector = fh.get_tensor("q")
    return LinFiKQuery(vector=vector, eta=float(meta["eta"]), preconditioner=meta["preconditioner"],
                       projection_digest=meta["projection_digest"])


def find_or_build_query(
    session: Session, campaign_id: int, config: LinFiKConfig, c: int, ckpt: CheckpointRef, projection: Projection,
    model: TargetModel, targets: Sequence[Any], expected: dict[str, str], batch_size: int,
) -> LinFiKQuery:
    """Checkpoint ``c``'s query: that of the newest complete label set with this config whose file
    matches ``expected`` (older ones are tried in turn), else built here from the target rows
    (``targets``: text, prompt_chars) with identity preconditioning and no reference."""
    for label_set in complete_label_sets(session, campaign_id, config_hash=config.config_hash()):
        path = Path(label_set.store_uri) / f"query-c{c}.safetensors"
        if path.exists():
            try:
                return load_query(path, expected)
            except ManifestMismatchError:
                continue
    if config.needs_train_statistics():
        needs = (f"the {config.preconditioner} preconditioner" if config.preconditioner != "identity"
                 else f"the {config.reference} reference")
        raise NotFoundError(
            f"no finished label set of campaign {campaign_id} with config {config.config_hash()[:12]} "
            f"({needs} needs its train statistics); run `marketplace label` first"
        )
    g = compute_text_gradients(model, projection, [t.text for t in targets], [t.prompt_chars for t in targets],
                               max_length=config.max_length, batch_size=batch_size).grads
    log.info("campaign %d: target gradient of %d samples computed for checkpoint %d", campaign_id, len(targets), c)
    return build_query(g.to(torch.float64).mean(dim=0), projection, eta=ckpt.eta, preconditioner="identity")
