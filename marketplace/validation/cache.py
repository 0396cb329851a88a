"""Fine-tuning measurements kept for reuse: a payout validation repeated after a relabel or a repricing
reuses the measured gains instead of fine-tuning again.

What fine-tuning measures depends on the drawn samples (their texts), the target set, the target model and
the validation settings; never on labels, scores or pricing. :func:`measurement_key` hashes exactly those
inputs (texts by SHA-256, the model by the digest its campaign pins, the device type), so equal keys mean
the same experiment; any new sample, another seed or K, another model or target gives another key. One JSON
file per key under the cache folder, written to a temporary name and moved into place.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from marketplace.validation.config import ValidationConfig
from marketplace.validation.gains import GainMeasurement, ProviderGain, RegimeGain
from marketplace.validation.samples import ValidationData

__all__ = ["load_measurement", "measurement_cache_dir", "measurement_key", "save_measurement"]

log = logging.getLogger(__name__)

#: Bump when the measurement's meaning or the file layout changes: older files are then ignored.
CACHE_VERSION = 1


def measurement_cache_dir(settings: Any) -> Path:
    """Where the CLI and the ``validate`` flow keep measurements: ``<artifacts>/validation/measurements``."""
    return Path(settings.resolved_artifacts_dir) / "validation" / "measurements"


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def measurement_key(data: ValidationData, config: ValidationConfig, model_digest: str, device: str) -> str:
    """SHA-256 (hex) of everything the fine-tuning result depends on."""
    body = {
        "version": CACHE_VERSION,
        "config": config.config_hash(),
        "model": model_digest,
        "device": device.split(":")[0],  # cpu or cuda: the arithmetic, not which card
        "providers": [[p.provider_id, p.n_payable, [list(d) for d in p.draws]] for p in data.providers],
        "texts": sorted([sid, _sha(text), pc] for sid, (text, pc) in data.texts.items()),
        "target": [[_sha(t), pc] for t, pc in zip(data.target_texts, data.target_prompt_chars, strict=True)],
    }
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _from_dict(d: dict[str, Any]) -> GainMeasurement:
    providers = tuple(
        ProviderGain(
            provider_id=int(p["provider_id"]), provider_name=str(p["provider_name"]), n_payable=int(p["n_payable"]),
            n_used=int(p["n_used"]),
            regimes={name: RegimeGain(regime=r["regime"], per_seed=tuple(r["per_seed"]),
                                      loss_after=tuple(r["loss_after"]), mean=float(r["mean"]), sd=float(r["sd"]))
                     for name, r in p["regimes"].items()},
        )
        for p in d["providers"]
    )
    return GainMeasurement(**{**d, "providers": providers})


def load_measurement(cache_dir: Path, key: str) -> GainMeasurement | None:
    """The measurement stored under ``key``, or None (absent, from another cache version, or unreadable)."""
    path = Path(cache_dir) / f"{key}.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if doc.get("version") != CACHE_VERSION or doc.get("key") != key:
            return None
        return _from_dict(doc["measurement"])
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as exc:  # a damaged file is measured again, never trusted
        log.warning("ignoring the unreadable validation measurement %s (%s); measuring again", path, exc)
        return None


def save_measurement(cache_dir: Path, key: str, measurement: GainMeasurement) -> Path:
    """Store ``measurement`` under ``key`` (atomically: readers never see half a file)."""
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    doc = {"version": CACHE_VERSION, "key": key, "measurement": dataclasses.asdict(measurement)}
    fd, tmp = tempfile.mkstemp(prefix=f".{key[:12]}.", suffix=".tmp", dir=cache_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, sort_keys=True)
        path = cache_dir / f"{key}.json"
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
